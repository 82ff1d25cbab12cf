//! Operators' commands: workflow definitions (list, publish), dead letters and reconciliation
//! of the delivery ledger, and webhooks (list, register, delete).

use std::path::PathBuf;

use anyhow::Context as _;
use tongban_proto::{approval as ap, dispatch as dp, notification as np};

use crate::{
    client::{Conn, Svc},
    output::{keep_whole, local_short, print_json, table, trunc},
};

#[derive(clap::Subcommand, Debug)]
pub enum DefinitionsCommand {
    /// The latest definition of each matter (or every version).
    #[command(
        after_help = "Examples:\n  tongban definitions list\n  tongban definitions list --matter env.eia.report_form --all-versions\n  tongban definitions list --output json | jq -r '.definitions[].matterCode'"
    )]
    List(DefinitionsListArgs),
    /// Publish a new definition version from a TOML file (the format of deploy/matters/);
    /// new applications use it at once, running ones keep theirs. Admins only.
    #[command(
        after_help = "Examples:\n  tongban definitions publish deploy/matters/env.eia.report_form.toml\n  tongban definitions publish new.toml --request-id release-2026-03-05"
    )]
    Publish(PublishArgs),
}

#[derive(clap::Args, Debug)]
pub struct DefinitionsListArgs {
    /// Only this matter code.
    #[arg(long)]
    matter: Option<String>,
    /// Every published version, not only the latest.
    #[arg(long)]
    all_versions: bool,
}

#[derive(clap::Args, Debug)]
pub struct PublishArgs {
    /// The definition file (TOML).
    file: PathBuf,
    /// Idempotency key: the same key and file again publishes nothing and succeeds.
    #[arg(long)]
    request_id: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum DeliveriesCommand {
    /// Put dead-lettered deliveries back in the queue, due now (all, or filtered).
    #[command(
        after_help = "Examples:\n  tongban deliveries replay\n  tongban deliveries replay --platform eia\n  tongban deliveries replay --application 0195..."
    )]
    Replay(ReplayArgs),
    /// Compare the ledger with what each platform (or one) holds; --redeliver-missing sends
    /// what a platform lacks again (platforms de-duplicate, so this is safe).
    #[command(
        after_help = "Examples:\n  tongban deliveries reconcile\n  tongban deliveries reconcile --platform eia --redeliver-missing\n\nExits 2 when some platform lacks deliveries the ledger has as succeeded (and they were not\nre-delivered).\n\nEach platform is asked the way its file's `[reconcile] method` allows: `list` (its listing of\nheld keys), `status` (one request per delivered key) or `none` (shown as `receipts`: the\nreceipts from its replies, nothing asked). Keys that could not be checked are counted under\nUNCHECKED; the line under the table names the method and says what could not be checked and\nwhy. RESENT counts what --redeliver-missing queued again."
    )]
    Reconcile(ReconcileArgs),
    /// Give up on one dead-lettered delivery for good, with a reason; the application's later
    /// deliveries to that platform, which wait behind it, go ahead.
    #[command(
        after_help = "Example:\n  tongban deliveries discard 0195... --reason \"filed on paper at the county office\"\n\nThe reason goes to the application's audit trail."
    )]
    Discard {
        /// Delivery id (from `tongban deliveries --status dead_lettered`).
        id: String,
        /// Why the platform will never get it.
        #[arg(long)]
        reason: String,
    },
}

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// Only this platform.
    #[arg(long)]
    platform: Option<String>,
    /// Only this application.
    #[arg(long)]
    application: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct ReconcileArgs {
    /// Only this platform (default: every configured platform).
    #[arg(long)]
    platform: Option<String>,
    /// Deliver again what the platform lacks.
    #[arg(long)]
    redeliver_missing: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum WebhooksCommand {
    /// My webhooks (an admin's: everyone's), oldest first; secrets are never shown here.
    #[command(
        after_help = "Examples:\n  tongban webhooks list\n  tongban webhooks list --output json"
    )]
    List,
    /// Register a URL to receive events as signed POSTs; prints the secret once.
    #[command(
        after_help = "Examples:\n  tongban webhooks register https://portal.example.gov.cn/hooks/tongban\n  tongban webhooks register https://ops.example/hook --event application.approved --event application.rejected\n\nEach POST carries X-Tongban-Timestamp and\nX-Tongban-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + \".\" + body)>."
    )]
    Register(RegisterArgs),
    /// Delete a webhook (and its pending deliveries).
    #[command(after_help = "Example:\n  tongban webhooks delete 0195...")]
    Delete {
        /// Webhook id (from `tongban webhooks list`).
        id: String,
    },
}

