//! Writing events into the outbox, inside the caller's transaction.

use prost::Message;
use sea_orm::{ConnectionTrait, DbErr};
use tongban_proto::events::Envelope;

use tongban_storage::{stmt, value_rows};

/// Adds `events` to the outbox as part of the caller's transaction: they become visible to the
/// relay exactly when (and only if) the caller commits.
pub async fn enqueue<C: ConnectionTrait>(conn: &C, events: &[Envelope]) -> Result<(), DbErr> {
    let backend = conn.get_database_backend();
    let now = chrono::Utc::now();
    // One statement per chunk rather than per event: a transaction that emits several events
    // pays one round trip.
    for chunk in events.chunks(ENQUEUE_CHUNK) {
        let sql = format!(
            "INSERT INTO outbox (event_id, routing_key, application_id, payload, traceparent, created_at) VALUES {}",
            value_rows(chunk.len(), 6)
        );
        let mut values = Vec::with_capacity(chunk.len() * 6);
        for e in chunk {
            values.extend([
                e.event_id.clone().into(),
                e.r#type.clone().into(),
                e.application_id.clone().into(),
                e.encode_to_vec().into(),
                (!e.traceparent.is_empty())
                    .then(|| e.traceparent.clone())
                    .into(),
                now.into(),
            ]);
        }
        conn.execute_raw(stmt(backend, &sql, values)).await?;
    }
    Ok(())
}

/// Events written by one [`enqueue`] statement (6 parameters each, well within both engines'
/// limits).
const ENQUEUE_CHUNK: usize = 100;

/// Rows not yet confirmed by the bus.
pub async fn pending_count<C: ConnectionTrait>(conn: &C) -> Result<u64, DbErr> {
    let backend = conn.get_database_backend();
    let row = conn
        .query_one_raw(stmt(
            backend,
            "SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL",
            vec![],
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0) as u64)
}
