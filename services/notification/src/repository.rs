//! Notification's persistence, one narrow trait per table: [`FactStore`], [`InboxStore`],
//! [`EmailQueue`], [`WebhookStore`] and [`WebhookDeliveries`], implemented for every sea-orm
//! connection or transaction. Writes made while applying an event run on the consumer's
//! transaction, so that they commit together with the inbox record (a redelivered event
//! writes nothing).
//!
//! Queries use the sea-orm builder; the raw statements are the two queue claims (an `UPDATE …
//! RETURNING` over a `FOR UPDATE SKIP LOCKED` sub-select) and PostgreSQL's advisory lock.

use std::future::Future;

use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Select, UpdateMany,
    sea_query::{Expr, OnConflict},
};
use tongban_proto::{notification as pb, time::ts};
use tongban_storage::{from_ms, lock, now_ms, stmt};

use secrecy::{ExposeSecret, SecretString};

use tongban_involved::Involved;

use crate::{
    entity::{application_fact, email, notification, webhook, webhook_delivery},
    fanin::Facts,
    scope::{AppScope, Owner},
};

// ---------------------------------------------------------------- application facts

/// The `application_facts` table.
pub trait FactStore {
    /// Remembers an application's facts; the first ones seen stay.
    fn save_facts(&self, f: &Facts) -> impl Future<Output = Result<(), DbErr>> + Send;

    fn find_facts(
        &self,
        application_id: &str,
    ) -> impl Future<Output = Result<Option<Facts>, DbErr>> + Send;
}

impl<C: ConnectionTrait> FactStore for C {
    async fn save_facts(&self, f: &Facts) -> Result<(), DbErr> {
        application_fact::Entity::insert(application_fact::ActiveModel {
            application_id: Set(f.application_id.clone()),
            credit_code: Set(f.credit_code.clone()),
            contact_email: Set(f.contact_email.clone()),
            locale: Set(f.locale.clone()),
            matter_code: Set(f.matter_code.clone()),
            project_name: Set(f.project_name.clone()),
            created_ms: Set(now_ms()),
        })
        .on_conflict(
            OnConflict::column(application_fact::Column::ApplicationId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(self)
        .await?;
        Ok(())
    }

    async fn find_facts(&self, application_id: &str) -> Result<Option<Facts>, DbErr> {
        Ok(application_fact::Entity::find_by_id(application_id)
            .one(self)
            .await?
            .map(|m| Facts {
                application_id: m.application_id,
                credit_code: m.credit_code,
                contact_email: m.contact_email,
                locale: m.locale,
                matter_code: m.matter_code,
                project_name: m.project_name,
            }))
    }
}

/// The [`AppScope`] of an application, from the facts and the involved departments
/// ([`tongban_involved::Involved`], `application_departments`).
pub trait ScopeStore {
    /// What is known of the application for webhook scoping.
    fn app_scope(
        &self,
        application_id: &str,
        facts: Option<&Facts>,
    ) -> impl Future<Output = Result<AppScope, DbErr>> + Send;
}

impl<C: ConnectionTrait> ScopeStore for C {
    async fn app_scope(
        &self,
        application_id: &str,
        facts: Option<&Facts>,
    ) -> Result<AppScope, DbErr> {
        let departments = self.departments_of(application_id).await?;
        let known = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Ok(AppScope {
            credit_code: facts.and_then(|f| known(&f.credit_code)),
            matter_code: facts.and_then(|f| known(&f.matter_code)),
            departments,
        })
    }
}

// ---------------------------------------------------------------- the inbox

/// A notification to insert.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub notification_id: String,
    pub event_id: String,
    pub recipient: String,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub locale: String,
    pub application_id: String,
    pub task_id: String,
    pub dedup_key: Option<String>,
}

/// Whose notifications a query may see: some recipient keys, or everything (admin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    All,
    Keys(Vec<String>),
}

impl Audience {
    /// Narrows `q` to the audience; no keys match nothing.
    fn filter<Q: QueryFilter>(&self, q: Q) -> Q {
        match self {
            Audience::All => q,
            Audience::Keys(keys) => {
                q.filter(notification::Column::Recipient.is_in(keys.iter().map(String::as_str)))
            }
        }
    }
}

fn ms_ts(ms: i64) -> Option<prost_types::Timestamp> {
    from_ms(ms).map(ts)
}

