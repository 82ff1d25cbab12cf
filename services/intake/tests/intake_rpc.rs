//! Intake over real gRPC, against PostgreSQL + RabbitMQ and against SQLite + the embedded bus.

use std::time::Duration;

use prost::Message;
use sea_orm::ConnectionTrait;
use tokio_util::sync::CancellationToken;
use tongban_auth::Role;
use tongban_bus::Bus;
use tongban_proto::{
    events::{self, envelope::Payload},
    intake::{self as pb, intake_service_client::IntakeServiceClient},
};
use tongban_testkit::{Backend, Keys, Stopper, TestDb, authed, eventually};
use tonic::{Code, transport::Channel};
use tonic_types::StatusExt;

const APPLICANT: &str = "91350100M000100Y43";

struct Harness {
    client: IntakeServiceClient<Channel>,
    addr: std::net::SocketAddr,
    keys: Keys,
    db: sea_orm::DatabaseConnection,
    bus: Bus,
    _stop: Stopper,
    _db: TestDb,
    _bus_dir: Option<tempfile::TempDir>,
}

impl Harness {
    async fn start(backend: Backend) -> anyhow::Result<Self> {
        let test_db = TestDb::new(backend, "intake").await?;
        let (bus, bus_dir) = match backend {
            Backend::Postgres => (tongban_testkit::rabbit_bus("intake").await?.0, None),
            Backend::Sqlite => {
                let (b, d) = tongban_testkit::local_bus().await?;
                (b, Some(d))
            }
        };
        let keys = Keys::new();
        let db = tongban_storage::connect(&test_db.url).await?;
        let ctx = tongban_runtime::Context {
            db: db.clone(),
            bus: bus.clone(),
            auth: keys.authenticator(),
            deploy_dir: tongban_testkit::deploy_dir(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            if let Err(e) = tongban_intake::run(ctx, listener, token).await {
                eprintln!("intake stopped: {e:#}");
            }
        });
        let client = eventually(Duration::from_secs(30), "intake to listen", || async {
            IntakeServiceClient::connect(format!("http://{addr}"))
                .await
                .ok()
        })
        .await?;
        Ok(Self {
            client,
            addr,
            keys,
            db,
            bus,
            _stop: Stopper(stop),
            _db: test_db,
            _bus_dir: bus_dir,
        })
    }

    fn applicant(&self) -> String {
        self.keys.token(Role::Applicant, None, Some(APPLICANT))
    }

    async fn count(&self, table: &str) -> i64 {
        let b = self.db.get_database_backend();
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                b,
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .ok()
            .flatten();
        row.and_then(|r| r.try_get::<i64>("", "n").ok())
            .unwrap_or(-1)
    }
}

fn example() -> anyhow::Result<pb::SubmitApplicationRequest> {
    let text = tongban_testkit::example_request_json()?;
    Ok(tongban_proto::json::from_json(
        "tongban.intake.v1.SubmitApplicationRequest",
        &text,
    )?)
}

fn fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

