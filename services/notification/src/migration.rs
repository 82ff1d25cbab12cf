//! Notification's schema: its own tables plus the shared outbox and inbox. The names below are
//! this migration's own, frozen with it; the entities in [`crate::entity`] may move on.
//!
//! Every instant is stored as BIGINT milliseconds since the Unix epoch (`*_ms`): the schedulers
//! compare them (`next_attempt_ms <= now`), and integers compare the same on both engines.

use sea_orm_migration::{prelude::*, schema::*};
use tongban_storage::schema::{drop_tables, millis, millis_null, sequence};

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(tongban_outbox::migration::OutboxInbox),
            Box::new(NotificationTables),
            Box::new(WebhookRequestId),
            Box::new(tongban_audit::migration::AuditLog),
            Box::new(WebhookOwners),
            Box::new(WebhookDeliveryTraceparent),
            Box::new(tongban_outbox::parked::Migration::named(
                "m20261201_000007_notification_parked_events",
            )),
            Box::new(RetrySince),
        ]
    }
}

struct NotificationTables;

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
    /// In one transaction on SQLite too (sea-orm wraps only PostgreSQL's by default): a process
    /// killed half-way through leaves nothing behind for the next start to trip over.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
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

/// Webhook owners (who registered each, with the scope claims of their token) and the
/// departments of each application's workflow, so that a webhook receives only the
/// applications in its owner's scope. Existing webhooks get no owner and receive nothing until
/// re-registered: failing closed is the point.
struct WebhookOwners;

/// `webhook_deliveries.traceparent`: the trace context the delivery was queued in (the
/// consumer's span of its event), so that every attempt joins that trace.
struct WebhookDeliveryTraceparent;

