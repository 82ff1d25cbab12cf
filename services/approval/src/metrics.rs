//! The workload gauge `tongban.approval.tasks`: open tasks per department, and how many of them
//! are due soon or overdue (`state` = open, due_soon, overdue), read from the tasks table every
//! [`EVERY`]. A department whose work is done goes to zero rather than disappearing, so a
//! dashboard does not keep showing its last value.

use std::{collections::BTreeSet, time::Duration};

use opentelemetry::KeyValue;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::repository::department_load;

/// How often the gauge is refreshed.
pub const EVERY: Duration = Duration::from_secs(15);

/// Records the gauge until `shutdown`.
pub async fn run(db: DatabaseConnection, shutdown: CancellationToken) {
    let gauge = tongban_telemetry::metrics::meter()
        .u64_gauge("tongban.approval.tasks")
        .with_description("Open tasks per department: state = open, due_soon, overdue")
        .build();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    loop {
        match department_load(&db, tongban_storage::now_ms()).await {
            Ok(load) => {
                let now: BTreeSet<String> = load.iter().map(|l| l.department.clone()).collect();
                for gone in seen.difference(&now) {
                    for state in ["open", "due_soon", "overdue"] {
                        gauge.record(0, &attrs(gone, state));
                    }
                }
                for l in &load {
                    gauge.record(l.open, &attrs(&l.department, "open"));
                    gauge.record(l.due_soon, &attrs(&l.department, "due_soon"));
                    gauge.record(l.overdue, &attrs(&l.department, "overdue"));
                }
                seen = now;
            }
            Err(e) => tracing::debug!(error = %e, "reading the task load failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

fn attrs(department: &str, state: &'static str) -> [KeyValue; 2] {
    [
        KeyValue::new("department", department.to_string()),
        KeyValue::new("state", state),
    ]
}
