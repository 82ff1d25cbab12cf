//! Notification's persistence: `application_facts`, `notifications`, `emails`, `webhooks` and
//! `webhook_deliveries`. Writes made while applying an event take the consumer's transaction,
//! so that they commit together with the inbox record (a redelivered event writes nothing).

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, QueryResult, Value};
use tongban_proto::{notification as pb, time::ts};
use tongban_storage::{begin_write, stmt};

use crate::fanin::Facts;

/// Milliseconds since the epoch, the unit of every `*_ms` column.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn ms_ts(ms: i64) -> Option<prost_types::Timestamp> {
    chrono::DateTime::from_timestamp_millis(ms).map(ts)
}

pub async fn save_facts<C: ConnectionTrait>(conn: &C, f: &Facts) -> Result<(), DbErr> {
    conn.execute_raw(stmt(
        conn.get_database_backend(),
        "INSERT INTO application_facts (application_id, credit_code, contact_email, locale, matter_code, project_name, created_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (application_id) DO NOTHING",
        vec![
            f.application_id.clone().into(),
            f.credit_code.clone().into(),
            f.contact_email.clone().into(),
            f.locale.clone().into(),
            f.matter_code.clone().into(),
            f.project_name.clone().into(),
            now_ms().into(),
        ],
    ))
    .await?;
    Ok(())
}

pub async fn find_facts<C: ConnectionTrait>(
    conn: &C,
    application_id: &str,
) -> Result<Option<Facts>, DbErr> {
    let row = conn
        .query_one_raw(stmt(
            conn.get_database_backend(),
            "SELECT application_id, credit_code, contact_email, locale, matter_code, project_name
             FROM application_facts WHERE application_id = ?",
            vec![application_id.into()],
        ))
        .await?;
    row.map(|r| {
        Ok(Facts {
            application_id: r.try_get("", "application_id")?,
            credit_code: r.try_get("", "credit_code")?,
            contact_email: r.try_get("", "contact_email")?,
            locale: r.try_get("", "locale")?,
            matter_code: r.try_get("", "matter_code")?,
            project_name: r.try_get("", "project_name")?,
        })
    })
    .transpose()
}

/// Serialises inserts into `notifications` until the transaction ends (PostgreSQL; SQLite has
/// one writer anyway). With it, `seq` values become visible in the order they were assigned,
/// so a subscriber that has seen cursor N can never later find a committed row below N.
pub async fn lock_sequence<C: ConnectionTrait>(conn: &C) -> Result<(), DbErr> {
    if conn.get_database_backend() == DbBackend::Postgres {
        conn.execute_unprepared("SELECT pg_advisory_xact_lock(7243053)")
            .await?;
    }
    Ok(())
}

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

/// Inserts `n`; returns false when it already exists (same event and recipient, or a reminder
/// with the same de-duplication key).
pub async fn insert_notification<C: ConnectionTrait>(
    conn: &C,
    n: &NewNotification,
) -> Result<bool, DbErr> {
    let res = conn
        .execute_raw(stmt(
            conn.get_database_backend(),
            "INSERT INTO notifications (notification_id, event_id, recipient, kind, title, body, locale, application_id, task_id, dedup_key, created_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            vec![
                n.notification_id.clone().into(),
                n.event_id.clone().into(),
                n.recipient.clone().into(),
                n.kind.clone().into(),
                n.title.clone().into(),
                n.body.clone().into(),
                n.locale.clone().into(),
                n.application_id.clone().into(),
                n.task_id.clone().into(),
                n.dedup_key.clone().into(),
                now_ms().into(),
            ],
        ))
        .await?;
    Ok(res.rows_affected() == 1)
}

pub async fn insert_email<C: ConnectionTrait>(
    conn: &C,
    notification_id: &str,
    to: &str,
    subject: &str,
    body: &str,
    send_after_ms: i64,
) -> Result<(), DbErr> {
    conn.execute_raw(stmt(
        conn.get_database_backend(),
        "INSERT INTO emails (notification_id, to_addr, subject, body, send_after_ms, next_attempt_ms, attempts)
         VALUES (?, ?, ?, ?, ?, ?, 0) ON CONFLICT DO NOTHING",
        vec![
            notification_id.into(),
            to.into(),
            subject.into(),
            body.into(),
            send_after_ms.into(),
            send_after_ms.into(),
        ],
    ))
    .await?;
    Ok(())
}

