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
            Box::new(tongban_audit::migration::AuditLog),
            Box::new(CreditColumns),
            Box::new(tongban_involved::Migration::named(
                "m20261201_000004_intake_application_departments",
            )),
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
    /// In one transaction on SQLite too (sea-orm wraps only PostgreSQL's by default): a process
    /// killed half-way through leaves nothing behind for the next start to trip over.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
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

/// The credit class intake looked up at submission, with its source and time (issue 9): facts
/// from the credit registry, kept beside the application for filtering and audit.
struct CreditColumns;

impl MigrationName for CreditColumns {
    fn name(&self) -> &str {
        "m20261130_000003_intake_credit"
    }
}

#[derive(DeriveIden)]
enum CreditCols {
    #[sea_orm(iden = "applications")]
    Table,
    CreditClass,
    CreditSource,
    CreditCheckedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for CreditColumns {
    /// In one transaction on SQLite too (sea-orm wraps only PostgreSQL's by default): a process
    /// killed half-way through leaves nothing behind for the next start to trip over.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time. Nullable, since
        // applications accepted before this migration were never looked up.
        for col in [
            text_null(CreditCols::CreditClass),
            text_null(CreditCols::CreditSource),
            timestamp_with_time_zone_null(CreditCols::CreditCheckedAt),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(CreditCols::Table)
                        .add_column(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in [
            CreditCols::CreditCheckedAt,
            CreditCols::CreditSource,
            CreditCols::CreditClass,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(CreditCols::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Database, EntityTrait};
    use tongban_proto::intake::{Application, ApplicationStatus};

    use super::*;
    use crate::{
        entity::{application, application_department, matter},
        repository::{ApplicationStore, ListFilter},
    };

    #[tokio::test]
    async fn migrates_up_down_and_up_again() -> anyhow::Result<()> {
        let db = Database::connect("sqlite::memory:").await?;
        Migrator::up(&db, None).await?;
        assert!(application::Entity::find().all(&db).await?.is_empty());
        assert!(
            application_department::Entity::find()
                .all(&db)
                .await?
                .is_empty()
        );
        // The last migration adds the workflow departments.
        Migrator::down(&db, Some(1)).await?;
        assert!(
            application_department::Entity::find()
                .all(&db)
                .await
                .is_err()
        );
        assert!(application::Entity::find().all(&db).await?.is_empty());
        // The one before adds the credit columns: without them the entity no longer reads.
        Migrator::down(&db, Some(1)).await?;
        assert!(application::Entity::find().all(&db).await.is_err());
        // The one before is the audit log's tables.
        Migrator::down(&db, Some(1)).await?;
        assert!(tongban_audit::chains(&db).await.is_err());
        assert!(matter::Entity::find().all(&db).await?.is_empty());
        Migrator::down(&db, Some(1)).await?;
        assert!(matter::Entity::find().all(&db).await.is_err());
        Migrator::up(&db, None).await?;
        assert!(matter::Entity::find().all(&db).await?.is_empty());
        assert!(
            application_department::Entity::find()
                .all(&db)
                .await?
                .is_empty()
        );
        Ok(())
    }

    /// Rows written by the raw-SQL repository (status as the proto value name) are found by
    /// the typed status filter.
    #[tokio::test]
    async fn rows_written_before_typed_statuses_filter_as_typed() -> anyhow::Result<()> {
        let db = Database::connect("sqlite::memory:").await?;
        Migrator::up(&db, None).await?;
        let app = Application {
            application_id: "a1".into(),
            request_id: "r1".into(),
            status: ApplicationStatus::InReview as i32,
            ..Default::default()
        };
        db.execute_raw(tongban_storage::stmt(
            db.get_database_backend(),
            "INSERT INTO applications (application_id, request_id, fingerprint, matter_code, credit_code, region_code, status, version, body, created_at, updated_at)
             VALUES ('a1', 'r1', 'f', 'm', 'c', '350100', ?, 1, ?, ?, ?)",
            vec![
                ApplicationStatus::InReview.as_str_name().into(),
                prost::Message::encode_to_vec(&app).into(),
                chrono::Utc::now().into(),
                chrono::Utc::now().into(),
            ],
        ))
        .await?;
        let listed = |status| {
            let db = &db;
            async move {
                db.list_applications(&ListFilter {
                    status: Some(status),
                    limit: 10,
                    ..Default::default()
                })
                .await
                .map(|apps| apps.len())
            }
        };
        assert_eq!(listed(ApplicationStatus::InReview).await?, 1);
        assert_eq!(listed(ApplicationStatus::Submitted).await?, 0);
        let stored = db
            .find_application("a1")
            .await?
            .ok_or_else(|| anyhow::anyhow!("a1 not found"))?;
        assert_eq!(stored.fingerprint, "f");
        assert_eq!(stored.application.status(), ApplicationStatus::InReview);
        Ok(())
    }
}
