//! Dispatch's persistence, one narrow trait per table: [`ApplicationSnapshots`],
//! [`ParkedEvents`], [`Involved`] and the [`DeliveryLedger`]. Each is implemented for every sea-orm
//! connection or transaction, so whatever must commit with other effects runs on the caller's
//! transaction. Times are Unix milliseconds.
//!
//! Queries use the sea-orm builder; the one raw statement is the worker's claim, an
//! `UPDATE … RETURNING` over a `FOR UPDATE SKIP LOCKED` sub-select, with every value bound.

use std::{collections::HashMap, future::Future};

use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{Expr, OnConflict},
};
use tongban_proto::dispatch as pb;
use tongban_storage::{lock, now_ms, stmt};

pub use crate::entity::delivery::Status;
use crate::{
    entity::{application, delivery},
    error::DispatchError,
    migration::WAITING_STATUSES,
};

/// One ledger row, as the service sees it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub delivery_id: String,
    pub application_id: String,
    pub platform_id: String,
    pub event_id: String,
    pub event_type: String,
    pub idempotency_key: String,
    pub status: Status,
    pub attempts: u32,
    pub last_error: String,
    /// The body last sent; for rows older than `document`, the body to send.
    pub payload: String,
    /// The canonical document, mapped at every attempt (`None` on rows older than it).
    pub document: Option<String>,
    /// The platform's reference for the delivery, from its reply.
    pub receipt: Option<String>,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub delivered_at: Option<i64>,
    /// The trace the row was created in; every attempt's span joins it.
    pub traceparent: Option<String>,
}

impl From<delivery::Model> for Delivery {
    fn from(m: delivery::Model) -> Self {
        Self {
            delivery_id: m.delivery_id,
            application_id: m.application_id,
            platform_id: m.platform_id,
            event_id: m.event_id,
            event_type: m.event_type,
            idempotency_key: m.idempotency_key,
            status: m.status,
            attempts: u32::try_from(m.attempts).unwrap_or(u32::MAX),
            last_error: m.last_error,
            payload: m.payload,
            document: m.document,
            receipt: m.receipt,
            next_attempt_at: m.next_attempt_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
            delivered_at: m.delivered_at,
            traceparent: m.traceparent,
        }
    }
}

fn ms_ts(ms: i64) -> Option<prost_types::Timestamp> {
    tongban_storage::from_ms(ms).map(tongban_proto::time::ts)
}

impl Delivery {
    pub fn to_proto(&self) -> pb::Delivery {
        pb::Delivery {
            delivery_id: self.delivery_id.clone(),
            application_id: self.application_id.clone(),
            platform_id: self.platform_id.clone(),
            event_id: self.event_id.clone(),
            event_type: self.event_type.clone(),
            idempotency_key: self.idempotency_key.clone(),
            status: pb::DeliveryStatus::from(self.status) as i32,
            attempts: self.attempts,
            last_error: self.last_error.clone(),
            next_attempt_time: (self.status == Status::Pending)
                .then(|| ms_ts(self.next_attempt_at))
                .flatten(),
            create_time: ms_ts(self.created_at),
            update_time: ms_ts(self.updated_at),
            deliver_time: self.delivered_at.and_then(ms_ts),
            receipt: self.receipt.clone().unwrap_or_default(),
        }
    }
}

/// A row to add to the ledger.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub delivery_id: String,
    pub application_id: String,
    pub platform_id: String,
    pub event_id: String,
    pub event_type: String,
    pub idempotency_key: String,
    /// The canonical document the platform's mapping reads, JSON text.
    pub document: String,
    /// The trace the deliveries continue (the current span's, where the event is applied).
    pub traceparent: Option<String>,
}

/// The stable key a platform sees for (platform, event): the same on every attempt.
pub fn idempotency_key(platform_id: &str, event_id: &str) -> String {
    format!("{platform_id}-{event_id}")
}

/// What an attempt came to.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The platform confirmed it, with its reference where it gives one.
    Succeeded {
        receipt: Option<String>,
    },
    /// Try again at `next_attempt_at`.
    Retry {
        error: String,
        next_attempt_at: i64,
    },
    DeadLettered {
        error: String,
    },
    /// A newer state of the application is queued for the platform, which takes snapshots of
    /// state; `by` says which.
    Superseded {
        by: String,
    },
}

