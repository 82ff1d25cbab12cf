//! The audit log every service keeps in its own database: hash-chained, append-only, one chain
//! per key (an application, or a service's own acts on no application), anchored outside the
//! database by signed checkpoints.
//!
//! # Layout
//! - this module: [`Actor`] (who), [`Act`] (what), [`Entry`] (as stored), [`append`] in the
//!   caller's transaction, [`append_denied`] in a short transaction of its own, [`entries`] and
//!   [`verify_chain`].
//! - [`migration`]: the `audit_log` and `audit_heads` tables, listed in each service's migrator.
//! - [`anchor`]: the Ed25519 signing key, periodic checkpoints and their sinks (a JSON-lines
//!   file and a `tracing` line at target `tongban::audit::checkpoint`).
//! - [`verify`]: recomputes every chain of a database against the checkpoints
//!   (`tongban audit verify`).
//!
//! # Why a heads table
//! Each chain's last `seq` and hash live in one `audit_heads` row that [`append`] locks (`FOR
//! UPDATE` on PostgreSQL; SQLite has one writer) and updates in the caller's transaction. Two
//! replicas appending to one chain therefore queue on that row: `seq`s never collide and never
//! skip, and an entry commits or rolls back together with the state change it describes.

pub mod anchor;
pub mod denials;
pub mod migration;
pub mod verify;

pub use denials::{DenialLog, DenialWriter};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Value};
use sha2::{Digest, Sha256};
use tongban_storage::stmt;

/// Errors of the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit storage: {0}")]
    Db(#[from] DbErr),
    #[error("audit key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("audit checkpoint sink {path}: {source}")]
    Sink {
        path: String,
        source: std::io::Error,
    },
}

/// The chain key of an application's acts.
pub fn application_chain(application_id: &str) -> String {
    format!("application/{application_id}")
}

/// The chain key of a service's acts on no application (webhooks, definitions, replays).
pub fn service_chain(service: &str) -> String {
    format!("service/{service}")
}

/// Who acted: the caller's subject, role and department, and on whose behalf (e.g. the
/// enterprise credit code an integrator or applicant acts for).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Actor {
    pub subject: String,
    pub role: String,
    pub department: String,
    pub on_behalf_of: String,
}

impl Actor {
    /// The engine itself (timers, events from other services).
    pub fn system() -> Self {
        Self {
            subject: "system".into(),
            role: "system".into(),
            department: String::new(),
            on_behalf_of: String::new(),
        }
    }

    /// `clerk:alice@eco_env`, `applicant:bob`, or `system`: how trails show the actor.
    pub fn label(&self) -> String {
        if self.role == "system" {
            return "system".into();
        }
        let mut s = format!("{}:{}", self.role, self.subject);
        if !self.department.is_empty() {
            s.push('@');
            s.push_str(&self.department);
        }
        if !self.on_behalf_of.is_empty() {
            s.push_str(" for ");
            s.push_str(&self.on_behalf_of);
        }
        s
    }
}

impl From<&tongban_auth::Identity> for Actor {
    fn from(who: &tongban_auth::Identity) -> Self {
        Self {
            subject: who.subject.clone(),
            role: who.role.as_str().into(),
            department: who.department.clone().unwrap_or_default(),
            on_behalf_of: who
                .credit_code
                .as_ref()
                .map(|c| c.as_str().to_string())
                .unwrap_or_default(),
        }
    }
}

/// Whether the act was carried out or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Denied => "denied",
        }
    }
}

/// What to record; `seq`, time and hashes are filled in by [`append`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Act {
    pub actor: Actor,
    /// e.g. `submit`, `approve`, `webhook.register`.
    pub action: String,
    /// What was acted on: a task id, a webhook id, a definition `code@version`; may be empty.
    pub target: String,
    /// The department concerned (e.g. a task's), when any.
    pub department: String,
    pub reason: String,
    pub outcome: Outcome,
}

impl Act {
    /// `actor` did `action` to `target`.
    pub fn done(actor: Actor, action: impl Into<String>, target: impl Into<String>) -> Self {
        Self {
            actor,
            action: action.into(),
            target: target.into(),
            department: String::new(),
            reason: String::new(),
            outcome: Outcome::Done,
        }
    }

    /// `actor` tried `action` on `target` and was refused.
    pub fn denied(actor: Actor, action: impl Into<String>, target: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Denied,
            ..Self::done(actor, action, target)
        }
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }

    pub fn department(mut self, department: impl Into<String>) -> Self {
        self.department = department.into();
        self
    }
}

/// One entry, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub chain: String,
    pub seq: i64,
    pub time_ms: i64,
    pub actor: Actor,
    pub action: String,
    pub target: String,
    pub department: String,
    pub reason: String,
    /// `done` or `denied`.
    pub outcome: String,
    pub prev_hash: String,
    pub hash: String,
}