impl From<notification::Model> for pb::Notification {
    fn from(m: notification::Model) -> Self {
        pb::Notification {
            cursor: m.seq,
            notification_id: m.notification_id,
            recipient: m.recipient,
            kind: m.kind,
            title: m.title,
            body: m.body,
            locale: m.locale,
            application_id: m.application_id,
            task_id: m.task_id,
            create_time: ms_ts(m.created_ms),
            read_time: m.read_ms.and_then(ms_ts),
        }
    }
}

/// The `notifications` table, the in-app inbox.
pub trait InboxStore {
    /// Serialises inserts into `notifications` until the transaction ends (PostgreSQL; SQLite
    /// has one writer anyway). With it, `seq` values become visible in the order they were
    /// assigned, so a subscriber that has seen cursor N can never later find a committed row
    /// below N.
    fn lock_sequence(&self) -> impl Future<Output = Result<(), DbErr>> + Send;

    /// Inserts `n`; returns false when it already exists (same event and recipient, or a
    /// reminder with the same de-duplication key).
    fn insert_notification(
        &self,
        n: &NewNotification,
    ) -> impl Future<Output = Result<bool, DbErr>> + Send;

    /// Newest first, strictly before `before_seq` when given.
    fn list_notifications(
        &self,
        audience: &Audience,
        unread_only: bool,
        before_seq: Option<i64>,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<pb::Notification>, DbErr>> + Send;

    /// Oldest first, strictly after `after_seq`: the Subscribe stream's reads.
    fn notifications_after(
        &self,
        audience: &Audience,
        after_seq: i64,
        unread_only: bool,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<pb::Notification>, DbErr>> + Send;

    /// Marks the audience's notifications among `ids` read; returns how many were unread.
    fn mark_read(
        &self,
        audience: &Audience,
        ids: &[String],
    ) -> impl Future<Output = Result<u64, DbErr>> + Send;

    /// The highest cursor so far (0 when there is none).
    fn head_cursor(&self) -> impl Future<Output = Result<i64, DbErr>> + Send;
}

/// The audience's notifications, unread ones only if asked.
fn visible(audience: &Audience, unread_only: bool) -> Select<notification::Entity> {
    let q = audience.filter(notification::Entity::find());
    if unread_only {
        q.filter(notification::Column::ReadMs.is_null())
    } else {
        q
    }
}

impl<C: ConnectionTrait> InboxStore for C {
    async fn lock_sequence(&self) -> Result<(), DbErr> {
        if self.get_database_backend() == DbBackend::Postgres {
            self.execute_unprepared("SELECT pg_advisory_xact_lock(7243053)")
                .await?;
        }
        Ok(())
    }

    async fn insert_notification(&self, n: &NewNotification) -> Result<bool, DbErr> {
        let inserted = notification::Entity::insert(notification::ActiveModel {
            seq: NotSet,
            notification_id: Set(n.notification_id.clone()),
            event_id: Set(n.event_id.clone()),
            recipient: Set(n.recipient.clone()),
            kind: Set(n.kind.clone()),
            title: Set(n.title.clone()),
            body: Set(n.body.clone()),
            locale: Set(n.locale.clone()),
            application_id: Set(n.application_id.clone()),
            task_id: Set(n.task_id.clone()),
            dedup_key: Set(n.dedup_key.clone()),
            created_ms: Set(now_ms()),
            read_ms: NotSet,
        })
        // Any of the unique keys: id, (event, recipient), or the reminder's dedup key.
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .exec_without_returning(self)
        .await?;
        Ok(inserted == 1)
    }

    async fn list_notifications(
        &self,
        audience: &Audience,
        unread_only: bool,
        before_seq: Option<i64>,
        limit: u64,
    ) -> Result<Vec<pb::Notification>, DbErr> {
        let mut q = visible(audience, unread_only);
        if let Some(b) = before_seq {
            q = q.filter(notification::Column::Seq.lt(b));
        }
        let rows = q
            .order_by_desc(notification::Column::Seq)
            .limit(limit)
            .all(self)
            .await?;
        Ok(rows.into_iter().map(pb::Notification::from).collect())
    }

    async fn notifications_after(
        &self,
        audience: &Audience,
        after_seq: i64,
        unread_only: bool,
        limit: u64,
    ) -> Result<Vec<pb::Notification>, DbErr> {
        let rows = visible(audience, unread_only)
            .filter(notification::Column::Seq.gt(after_seq))
            .order_by_asc(notification::Column::Seq)
            .limit(limit)
            .all(self)
            .await?;
        Ok(rows.into_iter().map(pb::Notification::from).collect())
    }

    async fn mark_read(&self, audience: &Audience, ids: &[String]) -> Result<u64, DbErr> {
        if ids.is_empty() {
            return Ok(0);
        }
        let q = notification::Entity::update_many()
            .col_expr(notification::Column::ReadMs, Expr::value(now_ms()))
            .filter(notification::Column::ReadMs.is_null())
            .filter(notification::Column::NotificationId.is_in(ids.iter().map(String::as_str)));
        Ok(audience.filter(q).exec(self).await?.rows_affected)
    }

    async fn head_cursor(&self) -> Result<i64, DbErr> {
        let max: Option<Option<i64>> = notification::Entity::find()
            .select_only()
            .column_as(notification::Column::Seq.max(), "m")
            .into_tuple()
            .one(self)
            .await?;
        Ok(max.flatten().unwrap_or(0))
    }
}

// ---------------------------------------------------------------- the two send queues

/// Claims up to `limit` due rows of `table` (keyed by `id_col`, still open by `open_filter`)
/// by pushing their `next_attempt_ms` out by `lease_ms`: another replica will not pick them up
/// meanwhile, and if this one dies they become due again when the lease runs out. One
/// statement, so it is atomic without a transaction of its own.
async fn claim<C: ConnectionTrait>(
    conn: &C,
    table: &str,
    id_col: &str,
    open_filter: &str,
    lease_ms: i64,
    limit: u64,
) -> Result<Vec<String>, DbErr> {
    let b = conn.get_database_backend();
    let now = now_ms();
    let rows = conn
        .query_all_raw(stmt(
            b,
            &format!(
                "UPDATE {table} SET next_attempt_ms = ? WHERE {id_col} IN (
                    SELECT {id_col} FROM {table} WHERE {open_filter} AND next_attempt_ms <= ?
                    ORDER BY next_attempt_ms LIMIT ?{})
                 RETURNING {id_col} AS id",
                lock::skip_locked(b)
            ),
            vec![(now + lease_ms).into(), now.into(), (limit as i64).into()],
        ))
        .await?;
    rows.iter().map(|r| r.try_get("", "id")).collect()
}

/// An e-mail claimed for sending.
#[derive(Debug, Clone)]
pub struct EmailRow {
    pub notification_id: String,
    pub to_addr: String,
    pub subject: String,
    pub body: String,
    pub attempts: i64,
    /// When the current run of failures began; `None` before the first failure.
    pub retry_since_ms: Option<i64>,
}

/// The `emails` table, a send queue.
pub trait EmailQueue {
    fn insert_email(
        &self,
        notification_id: &str,
        to: &str,
        subject: &str,
        body: &str,
        send_after_ms: i64,
    ) -> impl Future<Output = Result<(), DbErr>> + Send;