#[derive(clap::Args, Debug)]
pub struct RegisterArgs {
    /// Where to POST (https://; http:// only where the server allows it).
    url: String,
    /// Event type wanted, e.g. application.approved (repeatable); none means all.
    #[arg(long = "event", value_name = "TYPE")]
    events: Vec<String>,
    /// Idempotency key: the same key and URL again registers nothing.
    #[arg(long)]
    request_id: Option<String>,
}

/// Most items fetched across pages, so a huge list cannot run away.
const MAX_ITEMS: usize = 5000;

pub(crate) async fn definitions(conn: &Conn, command: DefinitionsCommand) -> anyhow::Result<()> {
    match command {
        DefinitionsCommand::List(a) => list_definitions(conn, a).await,
        DefinitionsCommand::Publish(a) => publish(conn, a).await,
    }
}

async fn list_definitions(conn: &Conn, a: DefinitionsListArgs) -> anyhow::Result<()> {
    let mut client = conn.approval()?;
    let mut req = ap::ListDefinitionsRequest {
        matter_code: a.matter.unwrap_or_default(),
        all_versions: a.all_versions,
        page_size: 200,
        page_token: String::new(),
    };
    let mut defs = Vec::new();
    loop {
        let resp = client
            .list_definitions(conn.req(req.clone()))
            .await
            .map_err(conn.err(Svc::Approval))?
            .into_inner();
        defs.extend(resp.definitions);
        if resp.next_page_token.is_empty() || defs.len() >= MAX_ITEMS {
            break;
        }
        req.page_token = resp.next_page_token;
    }
    if conn.json() {
        // The sources are long TOML files; scripts that want one use --matter and jq.
        return print_json(
            "tongban.approval.v1.ListDefinitionsResponse",
            &ap::ListDefinitionsResponse {
                definitions: defs,
                next_page_token: String::new(),
            },
        );
    }
    if defs.is_empty() {
        println!("No definitions.");
        return Ok(());
    }
    let mut t = table(&["MATTER", "VERSION", "PUBLISHED", "BY", "NAME"]);
    for d in &defs {
        t.add_row(vec![
            d.matter_code.clone(),
            d.version.to_string(),
            local_short(d.publish_time.as_ref()),
            trunc(&d.published_by, 16),
            trunc(&d.name, 24),
        ]);
    }
    keep_whole(&mut t, 0);
    println!("{t}");
    println!("{} definition(s); times Asia/Shanghai", defs.len());
    Ok(())
}

async fn publish(conn: &Conn, a: PublishArgs) -> anyhow::Result<()> {
    let source = std::fs::read_to_string(&a.file)
        .with_context(|| format!("reading {}", a.file.display()))?;
    let resp = conn
        .approval()?
        .publish_definition(conn.req(ap::PublishDefinitionRequest {
            source,
            request_id: a.request_id.unwrap_or_default(),
        }))
        .await
        .map_err(conn.err(Svc::Approval))
        .with_context(|| format!("publishing {}", a.file.display()))?
        .into_inner();
    if conn.json() {
        return print_json("tongban.approval.v1.PublishDefinitionResponse", &resp);
    }
    let d = resp.definition.unwrap_or_default();
    println!(
        "Published {} version {} ({}) by {}",
        d.matter_code, d.version, d.name, d.published_by
    );
    Ok(())
}

pub(crate) async fn deliveries(conn: &Conn, command: DeliveriesCommand) -> anyhow::Result<()> {
    match command {
        DeliveriesCommand::Replay(a) => replay(conn, a).await,
        DeliveriesCommand::Reconcile(a) => reconcile(conn, a).await,
        DeliveriesCommand::Discard { id, reason } => discard(conn, id, reason).await,
    }
}

