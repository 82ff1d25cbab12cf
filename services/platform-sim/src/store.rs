//! What one simulated platform has received: an in-memory map keyed by idempotency key, in
//! arrival order, optionally mirrored to an append-only JSON-lines file so a restarted simulator
//! still holds what it acknowledged (kill tests, reconciliation).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::SimError;

/// One accepted delivery.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// The `Idempotency-Key` it arrived with.
    pub key: String,
    /// The platform's receipt number.
    pub receipt_no: String,
    /// When it was stored.
    pub received_at: DateTime<Utc>,
    /// The JSON body as received.
    pub body: Value,
    /// The W3C `traceparent` header the first delivery came with, if any (trace tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// Outcome of [`Store::insert`].
#[derive(Debug)]
pub(crate) enum Inserted {
    /// Stored now.
    New(Record),
    /// Already held under this key; nothing stored.
    Duplicate(Record),
}

#[derive(Debug)]
pub(crate) struct Store {
    platform: String,
    records: HashMap<String, Record>,
    order: Vec<String>,
    /// Receipts issued so far; only grows, so numbers stay unique across resets.
    issued: u64,
    file: Option<(PathBuf, File)>,
}

impl Store {
    pub(crate) fn in_memory(platform: &str) -> Self {
        Self {
            platform: platform.to_owned(),
            records: HashMap::new(),
            order: Vec::new(),
            issued: 0,
            file: None,
        }
    }

    /// Opens (or creates) `<dir>/<platform>.jsonl` and reloads it. A torn last line (the
    /// process died mid-write, so it was never acknowledged) is cut off.
    pub(crate) fn open(dir: &Path, platform: &str) -> Result<Self, SimError> {
        let path = dir.join(format!("{platform}.jsonl"));
        let data_err = |source| SimError::Data {
            file: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(data_err)?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(data_err)?;

        let mut store = Self::in_memory(platform);
        let mut good_len: u64 = 0;
        let mut reader = BufReader::new(&file);
        let mut line = String::new();
        let mut line_no = 0usize;
        loop {
            line.clear();
            let n = reader.read_line(&mut line).map_err(data_err)?;
            if n == 0 {
                break;
            }
            line_no += 1;
            if !line.ends_with('\n') {
                tracing::warn!(file = %path.display(), line = line_no, "dropping torn last line");
                break;
            }
            let record =
                serde_json::from_str::<Record>(line.trim_end()).map_err(|_| SimError::Corrupt {
                    file: path.display().to_string(),
                    line: line_no,
                })?;
            good_len += n as u64;
            store.remember(record);
        }
        drop(reader);
        if file.seek(SeekFrom::End(0)).map_err(data_err)? != good_len {
            file.set_len(good_len).map_err(data_err)?;
        }
        store.issued = store.order.len() as u64;
        store.file = Some((path, file));
        Ok(store)
    }

    fn remember(&mut self, record: Record) {
        if !self.records.contains_key(&record.key) {
            self.order.push(record.key.clone());
            self.records.insert(record.key.clone(), record);
        }
    }

    /// Stores `body` under `key` unless the key is already held. The record reaches the file
    /// (if any) before memory, so an acknowledged delivery is never lost on restart.
    #[cfg(test)]
    pub(crate) fn insert(
        &mut self,
        key: &str,
        body: Value,
        now: DateTime<Utc>,
        receipt_no: impl FnOnce(u64) -> String,
    ) -> std::io::Result<Inserted> {
        self.insert_traced(key, body, None, now, receipt_no)
    }

    /// [`Store::insert`], remembering the delivery's `traceparent` header.
    pub(crate) fn insert_traced(
        &mut self,
        key: &str,
        body: Value,
        traceparent: Option<String>,
        now: DateTime<Utc>,
        receipt_no: impl FnOnce(u64) -> String,
    ) -> std::io::Result<Inserted> {
        if let Some(existing) = self.records.get(key) {
            return Ok(Inserted::Duplicate(existing.clone()));
        }
        let record = Record {
            key: key.to_owned(),
            receipt_no: receipt_no(self.issued + 1),
            received_at: now,
            body,
            traceparent,
        };
        if let Some((_, file)) = &mut self.file {
            let mut line = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
            line.push(b'\n');
            file.write_all(&line)?;
        }
        self.issued += 1;
        self.remember(record.clone());
        Ok(Inserted::New(record))
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Record> {
        self.records.get(key)
    }

    pub(crate) fn keys(&self) -> &[String] {
        &self.order
    }

    /// Forgets everything (and truncates the file). Returns how many records there were.
    pub(crate) fn clear(&mut self) -> std::io::Result<usize> {
        if let Some((_, file)) = &mut self.file {
            file.set_len(0)?;
        }
        let n = self.order.len();
        self.records.clear();
        self.order.clear();
        Ok(n)
    }

    pub(crate) fn platform(&self) -> &str {
        &self.platform
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn persists_reloads_and_cuts_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        {
            let mut s = Store::open(dir.path(), "eia").unwrap();
            assert!(matches!(
                s.insert("k1", json!({"a": 1}), now, |n| format!("R{n}"))
                    .unwrap(),
                Inserted::New(_)
            ));
            assert!(matches!(
                s.insert("k1", json!({"a": 2}), now, |n| format!("R{n}")).unwrap(),
                Inserted::Duplicate(r) if r.body == json!({"a": 1})
            ));
            s.insert("k2", json!({"b": 1}), now, |n| format!("R{n}"))
                .unwrap();
        }
        let path = dir.path().join("eia.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"key\":\"k3\",\"rec").unwrap();
        drop(f);

        let mut s = Store::open(dir.path(), "eia").unwrap();
        assert_eq!(s.keys(), ["k1", "k2"]);
        assert_eq!(s.get("k2").unwrap().receipt_no, "R2");
        let Inserted::New(r) = s.insert("k3", json!({}), now, |n| format!("R{n}")).unwrap() else {
            panic!("k3 is new");
        };
        assert_eq!(r.receipt_no, "R3");
        drop(s);
        let s = Store::open(dir.path(), "eia").unwrap();
        assert_eq!(s.keys(), ["k1", "k2", "k3"]);

        std::fs::write(&path, "garbage\n{}\n").unwrap();
        assert!(matches!(
            Store::open(dir.path(), "eia"),
            Err(SimError::Corrupt { line: 1, .. })
        ));
    }
}
