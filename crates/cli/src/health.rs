//! `tongban health`: the standard `grpc.health.v1` check (service "") of one server or of every
//! configured service, with an exit code a container healthcheck can use. Needs no token.

use std::time::Duration;

use anyhow::Context as _;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{
    client::{Conn, GlobalArgs},
    output::table,
};

#[derive(clap::Args, Debug)]
pub struct HealthArgs {
    /// Seconds to wait for each server's answer (connect included).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// Set by the binary when `--server` was given on the command line (not only through
    /// TONGBAN_SERVER): then only that server is checked.
    #[arg(skip)]
    pub server_on_command_line: bool,
}

/// What one server said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// SERVING.
    Serving,
    /// Answered with another status (NOT_SERVING, SERVICE_UNKNOWN, ...).
    NotServing(String),
    /// No answer: the connection or the call failed.
    Unreachable(String),
}

impl Health {
    pub fn is_serving(&self) -> bool {
        *self == Health::Serving
    }

    /// `SERVING`, `NOT_SERVING`, ..., or `UNREACHABLE`.
    pub fn label(&self) -> &str {
        match self {
            Health::Serving => "SERVING",
            Health::NotServing(s) => s,
            Health::Unreachable(_) => "UNREACHABLE",
        }
    }

    fn detail(&self) -> &str {
        match self {
            Health::Unreachable(why) => why,
            _ => "",
        }
    }
}

/// Asks the server at `url` for the health of service "" (the whole server).
pub async fn check(url: &str, timeout: Duration) -> Health {
    let endpoint = match crate::client::endpoint(url) {
        Ok(e) => e.connect_timeout(timeout).timeout(timeout),
        Err(e) => return Health::Unreachable(format!("{e:#}")),
    };
    let call = async {
        let channel = endpoint.connect().await.map_err(|e| error_chain(&e))?;
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|r| r.into_inner().status())
            .map_err(|s| {
                format!(
                    "{}: {}",
                    crate::client::code_name(s.code()),
                    s.message().split_whitespace().collect::<Vec<_>>().join(" ")
                )
            })
    };
    match tokio::time::timeout(timeout, call).await {
        Err(_) => Health::Unreachable(format!("no answer within {} s", timeout.as_secs())),
        Ok(Err(why)) => Health::Unreachable(why),
        Ok(Ok(ServingStatus::Serving)) => Health::Serving,
        Ok(Ok(other)) => Health::NotServing(other.as_str_name().to_string()),
    }
}

/// The innermost cause ("Connection refused (os error 111)"): the outer layers only say
/// "transport error".
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        last = c.to_string();
        cur = c.source();
    }
    last
}

/// A failed health check: exits 4 (server unreachable or unavailable), like other
/// "cannot reach" errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unhealthy(pub String);

/// `tongban health`.
pub(crate) async fn run(global: &GlobalArgs, args: HealthArgs) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(args.timeout);
    let json = global.json();
    // One server named on the command line needs no config file (a container healthcheck
    // must not depend on one).
    let explicit = global
        .server
        .clone()
        .filter(|_| args.server_on_command_line);
    let targets: Vec<(&str, String)> = if let Some(url) = explicit {
        vec![("server", url)]
    } else {
        let conn = Conn::resolve(global)?;
        vec![
            ("intake", conn.intake_url.clone()),
            ("approval", conn.approval_url.clone()),
            ("notification", conn.notification_url.clone()),
            ("dispatch", conn.dispatch_url.clone()),
        ]
    };
    let mut results = Vec::new();
    for (name, url) in &targets {
        results.push((*name, url.as_str(), check(url, timeout).await));
    }
    if json {
        let list: Vec<serde_json::Value> = results
            .iter()
            .map(|(name, url, h)| {
                serde_json::json!({
                    "service": name,
                    "url": url,
                    "status": h.label(),
                    "error": h.detail(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "services": list }))
                .context("printing JSON")?
        );
    } else if args.server_on_command_line {
        if let Some((_, url, h)) = results.first()
            && h.is_serving()
        {
            println!("SERVING  {url}");
        }
    } else {
        let mut t = table(&["SERVICE", "URL", "STATUS"]);
        for (name, url, h) in &results {
            t.add_row(vec![
                name.to_string(),
                url.to_string(),
                h.label().to_string(),
            ]);
        }
        println!("{t}");
    }
    let bad: Vec<String> = results
        .iter()
        .filter(|(_, _, h)| !h.is_serving())
        .map(|(name, url, h)| match h {
            Health::Unreachable(why) => format!("{name} at {url} is unreachable ({why})"),
            other => format!("{name} at {url} is {}", other.label()),
        })
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Unhealthy(bad.join("; ")).into())
    }
}
