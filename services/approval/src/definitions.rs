//! The workflow definitions approval runs: a [`Registry`] over approval's own `definitions`
//! table. It loads `deploy/matters/` at start; an admin publishes over gRPC (through one
//! replica). Instances are pinned to a (code, version), so every version stays available: one
//! this replica lacks is read from the table on first use, and [`Definitions::keep_fresh`]
//! reloads the table on every replica so that "the latest version" converges too.

use std::{future::Future, ops::Deref, path::Path, sync::Arc, time::Duration};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use tongban_matter::{DefinitionError, DefinitionStore, Departments, MatterDefinition, Registry};
use tongban_storage::stmt;

use crate::repository::{self, StoredDefinition};

/// Approval's registry of definitions. Clones share one registry.
#[derive(Clone)]
pub struct Definitions {
    registry: Arc<Registry>,
}

impl Definitions {
    /// Loads `dir` and everything stored (see [`Registry::load`]).
    pub async fn load<C: ConnectionTrait>(
        db: &C,
        dir: &Path,
        departments: Departments,
    ) -> anyhow::Result<Self> {
        let registry = Registry::load(&DefinitionsTable(db), dir, departments).await?;
        Ok(Self {
            registry: Arc::new(registry),
        })
    }

    /// The registry itself, for what this wrapper does not cover.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn departments(&self) -> &Departments {
        self.registry.departments()
    }

    pub fn parse(&self, source: &str, origin: &str) -> Result<MatterDefinition, DefinitionError> {
        self.registry.parse(source, origin)
    }

    /// Makes a definition just stored (by the caller, in its transaction) available here.
    pub fn insert(&self, def: MatterDefinition) -> Arc<MatterDefinition> {
        self.registry.insert(def)
    }

    /// Exactly `code` v`version`, from memory or the table (read through `db`, which may be
    /// the caller's transaction). A failed read is logged and counts as not found.
    pub async fn get<C: ConnectionTrait>(
        &self,
        db: &C,
        code: &str,
        version: u32,
    ) -> Option<Arc<MatterDefinition>> {
        match self
            .registry
            .get(&DefinitionsTable(db), code, version)
            .await
        {
            Ok(def) => def,
            Err(e) => {
                tracing::warn!(%code, version, error = %e, "reading a definition failed");
                None
            }
        }
    }

    /// The latest version of `code`, after loading what other replicas published.
    pub async fn latest<C: ConnectionTrait>(
        &self,
        db: &C,
        code: &str,
    ) -> Option<Arc<MatterDefinition>> {
        if let Err(e) = self.registry.refresh(&DefinitionsTable(db)).await {
            tracing::warn!(%code, error = %e, "reading definitions failed; using memory");
        }
        self.registry.latest(code)
    }

    /// Reloads the `definitions` table every `every` until `shutdown`: spawn it on the
    /// service's task set.
    pub fn keep_fresh(
        &self,
        db: DatabaseConnection,
        every: Duration,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        self.registry
            .clone()
            .keep_fresh(DefinitionsTable(Arc::new(db)), every, shutdown)
    }
}

/// The `definitions` table as a [`DefinitionStore`], over anything that dereferences to a
/// connection: `&DatabaseTransaction` inside a transaction, `Arc<DatabaseConnection>` to own one.
/// What it saves is recorded as published by `deploy` (the files loaded at start); an admin's
/// publish writes its own row, naming the admin.
pub struct DefinitionsTable<C>(pub C);

impl<C> DefinitionStore for DefinitionsTable<C>
where
    C: Deref + Send + Sync,
    C::Target: ConnectionTrait + Sized,
{
    type Error = DbErr;

    async fn versions(&self) -> Result<Vec<(String, u32)>, DbErr> {
        let conn = &*self.0;
        let rows = conn
            .query_all_raw(stmt(
                conn.get_database_backend(),
                "SELECT code, version FROM definitions ORDER BY code, version",
                vec![],
            ))
            .await?;
        rows.iter()
            .map(|r| {
                let version: i64 = r.try_get("", "version")?;
                let version = u32::try_from(version).map_err(|_| {
                    DbErr::Type(format!("definition version {version} out of range"))
                })?;
                Ok((r.try_get("", "code")?, version))
            })
            .collect()
    }

    async fn source(&self, code: &str, version: u32) -> Result<Option<String>, DbErr> {
        let conn = &*self.0;
        let row = conn
            .query_one_raw(stmt(
                conn.get_database_backend(),
                "SELECT source FROM definitions WHERE code = ? AND version = ?",
                vec![code.into(), i64::from(version).into()],
            ))
            .await?;
        row.map(|r| r.try_get("", "source")).transpose()
    }

    async fn save(&self, def: &MatterDefinition) -> Result<(), DbErr> {
        let stored = StoredDefinition {
            code: def.code.clone(),
            version: def.version,
            name: def.name.clone(),
            source: def.source.clone(),
            published_at: repository::ms(chrono::Utc::now()),
            published_by: "deploy".into(),
            request_id: String::new(),
        };
        repository::save_definition(&*self.0, &stored).await?;
        Ok(())
    }
}
