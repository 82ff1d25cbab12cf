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

/// (label, token, inbox RPCs, RegisterWebhook, whether the owner's notification is visible).
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
    let bad_url = Some(Code::InvalidArgument);
    let cells: Vec<Cell> = vec![
        ("applicant (own)", owner.clone(), None, deny, true),
        (
            "applicant (other)",
            k.token(Role::Applicant, None, Some(EN_APPLICANT)),
            None,
            deny,
            false,
        ),
        (
            "clerk",
            k.token(Role::Clerk, Some("business_env"), None),
            None,
            deny,
            false,
        ),
        (
            "supervisor",
            k.token(Role::Supervisor, Some("business_env"), None),
            None,
            deny,
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
        let r = c
            .subscribe(authed(pb::SubscribeRequest { after_cursor: 0 }, &token))
            .await
            .map(|_| ());
        assert_eq!(code(r), inbox, "Subscribe by {label}");
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
    }
    // Nothing changed.
    let after = h.list(&owner).await?;
    assert!(after.iter().all(|n| n.read_time.is_none()));
    assert_eq!(h.count("SELECT COUNT(*) AS n FROM webhooks").await, 0);
    Ok(())
}

tongban_testkit::on_both!(authorization_matrix);
