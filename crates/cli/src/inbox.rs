//! The caller's in-app notifications: list them, follow them live, mark them read.
//!
//! Talks to the notification service (`--notification-server`, default intake port + 2).

use std::time::Duration;

use anyhow::Context as _;
use tongban_proto::notification::{
    self as pb, notification_service_client::NotificationServiceClient,
};
use tonic::{
    Code, Status,
    transport::{Channel, Endpoint},
};

use crate::{
    client::{Conn, Svc},
    output::{self, local, local_short, print_json, table, trunc},
};

/// Most notifications one page may ask for (the server's maximum).
const MAX_PAGE: i32 = 200;
/// Longest wait between reconnect attempts while following.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(clap::Args, Debug)]
pub struct InboxArgs {
    /// Only notifications not read yet.
    #[arg(long, conflicts_with = "follow")]
    unread: bool,
    /// At most this many, newest first.
    #[arg(long, value_name = "N", default_value_t = 50, conflicts_with = "follow",
          value_parser = clap::value_parser!(i32).range(1..))]
    limit: i32,
    /// Stream notifications as they arrive (the unread backlog first) until Ctrl-C.
    #[arg(long)]
    follow: bool,
    /// With --follow: resume after this cursor (the `cursor` of the last notification seen).
    #[arg(long, value_name = "CURSOR", requires = "follow",
          value_parser = clap::value_parser!(i64).range(0..))]
    after: Option<i64>,
}

#[derive(clap::Args, Debug)]
pub struct ReadArgs {
    /// Notification ids, or the short ids `tongban inbox` shows (their last group).
    #[arg(required = true, value_name = "ID")]
    ids: Vec<String>,
}

/// The notification client, and the profile its errors are reported with.
pub(crate) fn client(conn: &Conn) -> anyhow::Result<(NotificationServiceClient<Channel>, Conn)> {
    let url = conn.notification_url.clone();
    // Lazy, like the other clients: an unreachable server is UNAVAILABLE on the first call.
    let channel = Endpoint::from_shared(url.clone())
        .with_context(|| format!("invalid notification server URL {url:?}"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect_lazy();
    Ok((NotificationServiceClient::new(channel), conn.clone()))
}

fn rpc_err<'a>(errs: &'a Conn, what: &'static str) -> impl FnOnce(Status) -> anyhow::Error + 'a {
    move |status| errs.err(Svc::Notification)(status).context(what)
}

/// The random tail of a UUIDv7 (its last group): the leading groups are a timestamp, so ids
/// made close together share them. `0195f3a2-…-8c2f9a1b3d4e` → `8c2f9a1b3d4e`.
fn tail(id: &str) -> &str {
    id.rsplit('-').next().unwrap_or(id)
}

/// `…1b3d4e`-style short application id for narrow columns.
fn short_app(id: &str) -> String {
    let t = tail(id);
    if t.is_empty() {
        String::new()
    } else {
        format!("…{}", &t[t.len().saturating_sub(8)..])
    }
}

pub(crate) async fn inbox(conn: &Conn, args: InboxArgs) -> anyhow::Result<()> {
    if args.follow {
        return follow(conn, args.after.unwrap_or(0)).await;
    }
    let (mut client, errs) = client(conn)?;
    let mut all = pb::ListNotificationsResponse::default();
    let mut token = String::new();
    loop {
        let want = args.limit - all.notifications.len() as i32;
        let resp = client
            .list_notifications(conn.req(pb::ListNotificationsRequest {
                unread_only: args.unread,
                page_size: want.min(MAX_PAGE),
                page_token: token,
            }))
            .await
            .map_err(rpc_err(&errs, "listing notifications"))?
            .into_inner();
        all.notifications.extend(resp.notifications);
        token = resp.next_page_token;
        if token.is_empty() || all.notifications.len() as i32 >= args.limit {
            break;
        }
    }
    all.next_page_token = token;
    if conn.json() {
        return print_json("tongban.notification.v1.ListNotificationsResponse", &all);
    }
    if all.notifications.is_empty() {
        println!(
            "No {}notifications.",
            if args.unread { "unread " } else { "" }
        );
        return Ok(());
    }
    let mut t = table(&["ID", "TIME", "KIND", "TITLE", "APP", "READ"]);
    for n in &all.notifications {
        t.add_row(vec![
            tail(&n.notification_id).to_string(),
            local_short(n.create_time.as_ref()),
            n.kind.clone(),
            trunc(&n.title, 40),
            short_app(&n.application_id),
            if n.read_time.is_some() { "✓" } else { "•" }.to_string(),
        ]);
    }
    output::keep_whole(&mut t, 0);
    output::keep_whole(&mut t, 2);
    println!("{t}");
    let unread = all
        .notifications
        .iter()
        .filter(|n| n.read_time.is_none())
        .count();
    if !all.next_page_token.is_empty() {
        println!(
            "{} shown ({unread} unread); more with --limit {}",
            all.notifications.len(),
            args.limit.saturating_mul(2)
        );
    } else if unread > 0 {
        println!("{unread} unread; mark with `tongban read ID...`");
    }
    Ok(())
}

fn print_line(conn: &Conn, n: &pb::Notification) -> anyhow::Result<()> {
    if conn.json() {
        let v = output::json_value("tongban.notification.v1.Notification", n)?;
        println!("{}", serde_json::to_string(&v)?);
    } else {
        println!(
            "{}  {:<22} {}  app {}  id {}  (cursor {})",
            local(n.create_time.as_ref()),
            n.kind,
            trunc(&n.title, 40),
            short_app(&n.application_id),
            n.notification_id,
            n.cursor
        );
    }
    Ok(())
}

/// Whether a failed subscription is worth retrying (the connection, not the request, failed).
fn transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::Unknown
            | Code::Internal
            | Code::Cancelled
            | Code::Aborted
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
    )
}

