//! The matter definitions intake validates against: a [`Registry`] over intake's own `matters`
//! table. It loads `deploy/matters/` at start, takes in `definition.published` events (handled
//! by one replica, which writes the table) and, on every replica, keeps up with the table
//! through [`Matters::keep_fresh`], so each replica converges on what was published.

use std::{future::Future, ops::Deref, path::Path, sync::Arc, time::Duration};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use tongban_matter::{DefinitionStore, Departments, MatterDefinition, Registry};

use crate::repository::MatterStore;

/// Intake's registry of matter definitions.
pub struct Matters {
    registry: Arc<Registry>,
}

impl Matters {
    /// Loads `dir` and everything stored (see [`Registry::load`]).
    pub async fn load(
        db: &DatabaseConnection,
        dir: &Path,
        departments: Departments,
    ) -> anyhow::Result<Self> {
        let registry = Registry::load(&MattersTable(db), dir, departments).await?;
        Ok(Self {
            registry: Arc::new(registry),
        })
    }

    /// The registry itself, for what this wrapper does not cover.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Parses a published definition; an invalid one is logged and ignored (the publisher
    /// validated it with the same code).
    pub fn parse(&self, source: &str, origin: &str) -> Option<MatterDefinition> {
        match self.registry.parse(source, origin) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(%origin, error = %e, "published definition does not load here");
                None
            }
        }
    }

    /// Records a published definition in the `matters` table through `conn` (the event's
    /// transaction) and makes it available on this replica; the others load it on their next
    /// refresh.
    pub async fn publish<C: ConnectionTrait>(
        &self,
        conn: &C,
        def: MatterDefinition,
    ) -> Result<Arc<MatterDefinition>, DbErr> {
        self.registry.publish(&MattersTable(conn), def).await
    }

    /// The latest version of `code`.
    pub fn latest(&self, code: &str) -> Option<Arc<MatterDefinition>> {
        self.registry.latest(code.trim())
    }

    /// The latest version of every matter, by code.
    pub fn all_latest(&self) -> Vec<Arc<MatterDefinition>> {
        self.registry.all_latest()
    }

    /// Reloads the `matters` table every `every` until `shutdown`: spawn it on the service's
    /// task set.
    pub fn keep_fresh(
        &self,
        db: DatabaseConnection,
        every: Duration,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        self.registry
            .clone()
            .keep_fresh(MattersTable(Arc::new(db)), every, shutdown)
    }
}

/// The `matters` table as a [`DefinitionStore`], over anything that dereferences to a
/// connection: `&DatabaseTransaction` inside a transaction, `Arc<DatabaseConnection>` to own one.
pub struct MattersTable<C>(pub C);

impl<C> DefinitionStore for MattersTable<C>
where
    C: Deref + Send + Sync,
    C::Target: ConnectionTrait + Sized,
{
    type Error = DbErr;

    async fn versions(&self) -> Result<Vec<(String, u32)>, DbErr> {
        (*self.0).matter_versions().await
    }

    async fn source(&self, code: &str, version: u32) -> Result<Option<String>, DbErr> {
        (*self.0).matter_source(code, version).await
    }

    async fn save(&self, def: &MatterDefinition) -> Result<(), DbErr> {
        (*self.0)
            .save_matter(&def.code, def.version, &def.source)
            .await
    }
}
