//! The workflow definitions approval runs: loaded from `deploy/matters/` at start, published
//! over gRPC by an admin, all remembered in the `definitions` table. Instances are pinned to a
//! (code, version), so every version stays available.
//!
//! The in-memory map is a cache of the table: a version published through another replica is
//! read from the table on first use.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, RwLock},
};

use sea_orm::ConnectionTrait;
use tongban_matter::{DefinitionError, Departments, MatterDefinition};

use crate::repository::{self, StoredDefinition};

type ByCode = BTreeMap<String, BTreeMap<u32, Arc<MatterDefinition>>>;

pub struct Definitions {
    departments: Departments,
    by_code: RwLock<ByCode>,
}

impl Definitions {
    pub async fn load<C: ConnectionTrait>(
        db: &C,
        dir: &Path,
        departments: Departments,
    ) -> anyhow::Result<Self> {
        let this = Self {
            departments,
            by_code: RwLock::new(BTreeMap::new()),
        };
        let now = repository::ms(chrono::Utc::now());
        for def in tongban_matter::load_dir(dir, &this.departments)? {
            let stored = StoredDefinition {
                code: def.code.clone(),
                version: def.version,
                name: def.name.clone(),
                source: def.source.clone(),
                published_at: now,
                published_by: "deploy".into(),
                request_id: String::new(),
            };
            repository::save_definition(db, &stored).await?;
            this.insert(def);
        }
        for d in repository::definitions(db, None).await? {
            match this.parse(
                &d.source,
                &format!("stored definition {} v{}", d.code, d.version),
            ) {
                Ok(def) => {
                    this.insert(def);
                }
                Err(e) => {
                    tracing::warn!(code = %d.code, version = d.version, error = %e, "stored definition no longer loads; skipped")
                }
            }
        }
        Ok(this)
    }

    pub fn departments(&self) -> &Departments {
        &self.departments
    }

    pub fn parse(&self, source: &str, origin: &str) -> Result<MatterDefinition, DefinitionError> {
        MatterDefinition::parse(source, origin, &self.departments)
    }

    pub fn insert(&self, def: MatterDefinition) -> Arc<MatterDefinition> {
        let def = Arc::new(def);
        let mut map = self.by_code.write().unwrap_or_else(|p| p.into_inner());
        map.entry(def.code.clone())
            .or_default()
            .insert(def.version, def.clone());
        def
    }

    fn cached(&self, code: &str, version: Option<u32>) -> Option<Arc<MatterDefinition>> {
        let map = self.by_code.read().unwrap_or_else(|p| p.into_inner());
        let versions = map.get(code)?;
        match version {
            Some(v) => versions.get(&v).cloned(),
            None => versions.values().next_back().cloned(),
        }
    }

    /// Exactly `code` v`version`, from the cache or the table.
    pub async fn get<C: ConnectionTrait>(
        &self,
        db: &C,
        code: &str,
        version: u32,
    ) -> Option<Arc<MatterDefinition>> {
        if let Some(d) = self.cached(code, Some(version)) {
            return Some(d);
        }
        self.refresh(db, code).await;
        self.cached(code, Some(version))
    }

    /// The latest known version of `code`.
    pub async fn latest<C: ConnectionTrait>(
        &self,
        db: &C,
        code: &str,
    ) -> Option<Arc<MatterDefinition>> {
        self.refresh(db, code).await;
        self.cached(code, None)
    }

    /// Loads versions of `code` another replica may have published.
    async fn refresh<C: ConnectionTrait>(&self, db: &C, code: &str) {
        let stored = match repository::definitions(db, Some(code)).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%code, error = %e, "reading definitions failed; using the cache");
                return;
            }
        };
        for d in stored {
            if self.cached(&d.code, Some(d.version)).is_none()
                && let Ok(def) = self.parse(
                    &d.source,
                    &format!("stored definition {} v{}", d.code, d.version),
                )
            {
                self.insert(def);
            }
        }
    }
}