/// `sha256(prev_hash || canonical fields)`, hex. Fields are length-prefixed so that no two
/// different entries share a canonical form, and the chain key is covered so an entry cannot
/// be moved to another chain.
pub fn hash(prev_hash: &str, e: &Entry) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    let seq = e.seq.to_string();
    let time = e.time_ms.to_string();
    for field in [
        e.chain.as_str(),
        &seq,
        &time,
        &e.actor.subject,
        &e.actor.role,
        &e.actor.department,
        &e.actor.on_behalf_of,
        &e.action,
        &e.target,
        &e.department,
        &e.reason,
        &e.outcome,
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Checks a chain read in `seq` order: the `seq` of the first entry whose position, link or
/// hash does not verify.
pub fn verify_chain(chain: &str, entries: &[Entry]) -> Option<i64> {
    let mut prev = String::new();
    for (i, e) in entries.iter().enumerate() {
        let expected_seq = i as i64 + 1;
        if e.chain != chain
            || e.seq != expected_seq
            || e.prev_hash != prev
            || hash(&prev, e) != e.hash
        {
            return Some(e.seq.min(expected_seq));
        }
        prev = e.hash.clone();
    }
    None
}

/// Appends `act` to `chain` at `now_ms` inside the caller's transaction `txn` (which should be
/// a write transaction, see [`tongban_storage::begin_write`]), so the entry commits with the
/// state it describes. Returns the stored entry.
pub async fn append<C: ConnectionTrait>(
    txn: &C,
    chain: &str,
    now_ms: i64,
    act: Act,
) -> Result<Entry, DbErr> {
    let backend = txn.get_database_backend();
    // One statement creates the chain's head on its first act and otherwise locks it (the
    // no-op update takes the row lock, as `FOR UPDATE` would) and returns it. A concurrent
    // creator waits on the unique key and then takes the update path on the committed row.
    let head = txn
        .query_one_raw(stmt(
            backend,
            "INSERT INTO audit_heads (chain, seq, hash, anchored_seq) VALUES (?, 0, '', 0) \
             ON CONFLICT (chain) DO UPDATE SET chain = excluded.chain \
             RETURNING seq, hash",
            vec![chain.into()],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("audit head of {chain}")))?;
    let seq: i64 = head.try_get("", "seq")?;
    let prev_hash: String = head.try_get("", "hash")?;
    let mut e = Entry {
        chain: chain.to_string(),
        seq: seq + 1,
        time_ms: now_ms,
        actor: act.actor,
        action: act.action,
        target: act.target,
        department: act.department,
        reason: act.reason,
        outcome: act.outcome.as_str().into(),
        prev_hash,
        hash: String::new(),
    };
    e.hash = hash(&e.prev_hash, &e);
    insert_entry(txn, &e).await?;
    txn.execute_raw(stmt(
        backend,
        "UPDATE audit_heads SET seq = ?, hash = ? WHERE chain = ?",
        vec![e.seq.into(), e.hash.clone().into(), chain.into()],
    ))
    .await?;
    Ok(e)
}

/// Writes `e` as given (hashes included). [`append`] uses it; so do migrations that move an
/// older trail into the log, which must also set the chain's head.
pub async fn insert_entry<C: ConnectionTrait>(txn: &C, e: &Entry) -> Result<(), DbErr> {
    let values: Vec<Value> = vec![
        e.chain.clone().into(),
        e.seq.into(),
        e.time_ms.into(),
        e.actor.subject.clone().into(),
        e.actor.role.clone().into(),
        e.actor.department.clone().into(),
        e.actor.on_behalf_of.clone().into(),
        e.action.clone().into(),
        e.target.clone().into(),
        e.department.clone().into(),
        e.reason.clone().into(),
        e.outcome.clone().into(),
        e.prev_hash.clone().into(),
        e.hash.clone().into(),
    ];
    txn.execute_raw(stmt(
        txn.get_database_backend(),
        "INSERT INTO audit_log (chain, seq, time_ms, actor_subject, actor_role, \
         actor_department, on_behalf_of, action, target, department, reason, outcome, \
         prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        values,
    ))
    .await?;
    Ok(())
}

/// Records a refused attempt in a short transaction of its own: a denial changes nothing
/// else, so there is no caller transaction to join.
pub async fn append_denied(
    db: &DatabaseConnection,
    chain: &str,
    now_ms: i64,
    actor: Actor,
    action: &str,
    target: &str,
    reason: &str,
) -> Result<Entry, DbErr> {
    let txn = tongban_storage::begin_write(db).await?;
    let e = append(
        &txn,
        chain,
        now_ms,
        Act::denied(actor, action, target).reason(reason),
    )
    .await?;
    txn.commit().await?;
    Ok(e)
}

const COLUMNS: &str = "chain, seq, time_ms, actor_subject, actor_role, actor_department, \
     on_behalf_of, action, target, department, reason, outcome, prev_hash, hash";

fn entry_from_row(row: &sea_orm::QueryResult) -> Result<Entry, DbErr> {
    Ok(Entry {
        chain: row.try_get("", "chain")?,
        seq: row.try_get("", "seq")?,
        time_ms: row.try_get("", "time_ms")?,
        actor: Actor {
            subject: row.try_get("", "actor_subject")?,
            role: row.try_get("", "actor_role")?,
            department: row.try_get("", "actor_department")?,
            on_behalf_of: row.try_get("", "on_behalf_of")?,
        },
        action: row.try_get("", "action")?,
        target: row.try_get("", "target")?,
        department: row.try_get("", "department")?,
        reason: row.try_get("", "reason")?,
        outcome: row.try_get("", "outcome")?,
        prev_hash: row.try_get("", "prev_hash")?,
        hash: row.try_get("", "hash")?,
    })
}

/// The refused attempts recorded on `service`'s own chain (see [`denials`]), oldest first.
pub async fn refusals<C: ConnectionTrait>(db: &C, service: &str) -> Result<Vec<Entry>, DbErr> {
    Ok(entries(db, &service_chain(service))
        .await?
        .into_iter()
        .filter(|e| e.outcome == Outcome::Denied.as_str())
        .collect())
}

/// A chain's entries in `seq` order.
pub async fn entries<C: ConnectionTrait>(db: &C, chain: &str) -> Result<Vec<Entry>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            &format!("SELECT {COLUMNS} FROM audit_log WHERE chain = ? ORDER BY seq"),
            vec![chain.into()],
        ))
        .await?;
    rows.iter().map(entry_from_row).collect()
}

