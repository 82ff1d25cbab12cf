//! Notification fan-in: each event reaches each role it concerns, once.

use std::time::Duration;

use tongban_auth::Role;
use tongban_proto::{
    events::{self, envelope::Payload},
    notification as pb,
};
use tongban_testkit::{Backend, authed};
use tonic::Code;

use crate::common::*;

async fn fan_in_reaches_each_role_once(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let sub = submitted(ZH_APPLICANT, "", "zh-CN");
    let app = sub.application_id.clone();
    let created = task_event(&app, "t1", |t| {
        Payload::TaskCreated(events::TaskCreated {
            task_id: t,
            department: "eco_env".into(),
            kind: events::TaskKind::Review as i32,
            title: "环评审查".into(),
            ..Default::default()
        })
    });
    let owed = |t: String| {
        Payload::TaskDueSoon(events::TaskDueSoon {
            task_id: t,
            department: "eco_env".into(),
            kind: events::TaskKind::FollowUpMaterial as i32,
            title: "补交用地证明".into(),
            ..Default::default()
        })
    };
    // Two distinct due-soon events for the same task: a reminder is sent once.
    let due1 = task_event(&app, "t2", owed);
    let due2 = task_event(&app, "t2", owed);
    let overdue = task_event(&app, "t1", |t| {
        Payload::TaskOverdue(events::TaskOverdue {
            task_id: t,
            department: "eco_env".into(),
            kind: events::TaskKind::Review as i32,
            ..Default::default()
        })
    });
    let escalated = task_event(&app, "t1", |t| {
        Payload::TaskEscalated(events::TaskEscalated {
            task_id: t,
            department: "eco_env".into(),
            escalated_to: "supervisor:eco_env".into(),
            ..Default::default()
        })
    });
    let dead = tongban_outbox::new_envelope(
        "dispatch",
        &app,
        Payload::DeliveryDeadLettered(events::DeliveryDeadLettered {
            platform_id: "eia".into(),
            attempts: 10,
            ..Default::default()
        }),
    );
    let approved = tongban_outbox::new_envelope(
        "approval",
        &app,
        Payload::ApplicationApproved(events::ApplicationApproved {
            decision_number: "松环审〔2026〕12号".into(),
            ..Default::default()
        }),
    );
    h.publish(&[&sub, &sub]).await?;
    let applicant = h.keys.token(Role::Applicant, None, Some(ZH_APPLICANT));
    h.kinds(&applicant, 1).await?;
    h.publish(&[
        &created, &due1, &due2, &overdue, &escalated, &dead, &approved, &approved, &created,
    ])
    .await?;

    let clerk = h.keys.token(Role::Clerk, Some("eco_env"), None);
    let supervisor = h.keys.token(Role::Supervisor, Some("eco_env"), None);
    let integrator = h.keys.token(Role::Integrator, None, None);
    let admin = h.keys.token(Role::Admin, None, None);
    let other_clerk = h.keys.token(Role::Clerk, Some("water"), None);

    assert_eq!(
        h.kinds(&applicant, 3).await?,
        [
            "application.submitted",
            "task.due_soon",
            "application.approved"
        ]
    );
    let inbox = h.list(&applicant).await?;
    assert_eq!(inbox[0].title, "审批通过：竹木复合板材项目");
    assert!(
        inbox[0].body.contains("松环审〔2026〕12号"),
        "{}",
        inbox[0].body
    );
    assert_eq!(inbox[0].locale, "zh-CN");
    assert_eq!(h.kinds(&clerk, 2).await?, ["task.created", "task.due_soon"]);
    assert_eq!(
        h.kinds(&supervisor, 4).await?,
        [
            "task.created",
            "task.due_soon",
            "task.overdue",
            "task.escalated"
        ]
    );
    assert_eq!(h.kinds(&integrator, 1).await?, ["delivery.dead_lettered"]);
    assert_eq!(h.kinds(&admin, 8).await?.len(), 8);
    assert!(h.list(&other_clerk).await?.is_empty());
    // Nothing more arrives later (duplicates were dropped, not delayed).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.list(&admin).await?.len(), 8);
    assert_eq!(h.count("SELECT COUNT(*) AS n FROM notifications").await, 8);

    // MarkRead marks only the caller's own.
    let mut client = h.client.clone();
    let ids: Vec<String> = h
        .list(&admin)
        .await?
        .into_iter()
        .map(|n| n.notification_id)
        .collect();
    let marked = client
        .mark_read(authed(
            pb::MarkReadRequest {
                notification_ids: ids.clone(),
            },
            &clerk,
        ))
        .await?
        .into_inner()
        .marked;
    assert_eq!(marked, 2);
    let unread = client
        .list_notifications(authed(
            pb::ListNotificationsRequest {
                unread_only: true,
                ..Default::default()
            },
            &supervisor,
        ))
        .await?
        .into_inner()
        .notifications;
    assert_eq!(unread.len(), 2, "the department's two are read");
    // Marking read is on the reader's own audit chain, naming them.
    let chain = "inbox/clerk:clerk-eco_env";
    let trail = tongban_audit::entries(&h.db, chain).await?;
    let acts: Vec<_> = trail
        .iter()
        .map(|e| {
            (
                e.action.as_str(),
                e.actor.subject.as_str(),
                e.actor.department.as_str(),
                e.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(
        acts,
        vec![(
            "notifications.mark_read",
            "clerk-eco_env",
            "eco_env",
            "2 marked read"
        )]
    );
    // Paging: newest first, two at a time, no overlap.
    let page = client
        .list_notifications(authed(
            pb::ListNotificationsRequest {
                page_size: 2,
                ..Default::default()
            },
            &admin,
        ))
        .await?
        .into_inner();
    assert_eq!(page.notifications.len(), 2);
    let next = client
        .list_notifications(authed(
            pb::ListNotificationsRequest {
                page_size: 2,
                page_token: page.next_page_token.clone(),
                ..Default::default()
            },
            &admin,
        ))
        .await?
        .into_inner();
    assert!(next.notifications[0].cursor < page.notifications[1].cursor);
    let bad = client
        .list_notifications(authed(
            pb::ListNotificationsRequest {
                page_size: 2,
                page_token: "12".into(),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("accepted a made-up page token"))?;
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(fields(&bad), ["page_token"]);
    assert_eq!(reason(&bad), "INVALID_ARGUMENT");
    Ok(())
}

/// 告知承诺制: the applicant hears that its approval was revoked, and why; 容缺受理: that its
/// application is suspended for an overdue material.
async fn revocation_and_suspension_reach_the_applicant(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let sub = submitted(EN_APPLICANT, "", "en");
    let app = sub.application_id.clone();
    h.publish(&[&sub]).await?;
    let applicant = h.keys.token(Role::Applicant, None, Some(EN_APPLICANT));
    h.kinds(&applicant, 1).await?;
    let suspended = tongban_outbox::new_envelope(
        "approval",
        &app,
        Payload::ApplicationSuspended(events::ApplicationSuspended {
            material_kind: "land_use_certificate".into(),
            task_id: "t-owed".into(),
            ..Default::default()
        }),
    );
    let revoked = tongban_outbox::new_envelope(
        "approval",
        &app,
        Payload::ApplicationRevoked(events::ApplicationRevoked {
            reason: "site differs from the pledge".into(),
            department: "eco_env".into(),
            ..Default::default()
        }),
    );
    h.publish(&[&suspended, &revoked, &revoked]).await?;
    assert_eq!(
        h.kinds(&applicant, 3).await?,
        [
            "application.submitted",
            "application.suspended",
            "application.revoked"
        ]
    );
    let inbox = h.list(&applicant).await?;
    assert!(
        inbox[0].title.starts_with("Approval revoked"),
        "{}",
        inbox[0].title
    );
    assert!(
        inbox[0].body.contains("site differs from the pledge"),
        "{}",
        inbox[0].body
    );
    assert!(
        inbox[1].body.contains("land_use_certificate"),
        "{}",
        inbox[1].body
    );
    Ok(())
}

/// 好差评: a poor rating reaches the rated department's supervisors (a good one nobody), and
/// the rectification reaches the applicant.
async fn poor_rating_and_its_rectification_are_told(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let sub = submitted(EN_APPLICANT, "", "en");
    let app = sub.application_id.clone();
    h.publish(&[&sub]).await?;
    let applicant = h.keys.token(Role::Applicant, None, Some(EN_APPLICANT));
    h.kinds(&applicant, 1).await?;
    let rated = |score: i32, poor: bool| {
        tongban_outbox::new_envelope(
            "approval",
            &app,
            Payload::ServiceRated(events::ServiceRated {
                score,
                reasons: vec!["slow".into()],
                comment: "等了很久".into(),
                department: "eco_env".into(),
                poor,
                reason_labels: vec!["办理慢".into()],
            }),
        )
    };
    let rectified = tongban_outbox::new_envelope(
        "approval",
        &app,
        Payload::RatingRectified(events::RatingRectified {
            department: "eco_env".into(),
            rectification: "shortened the review".into(),
            score: 1,
        }),
    );
    h.publish(&[&rated(5, false), &rated(1, true), &rectified])
        .await?;
    assert_eq!(
        h.kinds(&applicant, 2).await?,
        ["application.submitted", "rating.rectified"]
    );
    let inbox = h.list(&applicant).await?;
    assert!(
        inbox[0].body.contains("shortened the review"),
        "{}",
        inbox[0].body
    );
    let supervisor = h.keys.token(Role::Supervisor, Some("eco_env"), None);
    let seen = h.list(&supervisor).await?;
    assert_eq!(
        seen.iter().map(|n| n.kind.as_str()).collect::<Vec<_>>(),
        ["service.rated"],
        "the poor rating only"
    );
    assert!(seen[0].title.starts_with("差评待整改"), "{}", seen[0].title);
    assert!(seen[0].body.contains("1 分，办理慢"), "{}", seen[0].body);
    Ok(())
}

tongban_testkit::on_both!(
    fan_in_reaches_each_role_once,
    revocation_and_suspension_reach_the_applicant,
    poor_rating_and_its_rectification_are_told,
);
