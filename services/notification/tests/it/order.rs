//! Order tolerance: notification's real consumer handler fed one application's events
//! (intake's submission, approval's task and decision events, dispatch's dead letter) in every
//! order (120), each order a fresh application in one database, then the first event again (a
//! redelivery): the same notifications and e-mails as in order. An applicant's notification
//! whose event overtook the submission (which brings the applicant's address) is not lost.

use std::sync::Arc;

use sea_orm::ConnectionTrait;
use tongban_notification::{consumer::FanIn, service::Shared};
use tongban_proto::events::{self, Envelope, envelope::Payload};
use tongban_testkit::{
    Backend,
    order::{deliver_all, permutations},
};

use crate::common::*;

const APPLICANT: &str = "91350100M000100Y43";

/// One application's events, in an order they can be produced.
fn life() -> Vec<Envelope> {
    let submitted = submitted(APPLICANT, "owner@example.com", "zh-CN");
    let id = submitted.application_id.clone();
    let task = |p: Payload| tongban_outbox::new_envelope("approval", &id, p);
    vec![
        submitted.clone(),
        task(Payload::TaskCreated(events::TaskCreated {
            task_id: "t-1".into(),
            department: "eco_env".into(),
            ..Default::default()
        })),
        task(Payload::SupplementRequested(events::SupplementRequested {
            task_id: "t-1".into(),
            department: "eco_env".into(),
            comment: "请补充".into(),
            requested_materials: vec!["site_plan".into()],
        })),
        task(Payload::ApplicationApproved(events::ApplicationApproved {
            decision_number: "松环审〔2026〕31号".into(),
            department: "eco_env".into(),
            ..Default::default()
        })),
        tongban_outbox::new_envelope(
            "dispatch",
            &id,
            Payload::DeliveryDeadLettered(events::DeliveryDeadLettered {
                platform_id: "eia".into(),
                ..Default::default()
            }),
        ),
    ]
}

/// The application's notifications as (recipient, kind, e-mailed), sorted.
async fn end(
    db: &sea_orm::DatabaseConnection,
    app: &str,
) -> anyhow::Result<Vec<(String, String, i64)>> {
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT n.recipient, n.kind, (SELECT COUNT(*) FROM emails e WHERE e.notification_id = n.notification_id) AS mailed \
                 FROM notifications n WHERE n.application_id = '{app}'"
            ),
        ))
        .await?;
    let mut out = Vec::new();
    for r in rows {
        out.push((
            r.try_get::<String>("", "recipient")?,
            r.try_get::<String>("", "kind")?,
            r.try_get::<i64>("", "mailed")?,
        ));
    }
    out.sort();
    Ok(out)
}

async fn consumer_reaches_the_same_end_in_every_order(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let deploy = tongban_testkit::deploy_dir();
    let shared = Arc::new(Shared::new(
        h.db.clone(),
        tongban_notification::templates::Templates::load(
            &deploy.join("notification/templates.toml"),
        )?,
        tongban_calendar::Calendar::load_dir(deploy.join("calendar"))?,
        true,
        Arc::new(tongban_notification::WebhookPolicy::default()),
    ));
    let handler = FanIn::new(shared);
    let consumer = "notification-order-test";

    let in_order = life();
    deliver_all(&h.db, consumer, &handler, &in_order).await?;
    let expected = end(&h.db, &in_order[0].application_id).await?;
    let applicant = format!("applicant:{APPLICANT}");
    for kind in [
        "application.submitted",
        "application.supplement_requested",
        "application.approved",
    ] {
        assert!(
            expected.contains(&(applicant.clone(), kind.to_string(), 1)),
            "{kind} for the applicant, e-mailed: {expected:?}"
        );
    }
    assert_eq!(expected.len(), 5, "{expected:?}");

    let orders = permutations(&[0, 1, 2, 3, 4]);
    assert_eq!(orders.len(), 120);
    for order in orders {
        let events = life();
        let shuffled: Vec<_> = order.iter().map(|&i| events[i].clone()).collect();
        deliver_all(&h.db, consumer, &handler, &shuffled).await?;
        assert_eq!(
            end(&h.db, &events[0].application_id).await?,
            expected,
            "order {order:?}"
        );
    }
    assert_eq!(h.count("SELECT COUNT(*) AS n FROM parked_events").await, 0);
    Ok(())
}

tongban_testkit::on_both!(consumer_reaches_the_same_end_in_every_order);
