//! Anchoring: whoever owns the database can rewrite a hash chain end to end, so every
//! `interval` a service signs (Ed25519) the head and length of each chain changed since its
//! previous checkpoint, plus a digest over all heads, and exports the checkpoint outside the
//! database: one JSON line appended to a file, and one `tracing` line at target
//! [`CHECKPOINT_TARGET`] for whatever collects logs. [`crate::verify`] checks a database
//! against these checkpoints.
//!
//! Keys are files holding hex: the private key (32-byte seed) stays with the service; the
//! public key goes to whoever verifies. `tongban dev` creates one per service in its data
//! directory ([`load_or_create_signing_key`]); production expects the file to exist.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    time::Duration,
};

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tongban_storage::stmt;

use crate::AuditError;

/// The `tracing` target of exported checkpoints.
pub const CHECKPOINT_TARGET: &str = "tongban::audit::checkpoint";

/// The default checkpoint interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// A service's anchoring configuration (`[audit]` in `tongban.toml`, or
/// `TONGBAN_<SERVICE>__AUDIT__SIGNING_KEY_FILE` and so on).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AnchorConfig {
    /// The Ed25519 private key (hex of the 32-byte seed). Must exist.
    pub signing_key_file: PathBuf,
    /// The append-only JSON-lines file checkpoints go to.
    pub checkpoint_file: PathBuf,
    /// Seconds between checkpoints.
    #[serde(default = "default_interval_secs")]
    pub interval_secs: u64,
}

fn default_interval_secs() -> u64 {
    DEFAULT_INTERVAL.as_secs()
}

impl AnchorConfig {
    /// The layout `tongban dev` uses: `DIR/audit/<service>.key` and
    /// `DIR/audit/<service>.checkpoints.jsonl`.
    pub fn in_dir(dir: &Path, service: &str) -> Self {
        let base = dir.join("audit");
        Self {
            signing_key_file: base.join(format!("{service}.key")),
            checkpoint_file: base.join(format!("{service}.checkpoints.jsonl")),
            interval_secs: default_interval_secs(),
        }
    }
}

fn key_err(path: &Path, reason: impl ToString) -> AuditError {
    AuditError::Key {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn read_hex32(path: &Path) -> Result<[u8; 32], AuditError> {
    let text = std::fs::read_to_string(path).map_err(|e| key_err(path, e))?;
    let bytes = hex::decode(text.trim()).map_err(|e| key_err(path, e))?;
    bytes
        .try_into()
        .map_err(|_| key_err(path, "expected 32 bytes of hex"))
}

/// Reads a private key file (hex of the 32-byte seed).
pub fn load_signing_key(path: &Path) -> Result<SigningKey, AuditError> {
    Ok(SigningKey::from_bytes(&read_hex32(path)?))
}

/// Reads a public key file (hex of the 32-byte key).
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey, AuditError> {
    VerifyingKey::from_bytes(&read_hex32(path)?).map_err(|e| key_err(path, e))
}

/// Reads the private key at `path`, creating it (owner-only) and its public key beside it
/// (`<path>.pub`) when absent. For `tongban dev` and tests; production provisions the file.
pub fn load_or_create_signing_key(path: &Path) -> Result<SigningKey, AuditError> {
    if path.exists() {
        return load_signing_key(path);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| key_err(path, e))?;
    }
    let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| key_err(path, e))?;
    f.write_all(hex::encode(key.to_bytes()).as_bytes())
        .map_err(|e| key_err(path, e))?;
    let public = public_key_path(path);
    std::fs::write(&public, hex::encode(key.verifying_key().to_bytes()))
        .map_err(|e| key_err(&public, e))?;
    Ok(key)
}

/// Where [`load_or_create_signing_key`] writes the public key of `private`.
pub fn public_key_path(private: &Path) -> PathBuf {
    let mut s = private.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// One chain's head as a checkpoint records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChainHead {
    pub chain: String,
    /// The chain's length (its last seq).
    pub seq: i64,
    /// The hash of its last entry.
    pub hash: String,
}

/// What a checkpoint signs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckpointBody {
    pub service: String,
    pub time_ms: i64,
    /// The chains changed since the previous checkpoint.
    pub chains: Vec<ChainHead>,
    /// How many chains the database held.
    pub chain_count: u64,
    /// Hex SHA-256 over every chain's (key, length, head), in key order.
    pub heads_digest: String,
}

/// A signed checkpoint: one line of the checkpoint file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Checkpoint {
    #[serde(flatten)]
    pub body: CheckpointBody,
    /// Hex Ed25519 public key that signed (which key to check against is the verifier's
    /// choice, never this field's).
    pub public_key: String,
    /// Hex Ed25519 signature over the JSON of `body`.
    pub signature: String,
}

