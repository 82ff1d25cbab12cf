//! Credit classes come from the credit registry, never from the request: spoofing refused, the
//! registry's class stored with its source and time, unknown codes and a registry that is down
//! leave the class unset (no pledge path).

use std::sync::Arc;

use tongban_credit::{CreditRegistry, FileRegistry, HttpRegistry, HttpSettings};
use tongban_proto::common::CreditClass;

use crate::common::*;

/// A valid credit code that `deploy/credit` does not list.
const UNKNOWN: &str = "91350724MA2Y000773";

async fn stored_class(h: &Harness, id: &str) -> (Option<String>, Option<String>) {
    let b = h.db.get_database_backend();
    let row =
        h.db.query_one_raw(sea_orm::Statement::from_string(
            b,
            format!(
                "SELECT credit_class, credit_source FROM applications WHERE application_id = '{id}'"
            ),
        ))
        .await
        .ok()
        .flatten();
    row.map(|r| {
        (
            r.try_get::<Option<String>>("", "credit_class")
                .ok()
                .flatten(),
            r.try_get::<Option<String>>("", "credit_source")
                .ok()
                .flatten(),
        )
    })
    .unwrap_or_default()
}

async fn credit_class_in_the_request_is_refused(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let token = h.applicant();
    let mut req = example()?;
    if let Some(a) = req.applicant.as_mut() {
        a.credit_class = CreditClass::A as i32;
    }
    let err = h
        .client
        .submit_application(authed(req, &token))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a self-declared class was accepted"))?;
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        fields(&err).contains(&"applicant.credit_class".to_string()),
        "{:?}",
        fields(&err)
    );
    assert_eq!(h.count("applications").await, 0, "nothing half-written");
    assert_eq!(h.count("outbox").await, 0);
    Ok(())
}

async fn the_registry_class_is_stored_with_source_and_time(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let token = h.applicant();
    let app = h
        .client
        .submit_application(authed(example()?, &token))
        .await?
        .into_inner()
        .application
        .ok_or_else(|| anyhow::anyhow!("no application"))?;
    let a = app.applicant.clone().unwrap_or_default();
    // deploy/credit/nanping.toml lists the example's enterprise as class C.
    assert_eq!(a.credit_class(), CreditClass::C);
    assert_eq!(a.credit_source, "file:nanping.toml");
    assert!(a.credit_as_of.is_some() && a.credit_checked_time.is_some());
    assert_eq!(
        stored_class(&h, &app.application_id).await,
        (Some("C".into()), Some("file:nanping.toml".into()))
    );
    // The event other services plan from carries it too.
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
        got.application
            .and_then(|a| a.applicant)
            .map(|a| a.credit_class()),
        Some(CreditClass::C)
    );
    Ok(())
}

async fn an_unknown_code_gets_no_class(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let token = h.keys.token(Role::Applicant, None, Some(UNKNOWN));
    let mut req = example()?;
    req.request_id = "unknown-code-1".into();
    if let Some(a) = req.applicant.as_mut() {
        a.credit_code = UNKNOWN.into();
    }
    req.pledge = Some(tongban_proto::common::Pledge {
        signed: true,
        statement: "本单位承诺所报材料真实有效。".into(),
    });
    let app = h
        .client
        .submit_application(authed(req, &token))
        .await?
        .into_inner()
        .application
        .ok_or_else(|| anyhow::anyhow!("no application"))?;
    let a = app.applicant.clone().unwrap_or_default();
    assert_eq!(a.credit_class(), CreditClass::Unspecified);
    assert_eq!(a.credit_source, "not_found");
    assert!(a.credit_as_of.is_none());
    assert_eq!(
        stored_class(&h, &app.application_id).await,
        (None, Some("not_found".into()))
    );
    Ok(())
}

async fn a_registry_that_is_down_gets_no_class(backend: Backend) -> anyhow::Result<()> {
    // A port nobody listens on: bound, then released.
    let port = tongban_testkit::free_ports(1)?[0];
    let http = HttpRegistry::new(HttpSettings {
        base_url: format!("http://127.0.0.1:{port}"),
        auth: None,
        timeout: Duration::from_millis(500),
        retry: tongban_platform::RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
            multiplier: 2.0,
            jitter: false,
        },
    })?;
    let credit: Arc<dyn CreditRegistry> = Arc::new(http);
    let mut h = Harness::start_with_credit(backend, credit).await?;
    let token = h.applicant();
    let app = h
        .client
        .submit_application(authed(example()?, &token))
        .await?
        .into_inner()
        .application
        .ok_or_else(|| anyhow::anyhow!("no application"))?;
    let a = app.applicant.clone().unwrap_or_default();
    assert_eq!(
        a.credit_class(),
        CreditClass::Unspecified,
        "never fail open"
    );
    assert_eq!(a.credit_source, "unavailable");
    assert_eq!(app.status(), pb::ApplicationStatus::Submitted);
    Ok(())
}

/// The file source reads what the test wrote, so the cache is observable: a class changed
/// after the first lookup is not seen until the TTL passes.
async fn lookups_are_cached(backend: Backend) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let write = |class: &str| {
        std::fs::write(
            dir.path().join("r.toml"),
            format!(
                "[[record]]\ncredit_code = \"{APPLICANT}\"\nclass = \"{class}\"\nas_of = \"2026-10-01\"\n"
            ),
        )
    };
    write("B")?;
    let file = Arc::new(FileRegistry::new(
        dir.path(),
        dir.path().join("ledger.jsonl"),
    ));
    let credit: Arc<dyn CreditRegistry> =
        Arc::new(tongban_credit::Cached::new(file, Duration::from_secs(600)));
    let mut h = Harness::start_with_credit(backend, credit).await?;
    let token = h.applicant();
    let mut classes = Vec::new();
    for i in 0..2 {
        let mut req = example()?;
        req.request_id = format!("cached-{i}");
        let app = h
            .client
            .submit_application(authed(req, &token))
            .await?
            .into_inner()
            .application
            .ok_or_else(|| anyhow::anyhow!("no application"))?;
        classes.push(app.applicant.map(|a| a.credit_class()));
        write("D")?;
    }
    assert_eq!(classes, [Some(CreditClass::B), Some(CreditClass::B)]);
    Ok(())
}