/// Filter for [`DeliveryLedger::list_deliveries`]; `None` matches everything.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub application_id: Option<String>,
    pub platform_id: Option<String>,
    pub status: Option<Status>,
    /// Only rows after this id (ids are time-ordered UUIDv7: oldest first paging).
    pub after_id: Option<String>,
    pub limit: u64,
}

// ---------------------------------------------------------------- applications and parking

/// The `applications` table: each known application's canonical section.
pub trait ApplicationSnapshots {
    fn load_application(
        &self,
        application_id: &str,
    ) -> impl Future<Output = Result<Option<serde_json::Value>, DbErr>> + Send;

    /// Stores (or replaces) an application's canonical section.
    fn save_application(
        &self,
        application_id: &str,
        section: &serde_json::Value,
    ) -> impl Future<Output = Result<(), DbErr>> + Send;
}

impl<C: ConnectionTrait> ApplicationSnapshots for C {
    async fn load_application(
        &self,
        application_id: &str,
    ) -> Result<Option<serde_json::Value>, DbErr> {
        let Some(row) = application::Entity::find_by_id(application_id)
            .one(self)
            .await?
        else {
            return Ok(None);
        };
        serde_json::from_str(&row.snapshot)
            .map(Some)
            .map_err(|e| DbErr::Custom(format!("corrupt snapshot of {application_id}: {e}")))
    }

