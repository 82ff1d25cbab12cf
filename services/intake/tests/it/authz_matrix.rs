//! The authorization matrix over intake's RPCs: every RPC × every role × own and other scope,
//! asserting the status code, and that nothing changed (the application, its events).
//!
//! A call the table allows is made so that it stops right after the decision without writing
//! (a stale `expected_version`, an invalid form), so the allowed cells answer ABORTED or
//! INVALID_ARGUMENT and denied ones PERMISSION_DENIED; either way nothing is written.

use crate::common::*;

/// Another enterprise, with a valid check digit.
const OTHER: &str = "91440300708461136T";

/// The (department, office) of each task approval creates for the shipped example.
const EXAMPLE_TASKS: &[(&str, &str)] = &[
    ("admin_approval", ""),
    ("eco_env", "eco_env.zhengdun"),
    ("natural_resources", ""),
    ("dev_reform", ""),
];

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
    // The tasks approval creates for the example (class C, no water intake, a site in
    // Zhengdun): acceptance, then eco_env (routed to its Zhengdun office), natural_resources
    // and dev_reform. The water task and the class-D market_regulation stage are skipped.
    h.tasks_created(&id, EXAMPLE_TASKS).await?;
    // The first task put it in review (same transaction as the departments recorded).
    let app = h
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
    assert_eq!(app.status(), pb::ApplicationStatus::InReview);
    let k = &h.keys;
    // (who, own-scope token, other-scope token). business_env is in no workflow; water and
    // market_regulation are named by the matter but skipped by its conditions.
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
        (
            "clerk (skipped stage)",
            k.token(Role::Clerk, Some("market_regulation"), None),
            None,
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
            k.token(Role::Supervisor, Some("dev_reform"), None),
            Some(k.token(Role::Supervisor, Some("business_env"), None)),
        ),
        (
            "supervisor (skipped task)",
            k.token(Role::Supervisor, Some("water"), None),
            None,
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
        // Named by the matter, but the conditions gave them no task.
        "clerk (skipped stage)" | "supervisor (skipped task)" => (Filtered, Denied, Denied),
        other => panic!("{other}"),
    };

    // PERMISSION_DENIED answers, each of which must be on intake's audit chain.
    let mut refused = 0usize;
    let mut count = |c: Option<Code>| refused += usize::from(c == Some(Code::PermissionDenied));
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
            count(single);

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
            count(single);

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
            count(Some(act_code));
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
            count(Some(act_code));

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
            count(Some(submit_code));

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

    // Every refusal is on intake's own chain, naming the actor; none on the application's.
    assert!(refused > 0);
    let recorded = tongban_testkit::refusals_recorded(&h.db, "intake", refused).await?;
    assert!(
        recorded.iter().any(|e| e.action == "WithdrawApplication"
            && e.target == id
            && e.actor.role == "clerk")
    );
    let trail = tongban_audit::entries(&h.db, &tongban_audit::application_chain(&id)).await?;
    assert!(trail.iter().all(|e| e.outcome == "done"), "{trail:#?}");
    Ok(())
}

/// Submits a copy of the example with its own request id.
async fn submit(h: &mut Harness, request_id: &str) -> anyhow::Result<String> {
    let mut req = example()?;
    req.request_id = request_id.into();
    let app = h
        .client
        .submit_application(authed(req, &h.applicant()))
        .await?
        .into_inner()
        .application
        .ok_or_else(|| anyhow::anyhow!("no application"))?;
    Ok(app.application_id)
}

/// The ids `token` lists, page by page of `page_size`, each page as listed.
async fn pages(h: &Harness, token: &str, page_size: i32) -> anyhow::Result<Vec<Vec<String>>> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let r = h
            .client
            .clone()
            .list_applications(authed(
                pb::ListApplicationsRequest {
                    page_size,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
                token,
            ))
            .await?
            .into_inner();
        out.push(
            r.applications
                .into_iter()
                .map(|a| a.application_id)
                .collect(),
        );
        if r.next_page_token.is_empty() {
            return Ok(out);
        }
        page_token = r.next_page_token;
        anyhow::ensure!(out.len() < 20, "paging does not end");
    }
}