const NOTIFICATION_COLUMNS: &str = "seq, notification_id, recipient, kind, title, body, locale, application_id, task_id, created_ms, read_ms";

fn decode_notification(r: &QueryResult) -> Result<pb::Notification, DbErr> {
    let read_ms: Option<i64> = r.try_get("", "read_ms")?;
    Ok(pb::Notification {
        cursor: r.try_get("", "seq")?,
        notification_id: r.try_get("", "notification_id")?,
        recipient: r.try_get("", "recipient")?,
        kind: r.try_get("", "kind")?,
        title: r.try_get("", "title")?,
        body: r.try_get("", "body")?,
        locale: r.try_get("", "locale")?,
        application_id: r.try_get("", "application_id")?,
        task_id: r.try_get("", "task_id")?,
        create_time: ms_ts(r.try_get("", "created_ms")?),
        read_time: read_ms.and_then(ms_ts),
    })
}

/// Whose notifications a query may see: some recipient keys, or everything (admin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    All,
    Keys(Vec<String>),
}

impl Audience {
    fn push_filter(&self, sql: &mut String, values: &mut Vec<Value>) {
        if let Audience::Keys(keys) = self {
            if keys.is_empty() {
                sql.push_str(" AND 1=0");
                return;
            }
            sql.push_str(" AND recipient IN (");
            sql.push_str(&vec!["?"; keys.len()].join(", "));
            sql.push(')');
            values.extend(keys.iter().map(|k| Value::from(k.clone())));
        }
    }
}

/// Newest first, strictly before `before_seq` when given.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    audience: &Audience,
    unread_only: bool,
    before_seq: Option<i64>,
    limit: u64,
) -> Result<Vec<pb::Notification>, DbErr> {
    let mut sql = format!("SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE 1=1");
    let mut values = Vec::new();
    audience.push_filter(&mut sql, &mut values);
    if unread_only {
        sql.push_str(" AND read_ms IS NULL");
    }
    if let Some(b) = before_seq {
        sql.push_str(" AND seq < ?");
        values.push(b.into());
    }
    sql.push_str(" ORDER BY seq DESC LIMIT ?");
    values.push((limit as i64).into());
    let rows = conn
        .query_all_raw(stmt(conn.get_database_backend(), &sql, values))
        .await?;
    rows.iter().map(decode_notification).collect()
}

/// Oldest first, strictly after `after_seq`: the Subscribe stream's reads.
pub async fn after<C: ConnectionTrait>(
    conn: &C,
    audience: &Audience,
    after_seq: i64,
    unread_only: bool,
    limit: u64,
) -> Result<Vec<pb::Notification>, DbErr> {
    let mut sql = format!("SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE seq > ?");
    let mut values: Vec<Value> = vec![after_seq.into()];
    audience.push_filter(&mut sql, &mut values);
    if unread_only {
        sql.push_str(" AND read_ms IS NULL");
    }
    sql.push_str(" ORDER BY seq ASC LIMIT ?");
    values.push((limit as i64).into());
    let rows = conn
        .query_all_raw(stmt(conn.get_database_backend(), &sql, values))
        .await?;
    rows.iter().map(decode_notification).collect()
}

/// Marks the audience's notifications among `ids` read; returns how many were unread.
pub async fn mark_read<C: ConnectionTrait>(
    conn: &C,
    audience: &Audience,
    ids: &[String],
) -> Result<u64, DbErr> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut sql = format!(
        "UPDATE notifications SET read_ms = ? WHERE read_ms IS NULL AND notification_id IN ({})",
        vec!["?"; ids.len()].join(", ")
    );
    let mut values: Vec<Value> = vec![now_ms().into()];
    values.extend(ids.iter().map(|i| Value::from(i.clone())));
    audience.push_filter(&mut sql, &mut values);
    let res = conn
        .execute_raw(stmt(conn.get_database_backend(), &sql, values))
        .await?;
    Ok(res.rows_affected())
}

/// A registered webhook.
#[derive(Debug, Clone)]
pub struct WebhookRow {
    pub webhook_id: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub secret: String,
    pub created_ms: i64,
}

impl WebhookRow {
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.is_empty() || self.event_types.iter().any(|t| t == event_type)
    }
}