    async fn save_application(
        &self,
        application_id: &str,
        section: &serde_json::Value,
    ) -> Result<(), DbErr> {
        application::Entity::insert(application::ActiveModel {
            application_id: Set(application_id.to_string()),
            snapshot: Set(section.to_string()),
            updated_at: Set(now_ms()),
        })
        .on_conflict(
            OnConflict::column(application::Column::ApplicationId)
                .update_columns([
                    application::Column::Snapshot,
                    application::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(self)
        .await?;
        Ok(())
    }
}

pub use tongban_involved::Involved;

/// The `parked_events` table: events waiting for their application (the shared one).
pub use tongban_outbox::parked::ParkedEvents;

// ---------------------------------------------------------------- the ledger

/// The `deliveries` table: what was sent where, how often, and how it ended.
pub trait DeliveryLedger {
    /// Adds a row; `false` if (platform, event) is already in the ledger.
    fn insert_delivery(&self, d: &NewDelivery) -> impl Future<Output = Result<bool, DbErr>> + Send;

    /// Leases up to `limit` due rows of `platform` until `lease_until`, under `lease_token`.
    /// Rows whose lease ran out (a crashed worker's) are due again. On PostgreSQL, `SKIP
    /// LOCKED` lets replicas claim side by side without waiting on each other.
    fn claim_due(
        &self,
        platform_id: &str,
        limit: usize,
        lease_until: i64,
        lease_token: &str,
    ) -> impl Future<Output = Result<Vec<Delivery>, DbErr>> + Send;

    /// On a platform that takes snapshots of state: marks the application's rows older than
    /// `event_id` that still wait (pending and not in flight, or dead-lettered) as superseded.
    fn supersede_older(
        &self,
        platform_id: &str,
        application_id: &str,
        event_id: &str,
    ) -> impl Future<Output = Result<u64, DbErr>> + Send;

    /// Whether the ledger holds a later event of `row`'s application for its platform.
    fn newer_exists(&self, row: &Delivery) -> impl Future<Output = Result<bool, DbErr>> + Send;

    /// Gives a leased row back untouched (shutdown mid-request).
    fn release_lease(
        &self,
        delivery_id: &str,
        lease_token: &str,
    ) -> impl Future<Output = Result<(), DbErr>> + Send;

    /// Records an attempt on a row this worker still leases, with the body it sent (if mapping
    /// got that far). `false` if the lease was lost (the row was reclaimed or reset meanwhile),
    /// in which case nothing is written.
    fn finish_attempt(
        &self,
        delivery_id: &str,
        lease_token: &str,
        attempts: u32,
        sent: Option<&str>,
        outcome: &Outcome,
    ) -> impl Future<Output = Result<bool, DbErr>> + Send;

    fn find_delivery(
        &self,
        delivery_id: &str,
    ) -> impl Future<Output = Result<Option<Delivery>, DbErr>> + Send;

    /// Matching rows in id order.
    fn list_deliveries(
        &self,
        f: &Filter,
    ) -> impl Future<Output = Result<Vec<Delivery>, DbErr>> + Send;

    /// Row counts per (platform, status).
    fn delivery_counts(
        &self,
    ) -> impl Future<Output = Result<HashMap<(String, Status), u64>, DbErr>> + Send;

    /// Makes one row due now: a dead letter starts over with fresh attempts, a pending row
    /// just skips its wait. Returns the updated row; `FailedPrecondition` for a delivered one.
    fn retry_now(
        &self,
        delivery_id: &str,
    ) -> impl Future<Output = Result<Delivery, DispatchError>> + Send;

    /// Gives up on a dead letter for good (`Discarded`); the application's later rows for the
    /// platform stop waiting behind it. Repeating it on a discarded row returns the row;
    /// `FailedPrecondition` for any other status.
    fn discard(
        &self,
        delivery_id: &str,
    ) -> impl Future<Output = Result<Delivery, DispatchError>> + Send;

    /// Puts every dead letter matching the filter back in the queue, attempts reset. Returns
    /// how many rows.
    fn replay_dead_letters(
        &self,
        platform_id: Option<&str>,
        application_id: Option<&str>,
    ) -> impl Future<Output = Result<u64, DbErr>> + Send;

    /// Every idempotency key of `platform` in the ledger, with its status.
    fn delivery_keys(
        &self,
        platform_id: &str,
    ) -> impl Future<Output = Result<HashMap<String, Status>, DbErr>> + Send;

    /// Sets delivered rows (by key) back to pending, due now, attempts reset.
    fn redeliver_keys(
        &self,
        platform_id: &str,
        keys: &[String],
    ) -> impl Future<Output = Result<u64, DbErr>> + Send;

    /// The idempotency keys of `platform`'s succeeded deliveries, each with the receipt the
    /// platform's reply gave, if any (Reconcile of a platform that answers no queries).
    fn succeeded_receipts(
        &self,
        platform_id: &str,
    ) -> impl Future<Output = Result<HashMap<String, Option<String>>, DbErr>> + Send;
}

/// A status as staff read it in messages.
fn status_word(s: Status) -> &'static str {
    match s {
        Status::Pending => "pending",
        Status::Succeeded => "delivered",
        Status::DeadLettered => "dead-lettered",
        Status::Superseded => "superseded",
        Status::Discarded => "discarded",
    }
}

/// `UPDATE deliveries` that puts rows back in the queue: pending, due `now`, attempts reset,
/// no lease.
fn requeue(now: i64) -> sea_orm::UpdateMany<delivery::Entity> {
    delivery::Entity::update_many()
        .col_expr(delivery::Column::Status, Expr::value(Status::Pending))
        .col_expr(delivery::Column::Attempts, Expr::value(0i64))
        .col_expr(delivery::Column::NextAttemptAt, Expr::value(now))
        .col_expr(delivery::Column::UpdatedAt, Expr::value(now))
        .col_expr(
            delivery::Column::LockedUntil,
            Expr::value(Option::<i64>::None),
        )
        .col_expr(
            delivery::Column::LeaseToken,
            Expr::value(Option::<String>::None),
        )
}

impl<C: ConnectionTrait> DeliveryLedger for C {
    async fn insert_delivery(&self, d: &NewDelivery) -> Result<bool, DbErr> {
        let now = now_ms();
        let inserted = delivery::Entity::insert(delivery::ActiveModel {
            delivery_id: Set(d.delivery_id.clone()),
            application_id: Set(d.application_id.clone()),
            platform_id: Set(d.platform_id.clone()),
            event_id: Set(d.event_id.clone()),
            event_type: Set(d.event_type.clone()),
            idempotency_key: Set(d.idempotency_key.clone()),
            status: Set(Status::Pending),
            attempts: Set(0),
            last_error: Set(String::new()),
            payload: Set(String::new()),
            document: Set(Some(d.document.clone())),
            receipt: NotSet,
            next_attempt_at: Set(now),
            locked_until: NotSet,
            lease_token: NotSet,
            created_at: Set(now),
            updated_at: Set(now),
            delivered_at: NotSet,
            traceparent: Set(d.traceparent.clone()),
        })
        .on_conflict(
            OnConflict::columns([delivery::Column::PlatformId, delivery::Column::EventId])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(self)
        .await?;
        Ok(inserted == 1)
    }

    async fn claim_due(
        &self,
        platform_id: &str,
        limit: usize,
        lease_until: i64,
        lease_token: &str,
    ) -> Result<Vec<Delivery>, DbErr> {
        let b = self.get_database_backend();
        let now = now_ms();
        // A row waits while an earlier event of its application to the same platform is still
        // pending (queued, backing off or in flight) or dead-lettered: platforms see one
        // application's events in the order they happened. Event ids are UUIDv7, so their
        // order is the order the events were produced in. The check is a scalar subquery (the
        // earliest waiting event), which both engines run per candidate on `deliveries_waiting`;
        // as `NOT EXISTS` it became an anti-join whose plan depended on statistics.
        let claim = stmt(
            b,
            &format!(
                "UPDATE deliveries SET locked_until = ?, lease_token = ? WHERE delivery_id IN (
                    SELECT d.delivery_id FROM deliveries d
                    WHERE d.platform_id = ? AND d.status = ? AND d.next_attempt_at <= ?
                      AND (d.locked_until IS NULL OR d.locked_until <= ?)
                      AND d.event_id = (
                        SELECT min(e.event_id) FROM deliveries e
                        WHERE e.platform_id = d.platform_id
                          AND e.application_id = d.application_id
                          AND e.status IN {WAITING_STATUSES})
                    ORDER BY d.next_attempt_at, d.delivery_id LIMIT ?{})
                 RETURNING *",
                lock::skip_locked(b)
            ),
            vec![
                lease_until.into(),
                lease_token.into(),
                platform_id.into(),
                Status::Pending.into(),
                now.into(),
                now.into(),
                (limit as i64).into(),
            ],
        );
        let rows = delivery::Entity::find()
            .from_raw_sql(claim)
            .all(self)
            .await?;
        Ok(rows.into_iter().map(Delivery::from).collect())
    }

    async fn supersede_older(
        &self,
        platform_id: &str,
        application_id: &str,
        event_id: &str,
    ) -> Result<u64, DbErr> {
        let now = now_ms();
        let res = delivery::Entity::update_many()
            .col_expr(delivery::Column::Status, Expr::value(Status::Superseded))
            .col_expr(
                delivery::Column::LastError,
                Expr::value(format!("superseded by event {event_id}")),
            )
            .col_expr(delivery::Column::UpdatedAt, Expr::value(now))
            .filter(delivery::Column::PlatformId.eq(platform_id))
            .filter(delivery::Column::ApplicationId.eq(application_id))
            .filter(delivery::Column::EventId.lt(event_id))
            .filter(delivery::Column::Status.is_in([Status::Pending, Status::DeadLettered]))
            // One in flight finishes first; its outcome then finds the newer row.
            .filter(
                Condition::any()
                    .add(delivery::Column::LockedUntil.is_null())
                    .add(delivery::Column::LockedUntil.lte(now)),
            )
            .exec(self)
            .await?;
        Ok(res.rows_affected)
    }

    async fn newer_exists(&self, row: &Delivery) -> Result<bool, DbErr> {
        Ok(delivery::Entity::find()
            .filter(delivery::Column::PlatformId.eq(row.platform_id.as_str()))
            .filter(delivery::Column::ApplicationId.eq(row.application_id.as_str()))
            .filter(delivery::Column::EventId.gt(row.event_id.as_str()))
            .one(self)
            .await?
            .is_some())
    }

    async fn release_lease(&self, delivery_id: &str, lease_token: &str) -> Result<(), DbErr> {
        delivery::Entity::update_many()
            .col_expr(
                delivery::Column::LockedUntil,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(
                delivery::Column::LeaseToken,
                Expr::value(Option::<String>::None),
            )
            .filter(delivery::Column::DeliveryId.eq(delivery_id))
            .filter(delivery::Column::LeaseToken.eq(lease_token))
            .exec(self)
            .await?;
        Ok(())
    }

    async fn finish_attempt(
        &self,
        delivery_id: &str,
        lease_token: &str,
        attempts: u32,
        sent: Option<&str>,
        outcome: &Outcome,
    ) -> Result<bool, DbErr> {
        let now = now_ms();
        let (status, error, next, delivered, receipt): (
            Status,
            &str,
            i64,
            Option<i64>,
            Option<&str>,
        ) = match outcome {
            Outcome::Succeeded { receipt } => {
                (Status::Succeeded, "", now, Some(now), receipt.as_deref())
            }
            Outcome::Retry {
                error,
                next_attempt_at,
            } => (Status::Pending, error, *next_attempt_at, None, None),
            Outcome::DeadLettered { error } => (Status::DeadLettered, error, now, None, None),
            Outcome::Superseded { by } => (Status::Superseded, by, now, None, None),
        };
        let mut update = delivery::Entity::update_many()
            .col_expr(delivery::Column::Status, Expr::value(status))
            .col_expr(delivery::Column::Attempts, Expr::value(i64::from(attempts)))
            .col_expr(delivery::Column::LastError, Expr::value(error))
            .col_expr(delivery::Column::NextAttemptAt, Expr::value(next))
            .col_expr(delivery::Column::DeliveredAt, Expr::value(delivered))
            .col_expr(delivery::Column::UpdatedAt, Expr::value(now))
            .col_expr(
                delivery::Column::LockedUntil,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(
                delivery::Column::LeaseToken,
                Expr::value(Option::<String>::None),
            );
        if let Some(body) = sent {
            update = update.col_expr(delivery::Column::Payload, Expr::value(body));
        }
        if receipt.is_some() {
            update = update.col_expr(
                delivery::Column::Receipt,
                Expr::value(receipt.map(str::to_string)),
            );
        }
        let res = update
            .filter(delivery::Column::DeliveryId.eq(delivery_id))
            .filter(delivery::Column::LeaseToken.eq(lease_token))
            .filter(delivery::Column::Status.eq(Status::Pending))
            .exec(self)
            .await?;
        Ok(res.rows_affected == 1)
    }

    async fn find_delivery(&self, delivery_id: &str) -> Result<Option<Delivery>, DbErr> {
        Ok(delivery::Entity::find_by_id(delivery_id)
            .one(self)
            .await?
            .map(Delivery::from))
    }

    async fn list_deliveries(&self, f: &Filter) -> Result<Vec<Delivery>, DbErr> {
        let mut q = delivery::Entity::find();
        if let Some(a) = &f.application_id {
            q = q.filter(delivery::Column::ApplicationId.eq(a.as_str()));
        }
        if let Some(p) = &f.platform_id {
            q = q.filter(delivery::Column::PlatformId.eq(p.as_str()));
        }
        if let Some(s) = f.status {
            q = q.filter(delivery::Column::Status.eq(s));
        }
        if let Some(id) = &f.after_id {
            q = q.filter(delivery::Column::DeliveryId.gt(id.as_str()));
        }
        let rows = q
            .order_by_asc(delivery::Column::DeliveryId)
            .limit(f.limit)
            .all(self)
            .await?;
        Ok(rows.into_iter().map(Delivery::from).collect())
    }

    async fn delivery_counts(&self) -> Result<HashMap<(String, Status), u64>, DbErr> {
        let rows: Vec<(String, Status, i64)> = delivery::Entity::find()
            .select_only()
            .column(delivery::Column::PlatformId)
            .column(delivery::Column::Status)
            .column_as(delivery::Column::DeliveryId.count(), "n")
            .group_by(delivery::Column::PlatformId)
            .group_by(delivery::Column::Status)
            .into_tuple()
            .all(self)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(platform, status, n)| ((platform, status), n.max(0) as u64))
            .collect())
    }

    async fn retry_now(&self, delivery_id: &str) -> Result<Delivery, DispatchError> {
        let not_found = || DispatchError::NotFound(format!("delivery {delivery_id}"));
        let current = self
            .find_delivery(delivery_id)
            .await?
            .ok_or_else(not_found)?;
        let now = now_ms();
        match current.status {
            Status::Succeeded => {
                return Err(DispatchError::FailedPrecondition(format!(
                    "delivery {delivery_id} already succeeded; use Reconcile to re-deliver what a platform lost"
                )));
            }
            Status::DeadLettered => {
                requeue(now)
                    .filter(delivery::Column::DeliveryId.eq(delivery_id))
                    .filter(delivery::Column::Status.eq(Status::DeadLettered))
                    .exec(self)
                    .await?;
            }
            Status::Superseded | Status::Discarded => {
                return Err(DispatchError::FailedPrecondition(format!(
                    "delivery {delivery_id} is {}; it is final",
                    status_word(current.status)
                )));
            }
            Status::Pending => {
                delivery::Entity::update_many()
                    .col_expr(delivery::Column::NextAttemptAt, Expr::value(now))
                    .col_expr(delivery::Column::UpdatedAt, Expr::value(now))
                    .filter(delivery::Column::DeliveryId.eq(delivery_id))
                    .filter(delivery::Column::Status.eq(Status::Pending))
                    .exec(self)
                    .await?;
            }
        }
        self.find_delivery(delivery_id).await?.ok_or_else(not_found)
    }

    async fn discard(&self, delivery_id: &str) -> Result<Delivery, DispatchError> {
        let not_found = || DispatchError::NotFound(format!("delivery {delivery_id}"));
        let current = self
            .find_delivery(delivery_id)
            .await?
            .ok_or_else(not_found)?;
        match current.status {
            Status::Discarded => return Ok(current),
            Status::DeadLettered => {}
            other => {
                return Err(DispatchError::FailedPrecondition(format!(
                    "delivery {delivery_id} is {}, not dead-lettered; only a dead letter can be discarded",
                    status_word(other)
                )));
            }
        }
        let res = delivery::Entity::update_many()
            .col_expr(delivery::Column::Status, Expr::value(Status::Discarded))
            .col_expr(delivery::Column::UpdatedAt, Expr::value(now_ms()))
            .filter(delivery::Column::DeliveryId.eq(delivery_id))
            .filter(delivery::Column::Status.eq(Status::DeadLettered))
            .exec(self)
            .await?;
        if res.rows_affected != 1 {
            return Err(DispatchError::Aborted(format!(
                "delivery {delivery_id} changed meanwhile; read it again"
            )));
        }
        self.find_delivery(delivery_id).await?.ok_or_else(not_found)
    }

    async fn replay_dead_letters(
        &self,
        platform_id: Option<&str>,
        application_id: Option<&str>,
    ) -> Result<u64, DbErr> {
        let mut q = requeue(now_ms()).filter(delivery::Column::Status.eq(Status::DeadLettered));
        if let Some(p) = platform_id {
            q = q.filter(delivery::Column::PlatformId.eq(p));
        }
        if let Some(a) = application_id {
            q = q.filter(delivery::Column::ApplicationId.eq(a));
        }
        Ok(q.exec(self).await?.rows_affected)
    }

    async fn delivery_keys(&self, platform_id: &str) -> Result<HashMap<String, Status>, DbErr> {
        let rows: Vec<(String, Status)> = delivery::Entity::find()
            .select_only()
            .column(delivery::Column::IdempotencyKey)
            .column(delivery::Column::Status)
            .filter(delivery::Column::PlatformId.eq(platform_id))
            .into_tuple()
            .all(self)
            .await?;
        Ok(rows.into_iter().collect())
    }

    async fn redeliver_keys(&self, platform_id: &str, keys: &[String]) -> Result<u64, DbErr> {
        if keys.is_empty() {
            return Ok(0);
        }
        let res = requeue(now_ms())
            .col_expr(
                delivery::Column::DeliveredAt,
                Expr::value(Option::<i64>::None),
            )
            .filter(delivery::Column::PlatformId.eq(platform_id))
            .filter(delivery::Column::Status.eq(Status::Succeeded))
            .filter(delivery::Column::IdempotencyKey.is_in(keys.iter().map(String::as_str)))
            .exec(self)
            .await?;
        Ok(res.rows_affected)
    }

    async fn succeeded_receipts(
        &self,
        platform_id: &str,
    ) -> Result<HashMap<String, Option<String>>, DbErr> {
        let rows: Vec<(String, Option<String>)> = delivery::Entity::find()
            .select_only()
            .column(delivery::Column::IdempotencyKey)
            .column(delivery::Column::Receipt)
            .filter(delivery::Column::PlatformId.eq(platform_id))
            .filter(delivery::Column::Status.eq(Status::Succeeded))
            .into_tuple()
            .all(self)
            .await?;
        Ok(rows.into_iter().collect())
    }
}