async fn publish(h: &Harness, envs: &[&events::Envelope]) -> anyhow::Result<()> {
    let msgs: Vec<_> = envs
        .iter()
        .map(|e| tongban_bus::OutgoingMessage {
            event_id: e.event_id.clone(),
            routing_key: e.r#type.clone(),
            payload: e.encode_to_vec(),
            traceparent: None,
        })
        .collect();
    h.bus.publish_batch(&msgs).await?;
    Ok(())
}

async fn status_of(h: &Harness, id: &str, token: &str) -> anyhow::Result<pb::Application> {
    Ok(h.client
        .clone()
        .get_application(authed(
            pb::GetApplicationRequest {
                application_id: id.into(),
            },
            token,
        ))
        .await?
        .into_inner()
        .application
        .unwrap_or_default())
}

/// `application.revoked` makes the application REVOKED and writes the breach to the registry's
/// ledger, once even when the event is delivered twice.
async fn revocation_records_a_breach(backend: Backend) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ledger = dir.path().join("breaches.jsonl");
    let file = Arc::new(FileRegistry::new(
        tongban_testkit::deploy_dir().join("credit"),
        &ledger,
    ));
    let mut h = Harness::start_with_credit(backend, file.clone()).await?;
    let token = h.applicant();
    let id = h
        .client
        .submit_application(authed(example()?, &token))
        .await?
        .into_inner()
        .application
        .ok_or_else(|| anyhow::anyhow!("none"))?
        .application_id;
    let approved = tongban_outbox::new_envelope(
        "approval",
        &id,
        Payload::ApplicationApproved(events::ApplicationApproved {
            decision_number: "松环审〔2026〕13号".into(),
            on_pledge: true,
            ..Default::default()
        }),
    );
    let revoked = tongban_outbox::new_envelope(
        "approval",
        &id,
        Payload::ApplicationRevoked(events::ApplicationRevoked {
            reason: "现场核查：实际建设地点与承诺不符".into(),
            department: "eco_env".into(),
            revoke_time: Some(tongban_proto::time::ts(chrono::Utc::now())),
            task_id: "t-1".into(),
        }),
    );
    publish(&h, &[&approved]).await?;
    tongban_testkit::eventually(Duration::from_secs(20), "approved", || async {
        (status_of(&h, &id, &token).await.ok()?.status() == pb::ApplicationStatus::Approved)
            .then_some(())
    })
    .await?;
    publish(&h, &[&revoked, &revoked]).await?;
    let app = tongban_testkit::eventually(Duration::from_secs(20), "revoked", || async {
        let a = status_of(&h, &id, &token).await.ok()?;
        (a.status() == pb::ApplicationStatus::Revoked).then_some(a)
    })
    .await?;
    assert!(app.status_reason.contains("实际建设地点与承诺不符"));
    let breaches = file.breaches().await?;
    assert_eq!(breaches.len(), 1, "{breaches:?}");
    assert_eq!(breaches[0].credit_code, APPLICANT);
    assert_eq!(breaches[0].application_id, id);
    assert_eq!(breaches[0].event_id, revoked.event_id);
    Ok(())
}

/// 容缺受理: `application.suspended` suspends; supplying the overdue material resumes.
async fn suspension_ends_with_the_supplement(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let token = h.applicant();
    let id = h
        .client
        .submit_application(authed(example()?, &token))
        .await?
        .into_inner()
        .application
        .ok_or_else(|| anyhow::anyhow!("none"))?
        .application_id;
    let suspended = tongban_outbox::new_envelope(
        "approval",
        &id,
        Payload::ApplicationSuspended(events::ApplicationSuspended {
            material_kind: "land_use_certificate".into(),
            ..Default::default()
        }),
    );
    publish(&h, &[&suspended]).await?;
    let app = tongban_testkit::eventually(Duration::from_secs(20), "suspended", || async {
        let a = status_of(&h, &id, &token).await.ok()?;
        (a.status() == pb::ApplicationStatus::Suspended).then_some(a)
    })
    .await?;
    let material = tongban_proto::common::Material {
        kind: "land_use_certificate".into(),
        name: "不动产权证书.pdf".into(),
        sha256: "a".repeat(64),
        size_bytes: 1024,
        uri: "s3://tongban-materials/land.pdf".into(),
    };
    // Approval's timer decides when a material is overdue; intake resumes on the supplement.
    let resumed = h
        .client
        .supplement_materials(authed(
            pb::SupplementMaterialsRequest {
                application_id: id.clone(),
                materials: vec![material],
                expected_version: app.version,
                ..Default::default()
            },
            &token,
        ))
        .await?
        .into_inner()
        .application
        .unwrap_or_default();
    assert_eq!(resumed.status(), pb::ApplicationStatus::InReview);
    assert!(resumed.owed_materials[0].fulfilled_time.is_some());
    Ok(())
}

tongban_testkit::on_both!(
    revocation_records_a_breach,
    suspension_ends_with_the_supplement,
    credit_class_in_the_request_is_refused,
    the_registry_class_is_stored_with_source_and_time,
    an_unknown_code_gets_no_class,
    a_registry_that_is_down_gets_no_class,
    lookups_are_cached,
);
