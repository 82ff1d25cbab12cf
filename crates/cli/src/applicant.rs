//! Commands for applicants: submit once, follow it, hand in what is owed, withdraw, rate.

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use tongban_proto::{
    approval as ap,
    common::Material,
    intake::{self as pb, ApplicationStatus},
};

use crate::{
    client::{Conn, Svc},
    output::{self, fields, local, platforms, print_json, short_enum, table, trunc},
};

#[derive(clap::Args, Debug)]
pub struct SubmitArgs {
    /// Proto3 JSON `tongban.intake.v1.SubmitApplicationRequest`.
    #[arg(long, short)]
    file: PathBuf,
    /// Replace the file's requestId (idempotency key), e.g. to submit the example again.
    #[arg(long)]
    request_id: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct WatchArgs {
    /// Application id.
    id: String,
    /// Exit once the application is APPROVED, REJECTED, WITHDRAWN or CLOSED.
    #[arg(long)]
    until_final: bool,
    /// Exit once this many platforms confirmed delivery (with --until-final: once both hold).
    #[arg(long, value_name = "N")]
    until_platforms: Option<u32>,
}

#[derive(clap::Args, Debug)]
pub struct SupplementArgs {
    /// Application id.
    id: String,
    /// A material: kind=…,name=…,sha256=…,size=…,uri=… (repeatable).
    #[arg(long = "material", value_name = "SPEC", required = true, value_parser = parse_material)]
    materials: Vec<Material>,
    /// Note to the reviewing departments.
    #[arg(long)]
    note: Option<String>,
    /// The application version you saw (0 skips the check).
    #[arg(long, default_value_t = 0)]
    version: i64,
}

#[derive(clap::Args, Debug)]
pub struct WithdrawArgs {
    /// Application id.
    id: String,
    #[arg(long)]
    reason: Option<String>,
    /// The application version you saw (0 skips the check).
    #[arg(long, default_value_t = 0)]
    version: i64,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(crate) enum RatingArg {
    /// 满意
    Satisfied,
    /// 基本满意
    #[value(name = "basically_satisfied", alias = "basically-satisfied")]
    BasicallySatisfied,
    /// 不满意 (reopens the request)
    Unsatisfied,
}

#[derive(clap::Args, Debug)]
pub struct RateArgs {
    /// Application id (an enterprise request).
    id: String,
    #[arg(value_enum)]
    rating: RatingArg,
    #[arg(long)]
    comment: Option<String>,
}

/// Parses `kind=…,name=…,sha256=…,size=…,uri=…`.
fn parse_material(spec: &str) -> Result<Material, String> {
    let mut m = Material::default();
    for part in spec.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("expected key=value, got {part:?}"))?;
        let v = v.trim().to_string();
        match k.trim() {
            "kind" => m.kind = v,
            "name" => m.name = v,
            "sha256" => m.sha256 = v,
            "size" | "size_bytes" => {
                m.size_bytes = v
                    .parse()
                    .map_err(|_| format!("size {v:?} is not a number"))?
            }
            "uri" => m.uri = v,
            other => {
                return Err(format!(
                    "unknown key {other:?} (use kind, name, sha256, size, uri)"
                ));
            }
        }
    }
    if m.kind.is_empty() {
        return Err("kind=… is required".into());
    }
    Ok(m)
}

pub(crate) fn is_final(s: ApplicationStatus) -> bool {
    matches!(
        s,
        ApplicationStatus::Approved
            | ApplicationStatus::Rejected
            | ApplicationStatus::Withdrawn
            | ApplicationStatus::Closed
    )
}

pub(crate) fn status_name(s: ApplicationStatus) -> String {
    short_enum(s.as_str_name(), "APPLICATION_STATUS_")
}

/// How many platforms dispatch delivers to; `None` when dispatch cannot say quickly.
pub(crate) async fn platform_total(conn: &Conn) -> Option<usize> {
    if !conn.reads_dispatch() {
        return None;
    }
    let mut client = conn.dispatch().ok()?;
    let mut req = conn.req(tongban_proto::dispatch::ListPlatformsRequest::default());
    req.set_timeout(Duration::from_secs(2));
    let resp = tokio::time::timeout(Duration::from_secs(3), client.list_platforms(req))
        .await
        .ok()?
        .ok()?;
    Some(resp.into_inner().platforms.len())
}

pub(crate) async fn get_application(conn: &Conn, id: &str) -> anyhow::Result<pb::Application> {
    let resp = conn
        .intake()?
        .get_application(conn.req(pb::GetApplicationRequest {
            application_id: id.to_string(),
        }))
        .await
        .map_err(conn.err(Svc::Intake))?
        .into_inner();
    resp.application
        .context("the server returned no application")
}

