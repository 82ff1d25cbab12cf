//! gRPC server spans by the OpenTelemetry semantic conventions for RPC.
//!
//! [`GrpcTraceLayer`] wraps every call in a server span named `{rpc.service}/{rpc.method}`
//! with `rpc.system=grpc`, `rpc.service` and `rpc.method`, continuing the caller's trace when
//! the request carries a W3C `traceparent` (so the events the call causes join that trace).
//! `rpc.grpc.status_code` is recorded once the status is known: from the response headers for
//! a trailers-only answer (how tonic sends errors), else from the trailers at the end of the
//! body. The span stays open until the body is done, so a server-streaming call's span covers
//! the whole stream; one the client drops before the end records CANCELLED. Statuses that mean
//! a server fault mark the span failed. Health checks and reflection get DEBUG spans (see
//! [`request_span`]), so probes do not fill the trace store.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tracing::field::Empty;

/// The span of one gRPC call: `path` is `/{package.Service}/{Method}`. Health checks and
/// reflection (probes every few seconds, tools) get a DEBUG span, so they are traced only when
/// `RUST_LOG` asks for debug.
pub fn request_span<B>(req: &Request<B>) -> tracing::Span {
    let path = req.uri().path();
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""));
    let probe = service == "grpc.health.v1.Health" || service.starts_with("grpc.reflection.");
    macro_rules! rpc_span {
        ($level:expr) => {
            tracing::span!(
                $level,
                "grpc",
                otel.name = %format!("{service}/{method}"),
                otel.kind = "server",
                otel.status_code = Empty,
                rpc.system = "grpc",
                rpc.service = service,
                rpc.method = method,
                rpc.grpc.status_code = Empty,
            )
        };
    }
    let span = if probe {
        rpc_span!(tracing::Level::DEBUG)
    } else {
        rpc_span!(tracing::Level::INFO)
    };
    if let Some(tp) = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
    {
        tongban_telemetry::set_parent(&span, tp);
    }
    span
}

/// The `grpc-status` in `headers` (response headers or trailers), if any.
fn grpc_status(headers: &HeaderMap) -> Option<i32> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Records `code` on `span`. The semantic conventions count these as server errors: UNKNOWN,
/// DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS; the others are the
/// caller's (e.g. NOT_FOUND, PERMISSION_DENIED) and leave the server span unset.
fn record_status(span: &tracing::Span, code: i32) {
    span.record("rpc.grpc.status_code", i64::from(code));
    if matches!(code, 2 | 4 | 12 | 13 | 14 | 15) {
        span.record("otel.status_code", "ERROR");
    }
}

/// Adds a server span to every gRPC call (see the module documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcTraceLayer;

impl<S> tower::Layer<S> for GrpcTraceLayer {
    type Service = GrpcTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcTrace { inner }
    }
}

/// The service [`GrpcTraceLayer`] makes.
#[derive(Debug, Clone)]
pub struct GrpcTrace<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for GrpcTrace<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = TracedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let span = request_span(&req);
        let inner = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        TracedFuture { inner, span }
    }
}

pin_project! {
    /// The call's future, polled inside its span.
    pub struct TracedFuture<F> {
        #[pin]
        inner: F,
        span: tracing::Span,
    }
}

impl<F, ResBody, E> Future for TracedFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<TracedBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _entered = this.span.enter();
            ready!(this.inner.poll(cx))
        };
        match result {
            Ok(response) => {
                let status = grpc_status(response.headers());
                if let Some(code) = status {
                    record_status(this.span, code);
                }
                let status = Status {
                    span: this.span.clone(),
                    recorded: status.is_some(),
                };
                Poll::Ready(Ok(response.map(|inner| TracedBody { inner, status })))
            }
            Err(e) => {
                this.span.record("otel.status_code", "ERROR");
                Poll::Ready(Err(e))
            }
        }
    }
}

pin_project! {
    /// The response body; holds the span open until it is done and reads the status from the
    /// trailers.
    pub struct TracedBody<B> {
        #[pin]
        inner: B,
        status: Status,
    }
}

/// The span, and whether its status is known yet.
struct Status {
    span: tracing::Span,
    recorded: bool,
}

impl Drop for Status {
    /// A body dropped before its trailers is a call the client gave up on (a closed stream, a
    /// deadline): gRPC's CANCELLED.
    fn drop(&mut self) {
        if !self.recorded {
            record_status(&self.span, 1);
        }
    }
}

impl<B: Body> Body for TracedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        let status = this.status;
        match &frame {
            Some(Ok(f)) if !status.recorded => {
                if let Some(code) = f.trailers_ref().and_then(grpc_status) {
                    record_status(&status.span, code);
                    status.recorded = true;
                }
            }
            Some(Err(_)) => {
                status.span.record("otel.status_code", "ERROR");
                status.recorded = true;
            }
            // Ended without trailers (never from tonic): nothing to record, nothing cancelled.
            None => status.recorded = true,
            _ => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
