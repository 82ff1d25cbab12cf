//! The file source for `tongban dev` and tests: records in `*.toml` files of one directory,
//! breaches appended to a JSON-lines ledger.
//!
//! ```toml
//! [[record]]
//! credit_code = "91350100M000100Y43"
//! name = "松溪县绿源竹木制品有限公司"
//! class = "B"
//! as_of = "2026-10-01"
//! ```
//!
//! The directory is read on every lookup (it is small, and the cache sits in front), so an edit
//! takes effect once the cached entry expires.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tongban_types::CreditCode;

use crate::{Breach, CreditError, CreditRecord, CreditRegistry, parse_as_of};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordsFile {
    #[serde(default)]
    record: Vec<RawRecord>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    credit_code: String,
    #[serde(default)]
    #[allow(dead_code)] // for the human reading the file
    name: String,
    class: String,
    as_of: String,
}

/// Records from `dir/*.toml`, breaches into `ledger`.
#[derive(Debug, Clone)]
pub struct FileRegistry {
    dir: PathBuf,
    ledger: PathBuf,
    /// Serialises appends so that concurrent breaches never interleave within a line.
    append: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl FileRegistry {
    pub fn new(dir: impl Into<PathBuf>, ledger: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            ledger: ledger.into(),
            append: Default::default(),
        }
    }

    /// The ledger file breaches go to.
    pub fn ledger(&self) -> &Path {
        &self.ledger
    }

    /// Every breach in the ledger, oldest first.
    pub async fn breaches(&self) -> Result<Vec<Breach>, CreditError> {
        let text = match tokio::fs::read_to_string(&self.ledger).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.ledger, e)),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| CreditError::Malformed(e.to_string())))
            .collect()
    }

    async fn find(&self, code: &CreditCode) -> Result<Option<CreditRecord>, CreditError> {
        let mut entries = tokio::fs::read_dir(&self.dir)
            .await
            .map_err(|e| io(&self.dir, e))?;
        let mut files = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(|e| io(&self.dir, e))? {
            let path = entry.path();
            if path.extension().is_some_and(|x| x == "toml") {
                files.push(path);
            }
        }
        // Sorted so that a code listed twice resolves the same way on every machine.
        files.sort();
        for path in files {
            let text = tokio::fs::read_to_string(&path)
                .await
                .map_err(|e| io(&path, e))?;
            let parsed: RecordsFile = toml::from_str(&text)
                .map_err(|e| CreditError::Malformed(format!("{}: {e}", path.display())))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            for r in parsed.record {
                let Ok(c) = CreditCode::parse(&r.credit_code) else {
                    return Err(CreditError::Malformed(format!(
                        "{name}: invalid credit_code {:?}",
                        r.credit_code
                    )));
                };
                if &c != code {
                    continue;
                }
                let class = r
                    .class
                    .parse()
                    .map_err(|e| CreditError::Malformed(format!("{name}: {e}")))?;
                let as_of = parse_as_of(&r.as_of).ok_or_else(|| {
                    CreditError::Malformed(format!("{name}: as_of {:?} is not a date", r.as_of))
                })?;
                return Ok(Some(CreditRecord {
                    class,
                    source: format!("file:{name}"),
                    as_of,
                }));
            }
        }
        Ok(None)
    }
}

#[async_trait::async_trait]
impl CreditRegistry for FileRegistry {
    async fn lookup(&self, code: &CreditCode) -> Result<Option<CreditRecord>, CreditError> {
        self.find(code).await
    }

    async fn record_breach(&self, breach: &Breach) -> Result<(), CreditError> {
        let mut line =
            serde_json::to_string(breach).map_err(|e| CreditError::Malformed(e.to_string()))?;
        line.push('\n');
        let _guard = self.append.lock().await;
        if let Some(parent) = self.ledger.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io(parent, e))?;
        }
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.ledger)
            .await
            .map_err(|e| io(&self.ledger, e))?;
        f.write_all(line.as_bytes())
            .await
            .map_err(|e| io(&self.ledger, e))?;
        // The breach is a fact other systems act on: it must be on disk before we say it is.
        f.sync_data().await.map_err(|e| io(&self.ledger, e))?;
        Ok(())
    }
}

fn io(path: &Path, source: std::io::Error) -> CreditError {
    CreditError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::CreditClass;

    #[tokio::test]
    async fn finds_records_and_appends_breaches() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.toml"),
            "[[record]]\ncredit_code = \"91350100M000100Y43\"\nclass = \"a\"\nas_of = \"2026-10-01\"\n",
        )
        .unwrap();
        let reg = FileRegistry::new(dir.path(), dir.path().join("data/breaches.jsonl"));
        let known = CreditCode::parse("91350100M000100Y43").unwrap();
        let unknown = CreditCode::parse("91440300708461136T").unwrap();
        let r = reg.lookup(&known).await.unwrap().unwrap();
        assert_eq!(r.class, CreditClass::A);
        assert_eq!(r.source, "file:a.toml");
        assert_eq!(r.as_of.to_rfc3339(), "2026-10-01T00:00:00+00:00");
        assert!(reg.lookup(&unknown).await.unwrap().is_none());

        let b = Breach {
            credit_code: known.to_string(),
            application_id: "app-1".into(),
            matter_code: "env.eia.report_form".into(),
            reason: "site differs from the pledge".into(),
            occurred_at: chrono::Utc::now(),
            event_id: "ev-1".into(),
        };
        reg.record_breach(&b).await.unwrap();
        reg.record_breach(&b).await.unwrap();
        assert_eq!(reg.breaches().await.unwrap(), vec![b.clone(), b]);
    }

    #[tokio::test]
    async fn a_missing_directory_is_an_error_not_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let reg = FileRegistry::new(dir.path().join("nope"), dir.path().join("l.jsonl"));
        let code = CreditCode::parse("91350100M000100Y43").unwrap();
        assert!(reg.lookup(&code).await.is_err());
    }

    #[tokio::test]
    async fn the_shipped_records_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/credit");
        let reg = FileRegistry::new(&dir, "unused.jsonl");
        let code = CreditCode::parse("91350100M000100Y43").unwrap();
        assert!(reg.lookup(&code).await.unwrap().is_some());
    }
}
