//! The authorization matrix over notification's RPCs: every RPC × every role × own and other
//! scope, asserting the status code and that nothing changed (the notification stays unread, no
//! webhook is registered).
//!
//! Registering is tried with a URL validation refuses, so an allowed caller gets
//! INVALID_ARGUMENT and nothing is written.

use tongban_auth::Role;
use tongban_proto::notification as pb;
use tongban_testkit::{Backend, authed};
use tonic::Code;

use crate::common::*;

/// (label, token, inbox RPCs, the webhook RPCs, whether the owner's notification is visible).
type Cell = (&'static str, String, Option<Code>, Option<Code>, bool);

async fn authorization_matrix(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    h.publish(&[&submitted(ZH_APPLICANT, "a@example.com", "zh-CN")])
        .await?;
    let owner = h.keys.token(Role::Applicant, None, Some(ZH_APPLICANT));
    h.kinds(&owner, 1).await?;
    let mine = h.list(&owner).await?;
    let note = mine[0].notification_id.clone();
    let k = &h.keys;
    let deny = Some(Code::PermissionDenied);
    // PERMISSION_DENIED answers, each of which must be on the service's audit chain.
    let mut refused = 0usize;
    let bad_url = Some(Code::InvalidArgument);
    let cells: Vec<Cell> = vec![
        ("applicant (own)", owner.clone(), None, bad_url, true),
        (
            "applicant (other)",
            k.token(Role::Applicant, None, Some(EN_APPLICANT)),
            None,
            bad_url,
            false,
        ),
        (
            "clerk",
            k.token(Role::Clerk, Some("business_env"), None),
            None,
            bad_url,
            false,
        ),
        (
            "supervisor",
            k.token(Role::Supervisor, Some("business_env"), None),
            None,
            bad_url,
            false,
        ),
        (
            "integrator (registered)",
            k.token(Role::Integrator, None, None),
            None,
            bad_url,
            false,
        ),
        (
            "integrator (unregistered)",
            k.token(Role::Integrator, Some("unregistered"), None),
            deny,
            deny,
            false,
        ),
        (
            "admin",
            k.token(Role::Admin, None, None),
            None,
            bad_url,
            true,
        ),
    ];
    let code = |r: Result<(), tonic::Status>| r.err().map(|s| s.code());
    for (label, token, inbox, webhook, sees) in cells {
        let mut c = h.client.clone();
        let listed = c
            .list_notifications(authed(pb::ListNotificationsRequest::default(), &token))
            .await
            .map(|r| r.into_inner().notifications);
        match &listed {
            Ok(l) => assert_eq!(
                l.iter().any(|n| n.notification_id == note),
                sees,
                "ListNotifications by {label}"
            ),
            Err(s) => assert_eq!(Some(s.code()), inbox, "ListNotifications by {label}"),
        }
        assert_eq!(
            listed.is_err(),
            inbox.is_some(),
            "ListNotifications by {label}"
        );
        refused += usize::from(inbox == deny);
        let r = c
            .subscribe(authed(pb::SubscribeRequest { after_cursor: 0 }, &token))
            .await
            .map(|_| ());
        assert_eq!(code(r), inbox, "Subscribe by {label}");
        refused += usize::from(inbox == deny);
        // Marking someone else's notification changes nothing; those who see it are not asked
        // to (that would change it).
        let ids = if sees { vec![] } else { vec![note.clone()] };
        let r = c
            .mark_read(authed(
                pb::MarkReadRequest {
                    notification_ids: ids,
                },
                &token,
            ))
            .await
            .map(|r| assert_eq!(r.into_inner().marked, 0, "MarkRead by {label}"));
        assert_eq!(code(r), inbox, "MarkRead by {label}");
        refused += usize::from(inbox == deny);
        let r = c
            .register_webhook(authed(
                pb::RegisterWebhookRequest {
                    url: "ftp://example.com".into(),
                    event_types: vec![],
                    request_id: String::new(),
                },
                &token,
            ))
            .await
            .map(|_| ());
        assert_eq!(code(r), webhook, "RegisterWebhook by {label}");
        refused += usize::from(webhook == deny);
        // Listing one's own webhooks and deleting one (here an unknown id): whoever may
        // register may do these.
        let r = c
            .list_webhooks(authed(pb::ListWebhooksRequest::default(), &token))
            .await
            .map(|r| {
                assert!(
                    r.into_inner().webhooks.is_empty(),
                    "ListWebhooks by {label}"
                )
            });
        let list_code = if webhook == deny { deny } else { None };
        assert_eq!(code(r), list_code, "ListWebhooks by {label}");
        refused += usize::from(list_code == deny);
        let r = c
            .delete_webhook(authed(
                pb::DeleteWebhookRequest {
                    webhook_id: "01a22ee5-0000-7000-8000-000000000000".into(),
                },
                &token,
            ))
            .await
            .map(|_| ());
        let delete_code = if webhook == deny {
            deny
        } else {
            Some(Code::NotFound)
        };
        assert_eq!(code(r), delete_code, "DeleteWebhook by {label}");
        refused += usize::from(delete_code == deny);
        // Dead e-mails and webhook calls are the admin's alone; the admin's replay here names
        // an unknown id, so it changes nothing either.
        let admin_only = if label == "admin" { None } else { deny };
        let r = c
            .list_failed_deliveries(authed(
                pb::ListFailedDeliveriesRequest {
                    channel: pb::DeliveryChannel::Email as i32,
                    ..Default::default()
                },
                &token,
            ))
            .await
            .map(|r| assert!(r.into_inner().deliveries.is_empty()));
        assert_eq!(code(r), admin_only, "ListFailedDeliveries by {label}");
        refused += usize::from(admin_only == deny);
        let r = c
            .replay_failed_deliveries(authed(
                pb::ReplayFailedDeliveriesRequest {
                    channel: pb::DeliveryChannel::Webhook as i32,
                    delivery_ids: vec!["01a22ee5-0000-7000-8000-000000000000".into()],
                    all: false,
                },
                &token,
            ))
            .await
            .map(|r| assert_eq!(r.into_inner().replayed, 0));
        assert_eq!(code(r), admin_only, "ReplayFailedDeliveries by {label}");
        refused += usize::from(admin_only == deny);
    }
    // Nothing changed.
    let after = h.list(&owner).await?;
    assert!(after.iter().all(|n| n.read_time.is_none()));
    assert_eq!(h.count("SELECT COUNT(*) AS n FROM webhooks").await, 0);
    // Every refusal is on notification's own chain, naming the actor.
    assert!(refused > 0);
    tongban_testkit::refusals_recorded(&h.db, "notification", refused).await?;
    Ok(())
}

tongban_testkit::on_both!(authorization_matrix);
