//! Approval's schema: its own tables plus the shared outbox and inbox.
//!
//! Times are stored as Unix milliseconds (`BIGINT`) on both engines so that comparisons and
//! ordering (due timers, "soonest due first") are plain integer comparisons everywhere; flags
//! are 0/1 integers for the same reason.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(tongban_outbox::migration::OutboxInbox),
            Box::new(Workflow),
            Box::new(EscalateAt),
            Box::new(DefinitionRequestId),
        ]
    }
}

struct Workflow;

/// `tasks.escalate_at`: when an overdue task is escalated, a grace period of working time
/// after `due_at` (the matter's `escalate_after_hours`). Rows from before it escalate at their
/// deadline, as they did.
struct EscalateAt;

impl MigrationName for EscalateAt {
    fn name(&self) -> &str {
        "m20261126_000004_approval_task_escalate_at"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for EscalateAt {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("ALTER TABLE tasks ADD COLUMN escalate_at BIGINT NOT NULL DEFAULT 0")
            .await?;
        db.execute_unprepared("UPDATE tasks SET escalate_at = due_at")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE tasks DROP COLUMN escalate_at")
            .await?;
        Ok(())
    }
}

/// `definitions.request_id`: the client idempotency key PublishDefinition was called with
/// ("" for definitions loaded from files or published without one), so that a retried
/// publication returns the definition it published instead of ALREADY_EXISTS.
struct DefinitionRequestId;

impl MigrationName for DefinitionRequestId {
    fn name(&self) -> &str {
        "m20261130_000005_approval_definition_request_id"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for DefinitionRequestId {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "ALTER TABLE definitions ADD COLUMN request_id TEXT NOT NULL DEFAULT ''",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX definitions_request_id ON definitions (request_id) WHERE request_id <> ''",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX definitions_request_id")
            .await?;
        db.execute_unprepared("ALTER TABLE definitions DROP COLUMN request_id")
            .await?;
        Ok(())
    }
}

impl MigrationName for Workflow {
    fn name(&self) -> &str {
        "m20261126_000003_approval_workflow"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Workflow {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let blob = match manager.get_database_backend() {
            DbBackend::Postgres => "BYTEA",
            _ => "BLOB",
        };
        let ddl = [
            "CREATE TABLE definitions (
                code TEXT NOT NULL,
                version BIGINT NOT NULL,
                name TEXT NOT NULL,
                source TEXT NOT NULL,
                published_at BIGINT NOT NULL,
                published_by TEXT NOT NULL,
                PRIMARY KEY (code, version))"
                .to_string(),
            // `plan` is the JSON of the stages planned at submission; `snapshot` the encoded
            // ApplicationSnapshot (pledge, owner, form) the instance was started from.
            format!(
                "CREATE TABLE instances (
                instance_id TEXT PRIMARY KEY,
                application_id TEXT NOT NULL UNIQUE,
                matter_code TEXT NOT NULL,
                definition_version BIGINT NOT NULL,
                kind TEXT NOT NULL,
                status TEXT NOT NULL,
                stage_index BIGINT NOT NULL,
                plan TEXT NOT NULL,
                on_pledge BIGINT NOT NULL,
                lead_department TEXT NOT NULL,
                owner_credit_code TEXT NOT NULL,
                supplement_task_id TEXT NOT NULL,
                snapshot {blob} NOT NULL,
                version BIGINT NOT NULL,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL)"
            ),
            // stage_index -1: a follow-up outside the stages. Timer state lives on the task row so
            // that it changes in the same transaction as the outbox rows it causes.
            "CREATE TABLE tasks (
                task_id TEXT PRIMARY KEY,
                instance_id TEXT NOT NULL,
                application_id TEXT NOT NULL,
                matter_code TEXT NOT NULL,
                stage_index BIGINT NOT NULL,
                stage_id TEXT NOT NULL,
                stage_name TEXT NOT NULL,
                kind TEXT NOT NULL,
                status TEXT NOT NULL,
                department TEXT NOT NULL,
                office TEXT NOT NULL,
                assignee TEXT NOT NULL,
                title TEXT NOT NULL,
                material_kind TEXT NOT NULL,
                deadline_hours BIGINT NOT NULL,
                version BIGINT NOT NULL,
                created_at BIGINT NOT NULL,
                due_at BIGINT NOT NULL,
                due_soon_at BIGINT NOT NULL,
                decided_at BIGINT,
                decision TEXT NOT NULL,
                comment TEXT NOT NULL,
                due_soon_sent BIGINT NOT NULL,
                overdue_sent BIGINT NOT NULL,
                escalated BIGINT NOT NULL)"
                .to_string(),
            "CREATE INDEX tasks_instance ON tasks (instance_id, stage_index)".to_string(),
            "CREATE INDEX tasks_due ON tasks (status, due_at, task_id)".to_string(),
            "CREATE INDEX tasks_department ON tasks (department, status, due_at)".to_string(),
            "CREATE TABLE audit (
                application_id TEXT NOT NULL,
                seq BIGINT NOT NULL,
                time_ms BIGINT NOT NULL,
                actor TEXT NOT NULL,
                role TEXT NOT NULL,
                action TEXT NOT NULL,
                reason TEXT NOT NULL,
                task_id TEXT NOT NULL,
                department TEXT NOT NULL,
                prev_hash TEXT NOT NULL,
                hash TEXT NOT NULL,
                PRIMARY KEY (application_id, seq))"
                .to_string(),
            "CREATE TABLE counters (
                name TEXT PRIMARY KEY,
                value BIGINT NOT NULL)"
                .to_string(),
        ];
        for sql in ddl {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for t in ["counters", "audit", "tasks", "instances", "definitions"] {
            db.execute_unprepared(&format!("DROP TABLE {t}")).await?;
        }
        Ok(())
    }
}