    /// Leases up to `limit` due e-mails for `lease_ms`.
    fn claim_emails(
        &self,
        lease_ms: i64,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<EmailRow>, DbErr>> + Send;

    /// Records the outcome of an attempt: sent, to be retried, or given up (dead).
    fn finish_email(
        &self,
        notification_id: &str,
        attempts: i64,
        outcome: &DeliveryOutcome,
    ) -> impl Future<Output = Result<(), DbErr>> + Send;
}

impl<C: ConnectionTrait> EmailQueue for C {
    async fn insert_email(
        &self,
        notification_id: &str,
        to: &str,
        subject: &str,
        body: &str,
        send_after_ms: i64,
    ) -> Result<(), DbErr> {
        email::Entity::insert(email::ActiveModel {
            notification_id: Set(notification_id.to_string()),
            to_addr: Set(to.to_string()),
            subject: Set(subject.to_string()),
            body: Set(body.to_string()),
            send_after_ms: Set(send_after_ms),
            next_attempt_ms: Set(send_after_ms),
            attempts: Set(0),
            sent_ms: NotSet,
            failed_ms: NotSet,
            last_error: NotSet,
            retry_since_ms: NotSet,
        })
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .exec_without_returning(self)
        .await?;
        Ok(())
    }

    async fn claim_emails(&self, lease_ms: i64, limit: u64) -> Result<Vec<EmailRow>, DbErr> {
        let ids = claim(
            self,
            "emails",
            "notification_id",
            "sent_ms IS NULL AND failed_ms IS NULL",
            lease_ms,
            limit,
        )
        .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = email::Entity::find()
            .filter(email::Column::NotificationId.is_in(ids))
            .all(self)
            .await?;
        Ok(rows
            .into_iter()
            .map(|m| EmailRow {
                notification_id: m.notification_id,
                to_addr: m.to_addr,
                subject: m.subject,
                body: m.body,
                attempts: i64::from(m.attempts),
                retry_since_ms: m.retry_since_ms,
            })
            .collect())
    }

