//! Outgoing HTTP requests as OpenTelemetry client spans (semantic conventions for HTTP
//! clients): the span is named after the method, carries `http.request.method`, `url.full`
//! (without query, fragment or credentials: platforms and registries put tokens there),
//! `server.address`, `server.port`, `http.response.status_code` and, on failure, `error.type`;
//! the request's `traceparent` header names that span, so the receiver's work joins the trace.
//!
//! [`send`] does all of it for a `reqwest` request; [`client_span`], [`inject_traceparent`],
//! [`record_status`] and [`record_error`] are the parts, for clients that send otherwise.

use ::http::{HeaderMap, HeaderValue};
use tracing::{Instrument as _, field::Empty};

use crate::traceparent_of;

/// A client span for `method` on `url`, a child of the current span. Enter it (or instrument
/// the request future with it) and put its context on the request with [`inject_traceparent`].
pub fn client_span(method: &str, url: &reqwest::Url) -> tracing::Span {
    tracing::info_span!(
        "http_client",
        otel.name = %method,
        otel.kind = "client",
        otel.status_code = Empty,
        http.request.method = %method,
        url.full = %url_full(url),
        server.address = url.host_str().unwrap_or_default(),
        server.port = url.port_or_known_default().map(i64::from),
        http.response.status_code = Empty,
        error.type = Empty,
    )
}

/// `url` as `url.full` may show it: no user, password, query or fragment.
pub fn url_full(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    // Both only fail for URLs that cannot have credentials, which then have none to hide.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// Sets `traceparent` in `headers` to `span`'s context (nothing when tracing is off).
pub fn inject_traceparent(span: &tracing::Span, headers: &mut HeaderMap) {
    if let Some(value) = traceparent_of(span).and_then(|tp| HeaderValue::from_str(&tp).ok()) {
        headers.insert("traceparent", value);
    }
}

/// Records the response status on a client span; 4xx and 5xx mark it failed.
pub fn record_status(span: &tracing::Span, status: u16) {
    span.record("http.response.status_code", i64::from(status));
    if status >= 400 {
        span.record("error.type", status.to_string());
        span.record("otel.status_code", "ERROR");
    }
}

/// Records a request that got no response (timeout, refused connection, …).
pub fn record_error(span: &tracing::Span, error_type: &str) {
    span.record("error.type", error_type);
    span.record("otel.status_code", "ERROR");
}

/// The `error.type` of a failed `reqwest` call.
pub fn error_type(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_redirect() {
        "redirect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else if e.is_builder() {
        "builder"
    } else {
        "_OTHER"
    }
}

/// Sends `request` inside a client span whose context the request carries as `traceparent`.
pub async fn send(request: reqwest::RequestBuilder) -> reqwest::Result<reqwest::Response> {
    let (client, request) = request.build_split();
    let mut request = request?;
    let span = client_span(request.method().as_str(), request.url());
    inject_traceparent(&span, request.headers_mut());
    let result = client.execute(request).instrument(span.clone()).await;
    match &result {
        Ok(response) => record_status(&span, response.status().as_u16()),
        Err(e) => record_error(&span, error_type(e)),
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_full_hides_credentials_and_query() -> Result<(), Box<dyn std::error::Error>> {
        let url =
            reqwest::Url::parse("https://user:pw@platform.example:8443/api/x?token=s3cret#f")?;
        assert_eq!(url_full(&url), "https://platform.example:8443/api/x");
        Ok(())
    }
}
