//! One application is one trace, across processes: the four service binaries export their spans
//! over OTLP to a receiver in this test, and one submission made with a `traceparent` of our
//! choosing is followed through intake, the bus, approval, dispatch (out to a platform over
//! HTTP) and notification.

use std::{
    collections::{HashMap, HashSet},
    process::Command,
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{AnyValue, KeyValue, any_value},
    trace::v1::span::SpanKind,
};
use tokio_util::sync::CancellationToken;
use tongban_auth::Role;
use tongban_e2e::{Proc, binary, free_ports, wait_for_grpc};
use tongban_proto::intake::{self as pb, intake_service_client::IntakeServiceClient};
use tongban_testkit::{Backend, Keys, TestDb, authed, eventually};

/// One exported span, as much of it as the assertions read.
#[derive(Debug, Clone)]
struct Exported {
    service: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    kind: SpanKind,
    attributes: HashMap<String, String>,
}

/// An OTLP/gRPC trace receiver that keeps every span it is sent.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Exported>>>,
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

fn attributes(kvs: &[KeyValue]) -> HashMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = Vec::new();
        for rs in request.into_inner().resource_spans {
            let resource = rs
                .resource
                .as_ref()
                .map(|r| attributes(&r.attributes))
                .unwrap_or_default();
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    got.push(Exported {
                        service: service.clone(),
                        trace_id: hex::encode(&s.trace_id),
                        span_id: hex::encode(&s.span_id),
                        parent_span_id: hex::encode(&s.parent_span_id),
                        kind: s.kind(),
                        name: s.name,
                        attributes: attributes(&s.attributes),
                    });
                }
            }
        }
        self.spans
            .lock()
            .map_err(|_| tonic::Status::internal("poisoned"))?
            .extend(got);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Receiver {
    /// Serves on a free port until `stop`; returns the port.
    async fn start(&self, stop: CancellationToken) -> anyhow::Result<u16> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    stop.cancelled_owned(),
                )
                .await;
        });
        Ok(port)
    }

    fn in_trace(&self, trace_id: &str) -> Vec<Exported> {
        self.spans
            .lock()
            .map(|s| {
                s.iter()
                    .filter(|s| s.trace_id == trace_id)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// What the trace must show; `None` while it does not (yet), with the reason.
fn check_trace(spans: &[Exported], caller_span: &str) -> Result<(), String> {
    let services: HashSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    for s in ["intake", "approval", "dispatch", "notification"] {
        if !services.contains(s) {
            return Err(format!("no span of {s} yet (have {services:?})"));
        }
    }
    // The RPC: a server span named by the semantic conventions, under the caller's span.
    let rpc = spans
        .iter()
        .find(|s| s.name == "tongban.intake.v1.IntakeService/SubmitApplication")
        .ok_or("no SubmitApplication server span")?;
    if rpc.service != "intake" || rpc.kind != SpanKind::Server {
        return Err(format!("SubmitApplication span: {rpc:?}"));
    }
    if rpc.parent_span_id != caller_span {
        return Err(format!(
            "SubmitApplication's parent {} is not the caller's span {caller_span}",
            rpc.parent_span_id
        ));
    }
    for (k, v) in [
        ("rpc.system", "grpc"),
        ("rpc.service", "tongban.intake.v1.IntakeService"),
        ("rpc.method", "SubmitApplication"),
        ("rpc.grpc.status_code", "0"),
    ] {
        if rpc.attributes.get(k).map(String::as_str) != Some(v) {
            return Err(format!("SubmitApplication {k}: {:?}", rpc.attributes));
        }
    }
    // Every publish is a producer span; every process span hangs under one seen here.
    let publishes: HashMap<&str, &Exported> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Producer)
        .map(|s| (s.span_id.as_str(), s))
        .collect();
    let submitted = publishes
        .values()
        .find(|p| {
            p.service == "intake"
                && p.attributes
                    .get("messaging.rabbitmq.destination.routing_key")
                    .is_some_and(|k| k == "application.submitted")
        })
        .ok_or("no publish span of application.submitted")?;
    if !submitted.name.starts_with("publish ")
        || submitted
            .attributes
            .get("messaging.system")
            .map(String::as_str)
            != Some("rabbitmq")
        || submitted
            .attributes
            .get("messaging.operation.type")
            .map(String::as_str)
            != Some("publish")
        || submitted
            .attributes
            .get("messaging.message.id")
            .is_none_or(String::is_empty)
    {
        return Err(format!("publish span: {submitted:?}"));
    }
    let processes: Vec<&Exported> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Consumer)
        .collect();
    for service in ["approval", "dispatch", "notification"] {
        if !processes.iter().any(|p| {
            p.service == service
                && p.attributes
                    .get("messaging.rabbitmq.destination.routing_key")
                    .is_some_and(|k| k == "application.submitted")
        }) {
            return Err(format!(
                "{service} has no process span of application.submitted"
            ));
        }
    }
    for p in &processes {
        if !p.name.starts_with("process ") {
            return Err(format!("consumer span named {:?}", p.name));
        }
        let Some(parent) = publishes.get(p.parent_span_id.as_str()) else {
            return Err(format!(
                "{} {} (message {:?}): parent {} is not a publish span seen",
                p.service,
                p.name,
                p.attributes.get("messaging.message.id"),
                p.parent_span_id
            ));
        };
        if parent.attributes.get("messaging.message.id") != p.attributes.get("messaging.message.id")
        {
            return Err(format!(
                "{p:?} hangs under the publish of another message {parent:?}"
            ));
        }
    }
    Ok(())
}

/// A submission with our `traceparent` becomes one trace through all four services: the RPC's
/// server span, each event's publish span, each consumer's process span under that publish
/// span, and dispatch's HTTP request to the platform, which receives the request span's
/// context in its `traceparent` header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_submission_is_one_trace_across_the_four_services() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stop = CancellationToken::new();
    let _stop_receiver = stop.clone().drop_guard();
    let receiver = Receiver::default();
    let otlp_port = receiver.start(stop.clone()).await?;

    let dir = tempfile::tempdir()?;
    let keys = Keys::new();
    keys.write_jwks(dir.path())?;
    let exchange = tongban_testkit::unique_exchange("traces");
    let ports = free_ports(8)?;
    let platforms = tongban_platform::load_dir(tongban_testkit::deploy_dir().join("platforms"))?;
    anyhow::ensure!(platforms.len() == 4, "four default platforms");

    // The simulators, one port each, and dispatch told where they are.
    let mut sim_cmd = Command::new(binary("tongban-platform-sim")?);
    sim_cmd
        .arg("--platforms")
        .arg(tongban_testkit::deploy_dir().join("platforms"));
    let mut dispatch_env = Vec::new();
    let mut provincial = None;
    for (p, port) in platforms.iter().zip(&ports[4..]) {
        sim_cmd.arg("--port").arg(format!("{}={port}", p.id));
        let url = format!("http://127.0.0.1:{port}{}", p.endpoint_url.path);
        let id = p.id.to_ascii_uppercase();
        dispatch_env.push((format!("TONGBAN_PLATFORM_{id}_ENDPOINT"), url.clone()));
        dispatch_env.push((
            format!("TONGBAN_PLATFORM_{id}_QUERY_ENDPOINT"),
            format!("{url}/_received"),
        ));
        // dispatch refuses the files' inline development secrets: both sides get this run's
        // own credential from the environment, as in a deployment.
        let secret = format!("traces-{}-{}", p.id, std::process::id());
        sim_cmd.env(&p.secret_env, &secret);
        dispatch_env.push((p.secret_env.clone(), secret));
        // The one platform that wants `application.submitted`: it hears of the submission.
        if p.wants("application.submitted") {
            provincial = Some(format!("{url}/_received"));
        }
    }
    let received_url =
        provincial.ok_or_else(|| anyhow::anyhow!("no platform wants application.submitted"))?;
    let mut sim = Proc::spawn("platform-sim", sim_cmd, dir.path())?;

    let mut dbs = Vec::new();
    let mut procs = Vec::new();
    for (i, service) in ["intake", "approval", "dispatch", "notification"]
        .into_iter()
        .enumerate()
    {
        let db = TestDb::new(Backend::Postgres, service).await?;
        let mut cmd = Command::new(binary(&format!("tongban-{service}"))?);
        cmd.env("TONGBAN_DATABASE_URL", &db.url)
            .env("TONGBAN_BUS_URL", tongban_testkit::amqp_url_for_processes())
            .env("TONGBAN_EXCHANGE", &exchange)
            .env("TONGBAN_LISTEN", format!("127.0.0.1:{}", ports[i]))
            .env(
                "TONGBAN_METRICS_LISTEN",
                format!("127.0.0.1:{}", free_ports(1)?[0]),
            )
            .env(
                "TONGBAN_JWKS_FILE",
                dir.path().join(tongban_auth::keys::JWKS_FILE),
            )
            .env("TONGBAN_DEPLOY_DIR", tongban_testkit::deploy_dir())
            .env("RUST_LOG", "info")
            .env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{otlp_port}"),
            )
            .env("OTEL_BSP_SCHEDULE_DELAY", "100");
        if service == "dispatch" {
            cmd.envs(dispatch_env.iter().map(|(k, v)| (k, v)));
        }
        dbs.push(db);
        procs.push(Proc::spawn(service, cmd, dir.path())?);
    }
    for port in &ports[..4] {
        let mut all: Vec<&mut Proc> = procs.iter_mut().collect();
        all.push(&mut sim);
        wait_for_grpc(*port, &mut all, Duration::from_secs(60)).await?;
    }
    let tails = |procs: &[Proc]| {
        procs
            .iter()
            .map(|p| format!("--- {}\n{}", p.name, p.tail()))
            .collect::<Vec<_>>()
            .join("\n")
    };

    // The caller's trace: ids of our choosing, sampled.
    let trace_id = "5a1e0f7e3c2b4d6a8f9e0d1c2b3a4f5e";
    let caller_span = "1f2e3d4c5b6a7988";
    let mut intake = IntakeServiceClient::connect(format!("http://127.0.0.1:{}", ports[0])).await?;
    let text = tongban_testkit::example_request_json()?;
    let req: pb::SubmitApplicationRequest =
        tongban_proto::json::from_json("tongban.intake.v1.SubmitApplicationRequest", &text)?;
    let token = keys.token(Role::Applicant, None, Some("91350100M000100Y43"));
    let mut request = authed(req, &token);
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{caller_span}-01").parse()?,
    );
    let app = intake.submit_application(request).await?.into_inner();
    anyhow::ensure!(app.created, "submitted");
    // A refused call in the same trace: its span records the status the caller got.
    let failing_caller = "2a3b4c5d6e7f8091";
    let mut request = authed(
        pb::GetApplicationRequest {
            application_id: "no-such-application".into(),
        },
        &token,
    );
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{failing_caller}-01").parse()?,
    );
    let refused = intake
        .get_application(request)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("an unknown application was found"))?;

    // A stream the client drops after its first message: its span ends CANCELLED.
    let watch_caller = "3c4d5e6f708192a3";
    let mut request = authed(
        pb::WatchApplicationRequest {
            application_id: app
                .application
                .as_ref()
                .map(|a| a.application_id.clone())
                .unwrap_or_default(),
        },
        &token,
    );
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{watch_caller}-01").parse()?,
    );
    let mut stream = intake.watch_application(request).await?.into_inner();
    anyhow::ensure!(
        stream.message().await?.is_some(),
        "the watch's first message"
    );
    drop(stream);

    // The platform got the submission, with a traceparent in our trace.
    let http = reqwest::Client::new();
    let key = eventually(Duration::from_secs(60), "the platform to receive", || {
        let (http, url) = (http.clone(), received_url.clone());
        async move {
            let v: serde_json::Value = http.get(url).send().await.ok()?.json().await.ok()?;
            v["keys"].as_array()?.first()?.as_str().map(String::from)
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", tails(&procs)))?;
    let one = http.get(format!("{received_url}/{key}")).send().await?;
    let delivered_with = one
        .headers()
        .get("x-received-traceparent")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .ok_or_else(|| anyhow::anyhow!("the platform's request carried no traceparent"))?;
    let parts: Vec<&str> = delivered_with.split('-').collect();
    anyhow::ensure!(
        parts.len() == 4 && parts[1] == trace_id,
        "the platform request's traceparent {delivered_with} is not in trace {trace_id}"
    );
    let request_span = parts[2].to_string();

    // The exported spans: all four services in the one trace, consumers under publishers.
    let spans = eventually(Duration::from_secs(60), "the whole trace exported", || {
        let spans = receiver.in_trace(trace_id);
        async move { check_trace(&spans, caller_span).ok().map(|()| spans) }
    })
    .await
    .map_err(|e| {
        let spans = receiver.in_trace(trace_id);
        let listing: Vec<String> = spans
            .iter()
            .map(|s| {
                format!(
                    "{} {} {:?} {}<-{}",
                    s.service, s.name, s.kind, s.span_id, s.parent_span_id
                )
            })
            .collect();
        anyhow::anyhow!(
            "{e}: {}\n{}\n{}",
            check_trace(&spans, caller_span).err().unwrap_or_default(),
            listing.join("\n"),
            tails(&procs)
        )
    })?;

    // The platform request is dispatch's client span, with the HTTP attributes.
    let client = eventually(Duration::from_secs(30), "dispatch's client span", || {
        let found = receiver
            .in_trace(trace_id)
            .into_iter()
            .find(|s| s.span_id == request_span);
        async move { found }
    })
    .await?;
    assert_eq!(client.service, "dispatch");
    assert_eq!(client.kind, SpanKind::Client);
    assert_eq!(client.name, "POST");
    assert_eq!(
        client
            .attributes
            .get("http.request.method")
            .map(String::as_str),
        Some("POST")
    );
    assert!(
        client
            .attributes
            .get("http.response.status_code")
            .is_some_and(|c| c == "201" || c == "200"),
        "{client:?}"
    );
    assert_eq!(
        client.attributes.get("server.address").map(String::as_str),
        Some("127.0.0.1")
    );
    assert!(
        client
            .attributes
            .get("url.full")
            .is_some_and(|u| u.starts_with("http://127.0.0.1:") && !u.contains('?')),
        "{client:?}"
    );
    assert!(spans.len() > 5, "{spans:?}");

    let get = eventually(Duration::from_secs(30), "the refused call's span", || {
        let found = receiver
            .in_trace(trace_id)
            .into_iter()
            .find(|s| s.parent_span_id == failing_caller);
        async move { found }
    })
    .await?;
    assert_eq!(get.name, "tongban.intake.v1.IntakeService/GetApplication");
    let watch = eventually(Duration::from_secs(30), "the dropped watch's span", || {
        let found = receiver
            .in_trace(trace_id)
            .into_iter()
            .find(|s| s.parent_span_id == watch_caller);
        async move { found }
    })
    .await?;
    assert_eq!(
        watch.name,
        "tongban.intake.v1.IntakeService/WatchApplication"
    );
    assert_eq!(
        watch
            .attributes
            .get("rpc.grpc.status_code")
            .map(String::as_str),
        Some("1"),
        "a dropped stream is CANCELLED: {watch:?}"
    );
    assert_eq!(get.kind, SpanKind::Server);
    assert_eq!(
        get.attributes.get("rpc.grpc.status_code"),
        Some(&(refused.code() as i32).to_string()),
        "{get:?} for {refused:?}"
    );
    drop(procs);
    Ok(())
}
