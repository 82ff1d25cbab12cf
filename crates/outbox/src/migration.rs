//! The `outbox` and `inbox` tables; every service lists this migration in its own migrator.
//! The names below are this migration's own, frozen with it.

use sea_orm_migration::{prelude::*, schema::*};
use tongban_storage::schema::{bytes, drop_tables, instant, sequence};

/// Creates `outbox` and `inbox`.
pub struct OutboxInbox;

impl MigrationName for OutboxInbox {
    fn name(&self) -> &str {
        "m20261126_000001_outbox_inbox"
    }
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Seq,
    EventId,
    RoutingKey,
    ApplicationId,
    Payload,
    Traceparent,
    CreatedAt,
    PublishedAt,
}

#[derive(DeriveIden)]
enum Inbox {
    Table,
    Consumer,
    EventId,
    ProcessedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for OutboxInbox {
    /// In one transaction on SQLite too (sea-orm wraps only PostgreSQL's by default): a process
    /// killed half-way through leaves nothing behind for the next start to trip over.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(sequence(Outbox::Seq))
                    .col(text(Outbox::EventId).unique_key())
                    .col(text(Outbox::RoutingKey))
                    .col(text(Outbox::ApplicationId))
                    .col(bytes(Outbox::Payload))
                    .col(text_null(Outbox::Traceparent))
                    .col(instant(Outbox::CreatedAt))
                    .col(timestamp_with_time_zone_null(Outbox::PublishedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Inbox::Table)
                    .col(text(Inbox::Consumer))
                    .col(text(Inbox::EventId))
                    .col(instant(Inbox::ProcessedAt))
                    .primary_key(Index::create().col(Inbox::Consumer).col(Inbox::EventId))
                    .to_owned(),
            )
            .await?;
        // Partial index: the relay only ever looks for unpublished rows, which are few.
        manager
            .create_index(
                Index::create()
                    .name("outbox_pending")
                    .table(Outbox::Table)
                    .col(Outbox::Seq)
                    .and_where(Expr::col(Outbox::PublishedAt).is_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("inbox_processed_at")
                    .table(Inbox::Table)
                    .col(Inbox::ProcessedAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["inbox", "outbox"]).await
    }
}