async fn discard(conn: &Conn, id: String, reason: String) -> anyhow::Result<()> {
    let resp = conn
        .dispatch()?
        .discard_delivery(conn.req(dp::DiscardDeliveryRequest {
            delivery_id: id,
            reason,
        }))
        .await
        .map_err(conn.err(Svc::Dispatch))?
        .into_inner();
    if conn.json() {
        return print_json("tongban.dispatch.v1.DiscardDeliveryResponse", &resp);
    }
    let d = resp.delivery.unwrap_or_default();
    println!(
        "Discarded delivery {} ({} to {}); later deliveries of the application to {} go ahead.",
        d.delivery_id, d.event_type, d.platform_id, d.platform_id
    );
    Ok(())
}

async fn replay(conn: &Conn, a: ReplayArgs) -> anyhow::Result<()> {
    let resp = conn
        .dispatch()?
        .replay_dead_letters(conn.req(dp::ReplayDeadLettersRequest {
            platform_id: a.platform.unwrap_or_default(),
            application_id: a.application.unwrap_or_default(),
        }))
        .await
        .map_err(conn.err(Svc::Dispatch))?
        .into_inner();
    if conn.json() {
        return print_json("tongban.dispatch.v1.ReplayDeadLettersResponse", &resp);
    }
    println!(
        "Replayed {} dead-lettered deliver{}.",
        resp.replayed,
        if resp.replayed == 1 { "y" } else { "ies" }
    );
    Ok(())
}

/// Some platform lacks deliveries the ledger has as succeeded: exit 2, like a rejection, so
/// scripts notice.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Drift(pub(crate) String);

/// How the platform was asked, as its file spells the method (`none` reports receipts).
fn method_word(m: dp::ReconcileMethod) -> &'static str {
    match m {
        dp::ReconcileMethod::List => "list",
        dp::ReconcileMethod::Status => "status",
        dp::ReconcileMethod::Receipts => "receipts",
        dp::ReconcileMethod::Unspecified => "-",
    }
}

/// The table of reconcile results, then per platform how it was asked (with the note on what
/// could not be checked) and the keys it lacks. The method is a line, not a column, so the
/// longest platform id stays whole in 80 columns.
fn reconcile_text(results: &[dp::ReconcileResponse]) -> String {
    let mut t = table(&[
        "PLATFORM",
        "MATCHED",
        "MISSING",
        "EXTRA",
        "UNCHECKED",
        "RESENT",
    ]);
    keep_whole(&mut t, 0);
    for r in results {
        t.add_row(vec![
            r.platform_id.clone(),
            r.matched.to_string(),
            r.missing.len().to_string(),
            r.extra.len().to_string(),
            r.unchecked.len().to_string(),
            r.redelivered.to_string(),
        ]);
    }
    let mut out = format!("{t}\n");
    for r in results {
        out.push_str(&format!(
            "  {}: asked by {}.",
            r.platform_id,
            method_word(r.method())
        ));
        if !r.note.is_empty() {
            out.push_str(&format!(" {}", r.note));
        }
        out.push('\n');
        for key in &r.missing {
            out.push_str(&format!("  {} lacks {key}\n", r.platform_id));
        }
    }
    out
}

async fn reconcile(conn: &Conn, a: ReconcileArgs) -> anyhow::Result<()> {
    let mut client = conn.dispatch()?;
    let platforms = match a.platform {
        Some(p) => vec![p],
        None => client
            .list_platforms(conn.req(dp::ListPlatformsRequest::default()))
            .await
            .map_err(conn.err(Svc::Dispatch))?
            .into_inner()
            .platforms
            .into_iter()
            .map(|p| p.platform_id)
            .collect(),
    };
    let mut results = Vec::new();
    for platform_id in platforms {
        let resp = client
            .reconcile(conn.req(dp::ReconcileRequest {
                platform_id: platform_id.clone(),
                redeliver_missing: a.redeliver_missing,
            }))
            .await
            .map_err(conn.err(Svc::Dispatch))
            .with_context(|| format!("reconciling {platform_id}"))?
            .into_inner();
        results.push(resp);
    }
    if conn.json() {
        let list = results
            .iter()
            .map(|r| crate::output::json_value("tongban.dispatch.v1.ReconcileResponse", r))
            .collect::<anyhow::Result<Vec<_>>>()?;
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "platforms": list }))?
        );
    } else {
        print!("{}", reconcile_text(&results));
    }
    let unresolved: Vec<String> = results
        .iter()
        .filter(|r| r.missing.len() > r.redelivered as usize)
        .map(|r| format!("{} lacks {}", r.platform_id, r.missing.len()))
        .collect();
    if unresolved.is_empty() {
        Ok(())
    } else {
        Err(Drift(format!(
            "{} delivered deliveries (run with --redeliver-missing to send them again)",
            unresolved.join(", ")
        ))
        .into())
    }
}