async fn submit_is_idempotent_and_emits_one_event(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let token = h.applicant();
    let req = example()?;
    let first = h
        .client
        .submit_application(authed(req.clone(), &token))
        .await?
        .into_inner();
    assert!(first.created);
    let app = first
        .application
        .ok_or_else(|| anyhow::anyhow!("no application"))?;
    assert_eq!(app.status(), pb::ApplicationStatus::Submitted);
    assert_eq!(app.version, 1);
    assert_eq!(app.owed_materials.len(), 1, "land-use certificate is owed");
    assert!(app.owed_materials[0].due_time.is_some());

    let again = h
        .client
        .submit_application(authed(req.clone(), &token))
        .await?
        .into_inner();
    assert!(!again.created);
    assert_eq!(
        again.application.map(|a| a.application_id),
        Some(app.application_id.clone())
    );
    assert_eq!(h.count("applications").await, 1);
    assert_eq!(
        h.count("outbox").await,
        1,
        "the replay must not emit a second event"
    );

    let mut changed = req.clone();
    if let Some(f) = changed.form.as_mut() {
        f.fields.insert(
            "project_name".into(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue("另一个项目".into())),
            },
        );
    }
    let err = h
        .client
        .submit_application(authed(changed, &token))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("accepted"))?;
    assert_eq!(err.code(), Code::AlreadyExists);

    let got = h
        .client
        .get_application(authed(
            pb::GetApplicationRequest {
                application_id: app.application_id.clone(),
            },
            &token,
        ))
        .await?
        .into_inner();
    assert_eq!(
        got.application.map(|a| a.request_id),
        Some(req.request_id.clone())
    );

    // Another applicant cannot read it.
    let other = h
        .keys
        .token(Role::Applicant, None, Some("91440300708461136T"));
    let err = h
        .client
        .get_application(authed(
            pb::GetApplicationRequest {
                application_id: app.application_id.clone(),
            },
            &other,
        ))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(err, Some(Code::PermissionDenied));
    // No token at all.
    let err = h
        .client
        .get_application(pb::GetApplicationRequest {
            application_id: app.application_id.clone(),
        })
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(err, Some(Code::Unauthenticated));
    let missing = h
        .client
        .get_application(authed(
            pb::GetApplicationRequest {
                application_id: "nope".into(),
            },
            &token,
        ))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(missing, Some(Code::NotFound));
    Ok(())
}

async fn list_pages_and_filters(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let token = h.applicant();
    for i in 0..5 {
        let mut req = example()?;
        req.request_id = format!("page-{i}");
        h.client.submit_application(authed(req, &token)).await?;
    }
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let resp = h
            .client
            .list_applications(authed(
                pb::ListApplicationsRequest {
                    page_size: 2,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
                &token,
            ))
            .await?
            .into_inner();
        assert!(resp.applications.len() <= 2);
        seen.extend(resp.applications.into_iter().map(|a| a.request_id));
        if resp.next_page_token.is_empty() {
            break;
        }
        page_token = resp.next_page_token;
    }
    assert_eq!(
        seen,
        vec!["page-4", "page-3", "page-2", "page-1", "page-0"],
        "newest first, no gaps or repeats"
    );

    let other = h
        .keys
        .token(Role::Applicant, None, Some("91440300708461136T"));
    let resp = h
        .client
        .list_applications(authed(pb::ListApplicationsRequest::default(), &other))
        .await?
        .into_inner();
    assert!(
        resp.applications.is_empty(),
        "applicants only see their own"
    );

    let clerk = h.keys.token(Role::Clerk, Some("eco_env"), None);
    let resp = h
        .client
        .list_applications(authed(
            pb::ListApplicationsRequest {
                status: pb::ApplicationStatus::Approved as i32,
                ..Default::default()
            },
            &clerk,
        ))
        .await?
        .into_inner();
    assert!(resp.applications.is_empty());
    let matters = h
        .client
        .list_matters(authed(pb::ListMattersRequest {}, &clerk))
        .await?
        .into_inner();
    assert!(
        matters
            .matters
            .iter()
            .any(|m| m.code == "env.eia.report_form" && m.allows_pledge)
    );
    Ok(())
}

