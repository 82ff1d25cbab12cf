//! The bus as OpenTelemetry messaging spans (semantic conventions for messaging):
//!
//! - the relay's publish of one event is a producer span `publish {exchange}`, a child of the
//!   trace the event was written in; the message carries *that* span's context (an AMQP header
//!   `traceparent`, or the embedded bus's column), so the hop across the bus shows in the trace;
//! - a consumer's handling of one event is a consumer span `process {queue}`, a child of the
//!   publish span named by the message, or, for messages without one (published before this
//!   existed), of the context in the event envelope.
//!
//! Both carry `messaging.system`, `messaging.destination.name`, `messaging.operation.type`,
//! `messaging.message.id` (the event id) and `messaging.rabbitmq.destination.routing_key`.

use std::collections::HashMap;

use opentelemetry::{Context, propagation::TextMapPropagator, trace::TraceContextExt as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// One event on the bus, as the spans describe it.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// `rabbitmq`, or the embedded bus's name.
    pub system: &'a str,
    /// The exchange (publish) or the queue (process).
    pub destination: &'a str,
    pub routing_key: &'a str,
    /// The event id.
    pub message_id: &'a str,
    pub application_id: &'a str,
}

/// The context a W3C `traceparent` names, when it is a valid one.
pub fn parse_traceparent(traceparent: &str) -> Option<Context> {
    if traceparent.is_empty() {
        return None;
    }
    let carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    cx.span().span_context().is_valid().then_some(cx)
}

/// The producer span for publishing `m`, a child of `parent` (the trace the event was written
/// in; a new trace when there is none). Record a failed publish with [`record_error`].
pub fn publish_span(m: Message<'_>, parent: Option<&str>) -> tracing::Span {
    let span = tracing::info_span!(
        "publish",
        otel.name = %format!("publish {}", m.destination),
        otel.kind = "producer",
        otel.status_code = Empty,
        error.type = Empty,
        event_id = m.message_id,
        application_id = m.application_id,
    );
    if let Some(cx) = parent.and_then(parse_traceparent) {
        let _ = span.set_parent(cx);
    }
    set_attributes(&span, m, "publish");
    span
}

/// The consumer span for processing `m` from the queue `m.destination`: a child of the publish
/// span `header` names, else of `envelope` (the context the event was written in).
pub fn process_span(m: Message<'_>, header: Option<&str>, envelope: &str) -> tracing::Span {
    let span = tracing::info_span!(
        "process",
        otel.name = %format!("process {}", m.destination),
        otel.kind = "consumer",
        otel.status_code = Empty,
        error.type = Empty,
        event_id = m.message_id,
        r#type = m.routing_key,
        application_id = m.application_id,
    );
    if let Some(cx) = header
        .and_then(parse_traceparent)
        .or_else(|| parse_traceparent(envelope))
    {
        let _ = span.set_parent(cx);
    }
    set_attributes(&span, m, "process");
    span
}

/// The semantic-convention attributes go to the OpenTelemetry span only, not into every log
/// line written inside it (span fields would).
fn set_attributes(span: &tracing::Span, m: Message<'_>, operation: &'static str) {
    span.set_attribute("messaging.system", m.system.to_string());
    span.set_attribute("messaging.destination.name", m.destination.to_string());
    span.set_attribute("messaging.operation.type", operation);
    span.set_attribute("messaging.operation.name", operation);
    span.set_attribute("messaging.message.id", m.message_id.to_string());
    span.set_attribute(
        "messaging.rabbitmq.destination.routing_key",
        m.routing_key.to_string(),
    );
}

/// Marks a messaging span failed with `error_type` (a short class, e.g. `nack`, `storage`).
pub fn record_error(span: &tracing::Span, error_type: &str) {
    span.record("error.type", error_type);
    span.record("otel.status_code", "ERROR");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_valid_traceparents_parse() {
        assert!(
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_some()
        );
        assert!(parse_traceparent("").is_none());
        assert!(parse_traceparent("garbage").is_none());
        assert!(
            parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none()
        );
    }
}
