//! The `outbox` and `inbox` tables; every service lists this migration in its own migrator.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

/// Creates `outbox` and `inbox`.
pub struct OutboxInbox;

impl MigrationName for OutboxInbox {
    fn name(&self) -> &str {
        "m20261126_000001_outbox_inbox"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for OutboxInbox {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let ddl: &[&str] = match manager.get_database_backend() {
            DbBackend::Postgres => &[
                "CREATE TABLE outbox (
                    seq BIGSERIAL PRIMARY KEY,
                    event_id TEXT NOT NULL UNIQUE,
                    routing_key TEXT NOT NULL,
                    application_id TEXT NOT NULL,
                    payload BYTEA NOT NULL,
                    traceparent TEXT,
                    created_at TIMESTAMPTZ NOT NULL,
                    published_at TIMESTAMPTZ)",
                "CREATE TABLE inbox (
                    consumer TEXT NOT NULL,
                    event_id TEXT NOT NULL,
                    processed_at TIMESTAMPTZ NOT NULL,
                    PRIMARY KEY (consumer, event_id))",
            ],
            _ => &[
                "CREATE TABLE outbox (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    event_id TEXT NOT NULL UNIQUE,
                    routing_key TEXT NOT NULL,
                    application_id TEXT NOT NULL,
                    payload BLOB NOT NULL,
                    traceparent TEXT,
                    created_at TEXT NOT NULL,
                    published_at TEXT)",
                "CREATE TABLE inbox (
                    consumer TEXT NOT NULL,
                    event_id TEXT NOT NULL,
                    processed_at TEXT NOT NULL,
                    PRIMARY KEY (consumer, event_id))",
            ],
        };
        for sql in ddl {
            db.execute_unprepared(sql).await?;
        }
        // Partial index: the relay only ever looks for unpublished rows, which are few.
        db.execute_unprepared(
            "CREATE INDEX outbox_pending ON outbox (seq) WHERE published_at IS NULL",
        )
        .await?;
        db.execute_unprepared("CREATE INDEX inbox_processed_at ON inbox (processed_at)")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP TABLE inbox").await?;
        db.execute_unprepared("DROP TABLE outbox").await?;
        Ok(())
    }
}
