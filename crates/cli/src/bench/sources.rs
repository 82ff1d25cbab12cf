//! Where the bench reads the stack's counters: PostgreSQL's pg_stat_database, RabbitMQ's
//! Prometheus endpoint, and the services' own databases (outbox rows and, under `tongban dev`,
//! the embedded bus's messages). Each source may be unreachable; its figures are then "n/a".

use std::{path::Path, time::Duration};

use anyhow::Context as _;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Commits + rollbacks over every database of the server.
pub(crate) async fn pg_transactions(db: &DatabaseConnection) -> anyhow::Result<i64> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT CAST(COALESCE(SUM(xact_commit + xact_rollback), 0) AS BIGINT) AS n \
             FROM pg_stat_database",
        ))
        .await?
        .context("pg_stat_database: no row")?;
    Ok(row.try_get("", "n")?)
}

/// Sum of every series of metric `name` in a Prometheus text exposition (all label sets).
pub(crate) fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        // `name{...} v` or `name v`, not `name_more ...`.
        let value = match rest.chars().next() {
            Some('{') => rest.rsplit_once('}').map(|(_, v)| v),
            Some(' ') => Some(rest),
            _ => None,
        };
        if let Some(v) = value.and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// Messages in the queues whose names start with `prefix` (dead-letter queues excluded: a
/// letter there is a failure, reported apart), from RabbitMQ's per-queue metrics.
pub(crate) fn queue_depth(text: &str, prefix: &str) -> u64 {
    let mut depth = 0u64;
    for line in text.lines() {
        let Some(labels) = line.strip_prefix("rabbitmq_detailed_queue_messages{") else {
            continue;
        };
        let Some((labels, value)) = labels.rsplit_once('}') else {
            continue;
        };
        let queue = labels
            .split(',')
            .find_map(|kv| kv.strip_prefix("queue=\""))
            .and_then(|q| q.strip_suffix('"'))
            .unwrap_or_default();
        if queue.starts_with(prefix) && !queue.ends_with(".dlq") {
            depth += value.trim().parse::<f64>().unwrap_or(0.0) as u64;
        }
    }
    depth
}

/// `GET path` over plain HTTP/1.0 from `host:port` (RabbitMQ's metrics listener); the body.
pub(crate) async fn http_get(host_port: &str, path: &str) -> anyhow::Result<String> {
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(host_port).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host_port}\r\n\r\n").as_bytes())
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        anyhow::Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .with_context(|| format!("http://{host_port}{path}: no answer in 5 s"))??;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("http://{host_port}{path}: not an HTTP answer"))?;
    anyhow::ensure!(
        head.starts_with("HTTP/1.") && head.split_whitespace().nth(1) == Some("200"),
        "http://{host_port}{path}: {}",
        head.lines().next().unwrap_or_default()
    );
    Ok(body.to_string())
}

/// The broker's publish and delivery counters.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AmqpCounts {
    pub published: f64,
    pub delivered: f64,
}

/// Reads RabbitMQ's global counters.
pub(crate) async fn amqp_counts(host_port: &str) -> anyhow::Result<AmqpCounts> {
    let text = http_get(host_port, "/metrics").await?;
    Ok(AmqpCounts {
        published: metric_sum(&text, "rabbitmq_global_messages_received_total")
            .context("no rabbitmq_global_messages_received_total")?,
        delivered: metric_sum(&text, "rabbitmq_global_messages_delivered_total")
            .context("no rabbitmq_global_messages_delivered_total")?,
    })
}

/// Messages waiting in the `prefix*` queues of the broker.
pub(crate) async fn amqp_depth(host_port: &str, prefix: &str) -> anyhow::Result<u64> {
    let text = http_get(host_port, "/metrics/detailed?family=queue_coarse_metrics").await?;
    Ok(queue_depth(&text, prefix))
}

/// A service database holding an outbox.
pub(crate) struct OutboxDb {
    pub label: String,
    /// The database's name (`tongban_intake`, `intake`), for the report.
    pub name: String,
    db: DatabaseConnection,
}

/// The outbox's high-water mark, for counting what a run wrote.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OutboxMark(i64);

impl OutboxDb {
    pub(crate) async fn connect(url: &str) -> anyhow::Result<Self> {
        let db = Database::connect(url)
            .await
            .with_context(|| format!("connecting to {}", redact(url)))?;
        Ok(Self {
            label: redact(url),
            name: database_name(url),
            db,
        })
    }

    async fn one(&self, sql: &str, col: &str) -> anyhow::Result<i64> {
        let row = self
            .db
            .query_one_raw(Statement::from_string(self.db.get_database_backend(), sql))
            .await
            .with_context(|| format!("{}: {sql}", self.label))?
            .with_context(|| format!("{}: no row", self.label))?;
        Ok(row.try_get("", col)?)
    }