impl MigrationName for WebhookDeliveryTraceparent {
    fn name(&self) -> &str {
        "m20261201_000006_notification_webhook_delivery_traceparent"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for WebhookDeliveryTraceparent {
    /// In one transaction on SQLite too (sea-orm wraps only PostgreSQL's by default): a process
    /// killed half-way through leaves nothing behind for the next start to trip over.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // As in WebhookOwners: SQLite DDL may have run before a kill, so check first.
        if !manager
            .has_column("webhook_deliveries", "traceparent")
            .await?
        {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE webhook_deliveries ADD COLUMN traceparent TEXT")
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE webhook_deliveries DROP COLUMN traceparent")
            .await?;
        Ok(())
    }
}

/// `emails.retry_since_ms` and `webhook_deliveries.retry_since_ms`: when the current run of
/// failures began (null while none failed, and again after a replay), so that retries stop
/// after a window of time rather than after a count of quick attempts.
struct RetrySince;

impl MigrationName for RetrySince {
    fn name(&self) -> &str {
        "m20261201_000008_notification_retry_since"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for RetrySince {
    /// In one transaction on SQLite too, as the ones above.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["emails", "webhook_deliveries"] {
            // As in WebhookOwners: SQLite DDL may have run before a kill, so check first.
            if !manager.has_column(table, "retry_since_ms").await? {
                manager
                    .get_connection()
                    .execute_unprepared(&format!(
                        "ALTER TABLE {table} ADD COLUMN retry_since_ms BIGINT"
                    ))
                    .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["emails", "webhook_deliveries"] {
            manager
                .get_connection()
                .execute_unprepared(&format!("ALTER TABLE {table} DROP COLUMN retry_since_ms"))
                .await?;
        }
        Ok(())
    }
}

impl MigrationName for WebhookOwners {
    fn name(&self) -> &str {
        "m20261130_000005_notification_webhook_owners"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for WebhookOwners {
    /// In one transaction on SQLite too (sea-orm wraps only PostgreSQL's by default): a process
    /// killed half-way through leaves nothing behind for the next start to trip over.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Every step may already be done: SQLite runs DDL outside a migration transaction, so
        // a process killed half-way (tongban dev, kill -9) runs this again on restart.
        let db = manager.get_connection();
        for col in [
            "owner_subject",
            "owner_role",
            "owner_department",
            "owner_credit_code",
        ] {
            if !manager.has_column("webhooks", col).await? {
                db.execute_unprepared(&format!(
                    "ALTER TABLE webhooks ADD COLUMN {col} TEXT NOT NULL DEFAULT ''"
                ))
                .await?;
            }
        }
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS webhooks_owner ON webhooks (owner_role, owner_subject, webhook_id)",
        )
        .await?;
        db.execute_unprepared(
            "CREATE TABLE IF NOT EXISTS application_departments (
                application_id TEXT NOT NULL,
                department TEXT NOT NULL,
                PRIMARY KEY (application_id, department)
            )",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP TABLE application_departments")
            .await?;
        db.execute_unprepared("DROP INDEX webhooks_owner").await?;
        for col in [
            "owner_credit_code",
            "owner_department",
            "owner_role",
            "owner_subject",
        ] {
            db.execute_unprepared(&format!("ALTER TABLE webhooks DROP COLUMN {col}"))
                .await?;
        }
        Ok(())
    }
}

impl MigrationName for NotificationTables {
    fn name(&self) -> &str {
        "m20261126_000003_notification_tables"
    }
}

#[derive(DeriveIden)]
enum ApplicationFacts {
    Table,
    ApplicationId,
    CreditCode,
    ContactEmail,
    Locale,
    MatterCode,
    ProjectName,
    CreatedMs,
}

#[derive(DeriveIden)]
enum Notifications {
    Table,
    Seq,
    NotificationId,
    EventId,
    Recipient,
    Kind,
    Title,
    Body,
    Locale,
    ApplicationId,
    TaskId,
    DedupKey,
    CreatedMs,
    ReadMs,
}

#[derive(DeriveIden)]
enum Emails {
    Table,
    NotificationId,
    ToAddr,
    Subject,
    Body,
    SendAfterMs,
    NextAttemptMs,
    Attempts,
    SentMs,
    FailedMs,
    LastError,
}

#[derive(DeriveIden)]
enum Webhooks {
    Table,
    WebhookId,
    Url,
    EventTypes,
    Secret,
    CreatedBy,
    CreatedMs,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    DeliveryId,
    WebhookId,
    EventId,
    Body,
    Attempts,
    NextAttemptMs,
    DeliveredMs,
    FailedMs,
    LastError,
}

#[async_trait::async_trait]
impl MigrationTrait for NotificationTables {
    /// In one transaction on SQLite too (sea-orm wraps only PostgreSQL's by default): a process
    /// killed half-way through leaves nothing behind for the next start to trip over.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // What notification knows about each application, from `application.submitted`, so
        // that later events (which carry only the id) can address the applicant.
        manager
            .create_table(
                Table::create()
                    .table(ApplicationFacts::Table)
                    .col(text(ApplicationFacts::ApplicationId).primary_key())
                    .col(text(ApplicationFacts::CreditCode))
                    .col(text(ApplicationFacts::ContactEmail))
                    .col(text(ApplicationFacts::Locale))
                    .col(text(ApplicationFacts::MatterCode))
                    .col(text(ApplicationFacts::ProjectName))
                    .col(millis(ApplicationFacts::CreatedMs))
                    .to_owned(),
            )
            .await?;
        // The inbox. `seq` is the global cursor: monotonic, and (see
        // `InboxStore::lock_sequence`) assigned in commit order. `dedup_key` is set for
        // reminders only: one per (recipient, kind, task); NULLs never collide.
        manager
            .create_table(
                Table::create()
                    .table(Notifications::Table)
                    .col(sequence(Notifications::Seq))
                    .col(text(Notifications::NotificationId).unique_key())
                    .col(text(Notifications::EventId))
                    .col(text(Notifications::Recipient))
                    .col(text(Notifications::Kind))
                    .col(text(Notifications::Title))
                    .col(text(Notifications::Body))
                    .col(text(Notifications::Locale))
                    .col(text(Notifications::ApplicationId))
                    .col(text(Notifications::TaskId))
                    .col(text_null(Notifications::DedupKey).unique_key())
                    .col(millis(Notifications::CreatedMs))
                    .col(millis_null(Notifications::ReadMs))
                    .index(
                        Index::create()
                            .unique()
                            .col(Notifications::EventId)
                            .col(Notifications::Recipient),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("notifications_recipient")
                    .table(Notifications::Table)
                    .col(Notifications::Recipient)
                    .col(Notifications::Seq)
                    .to_owned(),
            )
            .await?;
        // E-mails to send: one per notification at most. `send_after_ms` holds reminders
        // back until working time; `next_attempt_ms` is also the claim lease.
        manager
            .create_table(
                Table::create()
                    .table(Emails::Table)
                    .col(text(Emails::NotificationId).primary_key())
                    .col(text(Emails::ToAddr))
                    .col(text(Emails::Subject))
                    .col(text(Emails::Body))
                    .col(millis(Emails::SendAfterMs))
                    .col(millis(Emails::NextAttemptMs))
                    .col(integer(Emails::Attempts))
                    .col(millis_null(Emails::SentMs))
                    .col(millis_null(Emails::FailedMs))
                    .col(text_null(Emails::LastError))
                    .to_owned(),
            )
            .await?;
        // Partial index: the sender only ever looks for open rows, which are few.
        manager
            .create_index(
                Index::create()
                    .name("emails_due")
                    .table(Emails::Table)
                    .col(Emails::NextAttemptMs)
                    .and_where(Expr::col(Emails::SentMs).is_null())
                    .and_where(Expr::col(Emails::FailedMs).is_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Webhooks::Table)
                    .col(text(Webhooks::WebhookId).primary_key())
                    .col(text(Webhooks::Url))
                    .col(text(Webhooks::EventTypes))
                    .col(text(Webhooks::Secret))
                    .col(text(Webhooks::CreatedBy))
                    .col(millis(Webhooks::CreatedMs))
                    .to_owned(),
            )
            .await?;
        // One row per (webhook, event); the body is fixed when queued so that every retry
        // sends (and signs) the same bytes.
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(text(WebhookDeliveries::DeliveryId).primary_key())
                    .col(text(WebhookDeliveries::WebhookId))
                    .col(text(WebhookDeliveries::EventId))
                    .col(text(WebhookDeliveries::Body))
                    .col(integer(WebhookDeliveries::Attempts))
                    .col(millis(WebhookDeliveries::NextAttemptMs))
                    .col(millis_null(WebhookDeliveries::DeliveredMs))
                    .col(millis_null(WebhookDeliveries::FailedMs))
                    .col(text_null(WebhookDeliveries::LastError))
                    .index(
                        Index::create()
                            .unique()
                            .col(WebhookDeliveries::WebhookId)
                            .col(WebhookDeliveries::EventId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("webhook_deliveries_due")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::NextAttemptMs)
                    .and_where(Expr::col(WebhookDeliveries::DeliveredMs).is_null())
                    .and_where(Expr::col(WebhookDeliveries::FailedMs).is_null())
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            &[
                "webhook_deliveries",
                "webhooks",
                "emails",
                "notifications",
                "application_facts",
            ],
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{Database, EntityTrait};

    use super::*;
    use crate::entity::{application_fact, email, notification, webhook, webhook_delivery};

    #[tokio::test]
    async fn migrates_up_down_and_up_again() -> anyhow::Result<()> {
        let db = Database::connect("sqlite::memory:").await?;
        Migrator::up(&db, None).await?;
        assert!(notification::Entity::find().all(&db).await?.is_empty());
        assert!(webhook::Entity::find().all(&db).await?.is_empty());
        // The last migration adds the retry windows' start: without it neither queue's entity
        // reads.
        Migrator::down(&db, Some(1)).await?;
        assert!(email::Entity::find().all(&db).await.is_err());
        assert!(webhook_delivery::Entity::find().all(&db).await.is_err());
        Migrator::up(&db, None).await?;
        assert!(email::Entity::find().all(&db).await?.is_empty());
        Migrator::down(&db, Some(1)).await?;
        // The one before adds the parked events.
        assert!(
            tongban_outbox::parked::entity::Entity::find()
                .all(&db)
                .await?
                .is_empty()
        );
        Migrator::down(&db, Some(1)).await?;
        assert!(
            tongban_outbox::parked::entity::Entity::find()
                .all(&db)
                .await
                .is_err()
        );
        // The one before adds the webhook deliveries' trace context: without it that
        // entity no longer reads.
        Migrator::down(&db, Some(1)).await?;
        assert!(webhook_delivery::Entity::find().all(&db).await.is_err());
        assert!(webhook::Entity::find().all(&db).await.is_ok());
        // The one before adds the webhook owner columns: without them the entity no longer
        // reads.
        Migrator::down(&db, Some(1)).await?;
        assert!(webhook::Entity::find().all(&db).await.is_err());
        // The one before is the audit log's tables.
        Migrator::down(&db, Some(1)).await?;
        assert!(tongban_audit::chains(&db).await.is_err());
        // The one before adds webhooks.request_id: without it the entity no longer reads.
        Migrator::down(&db, Some(1)).await?;
        assert!(webhook::Entity::find().all(&db).await.is_err());
        assert!(notification::Entity::find().all(&db).await?.is_empty());
        Migrator::down(&db, Some(1)).await?;
        assert!(notification::Entity::find().all(&db).await.is_err());
        Migrator::up(&db, None).await?;
        assert!(application_fact::Entity::find().all(&db).await?.is_empty());
        assert!(email::Entity::find().all(&db).await?.is_empty());
        assert!(webhook::Entity::find().all(&db).await?.is_empty());
        assert!(webhook_delivery::Entity::find().all(&db).await?.is_empty());
        Ok(())
    }
}
