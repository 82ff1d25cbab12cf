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

tongban_testkit::on_both!(
    credit_class_in_the_request_is_refused,
    the_registry_class_is_stored_with_source_and_time,
    an_unknown_code_gets_no_class,
    a_registry_that_is_down_gets_no_class,
    lookups_are_cached,
);
