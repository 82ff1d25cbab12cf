//! Intake's schema: its own tables plus the shared outbox and inbox. The names below are this
//! migration's own, frozen with it; the entities in [`crate::entity`] may move on.

use sea_orm_migration::{prelude::*, schema::*};
use tongban_storage::schema::{bytes, drop_tables, instant};

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(tongban_outbox::migration::OutboxInbox),
            Box::new(IntakeTables),
        ]
    }
}

struct IntakeTables;

impl MigrationName for IntakeTables {
    fn name(&self) -> &str {
        "m20261126_000002_intake_applications"
    }
}

#[derive(DeriveIden)]
enum Applications {
    Table,
    ApplicationId,
    RequestId,
    Fingerprint,
    MatterCode,
    CreditCode,
    RegionCode,
    Status,
    Version,
    Body,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Matters {
    Table,
    Code,
    Version,
    Source,
    LoadedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for IntakeTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The application document is stored whole (`body`, the encoded protobuf); the other
        // columns exist to be filtered, sorted and constrained on.
        manager
            .create_table(
                Table::create()
                    .table(Applications::Table)
                    .col(text(Applications::ApplicationId).primary_key())
                    .col(text(Applications::RequestId).unique_key())
                    .col(text(Applications::Fingerprint))
                    .col(text(Applications::MatterCode))
                    .col(text(Applications::CreditCode))
                    .col(text(Applications::RegionCode))
                    // The proto value name (`entity::application::Status`).
                    .col(text(Applications::Status))
                    .col(big_integer(Applications::Version))
                    .col(bytes(Applications::Body))
                    .col(instant(Applications::CreatedAt))
                    .col(instant(Applications::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("applications_credit")
                    .table(Applications::Table)
                    .col(Applications::CreditCode)
                    .col(Applications::ApplicationId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("applications_status")
                    .table(Applications::Table)
                    .col(Applications::Status)
                    .col(Applications::ApplicationId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Matters::Table)
                    .col(text(Matters::Code))
                    .col(integer(Matters::Version))
                    .col(text(Matters::Source))
                    .col(instant(Matters::LoadedAt))
                    .primary_key(Index::create().col(Matters::Code).col(Matters::Version))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["matters", "applications"]).await
    }
}
