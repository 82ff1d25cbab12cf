//! `tongban.notifications`: notifications by channel (inbox, email, webhook) and outcome
//! (stored; e-mail sent, retry, failed; webhook delivered, retry, gave_up; and replayed, dead
//! rows an admin made due again).

use std::sync::OnceLock;

use opentelemetry::{KeyValue, metrics::Counter};

/// Taken once, after the process installed its meter provider.
fn counter() -> &'static Counter<u64> {
    static C: OnceLock<Counter<u64>> = OnceLock::new();
    C.get_or_init(|| {
        tongban_telemetry::metrics::meter()
            .u64_counter("tongban.notifications")
            .with_description("Notifications by channel (inbox, email, webhook) and outcome")
            .build()
    })
}

pub(crate) fn record(channel: &'static str, outcome: &'static str, n: u64) {
    if n > 0 {
        counter().add(
            n,
            &[
                KeyValue::new("channel", channel),
                KeyValue::new("outcome", outcome),
            ],
        );
    }
}
