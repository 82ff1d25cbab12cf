//! The definition registry over an in-memory store shared by several registries, as replicas
//! share one table: loading, read-through of an exact version, refresh, skipping bad rows.
//! The services' tests run the same over PostgreSQL and SQLite.
#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeMap,
    convert::Infallible,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tongban_matter::{DefinitionStore, Departments, MatterDefinition, Registry};

const CODE: &str = "env.eia.report_form";

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn departments() -> Departments {
    Departments::load(deploy().join("departments.toml")).unwrap()
}

/// The shipped EIA matter as version `version`.
fn eia(version: u32) -> String {
    std::fs::read_to_string(deploy().join("matters/env.eia.report_form.v1.toml"))
        .unwrap()
        .replacen("version = 1", &format!("version = {version}"), 1)
}

/// One table, shared by every registry given a clone.
#[derive(Clone, Default)]
struct MemoryStore {
    rows: Arc<Mutex<BTreeMap<(String, u32), String>>>,
    source_reads: Arc<AtomicUsize>,
}

impl MemoryStore {
    fn put(&self, code: &str, version: u32, source: &str) {
        self.rows
            .lock()
            .unwrap()
            .insert((code.to_owned(), version), source.to_owned());
    }
}

impl DefinitionStore for MemoryStore {
    type Error = Infallible;

    async fn versions(&self) -> Result<Vec<(String, u32)>, Infallible> {
        Ok(self.rows.lock().unwrap().keys().cloned().collect())
    }

    async fn source(&self, code: &str, version: u32) -> Result<Option<String>, Infallible> {
        self.source_reads.fetch_add(1, Ordering::SeqCst);
        Ok(self
            .rows
            .lock()
            .unwrap()
            .get(&(code.to_owned(), version))
            .cloned())
    }

    async fn save(&self, def: &MatterDefinition) -> Result<(), Infallible> {
        self.rows
            .lock()
            .unwrap()
            .entry((def.code.clone(), def.version))
            .or_insert_with(|| def.source.clone());
        Ok(())
    }
}

async fn replica(store: &MemoryStore) -> Registry {
    Registry::load(store, &deploy().join("matters"), departments())
        .await
        .unwrap()
}

fn latest_version(r: &Registry, code: &str) -> Option<u32> {
    r.latest(code).map(|d| d.version)
}

#[tokio::test]
async fn load_saves_the_deploy_files_and_reads_the_store() {
    let store = MemoryStore::default();
    store.put("other.matter", 1, &eia(1).replace(CODE, "other.matter"));
    let r = replica(&store).await;
    assert_eq!(latest_version(&r, CODE), Some(1));
    assert_eq!(latest_version(&r, "service.enterprise_request"), Some(1));
    assert_eq!(latest_version(&r, "other.matter"), Some(1));
    assert_eq!(r.all_latest().len(), 3);
    let stored = store.versions().await.unwrap();
    assert!(stored.contains(&(CODE.to_owned(), 1)));
    assert!(stored.contains(&("service.enterprise_request".to_owned(), 1)));
}

#[tokio::test]
async fn the_stored_text_of_a_version_wins_over_the_deploy_file() {
    let store = MemoryStore::default();
    let pinned = eia(1).replace("name_en = ", "# pinned\nname_en = ");
    store.put(CODE, 1, &pinned);
    let r = replica(&store).await;
    assert_eq!(r.latest(CODE).unwrap().source, pinned);
}

#[tokio::test]
async fn replicas_converge_after_a_publish_through_one() {
    let store = MemoryStore::default();
    let a = replica(&store).await;
    let b = replica(&store).await;

    let v2 = a.parse(&eia(2), "published").unwrap();
    a.publish(&store, v2).await.unwrap();
    assert_eq!(latest_version(&a, CODE), Some(2));
    assert_eq!(latest_version(&b, CODE), Some(1), "b has not refreshed yet");

    // An exact version is read through at once.
    let got = b.get(&store, CODE, 2).await.unwrap().unwrap();
    assert_eq!(got.version, 2);
    assert_eq!(latest_version(&b, CODE), Some(2));

    // A refresh brings the rest.
    let v3 = a.parse(&eia(3), "published").unwrap();
    a.publish(&store, v3).await.unwrap();
    assert_eq!(b.refresh(&store).await.unwrap(), 1);
    assert_eq!(latest_version(&b, CODE), Some(3));
    assert_eq!(b.refresh(&store).await.unwrap(), 0);
    assert!(b.get(&store, CODE, 9).await.unwrap().is_none());
}

#[tokio::test]
async fn keep_fresh_converges_and_stops_on_shutdown() {
    let store = MemoryStore::default();
    let a = replica(&store).await;
    let b = Arc::new(replica(&store).await);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let refresher = tokio::spawn(b.clone().keep_fresh(
        store.clone(),
        Duration::from_millis(20),
        async move {
            let _ = stopped.await;
        },
    ));

    let v2 = a.parse(&eia(2), "published").unwrap();
    a.publish(&store, v2).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while latest_version(&b, CODE) != Some(2) {
        assert!(tokio::time::Instant::now() < deadline, "b never saw v2");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), refresher)
        .await
        .expect("keep_fresh stops on shutdown")
        .unwrap();
}

#[tokio::test]
async fn a_stored_definition_that_no_longer_loads_is_skipped_once() {
    let store = MemoryStore::default();
    store.put(
        CODE,
        2,
        &eia(2).replace(
            "lead_department = \"eco_env\"",
            "lead_department = \"gone\"",
        ),
    );
    let r = replica(&store).await;
    assert_eq!(latest_version(&r, CODE), Some(1));

    let reads = store.source_reads.load(Ordering::SeqCst);
    assert!(r.get(&store, CODE, 2).await.unwrap().is_none());
    assert_eq!(r.refresh(&store).await.unwrap(), 0);
    assert_eq!(
        store.source_reads.load(Ordering::SeqCst),
        reads,
        "a skipped version is not read again"
    );

    // A row whose text names another version is not trusted either.
    store.put(CODE, 5, &eia(4));
    assert!(r.get(&store, CODE, 5).await.unwrap().is_none());
    assert!(r.cached(CODE, 4).is_none());
}
