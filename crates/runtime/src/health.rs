//! Health that tells the truth: a service answers SERVING only while its database and its bus
//! answer and every background loop it started is running.
//!
//! [`monitor`] checks every [`CHECK_EVERY`] and sets the gRPC health status of the whole server
//! (`""`) and of the service's own name, logging each change with its reason, and records it
//! as the gauge `tongban.health.serving`. A check that does not answer within
//! [`CHECK_TIMEOUT`] counts as down: a pool waiting for a dead database must not make the
//! answer wait too.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry::KeyValue;
use tokio_util::sync::CancellationToken;
use tonic_health::{ServingStatus, server::HealthReporter};

/// How often health is checked.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);
/// How long one dependency may take to answer.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Names of background tasks that ended while the service was meant to be running.
#[derive(Clone, Default, Debug)]
pub struct Stopped {
    names: Arc<Mutex<BTreeSet<String>>>,
}

impl Stopped {
    pub(crate) fn record(&self, name: &str) {
        match self.names.lock() {
            Ok(mut n) => {
                n.insert(name.to_string());
            }
            Err(p) => {
                p.into_inner().insert(name.to_string());
            }
        }
    }

    pub(crate) fn clear(&self, name: &str) {
        match self.names.lock() {
            Ok(mut n) => {
                n.remove(name);
            }
            Err(p) => {
                p.into_inner().remove(name);
            }
        }
    }

    pub(crate) fn first(&self) -> Option<String> {
        match self.names.lock() {
            Ok(n) => n.iter().next().cloned(),
            Err(p) => p.into_inner().iter().next().cloned(),
        }
    }
}

/// What a service's health depends on.
#[derive(Clone)]
pub struct Probe {
    pub service: &'static str,
    pub db: sea_orm::DatabaseConnection,
    pub bus: tongban_bus::Bus,
    pub stopped: Stopped,
}

impl Probe {
    /// `Ok` when everything answers; otherwise what does not.
    pub async fn check(&self) -> Result<(), String> {
        match tokio::time::timeout(CHECK_TIMEOUT, self.db.ping()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("database unreachable: {e}")),
            Err(_) => return Err("database did not answer in time".into()),
        }
        match tokio::time::timeout(CHECK_TIMEOUT, self.bus.check()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("bus unreachable: {e}")),
            Err(_) => return Err("bus did not answer in time".into()),
        }
        if let Some(task) = self.stopped.first() {
            return Err(format!("background task {task} stopped"));
        }
        Ok(())
    }
}

/// Keeps `reporter`'s status for `""` and `names` true to `probe` until `shutdown`.
pub async fn monitor(
    reporter: HealthReporter,
    names: Vec<String>,
    probe: Probe,
    shutdown: CancellationToken,
) {
    let gauge = tongban_telemetry::metrics::meter()
        .u64_gauge("tongban.health.serving")
        .with_description("1 while the service answers health checks SERVING, else 0")
        .build();
    let attrs = [KeyValue::new("tongban.service", probe.service)];
    let mut serving: Option<bool> = None;
    loop {
        let result = probe.check().await;
        let now = result.is_ok();
        if serving != Some(now) {
            match &result {
                Ok(()) => tracing::info!(service = probe.service, "health: SERVING"),
                Err(why) => {
                    tracing::warn!(service = probe.service, reason = %why, "health: NOT_SERVING")
                }
            }
            let status = if now {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            reporter.set_service_status("", status).await;
            for name in &names {
                reporter.set_service_status(name, status).await;
            }
            serving = Some(now);
        }
        gauge.record(u64::from(now), &attrs);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
    }
    gauge.record(0, &attrs);
}
