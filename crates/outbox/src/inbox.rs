//! The idempotent inbox: which events a consumer has already applied.
//!
//! Rows are kept for the inbox retention (default 14 days, longer than any redelivery window)
//! and then pruned in batches by the relay ([`crate::prune::inbox`]).

use sea_orm::{ConnectionTrait, DbErr};

use tongban_storage::{stmt, value_rows};

/// Records that `consumer` applies `event_id`, in the caller's transaction. Returns `false` when
/// it was recorded before, in which case the caller must not apply the event again.
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    consumer: &str,
    event_id: &str,
) -> Result<bool, DbErr> {
    Ok(record_all(conn, consumer, &[event_id]).await?.first() == Some(&true))
}

/// Most events recorded by one [`record_all`] statement (3 parameters each).
const RECORD_CHUNK: usize = 200;

/// [`record`] for a batch, one statement per [`RECORD_CHUNK`] events: returns, for each of
/// `event_ids` in order, whether the caller must apply it. An id seen before (now or earlier in
/// the same batch, as when the bus redelivers a message the batch already holds) is `false`.
pub async fn record_all<C: ConnectionTrait>(
    conn: &C,
    consumer: &str,
    event_ids: &[&str],
) -> Result<Vec<bool>, DbErr> {
    let backend = conn.get_database_backend();
    let now = chrono::Utc::now();
    let mut fresh = std::collections::HashSet::new();
    let mut seen = std::collections::HashSet::new();
    let unique: Vec<&str> = event_ids
        .iter()
        .copied()
        .filter(|id| seen.insert(*id))
        .collect();
    for chunk in unique.chunks(RECORD_CHUNK) {
        let sql = format!(
            "INSERT INTO inbox (consumer, event_id, processed_at) VALUES {} \
             ON CONFLICT DO NOTHING RETURNING event_id",
            value_rows(chunk.len(), 3)
        );
        let mut values = Vec::with_capacity(chunk.len() * 3);
        for id in chunk {
            values.extend([consumer.into(), (*id).into(), now.into()]);
        }
        for row in conn.query_all_raw(stmt(backend, &sql, values)).await? {
            fresh.insert(row.try_get::<String>("", "event_id")?);
        }
    }
    // The first occurrence of a fresh id is applied; any later copy in the batch is not.
    Ok(event_ids.iter().map(|id| fresh.remove(*id)).collect())
}
