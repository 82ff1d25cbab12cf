//! Metrics: OpenTelemetry instruments, read out as Prometheus text.
//!
//! [`install`] (called by [`crate::init`]) sets a global meter provider whose reader is a
//! Prometheus registry; [`render`] encodes that registry for `/metrics`. Instruments are taken
//! from [`meter`] where they are used; before `install` (unit tests, libraries used alone) they
//! record nothing, which costs nothing.
//!
//! Names follow the OpenTelemetry semantic conventions (`rpc.server.call.duration`,
//! `messaging.client.sent.messages`); Tongban's own carry the `tongban.` prefix. The Prometheus
//! exporter turns dots into underscores and adds units and `_total`
//! (`rpc_server_call_duration_seconds`).

use std::sync::OnceLock;

use opentelemetry::metrics::Meter;
use opentelemetry_sdk::metrics::SdkMeterProvider;

static REGISTRY: OnceLock<prometheus::Registry> = OnceLock::new();

/// The instrumentation scope every Tongban instrument belongs to.
pub const SCOPE: &str = "tongban";

/// Installs the global meter provider for `service` reading into the Prometheus registry; the
/// first call wins (several services in one process share it). Returns the provider to keep
/// for shutdown, or `None` when already installed.
pub(crate) fn install(service: &str) -> Option<SdkMeterProvider> {
    if REGISTRY.get().is_some() {
        return None;
    }
    let registry = prometheus::Registry::new();
    let exporter = match opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .scope_info_enabled(false)
        .build()
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("metrics not started: {e}");
            return None;
        }
    };
    if REGISTRY.set(registry).is_err() {
        return None;
    }
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_string())
        .build();
    let provider = SdkMeterProvider::builder()
        .with_reader(exporter)
        .with_resource(resource)
        .build();
    opentelemetry::global::set_meter_provider(provider.clone());
    Some(provider)
}

/// Tongban's meter (a no-op one until [`crate::init`] ran).
pub fn meter() -> Meter {
    opentelemetry::global::meter(SCOPE)
}

/// Everything recorded so far, in the Prometheus text exposition format; empty before
/// [`crate::init`].
pub fn render() -> String {
    use prometheus::Encoder as _;
    let Some(registry) = REGISTRY.get() else {
        return String::new();
    };
    let mut out = Vec::new();
    if let Err(e) = prometheus::TextEncoder::new().encode(&registry.gather(), &mut out) {
        tracing::warn!(error = %e, "encoding metrics failed");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
