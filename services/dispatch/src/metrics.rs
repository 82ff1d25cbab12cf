//! Dispatch's instruments: deliveries by platform and outcome, retries scheduled, and each
//! platform's circuit state (0 closed, 1 half-open, 2 open).

use std::sync::OnceLock;

use opentelemetry::{
    KeyValue,
    metrics::{Counter, Gauge},
};
use tongban_proto::dispatch::CircuitState;

use crate::ledger::Outcome;

struct Instruments {
    deliveries: Counter<u64>,
    retries: Counter<u64>,
    circuit: Gauge<u64>,
}

/// Taken once, after the process installed its meter provider (the service binaries and
/// `tongban dev` do that first thing).
fn instruments() -> &'static Instruments {
    static I: OnceLock<Instruments> = OnceLock::new();
    I.get_or_init(|| {
        let m = tongban_telemetry::metrics::meter();
        Instruments {
            deliveries: m
                .u64_counter("tongban.dispatch.deliveries")
                .with_description(
                    "Delivery attempts by platform and outcome (succeeded, retry, dead_lettered)",
                )
                .build(),
            retries: m
                .u64_counter("tongban.dispatch.retries")
                .with_description("Deliveries scheduled for another attempt, by platform")
                .build(),
            circuit: m
                .u64_gauge("tongban.dispatch.circuit.state")
                .with_description("Circuit breaker per platform: 0 closed, 1 half-open, 2 open")
                .build(),
        }
    })
}

/// One attempt at `platform` came to `outcome`.
pub(crate) fn attempted(platform: &str, outcome: &Outcome) {
    let i = instruments();
    let name = match outcome {
        Outcome::Succeeded { .. } => "succeeded",
        Outcome::Superseded { .. } => "superseded",
        Outcome::Retry { .. } => "retry",
        Outcome::DeadLettered { .. } => "dead_lettered",
    };
    let platform = KeyValue::new("platform", platform.to_string());
    i.deliveries
        .add(1, &[platform.clone(), KeyValue::new("outcome", name)]);
    if matches!(outcome, Outcome::Retry { .. }) {
        i.retries.add(1, &[platform]);
    }
}

/// `platform`'s circuit is in `state`.
pub(crate) fn circuit(platform: &str, state: CircuitState) {
    let value = match state {
        CircuitState::HalfOpen => 1,
        CircuitState::Open => 2,
        _ => 0,
    };
    instruments()
        .circuit
        .record(value, &[KeyValue::new("platform", platform.to_string())]);
}
