//! Order tolerance: intake's real consumer handler fed the events of one application's life
//! after its submission (approval's task.created, approved, revoked; dispatch's delivery
//! results) in every order (120), each order a fresh application in one database, then the
//! first event again (a redelivery): the application ends as in the in-order run.

use std::sync::Arc;

use tongban_intake::{consumer::StatusUpdater, repository::ApplicationStore, service::Intake};
use tongban_testkit::order::{deliver_all, permutations};

use crate::common::*;

/// Approval's and dispatch's events about `id`, in an order they can be produced.
fn life(id: &str) -> Vec<events::Envelope> {
    let now = Some(tongban_proto::time::ts(chrono::Utc::now()));
    vec![
        tongban_outbox::new_envelope(
            "approval",
            id,
            Payload::TaskCreated(events::TaskCreated {
                task_id: "t-1".into(),
                department: "eco_env".into(),
                ..Default::default()
            }),
        ),
        tongban_outbox::new_envelope(
            "approval",
            id,
            Payload::ApplicationApproved(events::ApplicationApproved {
                decision_number: "松环审〔2026〕21号".into(),
                decide_time: now,
                on_pledge: true,
                department: "eco_env".into(),
            }),
        ),
        tongban_outbox::new_envelope(
            "dispatch",
            id,
            Payload::DeliverySucceeded(events::DeliverySucceeded {
                platform_id: "eia".into(),
                ..Default::default()
            }),
        ),
        tongban_outbox::new_envelope(
            "approval",
            id,
            Payload::ApplicationRevoked(events::ApplicationRevoked {
                reason: "现场核查：实际建设地点与承诺不符".into(),
                department: "eco_env".into(),
                revoke_time: now,
                task_id: "t-2".into(),
            }),
        ),
        tongban_outbox::new_envelope(
            "dispatch",
            id,
            Payload::DeliveryDeadLettered(events::DeliveryDeadLettered {
                platform_id: "national_investment".into(),
                ..Default::default()
            }),
        ),
    ]
}

/// What intake shows of the application in the end (not its version: how many events
/// changed it depends on the order).
#[derive(Debug, PartialEq)]
struct End {
    status: pb::ApplicationStatus,
    reason: String,
    decision_number: String,
    deliveries: Option<pb::DeliveryProgress>,
}

async fn end(intake: &Intake, id: &str) -> anyhow::Result<End> {
    let a = intake
        .db()
        .find_application(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("{id} not found"))?
        .application;
    Ok(End {
        status: a.status(),
        reason: a.status_reason.clone(),
        decision_number: a.decision_number.clone(),
        // Each application's events are made afresh, at their own instants: the report times
        // differ between applications, the rest must not.
        deliveries: a.deliveries.clone().map(|mut d| {
            for p in &mut d.per_platform {
                p.update_time = None;
            }
            d
        }),
    })
}

async fn consumer_reaches_the_same_end_in_every_order(backend: Backend) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let deploy = tongban_testkit::deploy_dir();
    let credit = Arc::new(tongban_credit::FileRegistry::new(
        deploy.join("credit"),
        dir.path().join("breaches.jsonl"),
    ));
    let limits = IntakeLimits {
        submissions_per_minute: std::num::NonZeroU32::new(1000)
            .ok_or_else(|| anyhow::anyhow!("limit"))?,
        ..Default::default()
    };
    let h = Harness::start_with(backend, credit.clone(), limits).await?;
    let consumer = "intake-order-test";
    let token = h.applicant();
    let submit = || {
        let mut client = h.client.clone();
        let token = token.clone();
        async move {
            let mut req = example()?;
            req.request_id = tongban_types::new_id();
            anyhow::Ok(
                client
                    .submit_application(authed(req, &token))
                    .await?
                    .into_inner()
                    .application
                    .ok_or_else(|| anyhow::anyhow!("no application"))?
                    .application_id,
            )
        }
    };

    // Answered: the service has migrated its database.
    let id = submit().await?;
    // A second engine over the same database, whose handler the test drives.
    let calendar = tongban_calendar::Calendar::load_dir(deploy.join("calendar"))?;
    let (departments, regions) = tongban_matter::load_departments_and_regions(&deploy)?;
    let matters =
        tongban_intake::matters::Matters::load(&h.db, &deploy.join("matters"), departments).await?;
    let intake = Arc::new(Intake::new(
        h.db.clone(),
        matters,
        regions,
        calendar,
        Default::default(),
        credit,
    ));
    let handler = StatusUpdater::new(intake.clone());
    deliver_all(&h.db, consumer, &handler, &life(&id)).await?;
    let expected = end(&intake, &id).await?;
    assert_eq!(expected.status, pb::ApplicationStatus::Revoked);
    assert_eq!(expected.decision_number, "松环审〔2026〕21号");

    let orders = permutations(&[0, 1, 2, 3, 4]);
    assert_eq!(orders.len(), 120);
    for order in orders {
        let id = submit().await?;
        let events = life(&id);
        let shuffled: Vec<_> = order.iter().map(|&i| events[i].clone()).collect();
        deliver_all(&h.db, consumer, &handler, &shuffled).await?;
        assert_eq!(end(&intake, &id).await?, expected, "order {order:?}");
    }
    Ok(())
}

tongban_testkit::on_both!(consumer_reaches_the_same_end_in_every_order);
