//! Notification's schema: its own tables plus the shared outbox and inbox.
//!
//! Every instant is stored as BIGINT milliseconds since the Unix epoch (`*_ms`): the schedulers
//! compare them (`next_attempt_ms <= now`), and integers compare the same on both engines.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(tongban_outbox::migration::OutboxInbox),
            Box::new(Notifications),
            Box::new(WebhookRequestId),
        ]
    }
}

struct Notifications;

/// `webhooks.request_id`: the client idempotency key RegisterWebhook was called with ("" when
/// none), unique when set, so that a retried registration returns the webhook it created.
struct WebhookRequestId;

impl MigrationName for WebhookRequestId {
    fn name(&self) -> &str {
        "m20261130_000004_notification_webhook_request_id"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for WebhookRequestId {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "ALTER TABLE webhooks ADD COLUMN request_id TEXT NOT NULL DEFAULT ''",
        )
        .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX webhooks_request_id ON webhooks (request_id) WHERE request_id <> ''",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX webhooks_request_id")
            .await?;
        db.execute_unprepared("ALTER TABLE webhooks DROP COLUMN request_id")
            .await?;
        Ok(())
    }
}

impl MigrationName for Notifications {
    fn name(&self) -> &str {
        "m20261126_000003_notification_tables"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Notifications {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let seq = match manager.get_database_backend() {
            DbBackend::Postgres => "seq BIGSERIAL PRIMARY KEY",
            _ => "seq INTEGER PRIMARY KEY AUTOINCREMENT",
        };
        let ddl = [
            // What notification knows about each application, from `application.submitted`, so
            // that later events (which carry only the id) can address the applicant.
            "CREATE TABLE application_facts (
                application_id TEXT PRIMARY KEY,
                credit_code TEXT NOT NULL,
                contact_email TEXT NOT NULL,
                locale TEXT NOT NULL,
                matter_code TEXT NOT NULL,
                project_name TEXT NOT NULL,
                created_ms BIGINT NOT NULL)"
                .to_string(),
            // The inbox. `seq` is the global cursor: monotonic, and (see repository::insert)
            // assigned in commit order. `dedup_key` is set for reminders only: one per
            // (recipient, kind, task); NULLs never collide.
            format!(
                "CREATE TABLE notifications (
                {seq},
                notification_id TEXT NOT NULL UNIQUE,
                event_id TEXT NOT NULL,
                recipient TEXT NOT NULL,
                kind TEXT NOT NULL,
                title TEXT NOT NULL,
                body TEXT NOT NULL,
                locale TEXT NOT NULL,
                application_id TEXT NOT NULL,
                task_id TEXT NOT NULL,
                dedup_key TEXT UNIQUE,
                created_ms BIGINT NOT NULL,
                read_ms BIGINT,
                UNIQUE (event_id, recipient))"
            ),
            "CREATE INDEX notifications_recipient ON notifications (recipient, seq)".to_string(),
            // E-mails to send: one per notification at most. `send_after_ms` holds reminders
            // back until working time; `next_attempt_ms` is also the claim lease.
            "CREATE TABLE emails (
                notification_id TEXT PRIMARY KEY,
                to_addr TEXT NOT NULL,
                subject TEXT NOT NULL,
                body TEXT NOT NULL,
                send_after_ms BIGINT NOT NULL,
                next_attempt_ms BIGINT NOT NULL,
                attempts INTEGER NOT NULL,
                sent_ms BIGINT,
                failed_ms BIGINT,
                last_error TEXT)"
                .to_string(),
            "CREATE INDEX emails_due ON emails (next_attempt_ms) WHERE sent_ms IS NULL AND failed_ms IS NULL"
                .to_string(),
            "CREATE TABLE webhooks (
                webhook_id TEXT PRIMARY KEY,
                url TEXT NOT NULL,
                event_types TEXT NOT NULL,
                secret TEXT NOT NULL,
                created_by TEXT NOT NULL,
                created_ms BIGINT NOT NULL)"
                .to_string(),
            // One row per (webhook, event); the body is fixed when queued so that every retry
            // sends (and signs) the same bytes.
            "CREATE TABLE webhook_deliveries (
                delivery_id TEXT PRIMARY KEY,
                webhook_id TEXT NOT NULL,
                event_id TEXT NOT NULL,
                body TEXT NOT NULL,
                attempts INTEGER NOT NULL,
                next_attempt_ms BIGINT NOT NULL,
                delivered_ms BIGINT,
                failed_ms BIGINT,
                last_error TEXT,
                UNIQUE (webhook_id, event_id))"
                .to_string(),
            "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_ms) WHERE delivered_ms IS NULL AND failed_ms IS NULL"
                .to_string(),
        ];
        for sql in ddl {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for t in [
            "webhook_deliveries",
            "webhooks",
            "emails",
            "notifications",
            "application_facts",
        ] {
            db.execute_unprepared(&format!("DROP TABLE {t}")).await?;
        }
        Ok(())
    }
}