impl CheckpointBody {
    fn signed_bytes(&self) -> Vec<u8> {
        // A struct with fixed field order serializes the same way every time.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn sign(self, key: &SigningKey) -> Checkpoint {
        let sig = key.sign(&self.signed_bytes());
        Checkpoint {
            public_key: hex::encode(key.verifying_key().to_bytes()),
            signature: hex::encode(sig.to_bytes()),
            body: self,
        }
    }
}

impl Checkpoint {
    /// True when `key` signed this checkpoint's body.
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        let Ok(bytes) = hex::decode(&self.signature) else {
            return false;
        };
        let Ok(sig) = Signature::from_slice(&bytes) else {
            return false;
        };
        key.verify(&self.body.signed_bytes(), &sig).is_ok()
    }
}

/// Digest over all heads, each length-prefixed, in the order given (key order).
pub fn heads_digest(heads: &[ChainHead]) -> String {
    let mut h = Sha256::new();
    for head in heads {
        for field in [head.chain.as_str(), &head.seq.to_string(), &head.hash] {
            h.update((field.len() as u64).to_be_bytes());
            h.update(field.as_bytes());
        }
    }
    hex::encode(h.finalize())
}

/// Takes one checkpoint of `db` for `service`: signs the chains changed since the last one,
/// appends it to `file`, logs it, and marks those heads anchored. `None` when nothing changed.
pub async fn checkpoint(
    db: &DatabaseConnection,
    service: &str,
    key: &SigningKey,
    file: &Path,
    now_ms: i64,
) -> Result<Option<Checkpoint>, AuditError> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(stmt(
            backend,
            "SELECT chain, seq, hash, anchored_seq FROM audit_heads WHERE seq > 0 ORDER BY chain",
            vec![],
        ))
        .await?;
    let mut all = Vec::with_capacity(rows.len());
    let mut changed = Vec::new();
    for r in &rows {
        let head = ChainHead {
            chain: r.try_get("", "chain")?,
            seq: r.try_get("", "seq")?,
            hash: r.try_get("", "hash")?,
        };
        let anchored: i64 = r.try_get("", "anchored_seq")?;
        if anchored != head.seq {
            changed.push(head.clone());
        }
        all.push(head);
    }
    if changed.is_empty() {
        return Ok(None);
    }
    let cp = CheckpointBody {
        service: service.to_string(),
        time_ms: now_ms,
        chain_count: all.len() as u64,
        heads_digest: heads_digest(&all),
        chains: changed,
    }
    .sign(key);
    let line = serde_json::to_string(&cp).unwrap_or_default();
    append_line(file, &line)?;
    tracing::info!(target: CHECKPOINT_TARGET, service, chains = cp.body.chains.len(), checkpoint = %line, "audit checkpoint");
    // Only after the checkpoint is out: a crash before this line exports it again next time,
    // which is harmless. Entries appended meanwhile keep their head unanchored.
    for head in &cp.body.chains {
        db.execute_raw(stmt(
            backend,
            "UPDATE audit_heads SET anchored_seq = ? WHERE chain = ? AND anchored_seq < ?",
            vec![head.seq.into(), head.chain.clone().into(), head.seq.into()],
        ))
        .await?;
    }
    Ok(Some(cp))
}

fn append_line(file: &Path, line: &str) -> Result<(), AuditError> {
    let err = |source| AuditError::Sink {
        path: file.display().to_string(),
        source,
    };
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map_err(err)?;
    f.write_all(format!("{line}\n").as_bytes()).map_err(err)?;
    f.sync_data().map_err(err)
}

/// Reads every checkpoint line of `file`; lines that do not parse are returned as errors with
/// their line number so that the verifier can report them.
pub fn read_checkpoints(file: &Path) -> Result<Vec<Result<Checkpoint, String>>, AuditError> {
    let text = std::fs::read_to_string(file).map_err(|source| AuditError::Sink {
        path: file.display().to_string(),
        source,
    })?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str::<Checkpoint>(l).map_err(|e| format!("line {}: {e}", i + 1))
        })
        .collect())
}

/// Checkpoints `db` every `cfg.interval_secs` until `shutdown`, and once more on the way out.
/// The key is read once at start; a missing key is an error the caller reports.
pub async fn run(
    db: DatabaseConnection,
    service: String,
    key: SigningKey,
    cfg: AnchorConfig,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(cfg.interval_secs.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stop = tokio::select! {
            _ = tick.tick() => false,
            _ = shutdown.cancelled() => true,
        };
        if let Err(e) = checkpoint(
            &db,
            &service,
            &key,
            &cfg.checkpoint_file,
            tongban_storage::now_ms(),
        )
        .await
        {
            tracing::warn!(service, error = %e, "audit checkpoint failed; retrying next interval");
        }
        if stop {
            return;
        }
    }
}
