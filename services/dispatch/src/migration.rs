//! Dispatch's schema: the application snapshots, events parked until their application is
//! known, the delivery ledger, the departments in each application's workflow, plus the shared outbox and inbox.
//!
//! Ledger times are epoch milliseconds (`BIGINT`) on both engines, so that due-row queries
//! compare numbers, never engine-specific timestamp text. The names below are this
//! migration's own, frozen with it; the entities in [`crate::entity`] may move on.

use sea_orm_migration::{prelude::*, schema::*};
use tongban_storage::schema::{bytes, drop_tables, millis, millis_null};

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(tongban_outbox::migration::OutboxInbox),
            Box::new(Ledger),
            Box::new(tongban_audit::migration::AuditLog),
            Box::new(tongban_involved::Migration::named(
                "m20261201_000005_dispatch_application_departments",
            )),
            Box::new(DeliveryTraceparent),
            Box::new(OrderedLedger),
            Box::new(WaitingIndex),
        ]
    }
}

struct Ledger;

/// The ledger keeps what a delivery is about, not what it looked like once mapped:
/// - `deliveries.document`: the canonical document (the mapping's input), mapped again at every
///   attempt, so a replay after a mapping fix sends the fixed body. Rows written before it have
///   none and are sent with their stored `payload`.
/// - `deliveries.receipt`: what the platform's reply says it filed the delivery as.
/// - `deliveries_order`: per-application order per platform, which every claim checks.
struct OrderedLedger;

