//! Order tests: a consumer fed one application's events in every order the relay can produce.
//!
//! The relay publishes each service's outbox in order, but events from different producers
//! interleave arbitrarily and a nacked event is redelivered after later ones, so a consumer must
//! reach the same state from any permutation of an application's events, with duplicates.
//! [`permutations`] lists the orders; [`deliver`] applies one event the way the consumer loop
//! does (inbox check, the service's real handler, commit, then `committed`), without a bus, so
//! that a hundred orders take seconds.

use prost::Message as _;
use tongban_outbox::{EventHandler, inbox};
use tongban_proto::events::Envelope;

/// Every order of `items` (n! of them; keep n ≤ 5).
pub fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, first.clone());
            out.push(tail);
        }
    }
    out
}

/// Applies `event` as consumer `consumer` would: in one write transaction, recorded in the
/// inbox (a second delivery of the same event id is a no-op), through `handler`, committed,
/// then `handler.committed`. The event goes through its wire encoding first, as on the bus.
pub async fn deliver<H: EventHandler>(
    db: &sea_orm::DatabaseConnection,
    consumer: &str,
    handler: &H,
    event: &Envelope,
) -> anyhow::Result<()> {
    let event = Envelope::decode(event.encode_to_vec().as_slice())?;
    let txn = tongban_storage::begin_write(db).await?;
    if inbox::record(&txn, consumer, &event.event_id).await? {
        handler
            .handle(&txn, &event)
            .await
            .map_err(|e| anyhow::anyhow!("{} {}: {e}", event.r#type, event.event_id))?;
    }
    txn.commit().await?;
    handler.committed(std::slice::from_ref(&event));
    Ok(())
}

/// Delivers `events` in order, then the first one again (a redelivery after the others).
pub async fn deliver_all<H: EventHandler>(
    db: &sea_orm::DatabaseConnection,
    consumer: &str,
    handler: &H,
    events: &[Envelope],
) -> anyhow::Result<()> {
    for e in events {
        deliver(db, consumer, handler, e).await?;
    }
    if let Some(first) = events.first() {
        deliver(db, consumer, handler, first).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_order_once() {
        let p = permutations(&[1, 2, 3, 4]);
        assert_eq!(p.len(), 24);
        let mut unique = p.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 24);
        assert!(p.iter().all(|o| {
            let mut s = o.clone();
            s.sort();
            s == [1, 2, 3, 4]
        }));
    }
}