pub(crate) async fn webhooks(conn: &Conn, command: WebhooksCommand) -> anyhow::Result<()> {
    let (mut client, errs) = crate::inbox::client(conn)?;
    match command {
        WebhooksCommand::List => {
            let mut req = np::ListWebhooksRequest {
                page_size: 200,
                page_token: String::new(),
            };
            let mut hooks = Vec::new();
            loop {
                let resp = client
                    .list_webhooks(conn.req(req.clone()))
                    .await
                    .map_err(errs.err(Svc::Notification))?
                    .into_inner();
                hooks.extend(resp.webhooks);
                if resp.next_page_token.is_empty() || hooks.len() >= MAX_ITEMS {
                    break;
                }
                req.page_token = resp.next_page_token;
            }
            if conn.json() {
                return print_json(
                    "tongban.notification.v1.ListWebhooksResponse",
                    &np::ListWebhooksResponse {
                        webhooks: hooks,
                        next_page_token: String::new(),
                    },
                );
            }
            if hooks.is_empty() {
                println!("No webhooks.");
                return Ok(());
            }
            let mut t = table(&["WEBHOOK", "URL", "EVENTS", "OWNER"]);
            for h in &hooks {
                t.add_row(vec![
                    h.webhook_id.clone(),
                    trunc(&h.url, 40),
                    if h.event_types.is_empty() {
                        "all".to_string()
                    } else {
                        h.event_types.join(",")
                    },
                    trunc(&h.owner, 24),
                ]);
            }
            keep_whole(&mut t, 0);
            println!("{t}");
            Ok(())
        }
        WebhooksCommand::Register(a) => {
            let resp = client
                .register_webhook(conn.req(np::RegisterWebhookRequest {
                    url: a.url,
                    event_types: a.events,
                    request_id: a.request_id.unwrap_or_default(),
                }))
                .await
                .map_err(errs.err(Svc::Notification))?
                .into_inner();
            if conn.json() {
                return print_json("tongban.notification.v1.RegisterWebhookResponse", &resp);
            }
            let h = resp.webhook.unwrap_or_default();
            println!("Registered webhook {} for {}", h.webhook_id, h.url);
            println!(
                "  events  {}",
                if h.event_types.is_empty() {
                    "all".to_string()
                } else {
                    h.event_types.join(", ")
                }
            );
            println!(
                "  secret  {}  (shown only now; keep it to verify signatures)",
                h.secret
            );
            Ok(())
        }
        WebhooksCommand::Delete { id } => {
            client
                .delete_webhook(conn.req(np::DeleteWebhookRequest {
                    webhook_id: id.clone(),
                }))
                .await
                .map_err(errs.err(Svc::Notification))?;
            if conn.json() {
                println!("{}", serde_json::json!({ "deleted": id }));
            } else {
                println!("Deleted webhook {id}");
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconcile_text_shows_method_unchecked_and_note() {
        let results = [
            dp::ReconcileResponse {
                platform_id: "provincial_gov_services".into(),
                missing: vec!["p:1".into()],
                matched: 3,
                method: dp::ReconcileMethod::List.into(),
                ..Default::default()
            },
            dp::ReconcileResponse {
                platform_id: "pollutant_permit".into(),
                matched: 1,
                unchecked: vec!["pollutant_permit:2".into(), "pollutant_permit:3".into()],
                method: dp::ReconcileMethod::Receipts.into(),
                note: "The platform answers no queries.".into(),
                ..Default::default()
            },
        ];
        let text = reconcile_text(&results);
        let rows: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        // The longest shipped id stays whole in 80 columns.
        assert!(
            rows.contains(&vec!["provincial_gov_services", "3", "1", "0", "0", "0"]),
            "{text}"
        );
        assert!(
            rows.contains(&vec!["pollutant_permit", "1", "0", "0", "2", "0"]),
            "{text}"
        );
        assert!(
            text.contains("  provincial_gov_services: asked by list.\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "  pollutant_permit: asked by receipts. The platform answers no queries.\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("  provincial_gov_services lacks p:1\n"),
            "{text}"
        );
    }
}
