//! The definition registry: every version of every matter a service knows, shared by intake and
//! approval, each over its own table, and kept current on every replica (see [`Registry`]).

use std::{
    collections::{BTreeMap, BTreeSet},
    future::Future,
    path::Path,
    sync::{Arc, RwLock},
    time::Duration,
};

use crate::{DefinitionError, Departments, MatterDefinition, load_dir};

/// How often [`Registry::keep_fresh`] lists the store by default.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(5);

/// A service's table of definition sources. Each service implements it on the table it owns
/// (intake: `matters`, approval: `definitions`), usually over the connection or transaction the
/// caller is already using.
pub trait DefinitionStore: Send + Sync {
    /// A storage failure.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Every stored `(code, version)`.
    fn versions(&self) -> impl Future<Output = Result<Vec<(String, u32)>, Self::Error>> + Send;

    /// The source text of one stored version, if stored.
    fn source(
        &self,
        code: &str,
        version: u32,
    ) -> impl Future<Output = Result<Option<String>, Self::Error>> + Send;

    /// Stores a definition, unless its code and version are stored already (a stored version
    /// is never replaced).
    fn save(&self, def: &MatterDefinition) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Why the registry could not start.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError<E: std::error::Error + 'static> {
    /// A file of the deploy directory does not load (start-up refuses bad deploy files).
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    /// The store failed.
    #[error("definition store: {0}")]
    Store(#[source] E),
}

type ByCode = BTreeMap<String, BTreeMap<u32, Arc<MatterDefinition>>>;

#[derive(Default)]
struct Cache {
    by_code: ByCode,
    /// Stored versions that do not parse here: warned about once, not read again.
    skipped: BTreeSet<(String, u32)>,
}

/// Every known version of every matter, over a service's [`DefinitionStore`].
///
/// # Mental model
/// The registry is a cache of a [`DefinitionStore`] (a service's own table of definition
/// sources) keyed by code, then version. It starts from the deploy directory (each file saved
/// into the store) and from whatever the store holds (a definition published over gRPC earlier,
/// maybe by another replica). Several replicas share one store, but only one of them handles
/// a given publish, so the others converge in two ways:
/// - an exact `(code, version)` the cache lacks is read from the store on first use
///   ([`Registry::get`]): an instance pinned to a version just published elsewhere finds it;
/// - [`Registry::keep_fresh`] lists the store every few seconds and loads the versions it does
///   not hold yet, so "the latest version of a code" converges too.
///
/// Definitions are immutable once stored, so the cache never evicts or replaces on refresh. A
/// stored definition that no longer parses (say, after a department was removed) is logged
/// once and skipped; the one that published it validated it with the same code.
pub struct Registry {
    departments: Departments,
    cache: RwLock<Cache>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cache = self.read();
        f.debug_struct("Registry")
            .field(
                "versions",
                &cache
                    .by_code
                    .iter()
                    .map(|(code, versions)| (code, versions.keys().collect::<Vec<_>>()))
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// An empty registry; definitions come from [`Self::insert`] and the refresh methods.
    pub fn new(departments: Departments) -> Self {
        Self {
            departments,
            cache: RwLock::new(Cache::default()),
        }
    }

    /// Loads `dir` (every `*.toml`; any bad file fails the start), saves each definition into
    /// `store` (a version stored already is left as stored), then loads everything `store`
    /// holds. For a version both in `dir` and in `store`, the stored text wins: instances
    /// pinned to it keep what they started with.
    pub async fn load<S: DefinitionStore>(
        store: &S,
        dir: &Path,
        departments: Departments,
    ) -> Result<Self, RegistryError<S::Error>> {
        let this = Self::new(departments);
        for def in load_dir(dir, &this.departments)? {
            store.save(&def).await.map_err(RegistryError::Store)?;
            this.insert(def);
        }
        for (code, version) in store.versions().await.map_err(RegistryError::Store)? {
            if let Some(source) = store
                .source(&code, version)
                .await
                .map_err(RegistryError::Store)?
            {
                this.admit(&code, version, &source);
            }
        }
        Ok(this)
    }

    /// The departments definitions are checked against.
    pub fn departments(&self) -> &Departments {
        &self.departments
    }

    /// Parses and validates a definition against this registry's departments.
    pub fn parse(&self, source: &str, origin: &str) -> Result<MatterDefinition, DefinitionError> {
        MatterDefinition::parse(source, origin, &self.departments)
    }

    /// Makes `def` available here (replacing the same code and version).
    pub fn insert(&self, def: MatterDefinition) -> Arc<MatterDefinition> {
        let def = Arc::new(def);
        let mut cache = self.write();
        cache.skipped.remove(&(def.code.clone(), def.version));
        cache
            .by_code
            .entry(def.code.clone())
            .or_default()
            .insert(def.version, def.clone());
        def
    }

    /// Stores `def` through `store` and makes it available here. Other replicas see it at once
    /// for an exact [`Self::get`], and as the latest after their next refresh.
    pub async fn publish<S: DefinitionStore>(
        &self,
        store: &S,
        def: MatterDefinition,
    ) -> Result<Arc<MatterDefinition>, S::Error> {
        store.save(&def).await?;
        Ok(self.insert(def))
    }

    /// The latest version of `code` held here (no store access: see [`Self::keep_fresh`]).
    pub fn latest(&self, code: &str) -> Option<Arc<MatterDefinition>> {
        self.read()
            .by_code
            .get(code)
            .and_then(|versions| versions.values().next_back().cloned())
    }

    /// The latest version of every matter held here, by code.
    pub fn all_latest(&self) -> Vec<Arc<MatterDefinition>> {
        self.read()
            .by_code
            .values()
            .filter_map(|versions| versions.values().next_back().cloned())
            .collect()
    }

    /// Exactly `code` v`version` if held here, without reading the store.
    pub fn cached(&self, code: &str, version: u32) -> Option<Arc<MatterDefinition>> {
        self.read()
            .by_code
            .get(code)
            .and_then(|versions| versions.get(&version).cloned())
    }

    /// Exactly `code` v`version`: from the cache, else read from `store` (published through
    /// another replica). `None` when not stored, or stored but no longer loading here.
    pub async fn get<S: DefinitionStore>(
        &self,
        store: &S,
        code: &str,
        version: u32,
    ) -> Result<Option<Arc<MatterDefinition>>, S::Error> {
        if let Some(def) = self.cached(code, version) {
            return Ok(Some(def));
        }
        if self.is_skipped(code, version) {
            return Ok(None);
        }
        Ok(match store.source(code, version).await? {
            Some(source) => self.admit(code, version, &source),
            None => None,
        })
    }

    /// Loads every stored version not held here yet. Returns how many were added.
    pub async fn refresh<S: DefinitionStore>(&self, store: &S) -> Result<usize, S::Error> {
        let mut added = 0;
        for (code, version) in store.versions().await? {
            if self.cached(&code, version).is_some() || self.is_skipped(&code, version) {
                continue;
            }
            if let Some(source) = store.source(&code, version).await?
                && self.admit(&code, version, &source).is_some()
            {
                tracing::info!(%code, version, "definition published elsewhere loaded");
                added += 1;
            }
        }
        Ok(added)
    }

    /// Runs [`Self::refresh`] every `every` until `shutdown` completes. A failed refresh is
    /// logged and tried again at the next tick. Meant to be spawned on the service's task set.
    pub async fn keep_fresh<S: DefinitionStore>(
        self: Arc<Self>,
        store: S,
        every: Duration,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick completes at once; `load` has just read the store.
        ticks.tick().await;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = ticks.tick() => {
                    if let Err(e) = self.refresh(&store).await {
                        tracing::warn!(error = %e, "refreshing definitions failed; retrying at the next tick");
                    }
                }
            }
        }
    }

    /// Parses a stored source and holds it; one that does not parse is remembered as skipped.
    fn admit(&self, code: &str, version: u32, source: &str) -> Option<Arc<MatterDefinition>> {
        let origin = format!("stored definition {code} v{version}");
        match self.parse(source, &origin) {
            Ok(def) if def.code == code && def.version == version => Some(self.insert(def)),
            Ok(def) => {
                tracing::warn!(%code, version, parsed_code = %def.code, parsed_version = def.version, "stored definition says another code or version; skipped");
                self.skip(code, version);
                None
            }
            Err(e) => {
                tracing::warn!(%code, version, error = %e, "stored definition no longer loads; skipped");
                self.skip(code, version);
                None
            }
        }
    }

    fn skip(&self, code: &str, version: u32) {
        self.write().skipped.insert((code.to_owned(), version));
    }

    fn is_skipped(&self, code: &str, version: u32) -> bool {
        self.read().skipped.contains(&(code.to_owned(), version))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.cache.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        self.cache.write().unwrap_or_else(|p| p.into_inner())
    }
}