async fn bad_input_names_the_field_and_writes_nothing(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let admin = h.keys.token(Role::Integrator, None, None);
    type Mutate = Box<dyn Fn(&mut pb::SubmitApplicationRequest)>;
    let cases: Vec<(&str, Mutate)> = vec![
        (
            "applicant.credit_code",
            Box::new(|r| {
                if let Some(a) = r.applicant.as_mut() {
                    a.credit_code = "91350100M000100Y44".into()
                }
            }),
        ),
        (
            "matter_code",
            Box::new(|r| r.matter_code = "env.no_such_matter".into()),
        ),
        (
            "form.project_name",
            Box::new(|r| {
                if let Some(f) = r.form.as_mut() {
                    f.fields.remove("project_name");
                }
            }),
        ),
        (
            "form",
            Box::new(|r| {
                if let Some(f) = r.form.as_mut() {
                    f.fields.insert(
                        "agency_name".into(),
                        prost_types::Value {
                            kind: Some(prost_types::value::Kind::StringValue("x".repeat(70_000))),
                        },
                    );
                }
            }),
        ),
        ("request_id", Box::new(|r| r.request_id = "  ".into())),
        (
            "applicant.region_code",
            Box::new(|r| {
                if let Some(a) = r.applicant.as_mut() {
                    a.region_code = "35".into()
                }
            }),
        ),
        (
            "materials[0].sha256",
            Box::new(|r| r.materials[0].sha256 = "abc".into()),
        ),
        (
            "materials",
            Box::new(|r| {
                r.materials.retain(|m| m.kind != "eia_report_form");
            }),
        ),
        (
            "commitments[0].due_within_days",
            Box::new(|r| r.commitments[0].due_within_days = 99),
        ),
        (
            "form.total_investment_wan",
            Box::new(|r| {
                if let Some(f) = r.form.as_mut() {
                    f.fields.insert(
                        "total_investment_wan".into(),
                        prost_types::Value {
                            kind: Some(prost_types::value::Kind::StringValue("lots".into())),
                        },
                    );
                }
            }),
        ),
    ];
    for (field, mutate) in cases {
        let mut req = example()?;
        req.request_id = format!("bad-{field}");
        mutate(&mut req);
        let err = h
            .client
            .submit_application(authed(req, &admin))
            .await
            .err()
            .ok_or_else(|| anyhow::anyhow!("{field}: accepted"))?;
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        let named = fields(&err);
        assert!(
            named.iter().any(|f| f == field),
            "{field} not named in {named:?} ({})",
            err.message()
        );
        assert!(
            err.message().contains(field),
            "message names the field: {}",
            err.message()
        );
    }
    assert_eq!(h.count("applications").await, 0);
    assert_eq!(h.count("outbox").await, 0);
    Ok(())
}

async fn status_follows_events_and_watch_streams_them(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let token = h.applicant();
    let app = h
        .client
        .submit_application(authed(example()?, &token))
        .await?
        .into_inner()
        .application
        .ok_or_else(|| anyhow::anyhow!("none"))?;
    let id = app.application_id.clone();
    let mut watch = h
        .client
        .watch_application(authed(
            pb::WatchApplicationRequest {
                application_id: id.clone(),
            },
            &token,
        ))
        .await?
        .into_inner();
    let first = watch
        .message()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no snapshot"))?;
    assert_eq!(first.event_type, "snapshot");

    // What approval and dispatch would publish; sent twice to prove redelivery changes nothing.
    let approved = tongban_outbox::new_envelope(
        "approval",
        &id,
        Payload::ApplicationApproved(events::ApplicationApproved {
            decision_number: "松环审〔2026〕12号".into(),
            ..Default::default()
        }),
    );
    let created = tongban_outbox::new_envelope(
        "approval",
        &id,
        Payload::TaskCreated(events::TaskCreated::default()),
    );
    let msgs: Vec<_> = [&created, &approved, &approved, &created]
        .iter()
        .map(|e| tongban_bus::OutgoingMessage {
            event_id: e.event_id.clone(),
            routing_key: e.r#type.clone(),
            payload: e.encode_to_vec(),
            traceparent: None,
        })
        .collect();
    h.bus.publish_batch(&msgs).await?;

    let mut statuses = Vec::new();
    while let Some(m) = tokio::time::timeout(Duration::from_secs(10), watch.message()).await?? {
        let a = m.application.unwrap_or_default();
        statuses.push(a.status());
        if a.status() == pb::ApplicationStatus::Approved {
            assert_eq!(a.decision_number, "松环审〔2026〕12号");
            break;
        }
    }
    assert_eq!(
        statuses.last(),
        Some(&pb::ApplicationStatus::Approved),
        "{statuses:?}"
    );
    let got = h
        .client
        .get_application(authed(
            pb::GetApplicationRequest {
                application_id: id.clone(),
            },
            &token,
        ))
        .await?
        .into_inner();
    let got = got.application.unwrap_or_default();
    assert_eq!(got.version, 3, "two distinct changes, duplicates ignored");
    // Withdrawing an approved application is refused.
    let err = h
        .client
        .withdraw_application(authed(
            pb::WithdrawApplicationRequest {
                application_id: id,
                ..Default::default()
            },
            &token,
        ))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(err, Some(Code::FailedPrecondition));
    Ok(())
}

