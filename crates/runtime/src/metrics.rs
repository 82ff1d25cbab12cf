//! What a service process measures about itself, and where it shows it.
//!
//! - [`serve`]: `GET /metrics` (Prometheus text) on the service's `metrics_listen` address.
//! - [`RpcMetricsLayer`]: `rpc.server.call.duration` for every gRPC call, by service, method
//!   and status code. The status of a successful call arrives in the trailers, after the
//!   body, so the response body is wrapped and the call is measured when its status is known
//!   (for a stream: when it ends).

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use opentelemetry::{
    KeyValue,
    metrics::{Counter, Histogram},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{
    body::Body,
    codegen::http::{HeaderMap, Request, Response},
};

/// Serves `/metrics` on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    tongban_telemetry::metrics::CONTENT_TYPE,
                )],
                tongban_telemetry::metrics::render(),
            )
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Binds `addr` for [`serve`], naming the address when it is taken.
pub async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("metrics_listen {addr}: {e}"))
}

/// Measures every call of the service it wraps.
#[derive(Clone)]
pub struct RpcMetricsLayer {
    duration: Histogram<f64>,
}

impl Default for RpcMetricsLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RpcMetricsLayer {
    pub fn new() -> Self {
        let duration = tongban_telemetry::metrics::meter()
            .f64_histogram("rpc.server.call.duration")
            .with_unit("s")
            .with_description("Duration of gRPC calls handled, by method and status code")
            .with_boundaries(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
            .build();
        Self { duration }
    }
}

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics {
            inner,
            duration: self.duration.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    duration: Histogram<f64>,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B> tower::Service<Request<B>> for RpcMetrics<S>
where
    S: tower::Service<Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let call = Call::new(req.uri().path(), self.duration.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            let (parts, body) = resp.into_parts();
            // A call that fails before any message answers with the status in the headers
            // ("trailers-only").
            if let Some(code) = grpc_status(&parts.headers) {
                call.finish(code);
                return Ok(Response::from_parts(parts, body));
            }
            let body = Body::new(MeteredBody {
                inner: body,
                call: Some(call),
            });
            Ok(Response::from_parts(parts, body))
        })
    }
}

/// One call being measured.
struct Call {
    attrs: Vec<KeyValue>,
    started: Instant,
    duration: Histogram<f64>,
}

impl Call {
    fn new(path: &str, duration: Histogram<f64>) -> Self {
        // `/tongban.intake.v1.IntakeService/SubmitApplication`
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or(("unknown", "unknown"));
        Self {
            attrs: vec![
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("rpc.service", service.to_string()),
                KeyValue::new("rpc.method", method.to_string()),
            ],
            started: Instant::now(),
            duration,
        }
    }

    fn finish(mut self, code: i64) {
        self.attrs.push(KeyValue::new("rpc.grpc.status_code", code));
        self.duration
            .record(self.started.elapsed().as_secs_f64(), &self.attrs);
    }
}

fn grpc_status(headers: &HeaderMap) -> Option<i64> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The response body, passed through; the call is recorded when the trailers go by, or as
/// CANCELLED (1) when the client goes away first.
struct MeteredBody {
    inner: Body,
    call: Option<Call>,
}

impl http_body::Body for MeteredBody {
    type Data = <Body as http_body::Body>::Data;
    type Error = <Body as http_body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_status)
                    && let Some(call) = self.call.take()
                {
                    call.finish(code);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(call) = self.call.take() {
                    call.finish(i64::from(tonic::Code::Internal as i32));
                }
            }
            Poll::Ready(None) => {
                if let Some(call) = self.call.take() {
                    call.finish(i64::from(tonic::Code::Unknown as i32));
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for MeteredBody {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            call.finish(i64::from(tonic::Code::Cancelled as i32));
        }
    }
}

/// A counter of Tongban's own (`tongban.<name>`), for the crates that have no instruments of
/// their own yet.
pub fn counter(name: &'static str, description: &'static str) -> Counter<u64> {
    tongban_telemetry::metrics::meter()
        .u64_counter(name)
        .with_description(description)
        .build()
}