    async fn finish_email(
        &self,
        notification_id: &str,
        attempts: i64,
        outcome: &DeliveryOutcome,
    ) -> Result<(), DbErr> {
        let q = email::Entity::update_many()
            .col_expr(email::Column::Attempts, Expr::value(attempts as i32));
        let q = match outcome {
            DeliveryOutcome::Delivered => q
                .col_expr(email::Column::SentMs, Expr::value(now_ms()))
                .col_expr(
                    email::Column::LastError,
                    Expr::value(Option::<String>::None),
                ),
            DeliveryOutcome::Retry {
                at_ms,
                since_ms,
                error,
            } => q
                .col_expr(email::Column::NextAttemptMs, Expr::value(*at_ms))
                .col_expr(email::Column::RetrySinceMs, Expr::value(*since_ms))
                .col_expr(email::Column::LastError, Expr::value(error.as_str())),
            DeliveryOutcome::GaveUp { error } => q
                .col_expr(email::Column::FailedMs, Expr::value(now_ms()))
                .col_expr(email::Column::LastError, Expr::value(error.as_str())),
        };
        q.filter(email::Column::NotificationId.eq(notification_id))
            .exec(self)
            .await?;
        Ok(())
    }
}

// ---------------------------------------------------------------- webhooks

/// A registered webhook. Its `Debug` shows no secret ([`SecretString`] redacts itself).
#[derive(Debug, Clone)]
pub struct WebhookRow {
    pub webhook_id: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub secret: SecretString,
    pub created_ms: i64,
    pub owner: Owner,
}

impl WebhookRow {
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.is_empty() || self.event_types.iter().any(|t| t == event_type)
    }
}

impl From<webhook::Model> for WebhookRow {
    fn from(m: webhook::Model) -> Self {
        WebhookRow {
            webhook_id: m.webhook_id,
            url: m.url,
            event_types: m
                .event_types
                .split(',')
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect(),
            secret: SecretString::from(m.secret),
            created_ms: m.created_ms,
            owner: Owner {
                subject: m.owner_subject,
                role: m.owner_role,
                department: m.owner_department,
                credit_code: m.owner_credit_code,
            },
        }
    }
}

/// The `webhooks` table.
pub trait WebhookStore {
    /// Stores a webhook; `request_id` is RegisterWebhook's idempotency key ("" for none),
    /// unique when set.
    fn insert_webhook(
        &self,
        w: &WebhookRow,
        request_id: &str,
    ) -> impl Future<Output = Result<(), DbErr>> + Send;

    /// The webhook registered with `request_id`.
    fn webhook_by_request_id(
        &self,
        request_id: &str,
    ) -> impl Future<Output = Result<Option<WebhookRow>, DbErr>> + Send;

    fn webhook(
        &self,
        webhook_id: &str,
    ) -> impl Future<Output = Result<Option<WebhookRow>, DbErr>> + Send;

    fn webhooks(&self) -> impl Future<Output = Result<Vec<WebhookRow>, DbErr>> + Send;

    /// Webhooks by id, after `after`, of `owner` only when given.
    fn list_webhooks(
        &self,
        owner: Option<&Owner>,
        after: Option<&str>,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<WebhookRow>, DbErr>> + Send;

    /// Deletes a webhook and its deliveries; false when there was none. Run it in a
    /// transaction so that nothing is half-deleted.
    fn delete_webhook(&self, webhook_id: &str) -> impl Future<Output = Result<bool, DbErr>> + Send;
}

impl<C: ConnectionTrait> WebhookStore for C {
    async fn insert_webhook(&self, w: &WebhookRow, request_id: &str) -> Result<(), DbErr> {
        webhook::Entity::insert(webhook::ActiveModel {
            webhook_id: Set(w.webhook_id.clone()),
            url: Set(w.url.clone()),
            event_types: Set(w.event_types.join(",")),
            secret: Set(w.secret.expose_secret().to_string()),
            created_by: Set(w.owner.label()),
            created_ms: Set(w.created_ms),
            request_id: Set(request_id.to_string()),
            owner_subject: Set(w.owner.subject.clone()),
            owner_role: Set(w.owner.role.clone()),
            owner_department: Set(w.owner.department.clone()),
            owner_credit_code: Set(w.owner.credit_code.clone()),
        })
        .exec_without_returning(self)
        .await?;
        Ok(())
    }