pub async fn insert_webhook<C: ConnectionTrait>(
    conn: &C,
    w: &WebhookRow,
    created_by: &str,
) -> Result<(), DbErr> {
    conn.execute_raw(stmt(
        conn.get_database_backend(),
        "INSERT INTO webhooks (webhook_id, url, event_types, secret, created_by, created_ms) VALUES (?, ?, ?, ?, ?, ?)",
        vec![
            w.webhook_id.clone().into(),
            w.url.clone().into(),
            w.event_types.join(",").into(),
            w.secret.clone().into(),
            created_by.into(),
            w.created_ms.into(),
        ],
    ))
    .await?;
    Ok(())
}

pub async fn webhooks<C: ConnectionTrait>(conn: &C) -> Result<Vec<WebhookRow>, DbErr> {
    let rows = conn
        .query_all_raw(stmt(
            conn.get_database_backend(),
            "SELECT webhook_id, url, event_types, secret, created_ms FROM webhooks",
            vec![],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let types: String = r.try_get("", "event_types")?;
            Ok(WebhookRow {
                webhook_id: r.try_get("", "webhook_id")?,
                url: r.try_get("", "url")?,
                event_types: types
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect(),
                secret: r.try_get("", "secret")?,
                created_ms: r.try_get("", "created_ms")?,
            })
        })
        .collect()
}

pub async fn insert_delivery<C: ConnectionTrait>(
    conn: &C,
    webhook_id: &str,
    event_id: &str,
    body: &str,
) -> Result<(), DbErr> {
    conn.execute_raw(stmt(
        conn.get_database_backend(),
        "INSERT INTO webhook_deliveries (delivery_id, webhook_id, event_id, body, attempts, next_attempt_ms)
         VALUES (?, ?, ?, ?, 0, ?) ON CONFLICT DO NOTHING",
        vec![
            tongban_types::new_id().into(),
            webhook_id.into(),
            event_id.into(),
            body.into(),
            now_ms().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Claims up to `limit` due rows of `table` (keyed by `id_col`) by pushing their
/// `next_attempt_ms` out by `lease_ms`: another replica will not pick them up meanwhile, and
/// if this one dies they become due again when the lease runs out.
async fn claim(
    db: &DatabaseConnection,
    table: &str,
    id_col: &str,
    open_filter: &str,
    lease_ms: i64,
    limit: u64,
) -> Result<Vec<String>, DbErr> {
    let txn = begin_write(db).await?;
    let b = txn.get_database_backend();
    let lock = if b == DbBackend::Postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let now = now_ms();
    let rows = txn
        .query_all_raw(stmt(
            b,
            &format!(
                "SELECT {id_col} AS id FROM {table} WHERE {open_filter} AND next_attempt_ms <= ? ORDER BY next_attempt_ms LIMIT ?{lock}"
            ),
            vec![now.into(), (limit as i64).into()],
        ))
        .await?;
    let ids: Vec<String> = rows
        .iter()
        .map(|r| r.try_get("", "id"))
        .collect::<Result<_, _>>()?;
    if !ids.is_empty() {
        let mut values: Vec<Value> = vec![(now + lease_ms).into()];
        values.extend(ids.iter().map(|id| Value::from(id.clone())));
        txn.execute_raw(stmt(
            b,
            &format!(
                "UPDATE {table} SET next_attempt_ms = ? WHERE {id_col} IN ({})",
                placeholders(ids.len())
            ),
            values,
        ))
        .await?;
    }
    txn.commit().await?;
    Ok(ids)
}

/// `?, ?, ?` for an `IN (…)` list of `n` values.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// The rows of `sql_before_in` followed by `(?, …)` over `ids`, in one query.
async fn rows_for_ids(
    db: &DatabaseConnection,
    sql_before_in: &str,
    ids: Vec<String>,
) -> Result<Vec<sea_orm::QueryResult>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("{sql_before_in} ({})", placeholders(ids.len()));
    let values = ids.into_iter().map(Value::from).collect();
    db.query_all_raw(stmt(db.get_database_backend(), &sql, values))
        .await
}

/// An e-mail claimed for sending.
#[derive(Debug, Clone)]
pub struct EmailRow {
    pub notification_id: String,
    pub to_addr: String,
    pub subject: String,
    pub body: String,
    pub attempts: i64,
}

pub async fn claim_emails(
    db: &DatabaseConnection,
    lease_ms: i64,
    limit: u64,
) -> Result<Vec<EmailRow>, DbErr> {
    let ids = claim(
        db,
        "emails",
        "notification_id",
        "sent_ms IS NULL AND failed_ms IS NULL",
        lease_ms,
        limit,
    )
    .await?;
    let rows = rows_for_ids(
        db,
        "SELECT notification_id, to_addr, subject, body, attempts FROM emails WHERE notification_id IN",
        ids,
    )
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(EmailRow {
            notification_id: r.try_get("", "notification_id")?,
            to_addr: r.try_get("", "to_addr")?,
            subject: r.try_get("", "subject")?,
            body: r.try_get("", "body")?,
            attempts: i64::from(r.try_get::<i32>("", "attempts")?),
        });
    }
    Ok(out)
}

/// Records the outcome of sending an e-mail: sent, or given up with the last error.
pub async fn finish_email(
    db: &DatabaseConnection,
    notification_id: &str,
    attempts: i64,
    error: Option<&str>,
) -> Result<(), DbErr> {
    let (sql, values): (&str, Vec<Value>) = match error {
        None => (
            "UPDATE emails SET sent_ms = ?, attempts = ?, last_error = NULL WHERE notification_id = ?",
            vec![
                now_ms().into(),
                (attempts as i32).into(),
                notification_id.into(),
            ],
        ),
        Some(e) => (
            "UPDATE emails SET failed_ms = ?, attempts = ?, last_error = ? WHERE notification_id = ?",
            vec![
                now_ms().into(),
                (attempts as i32).into(),
                e.into(),
                notification_id.into(),
            ],
        ),
    };
    db.execute_raw(stmt(db.get_database_backend(), sql, values))
        .await?;
    Ok(())
}

/// A webhook delivery claimed for sending.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub delivery_id: String,
    pub event_id: String,
    pub url: String,
    pub secret: String,
    pub body: String,
    pub attempts: i64,
}

pub async fn claim_deliveries(
    db: &DatabaseConnection,
    lease_ms: i64,
    limit: u64,
) -> Result<Vec<DeliveryRow>, DbErr> {
    let ids = claim(
        db,
        "webhook_deliveries",
        "delivery_id",
        "delivered_ms IS NULL AND failed_ms IS NULL",
        lease_ms,
        limit,
    )
    .await?;
    let rows = rows_for_ids(
        db,
        "SELECT d.delivery_id, d.event_id, d.body, d.attempts, w.url, w.secret
         FROM webhook_deliveries d JOIN webhooks w ON w.webhook_id = d.webhook_id
         WHERE d.delivery_id IN",
        ids,
    )
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(DeliveryRow {
            delivery_id: r.try_get("", "delivery_id")?,
            event_id: r.try_get("", "event_id")?,
            url: r.try_get("", "url")?,
            secret: r.try_get("", "secret")?,
            body: r.try_get("", "body")?,
            attempts: i64::from(r.try_get::<i32>("", "attempts")?),
        });
    }
    Ok(out)
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered,
    /// Failed; try again at this instant.
    Retry {
        at_ms: i64,
        error: String,
    },
    /// Failed for the last time.
    GaveUp {
        error: String,
    },
}

