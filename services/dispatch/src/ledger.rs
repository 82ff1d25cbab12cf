//! Dispatch's persistence: application snapshots, parked events and the delivery ledger.
//! Everything that must commit with other effects takes the caller's connection or
//! transaction. Times are epoch milliseconds.

use std::collections::HashMap;

use prost::Message;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Value};
use tongban_proto::{dispatch as pb, events::Envelope};
use tongban_storage::stmt;

use crate::error::DispatchError;

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Where a delivery stands. Stored as its upper-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Pending,
    Succeeded,
    DeadLettered,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Succeeded => "SUCCEEDED",
            Status::DeadLettered => "DEAD_LETTERED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PENDING" => Some(Status::Pending),
            "SUCCEEDED" => Some(Status::Succeeded),
            "DEAD_LETTERED" => Some(Status::DeadLettered),
            _ => None,
        }
    }
}

impl From<Status> for pb::DeliveryStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Pending => pb::DeliveryStatus::Pending,
            Status::Succeeded => pb::DeliveryStatus::Succeeded,
            Status::DeadLettered => pb::DeliveryStatus::DeadLettered,
        }
    }
}

impl TryFrom<pb::DeliveryStatus> for Status {
    type Error = ();
    fn try_from(s: pb::DeliveryStatus) -> Result<Self, ()> {
        match s {
            pb::DeliveryStatus::Pending => Ok(Status::Pending),
            pb::DeliveryStatus::Succeeded => Ok(Status::Succeeded),
            pb::DeliveryStatus::DeadLettered => Ok(Status::DeadLettered),
            pb::DeliveryStatus::Unspecified => Err(()),
        }
    }
}

/// One ledger row.
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
    pub payload: String,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub delivered_at: Option<i64>,
}

const COLUMNS: &str = "delivery_id, application_id, platform_id, event_id, event_type, idempotency_key, status, attempts, last_error, payload, next_attempt_at, created_at, updated_at, delivered_at";

fn decode(row: &QueryResult) -> Result<Delivery, DispatchError> {
    let status: String = row.try_get("", "status")?;
    Ok(Delivery {
        delivery_id: row.try_get("", "delivery_id")?,
        application_id: row.try_get("", "application_id")?,
        platform_id: row.try_get("", "platform_id")?,
        event_id: row.try_get("", "event_id")?,
        event_type: row.try_get("", "event_type")?,
        idempotency_key: row.try_get("", "idempotency_key")?,
        status: Status::parse(&status)
            .ok_or_else(|| DispatchError::Corrupt(format!("status {status}")))?,
        attempts: u32::try_from(row.try_get::<i64>("", "attempts")?).unwrap_or(u32::MAX),
        last_error: row.try_get("", "last_error")?,
        payload: row.try_get("", "payload")?,
        next_attempt_at: row.try_get("", "next_attempt_at")?,
        created_at: row.try_get("", "created_at")?,
        updated_at: row.try_get("", "updated_at")?,
        delivered_at: row.try_get("", "delivered_at")?,
    })
}

fn ms_ts(ms: i64) -> Option<prost_types::Timestamp> {
    chrono::DateTime::from_timestamp_millis(ms).map(tongban_proto::time::ts)
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
        }
    }
}

// ---------------------------------------------------------------- applications and parking

pub async fn load_application<C: ConnectionTrait>(
    conn: &C,
    application_id: &str,
) -> Result<Option<serde_json::Value>, DbErr> {
    let b = conn.get_database_backend();
    let row = conn
        .query_one_raw(stmt(
            b,
            "SELECT snapshot FROM applications WHERE application_id = ?",
            vec![application_id.into()],
        ))
        .await?;
    let Some(row) = row else { return Ok(None) };
    let text: String = row.try_get("", "snapshot")?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| DbErr::Custom(format!("corrupt snapshot of {application_id}: {e}")))
}