    async fn webhook_by_request_id(&self, request_id: &str) -> Result<Option<WebhookRow>, DbErr> {
        Ok(webhook::Entity::find()
            .filter(webhook::Column::RequestId.eq(request_id))
            .one(self)
            .await?
            .map(WebhookRow::from))
    }

    async fn webhook(&self, webhook_id: &str) -> Result<Option<WebhookRow>, DbErr> {
        Ok(webhook::Entity::find_by_id(webhook_id)
            .one(self)
            .await?
            .map(WebhookRow::from))
    }

    async fn webhooks(&self) -> Result<Vec<WebhookRow>, DbErr> {
        Ok(webhook::Entity::find()
            .all(self)
            .await?
            .into_iter()
            .map(WebhookRow::from)
            .collect())
    }

    async fn list_webhooks(
        &self,
        owner: Option<&Owner>,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<WebhookRow>, DbErr> {
        let mut q = webhook::Entity::find();
        if let Some(o) = owner {
            q = q
                .filter(webhook::Column::OwnerSubject.eq(o.subject.as_str()))
                .filter(webhook::Column::OwnerRole.eq(o.role.as_str()))
                .filter(webhook::Column::OwnerDepartment.eq(o.department.as_str()))
                .filter(webhook::Column::OwnerCreditCode.eq(o.credit_code.as_str()));
        }
        if let Some(a) = after {
            q = q.filter(webhook::Column::WebhookId.gt(a));
        }
        Ok(q.order_by_asc(webhook::Column::WebhookId)
            .limit(limit)
            .all(self)
            .await?
            .into_iter()
            .map(WebhookRow::from)
            .collect())
    }

    async fn delete_webhook(&self, webhook_id: &str) -> Result<bool, DbErr> {
        webhook_delivery::Entity::delete_many()
            .filter(webhook_delivery::Column::WebhookId.eq(webhook_id))
            .exec(self)
            .await?;
        let n = webhook::Entity::delete_by_id(webhook_id)
            .exec(self)
            .await?
            .rows_affected;
        Ok(n > 0)
    }
}

/// A webhook delivery claimed for sending.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub delivery_id: String,
    pub event_id: String,
    pub url: String,
    pub secret: SecretString,
    pub body: String,
    pub attempts: i64,
    /// When the current run of failures began; `None` before the first failure.
    pub retry_since_ms: Option<i64>,
    /// The trace the delivery was queued in.
    pub traceparent: Option<String>,
}

/// What became of one attempt at an e-mail or a webhook call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Sent (e-mail) or delivered (webhook).
    Delivered,
    /// Failed; try again at `at_ms`. The failures began at `since_ms`.
    Retry {
        at_ms: i64,
        since_ms: i64,
        error: String,
    },
    /// Failed for the last time: the row is dead until replayed.
    GaveUp { error: String },
}

/// The `webhook_deliveries` table, a send queue.
pub trait WebhookDeliveries {
    /// Queues `body` for `webhook_id`, once per event, in the current span's trace.
    fn insert_delivery(
        &self,
        webhook_id: &str,
        event_id: &str,
        body: &str,
    ) -> impl Future<Output = Result<(), DbErr>> + Send;

    /// Leases up to `limit` due deliveries for `lease_ms`, with their webhook's URL and secret.
    fn claim_deliveries(
        &self,
        lease_ms: i64,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<DeliveryRow>, DbErr>> + Send;

    fn finish_delivery(
        &self,
        delivery_id: &str,
        attempts: i64,
        outcome: &DeliveryOutcome,
    ) -> impl Future<Output = Result<(), DbErr>> + Send;
}

impl<C: ConnectionTrait> WebhookDeliveries for C {
    async fn insert_delivery(
        &self,
        webhook_id: &str,
        event_id: &str,
        body: &str,
    ) -> Result<(), DbErr> {
        webhook_delivery::Entity::insert(webhook_delivery::ActiveModel {
            delivery_id: Set(tongban_types::new_id()),
            webhook_id: Set(webhook_id.to_string()),
            event_id: Set(event_id.to_string()),
            body: Set(body.to_string()),
            attempts: Set(0),
            next_attempt_ms: Set(now_ms()),
            delivered_ms: NotSet,
            failed_ms: NotSet,
            last_error: NotSet,
            traceparent: Set(tongban_telemetry::current_traceparent()),
            retry_since_ms: NotSet,
        })
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .exec_without_returning(self)
        .await?;
        Ok(())
    }

