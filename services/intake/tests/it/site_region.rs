//! The project site (`site_region_field`, 项目所在地): intake accepts only a well-formed region
//! code of the deployment's region table there, names the field otherwise and writes nothing,
//! and stores the code trimmed (approval routes by it).

use prost_types::value::Kind;

use crate::common::*;

fn set_site(r: &mut pb::SubmitApplicationRequest, kind: Option<Kind>) {
    if let Some(f) = r.form.as_mut() {
        match kind {
            Some(kind) => {
                f.fields.insert(
                    "site_region".into(),
                    prost_types::Value { kind: Some(kind) },
                );
            }
            None => {
                f.fields.remove("site_region");
            }
        }
    }
}

async fn a_site_outside_the_table_is_refused_naming_the_field(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let token = h.applicant();
    let text = |s: &str| Some(Kind::StringValue(s.into()));
    let cases: Vec<(&str, Option<Kind>, &str)> = vec![
        // Well-formed, but no region this deployment serves.
        ("not in the table", text("350724999"), "not a region"),
        ("another county", text("350725100"), "not a region"),
        ("malformed", text("3507241o1"), "must be 6 digits"),
        ("too short", text("3507"), "must be 6 digits"),
        ("missing", None, "form.site_region"),
        ("blank", text("   "), "form.site_region"),
        (
            "a number",
            Some(Kind::NumberValue(350_724_101.0)),
            "form.site_region",
        ),
    ];
    for (case, kind, says) in cases {
        let mut req = example()?;
        req.request_id = format!("site-{case}");
        set_site(&mut req, kind);
        let err = h
            .client
            .submit_application(authed(req, &token))
            .await
            .err()
            .ok_or_else(|| anyhow::anyhow!("{case}: accepted"))?;
        assert_eq!(err.code(), Code::InvalidArgument, "{case}: {err:?}");
        assert_eq!(reason(&err), "INVALID_APPLICATION", "{case}");
        assert_eq!(
            fields(&err),
            ["form.site_region"],
            "{case}: {}",
            err.message()
        );
        assert!(
            err.message().contains("form.site_region") && err.message().contains(says),
            "{case}: {}",
            err.message()
        );
    }
    assert_eq!(h.count("applications").await, 0);
    assert_eq!(h.count("outbox").await, 0);
    Ok(())
}

async fn the_site_is_stored_trimmed(backend: Backend) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let mut req = example()?;
    set_site(&mut req, Some(Kind::StringValue(" 350724101\t".into())));
    let app = h
        .client
        .submit_application(authed(req, &h.applicant()))
        .await?
        .into_inner()
        .application
        .ok_or_else(|| anyhow::anyhow!("no application"))?;
    let site = app
        .form
        .as_ref()
        .and_then(|f| f.fields.get("site_region"))
        .and_then(|v| v.kind.clone());
    assert_eq!(site, Some(Kind::StringValue("350724101".into())));
    // The applicant's registered region is its own, untouched.
    assert_eq!(
        app.applicant.map(|a| a.region_code).as_deref(),
        Some("350724100")
    );
    Ok(())
}

tongban_testkit::on_both!(
    a_site_outside_the_table_is_refused_naming_the_field,
    the_site_is_stored_trimmed,
);