pub async fn finish_delivery(
    db: &DatabaseConnection,
    delivery_id: &str,
    attempts: i64,
    outcome: &DeliveryOutcome,
) -> Result<(), DbErr> {
    let attempts = attempts as i32;
    let (sql, values): (&str, Vec<Value>) = match outcome {
        DeliveryOutcome::Delivered => (
            "UPDATE webhook_deliveries SET delivered_ms = ?, attempts = ?, last_error = NULL WHERE delivery_id = ?",
            vec![now_ms().into(), attempts.into(), delivery_id.into()],
        ),
        DeliveryOutcome::Retry { at_ms, error } => (
            "UPDATE webhook_deliveries SET next_attempt_ms = ?, attempts = ?, last_error = ? WHERE delivery_id = ?",
            vec![
                (*at_ms).into(),
                attempts.into(),
                error.clone().into(),
                delivery_id.into(),
            ],
        ),
        DeliveryOutcome::GaveUp { error } => (
            "UPDATE webhook_deliveries SET failed_ms = ?, attempts = ?, last_error = ? WHERE delivery_id = ?",
            vec![
                now_ms().into(),
                attempts.into(),
                error.clone().into(),
                delivery_id.into(),
            ],
        ),
    };
    db.execute_raw(stmt(db.get_database_backend(), sql, values))
        .await?;
    Ok(())
}