impl MigrationName for OrderedLedger {
    fn name(&self) -> &str {
        "m20261202_000007_dispatch_ordered_ledger"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for OrderedLedger {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        for column in ["document", "receipt"] {
            if !manager.has_column("deliveries", column).await? {
                conn.execute_unprepared(&format!(
                    "ALTER TABLE deliveries ADD COLUMN {column} TEXT"
                ))
                .await?;
            }
        }
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("deliveries_order")
                    .table("deliveries")
                    .col("platform_id")
                    .col("application_id")
                    .col("event_id")
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        conn.execute_unprepared("DROP INDEX IF EXISTS deliveries_order")
            .await?;
        for column in ["document", "receipt"] {
            conn.execute_unprepared(&format!("ALTER TABLE deliveries DROP COLUMN {column}"))
                .await?;
        }
        Ok(())
    }
}

/// `deliveries_waiting`: the rows that hold their application's later rows back (pending or
/// dead-lettered), by platform, application and event. Every claim asks, for each candidate,
/// for the earliest of these; this partial index answers that with one probe, whatever the
/// planner's statistics say. Without it PostgreSQL, misled by statistics taken while almost
/// every row had succeeded, compared each candidate with every pending row of the platform
/// (a claim took 650 ms with 900 rows waiting).
struct WaitingIndex;

/// The statuses that hold later rows back, as SQL literals. A partial index is used only for
/// a query that names the same literal values (neither engine can prove it from parameters).
pub(crate) const WAITING_STATUSES: &str = "('PENDING', 'DEAD_LETTERED')";

impl MigrationName for WaitingIndex {
    fn name(&self) -> &str {
        "m20261203_000008_dispatch_waiting_index"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for WaitingIndex {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS deliveries_waiting \
                 ON deliveries (platform_id, application_id, event_id) \
                 WHERE status IN {WAITING_STATUSES}"
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS deliveries_waiting")
            .await?;
        Ok(())
    }
}

/// `deliveries.traceparent`: the trace context the row was created in (the consumer's span of
/// the event it delivers), so that every attempt, however much later, joins that trace.
struct DeliveryTraceparent;

impl MigrationName for DeliveryTraceparent {
    fn name(&self) -> &str {
        "m20261201_000006_dispatch_delivery_traceparent"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for DeliveryTraceparent {
    /// In one transaction on SQLite too (sea-orm wraps only PostgreSQL's by default): a process
    /// killed half-way through leaves nothing behind for the next start to trip over.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite runs DDL outside a migration transaction: a process killed right after the
        // ALTER runs this again on restart.
        if !manager.has_column("deliveries", "traceparent").await? {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE deliveries ADD COLUMN traceparent TEXT")
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE deliveries DROP COLUMN traceparent")
            .await?;
        Ok(())
    }
}

impl MigrationName for Ledger {
    fn name(&self) -> &str {
        "m20261126_000004_dispatch_ledger"
    }
}

#[derive(DeriveIden)]
enum Applications {
    Table,
    ApplicationId,
    Snapshot,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ParkedEvents {
    Table,
    EventId,
    ApplicationId,
    Envelope,
    ParkedAt,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    DeliveryId,
    ApplicationId,
    PlatformId,
    EventId,
    EventType,
    IdempotencyKey,
    Status,
    Attempts,
    LastError,
    Payload,
    NextAttemptAt,
    LockedUntil,
    LeaseToken,
    CreatedAt,
    UpdatedAt,
    DeliveredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Ledger {
    /// In one transaction on SQLite too (sea-orm wraps only PostgreSQL's by default): a process
    /// killed half-way through leaves nothing behind for the next start to trip over.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The canonical `application` section as JSON, from `application.submitted`.
        manager
            .create_table(
                Table::create()
                    .table(Applications::Table)
                    .col(text(Applications::ApplicationId).primary_key())
                    .col(text(Applications::Snapshot))
                    .col(millis(Applications::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // Events that arrived before their application's `application.submitted`.
        manager
            .create_table(
                Table::create()
                    .table(ParkedEvents::Table)
                    .col(text(ParkedEvents::EventId).primary_key())
                    .col(text(ParkedEvents::ApplicationId))
                    .col(bytes(ParkedEvents::Envelope))
                    .col(millis(ParkedEvents::ParkedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("parked_events_application")
                    .table(ParkedEvents::Table)
                    .col(ParkedEvents::ApplicationId)
                    .col(ParkedEvents::EventId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Deliveries::Table)
                    .col(text(Deliveries::DeliveryId).primary_key())
                    .col(text(Deliveries::ApplicationId))
                    .col(text(Deliveries::PlatformId))
                    .col(text(Deliveries::EventId))
                    .col(text(Deliveries::EventType))
                    .col(text(Deliveries::IdempotencyKey).unique_key())
                    // `PENDING`, `SUCCEEDED` or `DEAD_LETTERED` (`entity::delivery::Status`).
                    .col(text(Deliveries::Status))
                    .col(big_integer(Deliveries::Attempts))
                    .col(text(Deliveries::LastError))
                    .col(text(Deliveries::Payload))
                    .col(millis(Deliveries::NextAttemptAt))
                    .col(millis_null(Deliveries::LockedUntil))
                    .col(text_null(Deliveries::LeaseToken))
                    .col(millis(Deliveries::CreatedAt))
                    .col(millis(Deliveries::UpdatedAt))
                    .col(millis_null(Deliveries::DeliveredAt))
                    .index(
                        Index::create()
                            .unique()
                            .col(Deliveries::PlatformId)
                            .col(Deliveries::EventId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("deliveries_due")
                    .table(Deliveries::Table)
                    .col(Deliveries::PlatformId)
                    .col(Deliveries::Status)
                    .col(Deliveries::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("deliveries_application")
                    .table(Deliveries::Table)
                    .col(Deliveries::ApplicationId)
                    .col(Deliveries::DeliveryId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["deliveries", "parked_events", "applications"]).await
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Database, EntityTrait};
    use tongban_storage::stmt;

    use super::*;
    use crate::{
        entity::{application, application_department, delivery, parked_event},
        ledger::{DeliveryLedger, Status},
    };

    #[test]
    fn waiting_statuses_are_the_entity_values() {
        use sea_orm::ActiveEnum as _;
        let expected = format!(
            "('{}', '{}')",
            Status::Pending.to_value(),
            Status::DeadLettered.to_value()
        );
        assert_eq!(WAITING_STATUSES, expected);
    }

    #[tokio::test]
    async fn migrates_up_down_and_up_again() -> anyhow::Result<()> {
        let db = Database::connect("sqlite::memory:").await?;
        Migrator::up(&db, None).await?;
        assert!(delivery::Entity::find().all(&db).await?.is_empty());
        assert!(
            application_department::Entity::find()
                .all(&db)
                .await?
                .is_empty()
        );
        // The last migration is the waiting index: without it the ledger still reads and
        // claims, only slower.
        let waiting =
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'deliveries_waiting'";
        let has_waiting = async |db: &sea_orm::DatabaseConnection| -> anyhow::Result<bool> {
            Ok(db
                .query_one_raw(stmt(db.get_database_backend(), waiting, vec![]))
                .await?
                .is_some())
        };
        assert!(has_waiting(&db).await?);
        Migrator::down(&db, Some(1)).await?;
        assert!(!has_waiting(&db).await?);
        assert!(delivery::Entity::find().all(&db).await?.is_empty());
        // The document and receipt columns are the one before: without them the entity no
        // longer reads; nor without the deliveries' trace context, the one before that.
        Migrator::down(&db, Some(1)).await?;
        assert!(delivery::Entity::find().all(&db).await.is_err());
        Migrator::down(&db, Some(1)).await?;
        assert!(delivery::Entity::find().all(&db).await.is_err());
        assert!(
            application_department::Entity::find()
                .all(&db)
                .await
                .is_ok()
        );
        // The workflow departments are the one before.
        Migrator::down(&db, Some(1)).await?;
        assert!(
            application_department::Entity::find()
                .all(&db)
                .await
                .is_err()
        );
        assert!(tongban_audit::chains(&db).await.is_ok());
        // The audit log's tables are the one before.
        Migrator::down(&db, Some(1)).await?;
        assert!(tongban_audit::chains(&db).await.is_err());
        Migrator::down(&db, Some(1)).await?;
        assert!(delivery::Entity::find().all(&db).await.is_err());
        Migrator::up(&db, None).await?;
        assert!(application::Entity::find().all(&db).await?.is_empty());
        assert!(parked_event::Entity::find().all(&db).await?.is_empty());
        assert!(
            application_department::Entity::find()
                .all(&db)
                .await?
                .is_empty()
        );
        Ok(())
    }

    /// Rows written by the raw-SQL ledger (status as its upper-case name) read as typed.
    #[tokio::test]
    async fn rows_written_before_typed_statuses_read_as_typed() -> anyhow::Result<()> {
        let db = Database::connect("sqlite::memory:").await?;
        Migrator::up(&db, None).await?;
        for (id, status) in [
            ("d1", "PENDING"),
            ("d2", "SUCCEEDED"),
            ("d3", "DEAD_LETTERED"),
        ] {
            db.execute_raw(stmt(
                db.get_database_backend(),
                "INSERT INTO deliveries (delivery_id, application_id, platform_id, event_id, event_type, idempotency_key, status, attempts, last_error, payload, next_attempt_at, created_at, updated_at)
                 VALUES (?, 'a', 'p', ?, 't', ?, ?, 0, '', '{}', 0, 0, 0)",
                vec![id.into(), id.into(), id.into(), status.into()],
            ))
        .await?;
        }
        let status = |id: &'static str| {
            let db = &db;
            async move { db.find_delivery(id).await.map(|d| d.map(|d| d.status)) }
        };
        assert_eq!(status("d1").await?, Some(Status::Pending));
        assert_eq!(status("d2").await?, Some(Status::Succeeded));
        assert_eq!(status("d3").await?, Some(Status::DeadLettered));
        assert_eq!(db.replay_dead_letters(Some("p"), None).await?, 1);
        assert_eq!(status("d3").await?, Some(Status::Pending));
        Ok(())
    }
}
