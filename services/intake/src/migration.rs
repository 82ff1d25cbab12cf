//! Intake's schema: its own tables plus the shared outbox and inbox.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(tongban_outbox::migration::OutboxInbox),
            Box::new(Applications),
        ]
    }
}

struct Applications;

impl MigrationName for Applications {
    fn name(&self) -> &str {
        "m20261126_000002_intake_applications"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Applications {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let (blob, ts) = match manager.get_database_backend() {
            DbBackend::Postgres => ("BYTEA", "TIMESTAMPTZ"),
            _ => ("BLOB", "TEXT"),
        };
        // The application document is stored whole (`body`, the encoded protobuf); the other
        // columns exist to be filtered, sorted and constrained on.
        db.execute_unprepared(&format!(
            "CREATE TABLE applications (
                application_id TEXT PRIMARY KEY,
                request_id TEXT NOT NULL UNIQUE,
                fingerprint TEXT NOT NULL,
                matter_code TEXT NOT NULL,
                credit_code TEXT NOT NULL,
                region_code TEXT NOT NULL,
                status TEXT NOT NULL,
                version BIGINT NOT NULL,
                body {blob} NOT NULL,
                created_at {ts} NOT NULL,
                updated_at {ts} NOT NULL)"
        ))
        .await?;
        db.execute_unprepared(
            "CREATE INDEX applications_credit ON applications (credit_code, application_id)",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX applications_status ON applications (status, application_id)",
        )
        .await?;
        db.execute_unprepared(&format!(
            "CREATE TABLE matters (
                code TEXT NOT NULL,
                version INTEGER NOT NULL,
                source TEXT NOT NULL,
                loaded_at {ts} NOT NULL,
                PRIMARY KEY (code, version))"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP TABLE matters").await?;
        db.execute_unprepared("DROP TABLE applications").await?;
        Ok(())
    }
}
