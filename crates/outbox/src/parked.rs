//! Parked events: events about an application that arrive before the event that creates it
//! there (its `application.submitted`), kept until it does and then applied in order.
//!
//! The relay publishes each service's outbox in order, but events from different producers
//! interleave, and a nacked event comes back after later ones, so a consumer can see a
//! withdrawal or an approval before the submission. Dropping it loses it; nacking it again
//! and again spends the delivery limit. Parking keeps it in the consumer's own database, in
//! the consumer's transaction, so the inbox still makes a redelivery a no-op.
//!
//! - [`entity`]: the `parked_events` table (one per service database);
//! - [`ParkedEvents`]: park, unpark (oldest first) and the per-application lock that keeps a
//!   park and the submission's unpark from passing each other on two replicas;
//! - [`Migration`]: creates the table, under the name each service gives it;
//! - pruning of events parked past the retention: [`crate::prune::ParkedPruner`].

use std::future::Future;

use prost::Message;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, sea_query::OnConflict,
};
use tongban_proto::events::Envelope;
use tongban_storage::{now_ms, stmt};

/// `parked_events`, as a sea-orm entity.
pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "parked_events")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub event_id: String,
        pub application_id: String,
        /// The encoded `Envelope`.
        pub envelope: Vec<u8>,
        /// Unix milliseconds.
        pub parked_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `parked_events` table.
pub trait ParkedEvents {
    /// Serialises, until the transaction ends, every transaction that parks or unparks events
    /// of `application_id` (a PostgreSQL advisory lock; SQLite has one writer anyway). Without
    /// it, on two replicas, an event could be parked after the submission looked for parked
    /// events and before it committed, and would wait forever. Take it before deciding
    /// whether the application is known.
    fn lock_application(
        &self,
        application_id: &str,
    ) -> impl Future<Output = Result<(), DbErr>> + Send;

    /// Keeps an event whose application is not known yet (a second park of the same event
    /// changes nothing).
    fn park(&self, event: &Envelope) -> impl Future<Output = Result<(), DbErr>> + Send;

    /// Removes and returns the events parked for `application_id`, oldest (by event id, which
    /// is time-ordered) first.
    fn unpark(
        &self,
        application_id: &str,
    ) -> impl Future<Output = Result<Vec<Envelope>, DbErr>> + Send;
}

impl<C: ConnectionTrait> ParkedEvents for C {
    async fn lock_application(&self, application_id: &str) -> Result<(), DbErr> {
        if self.get_database_backend() == DbBackend::Postgres {
            self.execute_raw(stmt(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock(hashtextextended('parked:' || CAST(? AS TEXT), 0))",
                vec![application_id.into()],
            ))
            .await?;
        }
        Ok(())
    }

    async fn park(&self, event: &Envelope) -> Result<(), DbErr> {
        entity::Entity::insert(entity::ActiveModel {
            event_id: Set(event.event_id.clone()),
            application_id: Set(event.application_id.clone()),
            envelope: Set(event.encode_to_vec()),
            parked_at: Set(now_ms()),
        })
        .on_conflict(
            OnConflict::column(entity::Column::EventId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(self)
        .await?;
        Ok(())
    }

    async fn unpark(&self, application_id: &str) -> Result<Vec<Envelope>, DbErr> {
        let rows = entity::Entity::find()
            .filter(entity::Column::ApplicationId.eq(application_id))
            .order_by_asc(entity::Column::EventId)
            .all(self)
            .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            match Envelope::decode(r.envelope.as_slice()) {
                Ok(e) => out.push(e),
                Err(e) => {
                    tracing::error!(event_id = %r.event_id, error = %e, "undecodable parked event dropped")
                }
            }
        }
        entity::Entity::delete_many()
            .filter(entity::Column::ApplicationId.eq(application_id))
            .exec(self)
            .await?;
        Ok(out)
    }
}

/// Creates `parked_events` (if it is not there yet) under the name the service gives it.
pub struct Migration {
    name: &'static str,
}

impl Migration {
    pub const fn named(name: &'static str) -> Self {
        Self { name }
    }
}

impl sea_orm_migration::MigrationName for Migration {
    fn name(&self) -> &str {
        self.name
    }
}

/// The migration's own names, frozen with it.
mod schema {
    #[derive(sea_orm_migration::prelude::DeriveIden)]
    pub(super) enum ParkedEvents {
        Table,
        EventId,
        ApplicationId,
        Envelope,
        ParkedAt,
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl sea_orm_migration::MigrationTrait for Migration {
    /// In one transaction on SQLite too (sea-orm wraps only PostgreSQL's by default).
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &sea_orm_migration::SchemaManager) -> Result<(), DbErr> {
        use crate::parked::schema::ParkedEvents as T;
        use sea_orm_migration::{prelude::*, schema::text};
        use tongban_storage::schema::{bytes, millis};
        manager
            .create_table(
                Table::create()
                    .table(T::Table)
                    .if_not_exists()
                    .col(text(T::EventId).primary_key())
                    .col(text(T::ApplicationId))
                    .col(bytes(T::Envelope))
                    .col(millis(T::ParkedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("parked_events_application")
                    .table(T::Table)
                    .col(T::ApplicationId)
                    .col(T::EventId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &sea_orm_migration::SchemaManager) -> Result<(), DbErr> {
        tongban_storage::schema::drop_tables(manager, &["parked_events"]).await
    }
}
