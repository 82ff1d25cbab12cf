//! Bounded input: hostile numbers refused before any calendar arithmetic, material URI
//! schemes, length caps, open Watch streams per caller and submissions per caller.

use std::{num::NonZeroU32, time::Instant};

use tongban_intake::limits::IntakeLimits;

use crate::common::*;

async fn hostile_due_within_days_is_refused_in_milliseconds(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let token = h.applicant();
    // Warm the connection up so that the measurement is the request alone.
    h.client
        .list_matters(authed(pb::ListMattersRequest::default(), &token))
        .await?;
    for (i, days) in [u32::MAX, i32::MAX as u32, 1_000_000]
        .into_iter()
        .enumerate()
    {
        // The fastest of a few tries: on a loaded machine one request may be descheduled, but
        // an unbounded calendar walk (seconds) would make every try slow.
        let mut fastest = Duration::MAX;
        for attempt in 0..3 {
            let mut req = example()?;
            req.request_id = format!("hostile-{i}-{attempt}");
            req.commitments[0].due_within_days = days;
            let started = Instant::now();
            let err = h
                .client
                .submit_application(authed(req, &token))
                .await
                .err()
                .ok_or_else(|| anyhow::anyhow!("{days} days accepted"))?;
            fastest = fastest.min(started.elapsed());
            assert_eq!(err.code(), Code::InvalidArgument);
            assert!(
                fields(&err)
                    .iter()
                    .any(|f| f == "commitments[0].due_within_days"),
                "{:?}",
                fields(&err)
            );
        }
        // Far below the seconds (or the hang) that walking the calendar day by day would take, and
        // far above what a busy 2-core CI machine adds to a cheap refusal.
        assert!(fastest.as_millis() < 500, "{days} days took {fastest:?}");
    }
    assert_eq!(h.count("applications").await, 0);
    Ok(())
}

async fn caps_and_uri_schemes_name_the_field(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let token = h.applicant();
    type Mutate = Box<dyn Fn(&mut pb::SubmitApplicationRequest)>;
    let cases: Vec<(&str, Mutate)> = vec![
        (
            "materials[0].uri",
            Box::new(|r| r.materials[0].uri = "file:///etc/passwd".into()),
        ),
        (
            "materials[0].uri",
            Box::new(|r| r.materials[0].uri = "http://10.0.0.1/x.pdf".into()),
        ),
        (
            "materials[0].uri",
            Box::new(|r| r.materials[0].uri = format!("s3://b/{}", "x".repeat(3000))),
        ),
        (
            "materials",
            Box::new(|r| {
                let m = r.materials[0].clone();
                r.materials = vec![m; 101];
            }),
        ),
        (
            "commitments",
            Box::new(|r| {
                let c = r.commitments[0].clone();
                r.commitments = vec![c; 101];
            }),
        ),
        (
            "matter_code",
            Box::new(|r| r.matter_code = "m".repeat(1000)),
        ),
        (
            "commitments[0].statement",
            Box::new(|r| r.commitments[0].statement = "长".repeat(501)),
        ),
    ];
    for (i, (field, mutate)) in cases.into_iter().enumerate() {
        let mut req = example()?;
        req.request_id = format!("cap-{i}");
        mutate(&mut req);
        let err = h
            .client
            .submit_application(authed(req, &token))
            .await
            .err()
            .ok_or_else(|| anyhow::anyhow!("{field}: accepted"))?;
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(
            fields(&err).iter().any(|f| f == field),
            "{field} not in {:?}",
            fields(&err)
        );
    }
    assert_eq!(h.count("applications").await, 0);
    // The example's own URIs (s3://) stay valid.
    h.client
        .submit_application(authed(example()?, &token))
        .await?;
    Ok(())
}

async fn watch_streams_and_submissions_are_limited_per_caller(
    backend: Backend,
) -> anyhow::Result<()> {
    let limits = IntakeLimits {
        watch_streams_per_caller: 2,
        submissions_per_minute: NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN),
        ..IntakeLimits::default()
    };
    let mut h = Harness::start_with_limits(backend, limits).await?;
    let token = h.applicant();
    let app = h
        .client
        .submit_application(authed(example()?, &token))
        .await?
        .into_inner()
        .application
        .ok_or_else(|| anyhow::anyhow!("no application"))?;
    let watch = |mut c: IntakeServiceClient<Channel>, token: String, id: String| async move {
        c.watch_application(authed(
            pb::WatchApplicationRequest { application_id: id },
            &token,
        ))
        .await
        .map(|r| r.into_inner())
    };
    let first = watch(h.client.clone(), token.clone(), app.application_id.clone()).await?;
    let second = watch(h.client.clone(), token.clone(), app.application_id.clone()).await?;
    let err = watch(h.client.clone(), token.clone(), app.application_id.clone())
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a third stream was opened"))?;
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(reason(&err), "RESOURCE_EXHAUSTED");
    // Another caller has its own allowance.
    let admin = h.keys.token(Role::Admin, None, None);
    let other = watch(h.client.clone(), admin, app.application_id.clone()).await?;
    // A stream that ends gives its place back.
    drop(first);
    let reopened = tongban_testkit::eventually(Duration::from_secs(10), "a freed stream", || {
        let (c, t, id) = (h.client.clone(), token.clone(), app.application_id.clone());
        async move { watch(c, t, id).await.ok() }
    })
    .await?;
    drop((second, other, reopened));

    // Submissions: the second is allowed (burst of 2 including the first), the third waits.
    let mut req = example()?;
    req.request_id = "rate-2".into();
    h.client.submit_application(authed(req, &token)).await?;
    let mut req = example()?;
    req.request_id = "rate-3".into();
    let err = h
        .client
        .submit_application(authed(req, &token))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("over the rate"))?;
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(reason(&err), "RESOURCE_EXHAUSTED");
    let retry = err
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .ok_or_else(|| anyhow::anyhow!("no retry hint"))?;
    assert!(retry > Duration::ZERO);
    assert_eq!(
        h.count("applications").await,
        2,
        "the refused one wrote nothing"
    );
    Ok(())
}

tongban_testkit::on_both!(
    hostile_due_within_days_is_refused_in_milliseconds,
    caps_and_uri_schemes_name_the_field,
    watch_streams_and_submissions_are_limited_per_caller,
);
