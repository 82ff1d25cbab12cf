//! Approval over real gRPC (see `common` for the harness). 好差评: the applicant rates a
//! finished application once; a poor rating goes on the supervision ledger for the department
//! that decided until it records its rectification, and the applicant is told.

use crate::common::*;

/// An application approved at once on its pledge (class A), so it is finished.
async fn finished(h: &mut Harness) -> anyhow::Result<String> {
    let mut snap = with_class(snapshot()?, common::CreditClass::A);
    snap.pledge = Some(common::Pledge {
        signed: true,
        statement: "本单位承诺符合审批条件".into(),
    });
    let app = h.submit(snap).await?;
    h.event(&app, "application.approved", 1).await?;
    Ok(app)
}

fn rate(app: &str, score: i32, reasons: &[&str]) -> pb::RateServiceRequest {
    pb::RateServiceRequest {
        application_id: app.into(),
        score,
        reasons: reasons.iter().map(|r| r.to_string()).collect(),
        comment: "等了很久".into(),
    }
}

fn rectify(app: &str, text: &str) -> pb::RecordRectificationRequest {
    pb::RecordRectificationRequest {
        application_id: app.into(),
        rectification: text.into(),
    }
}

/// The field an INVALID_ARGUMENT names.
fn field(s: &tonic::Status) -> String {
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    s.get_details_bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default()
}

async fn poor_rating_is_rectified_and_struck_off(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let mut client = h.client.clone();
    let applicant = h.applicant();

    // Only a finished application is rated.
    let running = h.submit(snapshot()?).await?;
    h.stage(&running, "acceptance", 1).await?;
    let err = client
        .rate_service(authed(rate(&running, 5, &[]), &applicant))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(err, Some(Code::FailedPrecondition));

    let app = finished(&mut h).await?;
    for (req, want) in [
        (rate(&app, 0, &[]), "score"),
        (rate(&app, 6, &[]), "score"),
        (rate(&app, 2, &[]), "reasons"),
        (rate(&app, 1, &["angry"]), "reasons[0]"),
        (rate(&app, 1, &["slow", "slow"]), "reasons[1]"),
    ] {
        let err = client
            .rate_service(authed(req, &applicant))
            .await
            .err()
            .ok_or_else(|| anyhow::anyhow!("accepted a bad rating"))?;
        assert_eq!(field(&err), want);
    }
    let other = h
        .keys
        .token(Role::Applicant, None, Some("91440300708461136T"));
    let denied = client
        .rate_service(authed(rate(&app, 1, &["slow"]), &other))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(denied, Some(Code::PermissionDenied));

    let rating = client
        .rate_service(authed(rate(&app, 2, &["slow", "attitude"]), &applicant))
        .await?
        .into_inner()
        .rating
        .unwrap_or_default();
    assert!(rating.poor);
    assert_eq!(
        (rating.score, rating.department.as_str()),
        (2, "eco_env"),
        "the lead department issued the approval"
    );
    assert_eq!(rating.reasons, ["slow", "attitude"]);
    let rated = h.event(&app, "service.rated", 1).await?;
    let Some(Payload::ServiceRated(r)) = rated.payload else {
        anyhow::bail!("wrong payload")
    };
    assert!(r.poor && r.score == 2 && r.department == "eco_env", "{r:?}");
    assert_eq!(r.reason_labels, ["办理慢", "服务态度"]);
    let again = client
        .rate_service(authed(rate(&app, 5, &[]), &applicant))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(again, Some(Code::AlreadyExists), "once per application");

    // On the ledger for eco_env, due within 15 working days.
    let engine = timer_worker(&h).await?;
    let admin = identity(Role::Admin, None);
    let item_id = format!("rating:{app}");
    let item = engine.ledger_item(&admin, &item_id).await?;
    assert!(item.is_open());
    assert_eq!(item.responsible_unit, "eco_env");
    let rate_time = rating
        .rate_time
        .as_ref()
        .and_then(tongban_proto::time::from_ts)
        .ok_or_else(|| anyhow::anyhow!("no rate time"))?;
    assert_eq!(
        item.due_at,
        Some(
            engine
                .calendar()
                .add_working_days(rate_time, 15)
                .timestamp_millis()
        )
    );

    // Rectified by eco_env: struck off by that clerk, and the applicant is told.
    let denied = client
        .record_rectification(authed(rectify(&app, "已整改"), &h.clerk("market_reg")))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(denied, Some(Code::PermissionDenied));
    let clerk = h.clerk("eco_env");
    let err = client
        .record_rectification(authed(rectify(&app, "  "), &clerk))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("accepted an empty rectification"))?;
    assert_eq!(field(&err), "rectification");
    let done = client
        .record_rectification(authed(rectify(&app, "已约谈经办人，压缩审查时限"), &clerk))
        .await?
        .into_inner()
        .rating
        .unwrap_or_default();
    assert_eq!(done.rectification, "已约谈经办人，压缩审查时限");
    assert!(done.rectify_time.is_some());
    let told = h.event(&app, "rating.rectified", 1).await?;
    assert!(
        matches!(told.payload, Some(Payload::RatingRectified(ref r)) if r.rectification == done.rectification)
    );
    let item = engine.ledger_item(&admin, &item_id).await?;
    assert!(!item.is_open());
    assert_eq!(item.closed_by, done.rectified_by);
    assert_eq!(item.closed_by, format!("{}-eco_env", Role::Clerk));
    let twice = client
        .record_rectification(authed(rectify(&app, "再次整改"), &clerk))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(twice, Some(Code::FailedPrecondition));
    let trail = audit(&h, &app).await?;
    assert!(
        trail.iter().any(|e| e.action == "rate_service")
            && trail.iter().any(|e| e.action == "rectify"),
        "{trail:?}"
    );
    Ok(())
}

async fn good_rating_stays_off_the_ledger(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let app = finished(&mut h).await?;
    let mut client = h.client.clone();
    let rating = client
        .rate_service(authed(rate(&app, 5, &[]), &h.applicant()))
        .await?
        .into_inner()
        .rating
        .unwrap_or_default();
    assert!(!rating.poor);
    let engine = timer_worker(&h).await?;
    let admin = identity(Role::Admin, None);
    let missing = engine
        .ledger_item(&admin, &format!("rating:{app}"))
        .await
        .err()
        .map(|e| matches!(e, tongban_approval::error::ApprovalError::NotFound(_)));
    assert_eq!(missing, Some(true));
    let nothing = client
        .record_rectification(authed(rectify(&app, "无需整改"), &h.clerk("eco_env")))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(nothing, Some(Code::FailedPrecondition));
    Ok(())
}

tongban_testkit::on_both!(
    poor_rating_is_rectified_and_struck_off,
    good_rating_stays_off_the_ledger,
);
