//! `tongban notifications failed|replay`: e-mails and webhook calls whose retries gave up
//! (dead), listed and made due again (admins).

use tongban_proto::notification as np;

use crate::{
    client::{Conn, Svc},
    output::{keep_whole, local_short, print_json, table, trunc},
};

#[derive(clap::Subcommand, Debug)]
pub enum NotificationsCommand {
    /// Dead e-mails or webhook calls: retried for the whole retry window (a day by default)
    /// without success, or refused for good by the mail server.
    #[command(
        after_help = "Examples:\n  tongban notifications failed --channel email\n  tongban notifications failed --channel webhook --output json | jq -r '.deliveries[].deliveryId'"
    )]
    Failed(FailedArgs),
    /// Make dead e-mails or webhook calls due again now, with a fresh retry window; prints how
    /// many. Each replay is recorded on notification's audit chain.
    #[command(
        after_help = "Examples:\n  tongban notifications replay --channel email 0195... 0195...\n  tongban notifications replay --channel webhook --all"
    )]
    Replay(ReplayFailedArgs),
}

/// Which outgoing channel.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ChannelArg {
    Email,
    Webhook,
}

impl ChannelArg {
    fn proto(self) -> i32 {
        match self {
            ChannelArg::Email => np::DeliveryChannel::Email as i32,
            ChannelArg::Webhook => np::DeliveryChannel::Webhook as i32,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct FailedArgs {
    /// email or webhook.
    #[arg(long, value_enum)]
    channel: ChannelArg,
}

#[derive(clap::Args, Debug)]
pub struct ReplayFailedArgs {
    /// email or webhook.
    #[arg(long, value_enum)]
    channel: ChannelArg,
    /// Ids from `tongban notifications failed` (notification ids for e-mails, delivery ids for
    /// webhook calls).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    ids: Vec<String>,
    /// Every dead row of the channel.
    #[arg(long)]
    all: bool,
}

/// Most rows fetched across pages, so a huge list cannot run away.
const MAX_ITEMS: usize = 5000;
/// What the server replays per call at most; `--all` calls again while it gets this many.
const REPLAY_BATCH: u32 = 1000;

pub(crate) async fn notifications(
    conn: &Conn,
    command: NotificationsCommand,
) -> anyhow::Result<()> {
    let (mut client, errs) = crate::inbox::client(conn)?;
    match command {
        NotificationsCommand::Failed(a) => {
            let mut req = np::ListFailedDeliveriesRequest {
                channel: a.channel.proto(),
                page_size: 200,
                page_token: String::new(),
            };
            let mut rows = Vec::new();
            loop {
                let resp = client
                    .list_failed_deliveries(conn.req(req.clone()))
                    .await
                    .map_err(errs.err(Svc::Notification))?
                    .into_inner();
                rows.extend(resp.deliveries);
                if resp.next_page_token.is_empty() || rows.len() >= MAX_ITEMS {
                    break;
                }
                req.page_token = resp.next_page_token;
            }
            if conn.json() {
                return print_json(
                    "tongban.notification.v1.ListFailedDeliveriesResponse",
                    &np::ListFailedDeliveriesResponse {
                        deliveries: rows,
                        next_page_token: String::new(),
                    },
                );
            }
            if rows.is_empty() {
                println!("Nothing dead.");
                return Ok(());
            }
            let mut t = table(&["ID", "TARGET", "ATTEMPTS", "GAVE UP", "LAST ERROR"]);
            keep_whole(&mut t, 0);
            for r in &rows {
                t.add_row(vec![
                    r.delivery_id.clone(),
                    trunc(&r.target, 32),
                    r.attempts.to_string(),
                    local_short(r.fail_time.as_ref()),
                    trunc(&r.last_error, 40),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        NotificationsCommand::Replay(a) => {
            let mut replayed = Vec::new();
            loop {
                let resp = client
                    .replay_failed_deliveries(conn.req(np::ReplayFailedDeliveriesRequest {
                        channel: a.channel.proto(),
                        delivery_ids: a.ids.clone(),
                        all: a.all,
                    }))
                    .await
                    .map_err(errs.err(Svc::Notification))?
                    .into_inner();
                let n = resp.replayed;
                replayed.extend(resp.delivery_ids);
                // A replayed row is due at once and no longer dead, so the next call finds
                // the next batch.
                if !a.all || n < REPLAY_BATCH || replayed.len() >= MAX_ITEMS {
                    break;
                }
            }
            if conn.json() {
                return print_json(
                    "tongban.notification.v1.ReplayFailedDeliveriesResponse",
                    &np::ReplayFailedDeliveriesResponse {
                        replayed: u32::try_from(replayed.len()).unwrap_or(u32::MAX),
                        delivery_ids: replayed,
                    },
                );
            }
            println!("Replayed {}.", replayed.len());
            Ok(())
        }
    }
}
