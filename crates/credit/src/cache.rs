//! A TTL cache in front of a registry: a class changes rarely, and a submission should not wait
//! on the registry for an enterprise it asked about minutes ago. Failures are never cached, so
//! a registry that comes back is asked again at once.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tongban_types::CreditCode;

use crate::{Breach, CreditError, CreditRecord, CreditRegistry};

/// Entries beyond which expired ones are swept, and past which the cache starts over.
const MAX_ENTRIES: usize = 10_000;

type Entries = HashMap<String, (Instant, Option<CreditRecord>)>;

/// Caches lookups (known and unknown codes alike) for `ttl`; breaches pass straight through.
pub struct Cached {
    inner: Arc<dyn CreditRegistry>,
    ttl: Duration,
    entries: Mutex<Entries>,
}

impl Cached {
    pub fn new(inner: Arc<dyn CreditRegistry>, ttl: Duration) -> Self {
        Self {
            inner,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, code: &CreditCode) -> Option<Option<CreditRecord>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(code.as_str())
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, r)| r.clone())
    }

    fn put(&self, code: &CreditCode, record: Option<CreditRecord>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(code.as_str().to_owned(), (Instant::now(), record));
    }
}

#[async_trait::async_trait]
impl CreditRegistry for Cached {
    async fn lookup(&self, code: &CreditCode) -> Result<Option<CreditRecord>, CreditError> {
        if let Some(hit) = self.get(code) {
            return Ok(hit);
        }
        let record = self.inner.lookup(code).await?;
        if !self.ttl.is_zero() {
            self.put(code, record.clone());
        }
        Ok(record)
    }

    async fn record_breach(&self, breach: &Breach) -> Result<(), CreditError> {
        self.inner.record_breach(breach).await?;
        // The registry may downgrade the class on a breach: ask it afresh next time.
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(breach.credit_code.as_str());
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{CreditClass, FileRegistry};

    fn write(dir: &std::path::Path, class: &str) {
        std::fs::write(
            dir.join("r.toml"),
            format!("[[record]]\ncredit_code = \"91350100M000100Y43\"\nclass = \"{class}\"\nas_of = \"2026-10-01\"\n"),
        )
        .unwrap();
    }

    #[tokio::test]
    async fn serves_from_cache_until_the_ttl_passes() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "A");
        let file = Arc::new(FileRegistry::new(dir.path(), dir.path().join("l.jsonl")));
        let cached = Cached::new(file.clone(), Duration::from_millis(300));
        let code = CreditCode::parse("91350100M000100Y43").unwrap();
        assert_eq!(
            cached.lookup(&code).await.unwrap().unwrap().class,
            CreditClass::A
        );
        // The registry changes its mind; the cache still answers what it learnt.
        write(dir.path(), "D");
        assert_eq!(
            cached.lookup(&code).await.unwrap().unwrap().class,
            CreditClass::A
        );
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(
            cached.lookup(&code).await.unwrap().unwrap().class,
            CreditClass::D
        );
    }

    #[tokio::test]
    async fn failures_are_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let records = dir.path().join("records");
        let file = Arc::new(FileRegistry::new(&records, dir.path().join("l.jsonl")));
        let cached = Cached::new(file, Duration::from_secs(600));
        let code = CreditCode::parse("91350100M000100Y43").unwrap();
        assert!(cached.lookup(&code).await.is_err());
        std::fs::create_dir_all(&records).unwrap();
        write(&records, "B");
        assert_eq!(
            cached.lookup(&code).await.unwrap().unwrap().class,
            CreditClass::B
        );
    }
}
