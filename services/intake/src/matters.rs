//! The matter definitions intake validates against: loaded from `deploy/matters/` at start,
//! extended by `definition.published` events, and remembered in the `matters` table so that a
//! definition published over gRPC survives a restart.

use std::{collections::BTreeMap, path::Path, sync::RwLock};

use sea_orm::DatabaseConnection;
use tongban_matter::{Departments, MatterDefinition};

use crate::repository::MatterStore;

pub struct Matters {
    departments: Departments,
    /// code → version → definition.
    by_code: RwLock<BTreeMap<String, BTreeMap<u32, std::sync::Arc<MatterDefinition>>>>,
}

impl Matters {
    pub async fn load(
        db: &DatabaseConnection,
        dir: &Path,
        departments: Departments,
    ) -> anyhow::Result<Self> {
        let this = Self {
            departments,
            by_code: RwLock::new(BTreeMap::new()),
        };
        for def in tongban_matter::load_dir(dir, &this.departments)? {
            db.save_matter(&def.code, def.version, &def.source).await?;
            this.insert(def);
        }
        for (code, source) in db.matter_sources().await? {
            match MatterDefinition::parse(
                &source,
                &format!("stored definition {code}"),
                &this.departments,
            ) {
                Ok(def) => this.insert(def),
                Err(e) => {
                    tracing::warn!(%code, error = %e, "stored matter definition no longer loads; skipped")
                }
            }
        }
        Ok(this)
    }

    pub fn insert(&self, def: MatterDefinition) {
        let mut map = self.by_code.write().unwrap_or_else(|p| p.into_inner());
        map.entry(def.code.clone())
            .or_default()
            .insert(def.version, std::sync::Arc::new(def));
    }

    /// Parses a published definition; an invalid one is logged and ignored (the publisher
    /// validated it with the same code).
    pub fn parse(&self, source: &str, origin: &str) -> Option<MatterDefinition> {
        match MatterDefinition::parse(source, origin, &self.departments) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(%origin, error = %e, "published definition does not load here");
                None
            }
        }
    }

    /// The latest version of `code`.
    pub fn latest(&self, code: &str) -> Option<std::sync::Arc<MatterDefinition>> {
        let map = self.by_code.read().unwrap_or_else(|p| p.into_inner());
        map.get(code.trim())
            .and_then(|v| v.values().next_back().cloned())
    }

    /// The latest version of every matter, by code.
    pub fn all_latest(&self) -> Vec<std::sync::Arc<MatterDefinition>> {
        let map = self.by_code.read().unwrap_or_else(|p| p.into_inner());
        map.values()
            .filter_map(|v| v.values().next_back().cloned())
            .collect()
    }
}