/// An application's scope is the departments (and offices) its workflow actually gave a task:
/// a department whose stage a condition skipped is refused, one a task was delegated to
/// (`task.moved`) is let in, a township office sees only what was routed to it, and a staff
/// listing is filtered in the query, so every page is full.
async fn scope_follows_the_workflow(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let first = submit(&mut h, "scope-1").await?;
    let second = submit(&mut h, "scope-2").await?;
    let third = submit(&mut h, "scope-3").await?;
    // first: routed to Songyuan; second: to Zhengdun (its site); both reviewed by
    // natural_resources. third: not in review yet.
    h.tasks_created(
        &first,
        &[("eco_env", "eco_env.songyuan"), ("natural_resources", "")],
    )
    .await?;
    h.tasks_created(
        &second,
        &[("eco_env", "eco_env.zhengdun"), ("natural_resources", "")],
    )
    .await?;
    let k = h.keys.clone();
    let get = |token: String, id: String| {
        let mut c = h.client.clone();
        async move {
            c.get_application(authed(
                pb::GetApplicationRequest { application_id: id },
                &token,
            ))
            .await
            .map(|_| ())
            .map_err(|s| s.code())
        }
    };
    let ids = |pages: Vec<Vec<String>>| pages.into_iter().flatten().collect::<Vec<_>>();

    // market_regulation's stage (class D only) was skipped: no task, no access.
    let market = k.token(Role::Clerk, Some("market_regulation"), None);
    assert_eq!(
        get(market.clone(), first.clone()).await,
        Err(Code::PermissionDenied)
    );
    assert_eq!(ids(pages(&h, &market, 10).await?), Vec::<String>::new());

    // Township offices: each sees only what was routed to it.
    let songyuan = k.token(Role::Clerk, Some("eco_env.songyuan"), None);
    let zhengdun = k.token(Role::Clerk, Some("eco_env.zhengdun"), None);
    assert_eq!(ids(pages(&h, &songyuan, 10).await?), vec![first.clone()]);
    assert_eq!(ids(pages(&h, &zhengdun, 10).await?), vec![second.clone()]);
    assert_eq!(get(songyuan.clone(), first.clone()).await, Ok(()));
    assert_eq!(
        get(songyuan.clone(), second.clone()).await,
        Err(Code::PermissionDenied)
    );
    // The lead department reads all of its matter's applications, reviewed or not.
    let eco = k.token(Role::Clerk, Some("eco_env"), None);
    assert_eq!(
        ids(pages(&h, &eco, 10).await?),
        vec![third.clone(), second.clone(), first.clone()]
    );

    // Paging with the filter in the query: pages of one are full, and end where they should
    // (newest first; third is not in natural_resources' workflow).
    let natural = k.token(Role::Clerk, Some("natural_resources"), None);
    assert_eq!(
        pages(&h, &natural, 1).await?,
        vec![vec![second.clone()], vec![first.clone()]]
    );

    // A supervisor moves first's task to water: water reads it once the event arrives.
    let water = k.token(Role::Clerk, Some("water"), None);
    assert_eq!(
        get(water.clone(), first.clone()).await,
        Err(Code::PermissionDenied)
    );
    let moved = tongban_outbox::new_envelope(
        "approval",
        &first,
        Payload::TaskMoved(events::TaskMoved {
            task_id: "t-1".into(),
            from_department: "natural_resources".into(),
            department: "water".into(),
            office: String::new(),
        }),
    );
    // Twice: a redelivered event changes nothing.
    h.publish(&[&moved, &moved]).await?;
    tongban_testkit::eventually(
        Duration::from_secs(30),
        "water to read the moved task's application",
        || {
            let r = get(water.clone(), first.clone());
            async move { r.await.ok() }
        },
    )
    .await?;
    assert_eq!(ids(pages(&h, &water, 10).await?), vec![first.clone()]);
    assert_eq!(
        get(water.clone(), second.clone()).await,
        Err(Code::PermissionDenied)
    );
    let watch = h
        .client
        .watch_application(authed(
            pb::WatchApplicationRequest {
                application_id: first.clone(),
            },
            &water,
        ))
        .await;
    assert!(
        watch.is_ok(),
        "WatchApplication by water: {:?}",
        watch.err()
    );
    Ok(())
}

tongban_testkit::on_both!(authorization_matrix, scope_follows_the_workflow);
