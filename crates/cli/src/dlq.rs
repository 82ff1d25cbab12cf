//! `tongban dlq list|show|replay|discard --service S`: the dead letters of a service's event
//! consumer (`tongban.ops.v1.DeadLetterService`, which every service serves on its own port).
//! Admins only. Not `tongban deliveries replay`, which is about platform deliveries.

use std::time::Duration;

use anyhow::{Context as _, bail};
use tongban_proto::ops::{self, dead_letter_service_client::DeadLetterServiceClient};
use tonic::transport::Channel;

use crate::{
    client::{Conn, Svc, endpoint},
    output::{fields, keep_whole, local, local_short, print_json, table, trunc},
};

/// The service whose consumer's dead letters to work on.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Service {
    Intake,
    Approval,
    Dispatch,
    Notification,
}

impl Service {
    fn svc(self) -> Svc {
        match self {
            Service::Intake => Svc::Intake,
            Service::Approval => Svc::Approval,
            Service::Dispatch => Svc::Dispatch,
            Service::Notification => Svc::Notification,
        }
    }

    fn url(self, conn: &Conn) -> &str {
        match self {
            Service::Intake => &conn.intake_url,
            Service::Approval => &conn.approval_url,
            Service::Dispatch => &conn.dispatch_url,
            Service::Notification => &conn.notification_url,
        }
    }
}

/// Which service (and, when it consumes several, which queue).
#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// intake, approval, dispatch or notification.
    #[arg(long, value_enum)]
    service: Service,
    /// The consumer queue, when the service has more than one (default: its only one).
    #[arg(long)]
    queue: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum DlqCommand {
    /// The dead letters of a service's consumer queue, oldest first, and how many there are.
    #[command(
        after_help = "Examples:\n  tongban dlq list --service approval\n  tongban dlq list --service dispatch --limit 500 --output json | jq -r '.deadLetters[].eventId'"
    )]
    List(ListArgs),
    /// One dead letter: where it came from, why it died, and its envelope as JSON.
    #[command(after_help = "Example:\n  tongban dlq show --service approval 0195...")]
    Show(ShowArgs),
    /// Send dead letters back to the service's consumer queue (only there), as fresh messages.
    #[command(
        after_help = "Examples:\n  tongban dlq replay --service approval 0195... 0195...\n  tongban dlq replay --service notification --all --reason \"SMTP fixed\""
    )]
    Replay(HandleArgs),
    /// Delete dead letters for good (asks for --yes).
    #[command(
        after_help = "Examples:\n  tongban dlq discard --service intake 0195... --yes\n  tongban dlq discard --service intake --all --yes --reason \"test traffic\""
    )]
    Discard(DiscardArgs),
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    target: Target,
    /// At most this many (the server allows up to 1000).
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    target: Target,
    /// Event id (from `tongban dlq list`).
    event_id: String,
}