    async fn claim_deliveries(&self, lease_ms: i64, limit: u64) -> Result<Vec<DeliveryRow>, DbErr> {
        let ids = claim(
            self,
            "webhook_deliveries",
            "delivery_id",
            "delivered_ms IS NULL AND failed_ms IS NULL",
            lease_ms,
            limit,
        )
        .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::DeliveryId.is_in(ids))
            .find_also_related(webhook::Entity)
            .all(self)
            .await?;
        Ok(rows
            .into_iter()
            // A webhook is deleted together with its deliveries, so every row has one.
            .filter_map(|(d, w)| {
                w.map(|w| DeliveryRow {
                    delivery_id: d.delivery_id,
                    event_id: d.event_id,
                    url: w.url,
                    secret: SecretString::from(w.secret),
                    body: d.body,
                    attempts: i64::from(d.attempts),
                    retry_since_ms: d.retry_since_ms,
                    traceparent: d.traceparent,
                })
            })
            .collect())
    }

    async fn finish_delivery(
        &self,
        delivery_id: &str,
        attempts: i64,
        outcome: &DeliveryOutcome,
    ) -> Result<(), DbErr> {
        let q = webhook_delivery::Entity::update_many().col_expr(
            webhook_delivery::Column::Attempts,
            Expr::value(attempts as i32),
        );
        let q: UpdateMany<webhook_delivery::Entity> = match outcome {
            DeliveryOutcome::Delivered => q
                .col_expr(webhook_delivery::Column::DeliveredMs, Expr::value(now_ms()))
                .col_expr(
                    webhook_delivery::Column::LastError,
                    Expr::value(Option::<String>::None),
                ),
            DeliveryOutcome::Retry {
                at_ms,
                since_ms,
                error,
            } => q
                .col_expr(webhook_delivery::Column::NextAttemptMs, Expr::value(*at_ms))
                .col_expr(
                    webhook_delivery::Column::RetrySinceMs,
                    Expr::value(*since_ms),
                )
                .col_expr(
                    webhook_delivery::Column::LastError,
                    Expr::value(error.as_str()),
                ),
            DeliveryOutcome::GaveUp { error } => q
                .col_expr(webhook_delivery::Column::FailedMs, Expr::value(now_ms()))
                .col_expr(
                    webhook_delivery::Column::LastError,
                    Expr::value(error.as_str()),
                ),
        };
        q.filter(webhook_delivery::Column::DeliveryId.eq(delivery_id))
            .exec(self)
            .await?;
        Ok(())
    }
}

// ---------------------------------------------------------------- dead rows

/// The two send queues whose dead rows an admin lists and replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email,
    Webhook,
}

impl Channel {
    /// The metric label and the audit wording.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Webhook => "webhook",
        }
    }
}

/// An e-mail or webhook call that gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRow {
    pub channel: Channel,
    /// The e-mail's notification id, or the webhook delivery's id.
    pub id: String,
    /// The address or the webhook URL.
    pub target: String,
    /// The webhook call's event id; empty for e-mails.
    pub event_id: String,
    pub attempts: i64,
    pub last_error: String,
    pub failed_ms: i64,
}