/// Subscribe, print each notification, and resubscribe after the last cursor seen when the
/// stream drops, until Ctrl-C.
async fn follow(conn: &Conn, after: i64) -> anyhow::Result<()> {
    let (mut client, errs) = client(conn)?;
    let mut last = after;
    let mut connected_once = false;
    let schedule =
        || tongban_types::Backoff::doubling(Duration::from_millis(200), MAX_BACKOFF).schedule();
    let mut delays = schedule();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let opened = tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            r = client.subscribe(conn.req(pb::SubscribeRequest { after_cursor: last })) => r,
        };
        let reason = match opened {
            Ok(resp) => {
                connected_once = true;
                delays = schedule();
                let mut stream = resp.into_inner();
                loop {
                    let msg = tokio::select! {
                        _ = &mut ctrl_c => return Ok(()),
                        m = stream.message() => m,
                    };
                    match msg {
                        Ok(Some(pb::SubscribeResponse { notification: None })) => continue,
                        Ok(Some(pb::SubscribeResponse {
                            notification: Some(n),
                        })) => {
                            // The server resumes strictly after `last`; guard anyway.
                            if n.cursor <= last {
                                continue;
                            }
                            last = n.cursor;
                            print_line(conn, &n)?;
                        }
                        Ok(None) => break "the server ended the stream".to_string(),
                        Err(s) if transient(s.code()) => {
                            break crate::client::code_name(s.code()).to_string();
                        }
                        Err(s) => return Err(rpc_err(&errs, "following notifications")(s)),
                    }
                }
            }
            // Never connected: fail like any other command (exit 4 when unreachable).
            Err(s) if !connected_once || !transient(s.code()) => {
                return Err(rpc_err(&errs, "following notifications")(s));
            }
            Err(s) => crate::client::code_name(s.code()).to_string(),
        };
        let backoff = delays.next().unwrap_or(MAX_BACKOFF);
        eprintln!(
            "notification stream dropped ({reason}); reconnecting after cursor {last} in {} ms",
            backoff.as_millis()
        );
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            _ = tokio::time::sleep(backoff) => {}
        }
    }
}

pub(crate) async fn read(conn: &Conn, args: ReadArgs) -> anyhow::Result<()> {
    let (mut client, errs) = client(conn)?;
    let asked = args.ids.len();
    let ids = resolve(conn, &errs, &mut client, args.ids).await?;
    let resp = client
        .mark_read(conn.req(pb::MarkReadRequest {
            notification_ids: ids,
        }))
        .await
        .map_err(rpc_err(&errs, "marking notifications read"))?
        .into_inner();
    if conn.json() {
        return print_json("tongban.notification.v1.MarkReadResponse", &resp);
    }
    println!("Marked {} of {asked} read", resp.marked);
    Ok(())
}

/// Full ids for `ids`, looking short ones (a full id's last group) up in the caller's inbox.
async fn resolve(
    conn: &Conn,
    errs: &Conn,
    client: &mut NotificationServiceClient<Channel>,
    ids: Vec<String>,
) -> anyhow::Result<Vec<String>> {
    let ids: Vec<String> = ids.into_iter().map(|i| i.trim().to_string()).collect();
    if ids.iter().all(|i| i.contains('-')) {
        return Ok(ids);
    }
    // The most recent notifications (short ids come from `tongban inbox`, which shows those).
    let mut known = Vec::new();
    let mut token = String::new();
    for _ in 0..5 {
        let resp = client
            .list_notifications(conn.req(pb::ListNotificationsRequest {
                unread_only: false,
                page_size: MAX_PAGE,
                page_token: token,
            }))
            .await
            .map_err(rpc_err(errs, "looking up short notification ids"))?
            .into_inner();
        known.extend(resp.notifications.into_iter().map(|n| n.notification_id));
        token = resp.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    ids.into_iter()
        .map(|id| {
            if id.contains('-') {
                return Ok(id);
            }
            let found: Vec<&String> = known.iter().filter(|k| tail(k) == id).collect();
            match found.as_slice() {
                [one] => Ok((*one).clone()),
                [] => anyhow::bail!("no notification {id:?} among your latest; pass the full id"),
                _ => anyhow::bail!("{id:?} matches several notifications; pass the full id"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortens_ids_and_classifies_drops() {
        assert_eq!(tail("0195f3a2-7c1e-7000-8000-8c2f9a1b3d4e"), "8c2f9a1b3d4e");
        assert_eq!(
            short_app("0195f3a2-7c1e-7000-8000-8c2f9a1b3d4e"),
            "…9a1b3d4e"
        );
        assert_eq!(short_app(""), "");
        assert!(transient(Code::Unavailable));
        assert!(!transient(Code::Unauthenticated));
        assert!(!transient(Code::InvalidArgument));
    }
}