pub(crate) async fn submit(conn: &Conn, args: SubmitArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let mut req: pb::SubmitApplicationRequest =
        tongban_proto::json::from_json("tongban.intake.v1.SubmitApplicationRequest", &text)
            .with_context(|| {
                format!("{} is not a SubmitApplicationRequest", args.file.display())
            })?;
    if let Some(id) = args.request_id {
        req.request_id = id;
    }
    let resp = conn
        .intake()?
        .submit_application(conn.req(req))
        .await
        .map_err(conn.err(Svc::Intake))?
        .into_inner();
    if conn.json() {
        return print_json("tongban.intake.v1.SubmitApplicationResponse", &resp);
    }
    let app = resp.application.unwrap_or_default();
    println!(
        "{} {}  status {} (version {})",
        if resp.created {
            "Submitted"
        } else {
            "Already submitted (same request id):"
        },
        app.application_id,
        status_name(app.status()),
        app.version
    );
    for owed in &app.owed_materials {
        println!(
            "  owed: {} by {}",
            owed.material_kind,
            local(owed.due_time.as_ref())
        );
    }
    Ok(())
}

pub(crate) async fn status(conn: &Conn, id: &str) -> anyhow::Result<()> {
    let app = get_application(conn, id).await?;
    if conn.json() {
        return print_json("tongban.intake.v1.Application", &app);
    }
    let total = platform_total(conn).await;
    print_application(&app, total);
    Ok(())
}

pub(crate) fn print_application(app: &pb::Application, total: Option<usize>) {
    let applicant = app.applicant.clone().unwrap_or_default();
    let owed: Vec<String> = app
        .owed_materials
        .iter()
        .map(|o| {
            if o.fulfilled_time.is_some() {
                format!("{} (supplied)", o.material_kind)
            } else {
                format!("{} due {}", o.material_kind, local(o.due_time.as_ref()))
            }
        })
        .collect();
    let delivered = app
        .deliveries
        .as_ref()
        .map(|d| d.platforms.join(", "))
        .unwrap_or_default();
    let rows = [
        ("Application", app.application_id.clone()),
        (
            "Status",
            format!("{} (version {})", status_name(app.status()), app.version),
        ),
        ("Reason", trunc(&app.status_reason, 60)),
        (
            "Matter",
            format!("{} v{}", app.matter_code, app.matter_version),
        ),
        (
            "Applicant",
            format!("{} {}", trunc(&applicant.name, 40), applicant.credit_code),
        ),
        ("Submitted", local(app.create_time.as_ref())),
        ("Updated", local(app.update_time.as_ref())),
        ("Decision no.", app.decision_number.clone()),
        ("Owed", owed.join("; ")),
        (
            "Delivered",
            format!("{} {}", platforms(app.deliveries.as_ref(), total), {
                if delivered.is_empty() {
                    String::new()
                } else {
                    format!("({delivered})")
                }
            }),
        ),
    ];
    println!("{}", fields(&rows));
    let per_platform = app
        .deliveries
        .as_ref()
        .map(|d| d.per_platform.as_slice())
        .unwrap_or_default();
    if !per_platform.is_empty() {
        println!("\nPlatforms (Asia/Shanghai)");
        let mut t = table(&["PLATFORM", "STATE", "RECEIPT", "EVENT", "WHEN"]);
        for p in per_platform {
            t.add_row(vec![
                trunc(&p.platform_id, 24),
                short_enum(p.state().as_str_name(), "PLATFORM_DELIVERY_STATE_").to_lowercase(),
                p.receipt.clone(),
                trunc(&p.event_type, 24),
                local(p.update_time.as_ref()),
            ]);
        }
        // Receipts are references staff copy into the platform's own search.
        output::keep_whole(&mut t, 2);
        println!("{t}");
    }
}

pub(crate) async fn watch(conn: &Conn, args: WatchArgs) -> anyhow::Result<()> {
    let total = if conn.json() {
        None
    } else {
        platform_total(conn).await
    };
    let done = |app: &pb::Application| {
        let fin = is_final(app.status());
        let delivered = app.deliveries.as_ref().map(|d| d.succeeded).unwrap_or(0);
        match (args.until_final, args.until_platforms) {
            (false, None) => false,
            (true, None) => fin,
            (false, Some(n)) => delivered >= n,
            (true, Some(n)) => fin && delivered >= n,
        }
    };
    let print = |resp: &pb::WatchApplicationResponse| -> anyhow::Result<()> {
        if conn.json() {
            let v = output::json_value("tongban.intake.v1.WatchApplicationResponse", resp)?;
            println!("{}", serde_json::to_string(&v)?);
            return Ok(());
        }
        let app = resp.application.clone().unwrap_or_default();
        println!(
            "{}  {:<22} v{:<3} {}  ({})",
            local(resp.change_time.as_ref().or(app.update_time.as_ref())),
            status_name(app.status()),
            app.version,
            platforms(app.deliveries.as_ref(), total),
            resp.event_type
        );
        Ok(())
    };
    let mut stream = conn
        .intake()?
        .watch_application(conn.req(pb::WatchApplicationRequest {
            application_id: args.id.clone(),
        }))
        .await
        .map_err(conn.err(Svc::Intake))?
        .into_inner();
    let mut last: Option<pb::Application> = None;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            msg = stream.message() => {
                match msg.map_err(conn.err(Svc::Intake))? {
                    Some(resp) => {
                        print(&resp)?;
                        if let Some(app) = resp.application {
                            let stop = done(&app);
                            last = Some(app);
                            if stop {
                                return Ok(());
                            }
                        }
                    }
                    None => break,
                }
            }
        }
    }
    // The stream ends when the application is final; deliveries may still be arriving, so
    // when the caller asked to wait for them, keep polling.
    if args.until_platforms.is_none() {
        return Ok(());
    }
    let mut last = last.unwrap_or_default();
    loop {
        if done(&last) {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let app = get_application(conn, &args.id).await?;
        if app.version != last.version || app.deliveries != last.deliveries {
            print(&pb::WatchApplicationResponse {
                application: Some(app.clone()),
                event_type: "poll".into(),
                change_time: app.update_time,
            })?;
        }
        last = app;
    }
}

