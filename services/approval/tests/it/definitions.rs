//! Approval over real gRPC (see `common` for the harness). Publishing definitions: validation, permissions, versions, and instances that keep the
//! version they started on.

use crate::common::*;

async fn running_instances_keep_their_version(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let v1 = std::fs::read_to_string(
        tongban_testkit::deploy_dir().join("matters/env.eia.report_form.v1.toml"),
    )?;
    let started_on_v1 = h.submit(snapshot()?).await?;
    h.stage(&started_on_v1, "acceptance", 1).await?;

    // v2: acceptance and joint review merged away; only the decision stage.
    let cut = v1
        .find("[[stages]]")
        .ok_or_else(|| anyhow::anyhow!("no stages"))?;
    let decision = v1
        .find("[[stages]]\nid = \"decision\"")
        .ok_or_else(|| anyhow::anyhow!("no decision stage"))?;
    let v2 = format!("{}{}", &v1[..cut], &v1[decision..]).replace("version = 1", "version = 2").replace(
        "next = [\n  # 告知承诺: approve on the pledge now, verify afterwards.\n  { when = \"pledge_accepted\", goto = \"decision\" },\n]\n",
        "",
    );
    let admin = h.admin();
    let bad = h
        .client
        .publish_definition(authed(
            pb::PublishDefinitionRequest {
                source: v2.replace(
                    "lead_department = \"eco_env\"",
                    "lead_department = \"nowhere\"",
                ),
                request_id: String::new(),
            },
            &admin,
        ))
        .await
        .err();
    assert_eq!(
        bad.as_ref().map(|e| e.code()),
        Some(Code::InvalidArgument),
        "{bad:?}"
    );
    assert!(
        bad.as_ref()
            .is_some_and(|e| e.message().contains("nowhere")),
        "names the problem: {bad:?}"
    );
    let clerk = h.clerk("eco_env");
    let denied = h
        .client
        .publish_definition(authed(publish(&v2, ""), &clerk))
        .await
        .err();
    assert_eq!(
        denied.as_ref().map(|e| e.code()),
        Some(Code::PermissionDenied)
    );
    assert_eq!(
        denied.as_ref().map(reason).as_deref(),
        Some("PERMISSION_DENIED")
    );
    // The role is checked before the request: a clerk learns nothing about what a valid
    // definition looks like.
    let malformed = h
        .client
        .publish_definition(authed(publish("", ""), &clerk))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(malformed, Some(Code::PermissionDenied));
    let published = h
        .client
        .publish_definition(authed(publish(&v2, "publish-v2"), &admin))
        .await?
        .into_inner();
    assert_eq!(published.definition.as_ref().map(|d| d.version), Some(2));
    // Retrying with the same request_id returns the same definition and publishes nothing.
    let retried = h
        .client
        .publish_definition(authed(publish(&v2, "publish-v2"), &admin))
        .await?
        .into_inner();
    assert_eq!(retried.definition, published.definition);
    // The same request_id with another source is refused.
    let reused = h
        .client
        .publish_definition(authed(publish(&v1, "publish-v2"), &admin))
        .await
        .err();
    assert_eq!(reused.as_ref().map(|e| e.code()), Some(Code::AlreadyExists));
    assert_eq!(
        reused.as_ref().map(reason).as_deref(),
        Some("REQUEST_ID_REUSED")
    );
    // Without a request_id, publishing the same version again is ALREADY_EXISTS.
    let again = h
        .client
        .publish_definition(authed(publish(&v2, ""), &admin))
        .await
        .err();
    assert_eq!(again.as_ref().map(|e| e.code()), Some(Code::AlreadyExists));
    assert_eq!(
        again.as_ref().map(reason).as_deref(),
        Some("ALREADY_EXISTS")
    );
    let old = h
        .client
        .publish_definition(authed(publish(&v1, ""), &admin))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(old, Some(Code::AlreadyExists));
    h.event("", "definition.published", 1).await?;
    assert_eq!(
        h.count("SELECT COUNT(*) AS n FROM outbox WHERE routing_key = 'definition.published'")
            .await,
        1,
        "the retry published nothing"
    );
    // One definition per page, by code then version, without gaps or repeats.
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = h
            .client
            .list_definitions(authed(
                pb::ListDefinitionsRequest {
                    all_versions: true,
                    page_size: 1,
                    page_token: token.clone(),
                    ..Default::default()
                },
                &clerk,
            ))
            .await?
            .into_inner();
        assert!(page.definitions.len() <= 1);
        paged.extend(
            page.definitions
                .into_iter()
                .map(|d| (d.matter_code, d.version)),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut sorted = paged.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(paged, sorted, "ordered, no repeats");
    assert!(paged.contains(&("env.eia.report_form".to_string(), 2)));
    let list = h
        .client
        .list_definitions(authed(
            pb::ListDefinitionsRequest {
                matter_code: "env.eia.report_form".into(),
                all_versions: true,
                ..Default::default()
            },
            &clerk,
        ))
        .await?
        .into_inner();
    assert_eq!(
        list.definitions
            .iter()
            .map(|d| d.version)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );

    let mut on_v2 = snapshot()?;
    on_v2.matter_version = 2;
    let started_on_v2 = h.submit(on_v2).await?;
    h.stage(&started_on_v2, "decision", 1).await?;
    // The v1 instance still follows v1: acceptance, then joint review.
    h.approve_stage(&started_on_v1, "acceptance", 1).await?;
    h.stage(&started_on_v1, "joint_review", 3).await?;
    assert_eq!(h.workflow(&started_on_v1).await?.definition_version, 1);
    assert_eq!(h.workflow(&started_on_v2).await?.definition_version, 2);
    Ok(())
}

/// A matter without `decision_number_prefix` numbers its decisions after its lead department.
async fn decision_number_falls_back_to_the_lead_department(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let v1 = std::fs::read_to_string(
        tongban_testkit::deploy_dir().join("matters/env.eia.report_form.v1.toml"),
    )?;
    assert!(v1.contains("decision_number_prefix = \"松环审\"\n"));
    let cut = v1
        .find("[[stages]]")
        .ok_or_else(|| anyhow::anyhow!("no stages"))?;
    let decision = v1
        .find("[[stages]]\nid = \"decision\"")
        .ok_or_else(|| anyhow::anyhow!("no decision stage"))?;
    let v2 = format!("{}{}", &v1[..cut], &v1[decision..])
        .replace("version = 1", "version = 2")
        .replace("decision_number_prefix = \"松环审\"\n", "");
    h.client
        .publish_definition(authed(publish(&v2, ""), &h.admin()))
        .await?;
    let mut snap = snapshot()?;
    snap.matter_version = 2;
    let app = h.submit(snap).await?;
    h.approve_stage(&app, "decision", 1).await?;
    let approved = h.event(&app, "application.approved", 1).await?;
    let Some(Payload::ApplicationApproved(a)) = approved.payload else {
        anyhow::bail!("wrong payload")
    };
    assert!(
        a.decision_number.starts_with("eco_env〔") && a.decision_number.ends_with("〕1号"),
        "{}",
        a.decision_number
    );
    Ok(())
}

/// Every definition stored, all versions, as `code@version`.
async fn stored_definitions(h: &Harness) -> anyhow::Result<Vec<String>> {
    let resp = h
        .client
        .clone()
        .list_definitions(authed(
            pb::ListDefinitionsRequest {
                all_versions: true,
                page_size: 200,
                ..Default::default()
            },
            &h.admin(),
        ))
        .await?
        .into_inner();
    Ok(resp
        .definitions
        .iter()
        .map(|d| format!("{}@{}", d.matter_code, d.version))
        .collect())
}

/// A definition whose enum gains a value that a platform taking the matter has no code for
/// (and no default) is refused, one violation per platform table, and nothing is stored: every
/// such application would be dead-lettered at delivery. A matter no such platform takes may
/// have the value.
async fn a_value_missing_from_a_code_table_is_refused(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let v1 = std::fs::read_to_string(
        tongban_testkit::deploy_dir().join("matters/env.eia.report_form.v1.toml"),
    )?;
    let allowed = r#"allowed = ["new", "expansion", "technical_renovation", "relocation"]"#;
    anyhow::ensure!(
        v1.contains(allowed),
        "the shipped construction_nature changed"
    );
    let v2 = v1.replace("version = 1", "version = 2");
    let widened = v2.replace(
        allowed,
        r#"allowed = ["new", "expansion", "technical_renovation", "relocation", "rebuild"]"#,
    );
    let before = stored_definitions(&h).await?;

    let refused = h
        .client
        .clone()
        .publish_definition(authed(publish(&widened, "widened"), &h.admin()))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("published a value the code tables lack"))?;
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert_eq!(reason(&refused), "INVALID_ARGUMENT");
    let violations = refused
        .get_details_bad_request()
        .map(|b| b.field_violations)
        .unwrap_or_default();
    let mut tables: Vec<&str> = Vec::new();
    for v in &violations {
        assert_eq!(v.field, "source", "{v:?}");
        assert!(
            v.description.contains("`rebuild`")
                && v.description.contains("construction_nature")
                && v.description.contains("env.eia.report_form"),
            "{v:?}"
        );
        for table in [
            "eia.toml: `mapping.xmlx`",
            "national_investment.toml: `mapping.jsxz`",
        ] {
            if v.description.contains(table) {
                tables.push(table);
            }
        }
    }
    assert_eq!(
        tables,
        [
            "eia.toml: `mapping.xmlx`",
            "national_investment.toml: `mapping.jsxz`"
        ],
        "{violations:?}"
    );
    assert_eq!(stored_definitions(&h).await?, before, "nothing is stored");
    assert_eq!(
        h.count("SELECT COUNT(*) AS n FROM outbox WHERE routing_key = 'definition.published'")
            .await,
        0,
        "nothing is announced"
    );

    // A new matter the platforms take (`env.eia.*`) needs a name in the tables that translate
    // the matter code.
    let unnamed = v1.replace(
        r#"code = "env.eia.report_form""#,
        r#"code = "env.eia.code_probe""#,
    );
    let refused = h
        .client
        .clone()
        .publish_definition(authed(publish(&unnamed, ""), &h.admin()))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("published a matter the platforms cannot name"))?;
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let described: Vec<String> = refused
        .get_details_bad_request()
        .map(|b| b.field_violations)
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.description)
        .collect();
    for table in [
        "national_investment.toml: `mapping.spsxmc`",
        "provincial_gov_services.toml: `mapping.SERVICENAME`",
    ] {
        assert!(
            described
                .iter()
                .any(|d| d.contains(table) && d.contains("`env.eia.code_probe`")),
            "{table} missing from {described:?}"
        );
    }
    assert_eq!(stored_definitions(&h).await?, before, "nothing is stored");

    // A matter outside the platforms' `env.eia.*` may allow it.
    let elsewhere = widened
        .replace(
            r#"code = "env.eia.report_form""#,
            r#"code = "land.code_probe""#,
        )
        .replace("version = 2", "version = 1");
    h.client
        .clone()
        .publish_definition(authed(publish(&elsewhere, ""), &h.admin()))
        .await?;
    // And without the extra value, the same version publishes.
    h.client
        .clone()
        .publish_definition(authed(publish(&v2, ""), &h.admin()))
        .await?;
    let after = stored_definitions(&h).await?;
    assert!(
        after.contains(&"env.eia.report_form@2".to_string()),
        "{after:?}"
    );
    assert!(
        after.contains(&"land.code_probe@1".to_string()),
        "{after:?}"
    );
    Ok(())
}

tongban_testkit::on_both!(
    a_value_missing_from_a_code_table_is_refused,
    running_instances_keep_their_version,
    decision_number_falls_back_to_the_lead_department,
);