/// Stores (or replaces) an application's canonical section.
pub async fn save_application<C: ConnectionTrait>(
    conn: &C,
    application_id: &str,
    section: &serde_json::Value,
) -> Result<(), DbErr> {
    let b = conn.get_database_backend();
    conn.execute_raw(stmt(
        b,
        "INSERT INTO applications (application_id, snapshot, updated_at) VALUES (?, ?, ?)
         ON CONFLICT (application_id) DO UPDATE SET snapshot = excluded.snapshot, updated_at = excluded.updated_at",
        vec![
            application_id.into(),
            section.to_string().into(),
            now_ms().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Keeps an event whose application is not known yet.
pub async fn park<C: ConnectionTrait>(conn: &C, event: &Envelope) -> Result<(), DbErr> {
    let b = conn.get_database_backend();
    conn.execute_raw(stmt(
        b,
        "INSERT INTO parked_events (event_id, application_id, envelope, parked_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (event_id) DO NOTHING",
        vec![
            event.event_id.clone().into(),
            event.application_id.clone().into(),
            event.encode_to_vec().into(),
            now_ms().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Removes and returns the events parked for `application_id`, oldest first.
pub async fn unpark<C: ConnectionTrait>(
    conn: &C,
    application_id: &str,
) -> Result<Vec<Envelope>, DbErr> {
    let b = conn.get_database_backend();
    let rows = conn
        .query_all_raw(stmt(
            b,
            "SELECT envelope FROM parked_events WHERE application_id = ? ORDER BY event_id",
            vec![application_id.into()],
        ))
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let bytes: Vec<u8> = r.try_get("", "envelope")?;
        match Envelope::decode(bytes.as_slice()) {
            Ok(e) => out.push(e),
            Err(e) => tracing::error!(error = %e, "undecodable parked event dropped"),
        }
    }
    if !out.is_empty() {
        conn.execute_raw(stmt(
            b,
            "DELETE FROM parked_events WHERE application_id = ?",
            vec![application_id.into()],
        ))
        .await?;
    }
    Ok(out)
}

// ---------------------------------------------------------------- the ledger

/// A row to add to the ledger.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub delivery_id: String,
    pub application_id: String,
    pub platform_id: String,
    pub event_id: String,
    pub event_type: String,
    pub idempotency_key: String,
    pub status: Status,
    pub last_error: String,
    pub payload: String,
}

/// The stable key a platform sees for (platform, event): the same on every attempt.
pub fn idempotency_key(platform_id: &str, event_id: &str) -> String {
    format!("{platform_id}-{event_id}")
}

/// Adds a row; `false` if (platform, event) is already in the ledger.
pub async fn insert<C: ConnectionTrait>(conn: &C, d: &NewDelivery) -> Result<bool, DbErr> {
    let b = conn.get_database_backend();
    let now = now_ms();
    let res = conn
        .execute_raw(stmt(
            b,
            "INSERT INTO deliveries (delivery_id, application_id, platform_id, event_id, event_type, idempotency_key, status, attempts, last_error, payload, next_attempt_at, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?) ON CONFLICT (platform_id, event_id) DO NOTHING",
            vec![
                d.delivery_id.clone().into(),
                d.application_id.clone().into(),
                d.platform_id.clone().into(),
                d.event_id.clone().into(),
                d.event_type.clone().into(),
                d.idempotency_key.clone().into(),
                d.status.as_str().into(),
                d.last_error.clone().into(),
                d.payload.clone().into(),
                now.into(),
                now.into(),
                now.into(),
            ],
        ))
        .await?;
    Ok(res.rows_affected() == 1)
}

/// Leases up to `limit` due rows of `platform` until `lease_until`, under `lease_token`. Rows
/// whose lease ran out (a crashed worker's) are due again. On PostgreSQL, `SKIP LOCKED` lets
/// replicas claim side by side without waiting on each other.
pub async fn claim<C: ConnectionTrait>(
    conn: &C,
    platform_id: &str,
    limit: usize,
    lease_until: i64,
    lease_token: &str,
) -> Result<Vec<Delivery>, DispatchError> {
    let b = conn.get_database_backend();
    let lock = if b == DbBackend::Postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let now = now_ms();
    let rows = conn
        .query_all_raw(stmt(
            b,
            &format!(
                "UPDATE deliveries SET locked_until = ?, lease_token = ? WHERE delivery_id IN (
                    SELECT delivery_id FROM deliveries
                    WHERE platform_id = ? AND status = 'PENDING' AND next_attempt_at <= ?
                      AND (locked_until IS NULL OR locked_until <= ?)
                    ORDER BY next_attempt_at, delivery_id LIMIT ?{lock})
                 RETURNING {COLUMNS}"
            ),
            vec![
                lease_until.into(),
                lease_token.into(),
                platform_id.into(),
                now.into(),
                now.into(),
                (limit as i64).into(),
            ],
        ))
        .await?;
    rows.iter().map(decode).collect()
}

/// Gives a leased row back untouched (shutdown mid-request).
pub async fn release<C: ConnectionTrait>(
    conn: &C,
    delivery_id: &str,
    lease_token: &str,
) -> Result<(), DbErr> {
    let b = conn.get_database_backend();
    conn.execute_raw(stmt(
        b,
        "UPDATE deliveries SET locked_until = NULL, lease_token = NULL WHERE delivery_id = ? AND lease_token = ?",
        vec![delivery_id.into(), lease_token.into()],
    ))
    .await?;
    Ok(())
}

/// What an attempt came to.
#[derive(Debug, Clone)]
pub enum Outcome {
    Succeeded,
    /// Try again at `next_attempt_at`.
    Retry {
        error: String,
        next_attempt_at: i64,
    },
    DeadLettered {
        error: String,
    },
}

/// Records an attempt on a row this worker still leases. `false` if the lease was lost (the
/// row was reclaimed or reset meanwhile), in which case nothing is written.
pub async fn finish<C: ConnectionTrait>(
    conn: &C,
    delivery_id: &str,
    lease_token: &str,
    attempts: u32,
    outcome: &Outcome,
) -> Result<bool, DbErr> {
    let b = conn.get_database_backend();
    let now = now_ms();
    let (status, error, next, delivered): (Status, &str, i64, Option<i64>) = match outcome {
        Outcome::Succeeded => (Status::Succeeded, "", now, Some(now)),
        Outcome::Retry {
            error,
            next_attempt_at,
        } => (Status::Pending, error, *next_attempt_at, None),
        Outcome::DeadLettered { error } => (Status::DeadLettered, error, now, None),
    };
    let res = conn
        .execute_raw(stmt(
            b,
            "UPDATE deliveries SET status = ?, attempts = ?, last_error = ?, next_attempt_at = ?, delivered_at = ?,
                    updated_at = ?, locked_until = NULL, lease_token = NULL
             WHERE delivery_id = ? AND lease_token = ? AND status = 'PENDING'",
            vec![
                status.as_str().into(),
                i64::from(attempts).into(),
                error.into(),
                next.into(),
                delivered.into(),
                now.into(),
                delivery_id.into(),
                lease_token.into(),
            ],
        ))
        .await?;
    Ok(res.rows_affected() == 1)
}

pub async fn find<C: ConnectionTrait>(
    conn: &C,
    delivery_id: &str,
) -> Result<Option<Delivery>, DispatchError> {
    let b = conn.get_database_backend();
    let row = conn
        .query_one_raw(stmt(
            b,
            &format!("SELECT {COLUMNS} FROM deliveries WHERE delivery_id = ?"),
            vec![delivery_id.into()],
        ))
        .await?;
    row.as_ref().map(decode).transpose()
}

/// Filter for [`list`]; `None` matches everything.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub application_id: Option<String>,
    pub platform_id: Option<String>,
    pub status: Option<Status>,
    /// Only rows after this id (ids are time-ordered UUIDv7: oldest first paging).
    pub after_id: Option<String>,
    pub limit: u64,
}

fn where_clause(f: &Filter, sql: &mut String, values: &mut Vec<Value>) {
    sql.push_str(" WHERE 1=1");
    if let Some(a) = &f.application_id {
        sql.push_str(" AND application_id = ?");
        values.push(a.clone().into());
    }
    if let Some(p) = &f.platform_id {
        sql.push_str(" AND platform_id = ?");
        values.push(p.clone().into());
    }
    if let Some(s) = f.status {
        sql.push_str(" AND status = ?");
        values.push(s.as_str().into());
    }
    if let Some(id) = &f.after_id {
        sql.push_str(" AND delivery_id > ?");
        values.push(id.clone().into());
    }
}

pub async fn list<C: ConnectionTrait>(
    conn: &C,
    f: &Filter,
) -> Result<Vec<Delivery>, DispatchError> {
    let b = conn.get_database_backend();
    let mut sql = format!("SELECT {COLUMNS} FROM deliveries");
    let mut values = Vec::new();
    where_clause(f, &mut sql, &mut values);
    sql.push_str(" ORDER BY delivery_id LIMIT ?");
    values.push((f.limit as i64).into());
    let rows = conn.query_all_raw(stmt(b, &sql, values)).await?;
    rows.iter().map(decode).collect()
}

/// Row counts per (platform, status).
pub async fn counts<C: ConnectionTrait>(conn: &C) -> Result<HashMap<(String, Status), u64>, DbErr> {
    let b = conn.get_database_backend();
    let rows = conn
        .query_all_raw(stmt(
            b,
            "SELECT platform_id, status, COUNT(*) AS n FROM deliveries GROUP BY platform_id, status",
            vec![],
        ))
        .await?;
    let mut out = HashMap::new();
    for r in rows {
        let status: String = r.try_get("", "status")?;
        if let Some(s) = Status::parse(&status) {
            let n: i64 = r.try_get("", "n")?;
            out.insert((r.try_get("", "platform_id")?, s), n.max(0) as u64);
        }
    }
    Ok(out)
}

/// Makes one row due now: a dead letter starts over with fresh attempts, a pending row just
/// skips its wait. Returns the updated row; `FailedPrecondition` for a delivered one.
pub async fn retry_now<C: ConnectionTrait>(
    conn: &C,
    delivery_id: &str,
) -> Result<Delivery, DispatchError> {
    let current = find(conn, delivery_id)
        .await?
        .ok_or_else(|| DispatchError::NotFound(format!("delivery {delivery_id}")))?;
    let b = conn.get_database_backend();
    let now = now_ms();
    match current.status {
        Status::Succeeded => {
            return Err(DispatchError::FailedPrecondition(format!(
                "delivery {delivery_id} already succeeded; use Reconcile to re-deliver what a platform lost"
            )));
        }
        Status::DeadLettered => {
            conn.execute_raw(stmt(
                b,
                "UPDATE deliveries SET status = 'PENDING', attempts = 0, next_attempt_at = ?, updated_at = ?, locked_until = NULL, lease_token = NULL
                 WHERE delivery_id = ? AND status = 'DEAD_LETTERED'",
                vec![now.into(), now.into(), delivery_id.into()],
            ))
            .await?;
        }
        Status::Pending => {
            conn.execute_raw(stmt(
                b,
                "UPDATE deliveries SET next_attempt_at = ?, updated_at = ? WHERE delivery_id = ? AND status = 'PENDING'",
                vec![now.into(), now.into(), delivery_id.into()],
            ))
            .await?;
        }
    }
    find(conn, delivery_id)
        .await?
        .ok_or_else(|| DispatchError::NotFound(format!("delivery {delivery_id}")))
}

/// Puts every dead letter matching the filter back in the queue, attempts reset. Returns the
/// platforms touched and how many rows.
pub async fn replay_dead_letters<C: ConnectionTrait>(
    conn: &C,
    platform_id: Option<&str>,
    application_id: Option<&str>,
) -> Result<u64, DbErr> {
    let b = conn.get_database_backend();
    let now = now_ms();
    let mut sql = String::from(
        "UPDATE deliveries SET status = 'PENDING', attempts = 0, next_attempt_at = ?, updated_at = ?, locked_until = NULL, lease_token = NULL
         WHERE status = 'DEAD_LETTERED'",
    );
    let mut values: Vec<Value> = vec![now.into(), now.into()];
    if let Some(p) = platform_id {
        sql.push_str(" AND platform_id = ?");
        values.push(p.into());
    }
    if let Some(a) = application_id {
        sql.push_str(" AND application_id = ?");
        values.push(a.into());
    }
    Ok(conn
        .execute_raw(stmt(b, &sql, values))
        .await?
        .rows_affected())
}

/// Every idempotency key of `platform` in the ledger, with whether it succeeded.
pub async fn keys<C: ConnectionTrait>(
    conn: &C,
    platform_id: &str,
) -> Result<HashMap<String, Status>, DispatchError> {
    let b = conn.get_database_backend();
    let rows = conn
        .query_all_raw(stmt(
            b,
            "SELECT idempotency_key, status FROM deliveries WHERE platform_id = ?",
            vec![platform_id.into()],
        ))
        .await?;
    let mut out = HashMap::new();
    for r in rows {
        let status: String = r.try_get("", "status")?;
        let s = Status::parse(&status)
            .ok_or_else(|| DispatchError::Corrupt(format!("status {status}")))?;
        out.insert(r.try_get("", "idempotency_key")?, s);
    }
    Ok(out)
}

/// Sets delivered rows (by key) back to pending, due now, attempts reset.
pub async fn redeliver_keys<C: ConnectionTrait>(
    conn: &C,
    platform_id: &str,
    keys: &[String],
) -> Result<u64, DbErr> {
    if keys.is_empty() {
        return Ok(0);
    }
    let b = conn.get_database_backend();
    let now = now_ms();
    let placeholders = vec!["?"; keys.len()].join(",");
    let mut values: Vec<Value> = vec![now.into(), now.into(), platform_id.into()];
    values.extend(keys.iter().map(|k| Value::from(k.clone())));
    let res = conn
        .execute_raw(stmt(
            b,
            &format!(
                "UPDATE deliveries SET status = 'PENDING', attempts = 0, next_attempt_at = ?, updated_at = ?, delivered_at = NULL, locked_until = NULL, lease_token = NULL
                 WHERE platform_id = ? AND status = 'SUCCEEDED' AND idempotency_key IN ({placeholders})"
            ),
            values,
        ))
        .await?;
    Ok(res.rows_affected())
}
