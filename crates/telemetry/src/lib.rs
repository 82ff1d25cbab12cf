//! Telemetry for every Tongban process, set up by one call.
//!
//! [`init`] installs a `tracing` subscriber: human-readable logs, or JSON lines when
//! `TONGBAN_LOG_FORMAT=json`, filtered by `RUST_LOG` (default `info`). It also installs an
//! OpenTelemetry tracer so that every span has a trace id that travels on: into events as their
//! `traceparent` ([`current_traceparent`]) and out of them on the consuming side ([`set_parent`]),
//! making one application one trace across all services. Spans are exported over OTLP/gRPC when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set. It installs the meter provider as well ([`metrics`]).
//! Keep the returned [`Guard`] alive; dropping it flushes.

pub mod metrics;

use std::collections::HashMap;

use opentelemetry::{propagation::TextMapPropagator, trace::TracerProvider as _};
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

/// Flushes pending spans when dropped.
pub struct Guard {
    provider: Option<SdkTracerProvider>,
    meters: Option<opentelemetry_sdk::metrics::SdkMeterProvider>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
        if let Some(m) = self.meters.take() {
            let _ = m.shutdown();
        }
    }
}

/// Installs logging and tracing for `service`. Safe to call more than once (later calls only
/// return a guard), which tests rely on.
pub fn init(service: &str) -> Guard {
    let meters = metrics::install(service);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,opentelemetry=warn,opentelemetry_sdk=warn,sea_orm_migration=warn")
    });
    let mut builder = SdkTracerProvider::builder();
    let exporting = std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some();
    if exporting {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
        {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(e) => eprintln!("OTLP exporter not started: {e}"),
        }
    }
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_string())
        .build();
    let provider = builder.with_resource(resource).build();
    let tracer = provider.tracer("tongban");
    let otel = tracing_opentelemetry::layer().with_tracer(tracer);
    let json = std::env::var("TONGBAN_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let installed = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(false),
            )
            .try_init()
            .is_ok()
    } else {
        registry
            .with(tracing_subscriber::fmt::layer().with_target(false))
            .try_init()
            .is_ok()
    };
    if installed {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        opentelemetry::global::set_tracer_provider(provider.clone());
        Guard {
            provider: Some(provider),
            meters,
        }
    } else {
        Guard {
            provider: None,
            meters,
        }
    }
}

/// The W3C `traceparent` of the current span, if tracing is active.
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` a child of the trace named by `traceparent` (ignored when empty or invalid).
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    if traceparent.is_empty() {
        return;
    }
    let carrier: HashMap<String, String> =
        HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(cx);
}
