//! Bounded storage: deletes old rows in small batches, on PostgreSQL and SQLite alike.
//!
//! One unbounded `DELETE` over weeks of rows holds its locks (and on SQLite the one write lock)
//! for as long as it runs, stalling every consumer and the relay behind it. Here each statement
//! deletes at most `batch` rows picked by key in a subquery (`DELETE ... WHERE key IN (SELECT key
//! ... LIMIT n)`, which both engines accept, unlike `DELETE ... LIMIT`), and statements repeat,
//! each its own short transaction, until one deletes fewer than `batch`.
//!
//! The inbox and outbox times are `TIMESTAMPTZ` on PostgreSQL and RFC 3339 text in UTC on
//! SQLite, bound from the same chrono type as the cutoff, so `<` orders them right on both.
//!
//! [`inbox`] and [`outbox`] are the two tables every service has; [`Batched`] serves any other,
//! optionally handing back each deleted row so the caller can log it. [`ParkedPruner`] gives up
//! the events a service parked (see [`crate::parked`]) past their retention.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, QueryResult, Value};

use tongban_storage::stmt;

/// Rows per `DELETE` unless told otherwise: small enough that one statement is quick.
pub const DEFAULT_BATCH: usize = 1000;

/// One table's pruning: delete rows matching `filter` (with `?` placeholders bound to
/// `params`), `batch` at a time, identified by `key` (one column or a parenthesised list).
#[derive(Clone, Debug)]
pub struct Batched<'a> {
    pub table: &'a str,
    pub key: &'a str,
    pub filter: &'a str,
    pub params: Vec<Value>,
    pub batch: usize,
}

impl Batched<'_> {
    /// One statement: deletes at most `batch` matching rows; returns how many.
    pub async fn once(&self, db: &DatabaseConnection) -> Result<u64, DbErr> {
        Ok(db
            .execute_raw(stmt(
                db.get_database_backend(),
                &self.sql(None),
                self.values(),
            ))
            .await?
            .rows_affected())
    }

    /// Deletes every matching row, one batch per statement; returns how many it deleted.
    pub async fn run(&self, db: &DatabaseConnection) -> Result<u64, DbErr> {
        let mut total = 0;
        loop {
            let deleted = self.once(db).await?;
            total += deleted;
            if deleted < self.batch as u64 {
                return Ok(total);
            }
            // Let the consumers and the relay in between two batches.
            tokio::task::yield_now().await;
        }
    }

    /// Like [`run`](Self::run), and hands each deleted row's `returning` columns to `each`
    /// (`DELETE ... RETURNING`: PostgreSQL, SQLite 3.35+).
    pub async fn run_returning(
        &self,
        db: &DatabaseConnection,
        returning: &str,
        mut each: impl FnMut(&QueryResult),
    ) -> Result<u64, DbErr> {
        let sql = self.sql(Some(returning));
        let mut total = 0;
        loop {
            let rows = db
                .query_all_raw(stmt(db.get_database_backend(), &sql, self.values()))
                .await?;
            rows.iter().for_each(&mut each);
            total += rows.len() as u64;
            if rows.len() < self.batch {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }

    fn sql(&self, returning: Option<&str>) -> String {
        let Self {
            table, key, filter, ..
        } = self;
        let mut sql = format!(
            "DELETE FROM {table} WHERE {key} IN (SELECT {inner} FROM {table} WHERE {filter} LIMIT ?)",
            inner = key.trim_start_matches('(').trim_end_matches(')'),
        );
        if let Some(cols) = returning {
            sql.push_str(" RETURNING ");
            sql.push_str(cols);
        }
        sql
    }

    fn values(&self) -> Vec<Value> {
        let mut values = self.params.clone();
        values.push((self.batch.max(1) as i64).into());
        values
    }
}

/// Inbox rows processed before `cutoff`, `batch` per statement. The cutoff must lie beyond any
/// redelivery window: an event redelivered after its row is gone is applied again.
pub fn inbox(cutoff: chrono::DateTime<chrono::Utc>, batch: usize) -> Batched<'static> {
    Batched {
        table: "inbox",
        key: "(consumer, event_id)",
        filter: "processed_at < ?",
        params: vec![cutoff.into()],
        batch: batch.max(1),
    }
}

/// Outbox rows published before `cutoff`, `batch` per statement. Unpublished rows are never
/// touched, however old.
pub fn outbox(cutoff: chrono::DateTime<chrono::Utc>, batch: usize) -> Batched<'static> {
    Batched {
        table: "outbox",
        key: "seq",
        filter: "published_at IS NOT NULL AND published_at < ?",
        params: vec![cutoff.into()],
        batch: batch.max(1),
    }
}

/// Bounded storage for `parked_events` (see [`crate::parked`]): an event parked longer than the
/// retention (default 30 days) still waits for an `application.submitted` that will not come,
/// so its predecessor was lost. It is deleted, in batches, and each one is logged at WARN with
/// its id, so an operator can look for the lost event and replay it.
#[derive(Clone, Debug)]
pub struct ParkedPruner {
    db: DatabaseConnection,
    retention: chrono::Duration,
    batch: usize,
    every: std::time::Duration,
}

impl ParkedPruner {
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            retention: chrono::Duration::days(30),
            batch: DEFAULT_BATCH,
            every: std::time::Duration::from_secs(600),
        }
    }

    /// How long an event may stay parked before it is given up (default 30 days).
    pub fn with_retention(mut self, retention: chrono::Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Most rows one `DELETE` removes (default 1000).
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// How often [`run`](Self::run) prunes (default 10 minutes; the first at start).
    pub fn with_interval(mut self, every: std::time::Duration) -> Self {
        self.every = every;
        self
    }

    /// Deletes events parked before the retention, logging each; returns how many.
    pub async fn prune(&self) -> Result<u64, DbErr> {
        let cutoff = tongban_storage::now_ms() - self.retention.num_milliseconds();
        Batched {
            table: "parked_events",
            key: "event_id",
            filter: "parked_at < ?",
            params: vec![cutoff.into()],
            batch: self.batch,
        }
        .run_returning(&self.db, "event_id, application_id, parked_at", |row| {
            let field = |c: &str| row.try_get::<String>("", c).unwrap_or_default();
            let parked_at = row.try_get::<i64>("", "parked_at").unwrap_or_default();
            tracing::warn!(
                event_id = %field("event_id"),
                application_id = %field("application_id"),
                parked_at = ?chrono::DateTime::from_timestamp_millis(parked_at),
                "parked event given up: its application.submitted never arrived"
            );
        })
        .await
    }

    /// Prunes at start and then every interval until `shutdown`.
    pub async fn run(self, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            if let Err(e) = self.prune().await {
                tracing::warn!(error = %e, "pruning parked events failed; will retry");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.every) => {}
            }
        }
    }
}