    pub(crate) async fn mark(&self) -> anyhow::Result<OutboxMark> {
        self.one(
            "SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) AS s FROM outbox",
            "s",
        )
        .await
        .map(OutboxMark)
    }

    /// Rows and payload bytes written after `mark`.
    pub(crate) async fn written_since(&self, mark: OutboxMark) -> anyhow::Result<(i64, i64)> {
        let rows = self
            .one(
                &format!("SELECT COUNT(*) AS n FROM outbox WHERE seq > {}", mark.0),
                "n",
            )
            .await?;
        let bytes = self
            .one(
                &format!(
                    "SELECT CAST(COALESCE(SUM(LENGTH(payload)), 0) AS BIGINT) AS b \
                     FROM outbox WHERE seq > {}",
                    mark.0
                ),
                "b",
            )
            .await?;
        Ok((rows, bytes))
    }

    /// Rows not yet published to the bus.
    pub(crate) async fn backlog(&self) -> anyhow::Result<i64> {
        self.one(
            "SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL",
            "n",
        )
        .await
    }

    /// Messages waiting in the embedded bus's queues (a `tongban dev` bus.db), letters apart.
    pub(crate) async fn bus_depth(&self) -> anyhow::Result<i64> {
        self.one(
            "SELECT COUNT(*) AS n FROM bus_message WHERE queue NOT LIKE '%.dlq'",
            "n",
        )
        .await
    }
}

/// A database URL with any password hidden, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// `url` (postgres://…/db?…) pointing at database `name` instead.
pub(crate) fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The database a URL names: the last path segment, without a `.db` suffix.
pub(crate) fn database_name(url: &str) -> String {
    let path = url.split('?').next().unwrap_or_default();
    let last = path.rsplit('/').next().unwrap_or_default();
    last.strip_suffix(".db").unwrap_or(last).to_string()
}

/// The read-only SQLite URL of a file.
pub(crate) fn sqlite_ro(path: &Path) -> String {
    format!("sqlite://{}?mode=ro", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = "# TYPE rabbitmq_global_messages_received_total counter\n\
rabbitmq_global_messages_received_total{protocol=\"amqp091\"} 7611\n\
rabbitmq_global_messages_received_confirm_total{protocol=\"amqp091\"} 7610\n\
rabbitmq_global_messages_delivered_total{protocol=\"amqp091\",queue_type=\"rabbit_classic_queue\"} 1\n\
rabbitmq_global_messages_delivered_total{protocol=\"amqp091\",queue_type=\"rabbit_quorum_queue\"} 2991\n\
rabbitmq_queue_messages 3\n";

    #[test]
    fn sums_every_series_of_a_metric_and_only_that_metric() {
        assert_eq!(
            metric_sum(METRICS, "rabbitmq_global_messages_received_total"),
            Some(7611.0)
        );
        assert_eq!(
            metric_sum(METRICS, "rabbitmq_global_messages_delivered_total"),
            Some(2992.0)
        );
        assert_eq!(metric_sum(METRICS, "rabbitmq_queue_messages"), Some(3.0));
        assert_eq!(metric_sum(METRICS, "rabbitmq_nothing"), None);
    }

    #[test]
    fn counts_the_queues_of_one_exchange_without_dead_letters() {
        let text = "rabbitmq_detailed_queue_messages{vhost=\"/\",queue=\"tongban.events.intake\"} 2\n\
rabbitmq_detailed_queue_messages{vhost=\"/\",queue=\"tongban.events.intake.dlq\"} 5\n\
rabbitmq_detailed_queue_messages{vhost=\"/\",queue=\"other.intake\"} 7\n\
rabbitmq_detailed_queue_messages_ready{vhost=\"/\",queue=\"tongban.events.approval\"} 9\n\
rabbitmq_detailed_queue_messages{vhost=\"/\",queue=\"tongban.events.dispatch\"} 1\n";
        assert_eq!(queue_depth(text, "tongban.events."), 3);
    }

    #[test]
    fn database_urls() {
        assert_eq!(
            with_database(
                "postgres://postgres@127.0.0.1:5432/postgres",
                "tongban_intake"
            ),
            "postgres://postgres@127.0.0.1:5432/tongban_intake"
        );
        assert_eq!(
            with_database("postgres://u:p@h/x?sslmode=disable", "y"),
            "postgres://u:p@h/y?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "y"),
            "postgres://h:5432/y"
        );
        assert_eq!(
            database_name("postgres://u@h:5432/tongban_intake"),
            "tongban_intake"
        );
        assert_eq!(database_name("sqlite:///tmp/d/intake.db?mode=ro"), "intake");
        assert_eq!(redact("postgres://u:secret@h/x"), "postgres://u:***@h/x");
        assert_eq!(redact("postgres://u@h/x"), "postgres://u@h/x");
    }
}
