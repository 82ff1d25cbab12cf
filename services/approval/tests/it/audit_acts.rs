//! Approval over real gRPC (see `common` for the harness). Every act leaves an audit entry
//! naming its actor: publishing a definition (approval's own chain), claiming and deciding
//! (the application's chain); a matter that requires a reason to approve refuses an empty one.

use crate::common::*;

async fn acts_are_audited_and_reasons_required(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let v1 = std::fs::read_to_string(
        tongban_testkit::deploy_dir().join("matters/env.eia.report_form.v1.toml"),
    )?;
    let v2 = format!(
        "{}\n[reason_required]\napprove = true\n",
        v1.replacen("version = 1", "version = 2", 1)
    );
    let admin = h.admin();
    h.client
        .clone()
        .publish_definition(authed(publish(&v2, "v2-reasons"), &admin))
        .await?;
    let rows =
        h.db.query_all_raw(sea_orm::Statement::from_string(
            h.db.get_database_backend(),
            "SELECT actor_role, action, target, outcome FROM audit_log \
             WHERE chain = 'service/approval' ORDER BY seq",
        ))
        .await?;
    let published: Vec<(String, String, String, String)> = rows
        .iter()
        .map(|r| {
            Ok((
                r.try_get("", "actor_role")?,
                r.try_get("", "action")?,
                r.try_get("", "target")?,
                r.try_get("", "outcome")?,
            ))
        })
        .collect::<Result<_, sea_orm::DbErr>>()?;
    assert_eq!(
        published,
        vec![(
            "admin".into(),
            "publish_definition".into(),
            "env.eia.report_form@2".into(),
            "done".into()
        )]
    );

    let mut snap = snapshot()?;
    snap.matter_version = 2;
    let app = h.submit(snap).await?;
    let t = h.stage(&app, "acceptance", 1).await?.remove(0);
    let clerk = h.clerk(&t.department);
    let claimed = h
        .client
        .clone()
        .claim_task(authed(
            pb::ClaimTaskRequest {
                task_id: t.task_id.clone(),
                expected_version: t.version,
            },
            &clerk,
        ))
        .await?
        .into_inner()
        .task
        .unwrap_or_default();
    let empty = h.decide(&claimed, pb::Decision::Approve, "  ").await.err();
    assert_eq!(
        empty.as_ref().map(|e| e.code()),
        Some(Code::InvalidArgument),
        "{empty:?}"
    );
    assert!(
        empty
            .as_ref()
            .is_some_and(|e| e.message().contains("comment")),
        "names the field: {empty:?}"
    );
    h.decide(&claimed, pb::Decision::Approve, "材料齐全")
        .await?;

    let trail = audit(&h, &app).await?;
    let by_clerk: Vec<_> = trail
        .iter()
        .filter(|e| e.role == "clerk")
        .map(|e| {
            (
                e.actor.as_str(),
                e.action.as_str(),
                e.reason.as_str(),
                e.task_id.as_str(),
                e.outcome.as_str(),
            )
        })
        .collect();
    let label = format!("clerk:clerk-{0}@{0}", t.department);
    assert_eq!(
        by_clerk,
        vec![
            (label.as_str(), "claim", "", t.task_id.as_str(), "done"),
            (
                label.as_str(),
                "approve",
                "材料齐全",
                t.task_id.as_str(),
                "done"
            ),
        ]
    );
    Ok(())
}

tongban_testkit::on_both!(acts_are_audited_and_reasons_required);
