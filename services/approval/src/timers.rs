//! The timer worker: on start and then every [`INTERVAL`], fire what is due
//! ([`Approval::fire_timers`]). Every replica runs one; the per-application row lock taken
//! with SKIP LOCKED keeps them from firing anything twice.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::service::Approval;

pub const INTERVAL: Duration = Duration::from_secs(1);

pub async fn run(approval: Arc<Approval>, interval: Duration, shutdown: CancellationToken) {
    loop {
        match approval.fire_timers(approval.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(events = n, "timers fired"),
            Err(e) => tracing::warn!(error = %e, "timer pass failed; will retry"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
