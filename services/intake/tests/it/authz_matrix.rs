//! The authorization matrix over intake's RPCs: every RPC × every role × own and other scope,
//! asserting the status code, and that nothing changed (the application, its events).
//!
//! A call the table allows is made so that it stops right after the decision without writing
//! (a stale `expected_version`, an invalid form), so the allowed cells answer ABORTED or
//! INVALID_ARGUMENT and denied ones PERMISSION_DENIED; either way nothing is written.

use crate::common::*;

/// Another enterprise, with a valid check digit.
const OTHER: &str = "91440300708461136T";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Authorized: the answer is OK, or the deliberate non-writing error.
    Allowed,
    Denied,
    /// A list answered OK but with nothing in it.
    Filtered,
}
use Expect::*;

async fn authorization_matrix(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let app = h
        .client
        .submit_application(authed(example()?, &h.applicant()))
        .await?
        .into_inner()
        .application
        .ok_or_else(|| anyhow::anyhow!("no application"))?;
    let id = app.application_id.clone();
    let k = &h.keys;
    // (who, own-scope token, other-scope token). The example's workflow runs through
    // admin_approval, eco_env (routed to the site's township office), natural_resources, dev_reform,
    // water and market_regulation; business_env is not in it.
    let cells: Vec<(&str, String, Option<String>)> = vec![
        (
            "applicant",
            h.applicant(),
            Some(k.token(Role::Applicant, None, Some(OTHER))),
        ),
        (
            "clerk",
            k.token(Role::Clerk, Some("eco_env"), None),
            Some(k.token(Role::Clerk, Some("business_env"), None)),
        ),
        // The example is built in Zhengdun by an enterprise registered in Songyuan: routing
        // follows the project site, so the Zhengdun station is in the workflow and the
        // Songyuan one (the registered address) is not.
        (
            "township clerk",
            k.token(Role::Clerk, Some("eco_env.zhengdun"), None),
            Some(k.token(Role::Clerk, Some("eco_env.songyuan"), None)),
        ),
        (
            "supervisor",
            k.token(Role::Supervisor, Some("water"), None),
            Some(k.token(Role::Supervisor, Some("business_env"), None)),
        ),
        (
            "integrator",
            k.token(Role::Integrator, None, None),
            Some(k.token(Role::Integrator, Some("unregistered"), None)),
        ),
        ("admin", k.token(Role::Admin, None, None), None),
    ];
    // What each role may do on its own scope: get/watch/list, supplement/withdraw, submit.
    let own_rights = |who: &str| match who {
        "applicant" | "integrator" | "admin" => (Allowed, Allowed, Allowed),
        "clerk" | "supervisor" | "township clerk" => (Allowed, Denied, Denied),
        other => panic!("{other}"),
    };

    for (who, own, other) in &cells {
        let (read, act, submit) = own_rights(who);
        let mut runs = vec![(own.clone(), read, act, submit, "own")];
        if let Some(other) = other {
            // Another enterprise / department / an unregistered integrator: nothing but an
            // empty list; and submitting for another enterprise is refused too.
            runs.push((other.clone(), Filtered, Denied, Denied, "other"));
        }
        for (token, read, act, submit, scope) in runs {
            let label = format!("{who} ({scope})");
            let code = |r: Result<(), tonic::Status>| r.err().map(|s| s.code());
            let single = if read == Allowed {
                None
            } else {
                Some(Code::PermissionDenied)
            };

            let r = h
                .client
                .get_application(authed(
                    pb::GetApplicationRequest {
                        application_id: id.clone(),
                    },
                    &token,
                ))
                .await
                .map(|_| ());
            assert_eq!(code(r), single, "GetApplication by {label}");

            let r = h
                .client
                .watch_application(authed(
                    pb::WatchApplicationRequest {
                        application_id: id.clone(),
                    },
                    &token,
                ))
                .await
                .map(|_| ());
            assert_eq!(code(r), single, "WatchApplication by {label}");

            let listed = h
                .client
                .list_applications(authed(pb::ListApplicationsRequest::default(), &token))
                .await?
                .into_inner()
                .applications;
            let expect_listed = usize::from(read == Allowed);
            assert_eq!(listed.len(), expect_listed, "ListApplications by {label}");

            // Allowed: stopped by the stale version (ABORTED) after the decision.
            let act_code = if act == Allowed {
                Code::Aborted
            } else {
                Code::PermissionDenied
            };
            let r = h
                .client
                .supplement_materials(authed(
                    pb::SupplementMaterialsRequest {
                        application_id: id.clone(),
                        materials: example()?.materials[..1].to_vec(),
                        expected_version: 999,
                        ..Default::default()
                    },
                    &token,
                ))
                .await
                .map(|_| ());
            assert_eq!(code(r), Some(act_code), "SupplementMaterials by {label}");
            let r = h
                .client
                .withdraw_application(authed(
                    pb::WithdrawApplicationRequest {
                        application_id: id.clone(),
                        expected_version: 999,
                        reason: "matrix".into(),
                    },
                    &token,
                ))
                .await
                .map(|_| ());
            assert_eq!(code(r), Some(act_code), "WithdrawApplication by {label}");

            // Allowed: stopped by an invalid form (INVALID_ARGUMENT) after the decision.
            let mut req = example()?;
            req.request_id = format!("matrix-{who}-{scope}");
            req.form = None;
            // The request is for the first enterprise: "other" tokens are not it.
            let submit_code = if submit == Allowed {
                Code::InvalidArgument
            } else {
                Code::PermissionDenied
            };
            let r = h
                .client
                .submit_application(authed(req, &token))
                .await
                .map(|_| ());
            assert_eq!(code(r), Some(submit_code), "SubmitApplication by {label}");

            // Reference data: every authenticated caller.
            let r = h
                .client
                .list_matters(authed(pb::ListMattersRequest::default(), &token))
                .await
                .map(|_| ());
            assert_eq!(code(r), None, "ListMatters by {label}");
        }
    }

    // Nothing changed: the one application as submitted, its one event.
    let now = h
        .client
        .get_application(authed(
            pb::GetApplicationRequest {
                application_id: id.clone(),
            },
            &h.applicant(),
        ))
        .await?
        .into_inner()
        .application
        .ok_or_else(|| anyhow::anyhow!("gone"))?;
    assert_eq!(now, app);
    assert_eq!(h.count("applications").await, 1);
    assert_eq!(h.count("outbox").await, 1);
    Ok(())
}

tongban_testkit::on_both!(authorization_matrix);
