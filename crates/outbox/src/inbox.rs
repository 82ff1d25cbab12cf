//! The idempotent inbox: which events a consumer has already applied.
//!
//! Rows are kept for the inbox retention (default 14 days, longer than any redelivery window)
//! and then pruned in batches by the relay ([`crate::prune::inbox`]).

use sea_orm::{ConnectionTrait, DbErr};

use tongban_storage::stmt;

/// Records that `consumer` applies `event_id`, in the caller's transaction. Returns `false` when
/// it was recorded before, in which case the caller must not apply the event again.
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    consumer: &str,
    event_id: &str,
) -> Result<bool, DbErr> {
    let backend = conn.get_database_backend();
    let res = conn
        .execute_raw(stmt(
            backend,
            "INSERT INTO inbox (consumer, event_id, processed_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            vec![consumer.into(), event_id.into(), chrono::Utc::now().into()],
        ))
        .await?;
    Ok(res.rows_affected() == 1)
}