async fn supplement_and_withdraw(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let token = h.applicant();
    let app = h
        .client
        .submit_application(authed(example()?, &token))
        .await?
        .into_inner()
        .application
        .ok_or_else(|| anyhow::anyhow!("none"))?;
    let land = tongban_proto::common::Material {
        kind: "land_use_certificate".into(),
        name: "不动产权证书.pdf".into(),
        sha256: "a".repeat(64),
        size_bytes: 1024,
        uri: "s3://b/land.pdf".into(),
    };
    let stale = h
        .client
        .supplement_materials(authed(
            pb::SupplementMaterialsRequest {
                application_id: app.application_id.clone(),
                materials: vec![land.clone()],
                expected_version: 7,
                note: String::new(),
            },
            &token,
        ))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(stale, Some(Code::Aborted));
    let after = h
        .client
        .supplement_materials(authed(
            pb::SupplementMaterialsRequest {
                application_id: app.application_id.clone(),
                materials: vec![land],
                expected_version: 1,
                note: "补交".into(),
            },
            &token,
        ))
        .await?
        .into_inner()
        .application
        .unwrap_or_default();
    assert_eq!(after.version, 2);
    assert!(
        after
            .owed_materials
            .iter()
            .all(|o| o.fulfilled_time.is_some())
    );
    let w = h
        .client
        .withdraw_application(authed(
            pb::WithdrawApplicationRequest {
                application_id: app.application_id.clone(),
                reason: "项目调整".into(),
                expected_version: 2,
            },
            &token,
        ))
        .await?
        .into_inner()
        .application
        .unwrap_or_default();
    assert_eq!(w.status(), pb::ApplicationStatus::Withdrawn);
    assert_eq!(
        h.count("outbox").await,
        3,
        "submitted, supplemented, withdrawn"
    );
    Ok(())
}

tongban_testkit::on_both!(
    submit_is_idempotent_and_emits_one_event,
    list_pages_and_filters,
    bad_input_names_the_field_and_writes_nothing,
    status_follows_events_and_watch_streams_them,
    supplement_and_withdraw,
);

/// What `grpcurl list` and `grpc_health_probe` do: reflection lists the service and health
/// reports it serving, without a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_and_health_work_without_a_token() -> anyhow::Result<()> {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let h = Harness::start(Backend::Sqlite).await?;
    let channel = Channel::from_shared(format!("http://{}", h.addr))?
        .connect()
        .await?;
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await?
        .into_inner();
    let response = responses
        .message()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no reflection response"))?;
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        anyhow::bail!("unexpected reflection response");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"tongban.intake.v1.IntakeService".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "tongban.intake.v1.IntakeService".into(),
        })
        .await?
        .into_inner();
    assert_eq!(
        status.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    Ok(())
}

/// One application is one trace: the caller's `traceparent` continues into the event intake
/// publishes, so every consumer's span joins the same trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_trace_rides_on_the_event() -> anyhow::Result<()> {
    let _telemetry = tongban_telemetry::init("intake-test");
    let mut h = Harness::start(Backend::Sqlite).await?;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut req = authed(example()?, &h.applicant());
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01").parse()?,
    );
    h.client.submit_application(req).await?;
    let b = h.db.get_database_backend();
    let row =
        h.db.query_one_raw(sea_orm::Statement::from_string(
            b,
            "SELECT traceparent FROM outbox".to_string(),
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no event"))?;
    let traceparent: Option<String> = row.try_get("", "traceparent")?;
    let traceparent = traceparent.unwrap_or_default();
    assert!(
        traceparent.starts_with(&format!("00-{trace_id}-")),
        "event traceparent {traceparent:?}"
    );
    Ok(())
}
