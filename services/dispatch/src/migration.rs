//! Dispatch's schema: the application snapshots, events parked until their application is
//! known, the delivery ledger, plus the shared outbox and inbox.
//!
//! Ledger times are epoch milliseconds (`BIGINT`) on both engines, so that due-row queries
//! compare numbers, never engine-specific timestamp text.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(tongban_outbox::migration::OutboxInbox),
            Box::new(Ledger),
        ]
    }
}

struct Ledger;

impl MigrationName for Ledger {
    fn name(&self) -> &str {
        "m20261126_000004_dispatch_ledger"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Ledger {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let blob = match manager.get_database_backend() {
            DbBackend::Postgres => "BYTEA",
            _ => "BLOB",
        };
        // The canonical `application` section as JSON, from `application.submitted`.
        db.execute_unprepared(
            "CREATE TABLE applications (
                application_id TEXT PRIMARY KEY,
                snapshot TEXT NOT NULL,
                updated_at BIGINT NOT NULL)",
        )
        .await?;
        // Events that arrived before their application's `application.submitted`.
        db.execute_unprepared(&format!(
            "CREATE TABLE parked_events (
                event_id TEXT PRIMARY KEY,
                application_id TEXT NOT NULL,
                envelope {blob} NOT NULL,
                parked_at BIGINT NOT NULL)"
        ))
        .await?;
        db.execute_unprepared(
            "CREATE INDEX parked_events_application ON parked_events (application_id, event_id)",
        )
        .await?;
        db.execute_unprepared(
            "CREATE TABLE deliveries (
                delivery_id TEXT PRIMARY KEY,
                application_id TEXT NOT NULL,
                platform_id TEXT NOT NULL,
                event_id TEXT NOT NULL,
                event_type TEXT NOT NULL,
                idempotency_key TEXT NOT NULL UNIQUE,
                status TEXT NOT NULL,
                attempts BIGINT NOT NULL,
                last_error TEXT NOT NULL,
                payload TEXT NOT NULL,
                next_attempt_at BIGINT NOT NULL,
                locked_until BIGINT,
                lease_token TEXT,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                delivered_at BIGINT,
                UNIQUE (platform_id, event_id))",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX deliveries_due ON deliveries (platform_id, status, next_attempt_at)",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX deliveries_application ON deliveries (application_id, delivery_id)",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP TABLE deliveries").await?;
        db.execute_unprepared("DROP TABLE parked_events").await?;
        db.execute_unprepared("DROP TABLE applications").await?;
        Ok(())
    }
}