#[derive(clap::Args, Debug)]
pub struct HandleArgs {
    #[command(flatten)]
    target: Target,
    /// Event ids (from `tongban dlq list`).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    event_ids: Vec<String>,
    /// Every dead letter in the queue.
    #[arg(long)]
    all: bool,
    /// Why, for the audit log.
    #[arg(long)]
    reason: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct DiscardArgs {
    #[command(flatten)]
    args: HandleArgs,
    /// Really delete: discarded events are gone.
    #[arg(long)]
    yes: bool,
}

fn client(conn: &Conn, service: Service) -> anyhow::Result<DeadLetterServiceClient<Channel>> {
    // Lazy like every other client: an unreachable server is UNAVAILABLE on the call (exit 4).
    let channel = endpoint(service.url(conn))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect_lazy();
    Ok(DeadLetterServiceClient::new(channel))
}

pub(crate) async fn run(conn: &Conn, command: DlqCommand) -> anyhow::Result<()> {
    match command {
        DlqCommand::List(a) => list(conn, a).await,
        DlqCommand::Show(a) => show(conn, a).await,
        DlqCommand::Replay(a) => replay(conn, a).await,
        DlqCommand::Discard(a) => discard(conn, a).await,
    }
}

async fn list(conn: &Conn, a: ListArgs) -> anyhow::Result<()> {
    let service = a.target.service;
    let resp = client(conn, service)?
        .list_dead_letters(conn.req(ops::ListDeadLettersRequest {
            queue: a.target.queue.unwrap_or_default(),
            limit: a.limit,
        }))
        .await
        .map_err(conn.err(service.svc()))?
        .into_inner();
    if conn.json() {
        return print_json("tongban.ops.v1.ListDeadLettersResponse", &resp);
    }
    if resp.dead_letters.is_empty() {
        println!("No dead letters in {}.", resp.queue);
        return Ok(());
    }
    // Two UUIDs do not fit in 80 columns: the application id is in `show` and in JSON.
    let mut t = table(&["EVENT", "TYPE", "DIED", "WHY"]);
    for d in &resp.dead_letters {
        t.add_row(vec![
            d.event_id.clone(),
            trunc(&d.event_type, 28),
            local_short(d.dead_letter_time.as_ref()),
            d.reason.clone(),
        ]);
    }
    keep_whole(&mut t, 3);
    keep_whole(&mut t, 0);
    println!("{t}");
    println!(
        "{} of {} dead letter(s) in {}; times Asia/Shanghai",
        resp.dead_letters.len(),
        resp.depth,
        resp.queue
    );
    Ok(())
}

async fn show(conn: &Conn, a: ShowArgs) -> anyhow::Result<()> {
    let service = a.target.service;
    let resp = client(conn, service)?
        .get_dead_letter(conn.req(ops::GetDeadLetterRequest {
            queue: a.target.queue.unwrap_or_default(),
            event_id: a.event_id.clone(),
        }))
        .await
        .map_err(conn.err(service.svc()))
        .with_context(|| format!("showing dead letter {}", a.event_id))?
        .into_inner();
    if conn.json() {
        return print_json("tongban.ops.v1.GetDeadLetterResponse", &resp);
    }
    let d = resp.dead_letter.clone().unwrap_or_default();
    let deaths = if d.death_count == 0 {
        String::new()
    } else {
        d.death_count.to_string()
    };
    println!(
        "{}",
        fields(&[
            ("Event", d.event_id.clone()),
            ("Type", d.event_type.clone()),
            ("Application", d.application_id.clone()),
            ("Queue", d.queue.clone()),
            ("Dead-lettered", local(d.dead_letter_time.as_ref())),
            ("Reason", d.reason.clone()),
            ("Times", deaths),
            ("Bytes", d.payload_size.to_string()),
            ("Undecodable", resp.decode_error.clone()),
        ])
    );
    if let Some(envelope) = &resp.envelope {
        let value = crate::output::json_value("tongban.events.v1.Envelope", envelope)?;
        println!("{}", serde_json::to_string_pretty(&value)?);
    }
    Ok(())
}

async fn replay(conn: &Conn, a: HandleArgs) -> anyhow::Result<()> {
    let service = a.target.service;
    let resp = client(conn, service)?
        .replay_dead_letters(conn.req(ops::ReplayDeadLettersRequest {
            queue: a.target.queue.unwrap_or_default(),
            event_ids: a.event_ids,
            all: a.all,
            reason: a.reason.unwrap_or_default(),
        }))
        .await
        .map_err(conn.err(service.svc()))?
        .into_inner();
    if conn.json() {
        return print_json("tongban.ops.v1.ReplayDeadLettersResponse", &resp);
    }
    print_handled("Replayed", "to", &resp.queue, &resp.event_ids);
    Ok(())
}

/// What a replay or a discard did: one line, then the event ids.
fn print_handled(done: &str, preposition: &str, queue: &str, event_ids: &[String]) {
    println!(
        "{done} {} dead letter(s) {preposition} {queue}.",
        event_ids.len()
    );
    for id in event_ids {
        println!("  {id}");
    }
}

async fn discard(conn: &Conn, a: DiscardArgs) -> anyhow::Result<()> {
    if !a.yes {
        bail!("discarding deletes the events for good; add --yes to do it");
    }
    let a = a.args;
    let service = a.target.service;
    let resp = client(conn, service)?
        .discard_dead_letters(conn.req(ops::DiscardDeadLettersRequest {
            queue: a.target.queue.unwrap_or_default(),
            event_ids: a.event_ids,
            all: a.all,
            reason: a.reason.unwrap_or_default(),
        }))
        .await
        .map_err(conn.err(service.svc()))?
        .into_inner();
    if conn.json() {
        return print_json("tongban.ops.v1.DiscardDeadLettersResponse", &resp);
    }
    print_handled("Discarded", "from", &resp.queue, &resp.event_ids);
    Ok(())
}