pub(crate) async fn supplement(conn: &Conn, args: SupplementArgs) -> anyhow::Result<()> {
    let resp = conn
        .intake()?
        .supplement_materials(conn.req(pb::SupplementMaterialsRequest {
            application_id: args.id,
            materials: args.materials,
            expected_version: args.version,
            note: args.note.unwrap_or_default(),
        }))
        .await
        .map_err(conn.err(Svc::Intake))?
        .into_inner();
    if conn.json() {
        return print_json("tongban.intake.v1.SupplementMaterialsResponse", &resp);
    }
    let app = resp.application.unwrap_or_default();
    println!(
        "Supplemented {}  status {} (version {})",
        app.application_id,
        status_name(app.status()),
        app.version
    );
    Ok(())
}

pub(crate) async fn withdraw(conn: &Conn, args: WithdrawArgs) -> anyhow::Result<()> {
    let resp = conn
        .intake()?
        .withdraw_application(conn.req(pb::WithdrawApplicationRequest {
            application_id: args.id,
            reason: args.reason.unwrap_or_default(),
            expected_version: args.version,
        }))
        .await
        .map_err(conn.err(Svc::Intake))?
        .into_inner();
    if conn.json() {
        return print_json("tongban.intake.v1.WithdrawApplicationResponse", &resp);
    }
    let app = resp.application.unwrap_or_default();
    println!(
        "Withdrew {}  status {} (version {})",
        app.application_id,
        status_name(app.status()),
        app.version
    );
    Ok(())
}

pub(crate) async fn rate(conn: &Conn, args: RateArgs) -> anyhow::Result<()> {
    let rating = match args.rating {
        RatingArg::Satisfied => ap::Rating::Satisfied,
        RatingArg::BasicallySatisfied => ap::Rating::BasicallySatisfied,
        RatingArg::Unsatisfied => ap::Rating::Unsatisfied,
    };
    let resp = conn
        .approval()?
        .rate_outcome(conn.req(ap::RateOutcomeRequest {
            application_id: args.id.clone(),
            rating: rating as i32,
            comment: args.comment.unwrap_or_default(),
        }))
        .await
        .map_err(conn.err(Svc::Approval))?
        .into_inner();
    if conn.json() {
        return print_json("tongban.approval.v1.RateOutcomeResponse", &resp);
    }
    let wf = resp.workflow.unwrap_or_default();
    println!(
        "Rated {} {}; workflow {}",
        args.id,
        short_enum(rating.as_str_name(), "RATING_"),
        short_enum(wf.status().as_str_name(), "WORKFLOW_STATUS_")
    );
    Ok(())
}

pub(crate) async fn matters(conn: &Conn) -> anyhow::Result<()> {
    // Every page, so that the table (and the JSON) hold every matter.
    let mut client = conn.intake()?;
    let mut resp = pb::ListMattersResponse::default();
    loop {
        let page = client
            .list_matters(conn.req(pb::ListMattersRequest {
                page_size: 200,
                page_token: resp.next_page_token.clone(),
            }))
            .await
            .map_err(conn.err(Svc::Intake))?
            .into_inner();
        resp.matters.extend(page.matters);
        resp.next_page_token = page.next_page_token;
        if resp.next_page_token.is_empty() {
            break;
        }
    }
    if conn.json() {
        return print_json("tongban.intake.v1.ListMattersResponse", &resp);
    }
    let mut t = table(&["MATTER", "VER", "NAME", "MATERIALS", "PLEDGE"]);
    for m in &resp.matters {
        let required = m.materials.iter().filter(|r| r.required).count();
        t.add_row(vec![
            m.code.clone(),
            m.version.to_string(),
            trunc(&m.name, 30),
            format!("{required} required / {}", m.materials.len()),
            if m.allows_pledge { "yes" } else { "no" }.to_string(),
        ]);
    }
    output::keep_whole(&mut t, 0);
    println!("{t}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_material_specs() {
        let m = parse_material(
            "kind=land_use_certificate,name=不动产权证书.pdf,sha256=ab,size=12,uri=s3://x/y",
        )
        .ok();
        assert_eq!(m.as_ref().map(|m| m.size_bytes), Some(12));
        assert_eq!(m.map(|m| m.kind).as_deref(), Some("land_use_certificate"));
        assert!(parse_material("name=x").is_err());
        assert!(parse_material("kind=x,colour=red").is_err());
    }
}