/// Every chain key present in the log.
pub async fn chains<C: ConnectionTrait>(db: &C) -> Result<Vec<String>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            "SELECT DISTINCT chain FROM audit_log ORDER BY chain",
            vec![],
        ))
        .await?;
    rows.iter().map(|r| r.try_get("", "chain")).collect()
}

/// Sets a chain's head directly (for migrations that move an older trail in with
/// [`insert_entry`]).
pub async fn set_head<C: ConnectionTrait>(
    txn: &C,
    chain: &str,
    seq: i64,
    hash: &str,
) -> Result<(), DbErr> {
    let backend = txn.get_database_backend();
    txn.execute_raw(stmt(
        backend,
        "INSERT INTO audit_heads (chain, seq, hash, anchored_seq) VALUES (?, ?, ?, 0) \
         ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        vec![chain.into(), seq.into(), hash.into()],
    ))
    .await?;
    Ok(())
}

/// Appends `act` in a write transaction of its own and commits; a helper for callers with no transaction of
/// their own (tests, tools).
pub async fn append_alone(
    db: &DatabaseConnection,
    chain: &str,
    now_ms: i64,
    act: Act,
) -> Result<Entry, DbErr> {
    let txn = tongban_storage::begin_write(db).await?;
    let e = append(&txn, chain, now_ms, act).await?;
    txn.commit().await?;
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<Entry> {
        let mut out: Vec<Entry> = Vec::new();
        for seq in 1..=n {
            let prev = out.last().map(|e| e.hash.clone()).unwrap_or_default();
            let mut e = Entry {
                chain: "application/a".into(),
                seq,
                time_ms: seq * 1000,
                actor: Actor {
                    subject: "alice".into(),
                    role: "clerk".into(),
                    department: "eco_env".into(),
                    on_behalf_of: String::new(),
                },
                action: "approve".into(),
                target: "t".into(),
                department: "eco_env".into(),
                reason: format!("ok {seq}"),
                outcome: "done".into(),
                prev_hash: prev,
                hash: String::new(),
            };
            e.hash = hash(&e.prev_hash, &e);
            out.push(e);
        }
        out
    }

    #[test]
    fn intact_chain_verifies_and_edits_are_found() {
        let c = chain(4);
        assert_eq!(verify_chain("application/a", &c), None);
        let mut edited = c.clone();
        edited[2].actor.on_behalf_of = "someone".into();
        assert_eq!(verify_chain("application/a", &edited), Some(3));
        let mut removed = c.clone();
        removed.remove(1);
        assert_eq!(verify_chain("application/a", &removed), Some(2));
        assert_eq!(verify_chain("application/b", &c), Some(1));
    }

    #[test]
    fn labels_name_role_subject_department_and_principal() {
        let a = Actor {
            subject: "i1".into(),
            role: "integrator".into(),
            department: String::new(),
            on_behalf_of: "91350100M000100Y43".into(),
        };
        assert_eq!(a.label(), "integrator:i1 for 91350100M000100Y43");
        assert_eq!(Actor::system().label(), "system");
    }
}