/// The dead rows of both send queues.
pub trait DeadRows {
    /// Dead rows of `channel` by id, after `after`.
    fn list_failed(
        &self,
        channel: Channel,
        after: Option<&str>,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<FailedRow>, DbErr>> + Send;

    /// Makes dead rows of `channel` due again now, with a fresh retry schedule: those among
    /// `ids`, or all when `ids` is `None`; at most `limit` of them. Returns the ids replayed;
    /// rows that are not dead (sent, or still retrying) are left alone.
    fn replay_failed(
        &self,
        channel: Channel,
        ids: Option<&[String]>,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<String>, DbErr>> + Send;
}

impl<C: ConnectionTrait> DeadRows for C {
    async fn list_failed(
        &self,
        channel: Channel,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<FailedRow>, DbErr> {
        match channel {
            Channel::Email => {
                let mut q = email::Entity::find().filter(email::Column::FailedMs.is_not_null());
                if let Some(a) = after {
                    q = q.filter(email::Column::NotificationId.gt(a));
                }
                let rows = q
                    .order_by_asc(email::Column::NotificationId)
                    .limit(limit)
                    .all(self)
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(|m| FailedRow {
                        channel,
                        id: m.notification_id,
                        target: m.to_addr,
                        event_id: String::new(),
                        attempts: i64::from(m.attempts),
                        last_error: m.last_error.unwrap_or_default(),
                        failed_ms: m.failed_ms.unwrap_or_default(),
                    })
                    .collect())
            }
            Channel::Webhook => {
                let mut q = webhook_delivery::Entity::find()
                    .filter(webhook_delivery::Column::FailedMs.is_not_null());
                if let Some(a) = after {
                    q = q.filter(webhook_delivery::Column::DeliveryId.gt(a));
                }
                let rows = q
                    .order_by_asc(webhook_delivery::Column::DeliveryId)
                    .limit(limit)
                    .find_also_related(webhook::Entity)
                    .all(self)
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(|(d, w)| FailedRow {
                        channel,
                        id: d.delivery_id,
                        target: w.map(|w| w.url).unwrap_or_default(),
                        event_id: d.event_id,
                        attempts: i64::from(d.attempts),
                        last_error: d.last_error.unwrap_or_default(),
                        failed_ms: d.failed_ms.unwrap_or_default(),
                    })
                    .collect())
            }
        }
    }

    async fn replay_failed(
        &self,
        channel: Channel,
        ids: Option<&[String]>,
        limit: u64,
    ) -> Result<Vec<String>, DbErr> {
        match channel {
            Channel::Email => {
                replay_dead::<email::Entity, _>(
                    self,
                    RetryColumns {
                        id: email::Column::NotificationId,
                        failed: email::Column::FailedMs,
                        retry_since: email::Column::RetrySinceMs,
                        attempts: email::Column::Attempts,
                        next_attempt: email::Column::NextAttemptMs,
                    },
                    ids,
                    limit,
                )
                .await
            }
            Channel::Webhook => {
                replay_dead::<webhook_delivery::Entity, _>(
                    self,
                    RetryColumns {
                        id: webhook_delivery::Column::DeliveryId,
                        failed: webhook_delivery::Column::FailedMs,
                        retry_since: webhook_delivery::Column::RetrySinceMs,
                        attempts: webhook_delivery::Column::Attempts,
                        next_attempt: webhook_delivery::Column::NextAttemptMs,
                    },
                    ids,
                    limit,
                )
                .await
            }
        }
    }
}

/// The retry-state columns both send queues have, named per table.
struct RetryColumns<C> {
    id: C,
    failed: C,
    retry_since: C,
    attempts: C,
    next_attempt: C,
}

/// [`DeadRows::replay_failed`] on one send queue: picks the dead rows (of `ids`, or any), then
/// gives them a fresh retry schedule due now; rows that came back to life meanwhile are left
/// alone by the `failed IS NOT NULL` guard.
async fn replay_dead<E, C>(
    conn: &C,
    cols: RetryColumns<E::Column>,
    ids: Option<&[String]>,
    limit: u64,
) -> Result<Vec<String>, DbErr>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    let mut find = E::find()
        .select_only()
        .column(cols.id)
        .filter(cols.failed.is_not_null());
    if let Some(ids) = ids {
        find = find.filter(cols.id.is_in(ids.iter().map(String::as_str)));
    }
    let found: Vec<String> = find.limit(limit).into_tuple().all(conn).await?;
    if found.is_empty() {
        return Ok(found);
    }
    E::update_many()
        .col_expr(cols.failed, Expr::value(Option::<i64>::None))
        .col_expr(cols.retry_since, Expr::value(Option::<i64>::None))
        .col_expr(cols.attempts, Expr::value(0))
        .col_expr(cols.next_attempt, Expr::value(now_ms()))
        .filter(cols.failed.is_not_null())
        .filter(cols.id.is_in(found.iter().map(String::as_str)))
        .exec(conn)
        .await?;
    Ok(found)
}
