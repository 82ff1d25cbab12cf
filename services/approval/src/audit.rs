//! The tamper-evident audit trail: per application, a chain of entries where each entry's hash
//! covers its own fields and the previous entry's hash. Changing, removing or reordering any
//! stored entry breaks the chain from that entry on, which [`verify`] reports.
//!
//! Appending takes the caller's transaction, which must hold the application's instance lock
//! (see [`crate::repository::InstanceStore::find_instance`]), so `seq` is assigned without races.

use sha2::{Digest, Sha256};

use crate::{error::ApprovalError, repository::AuditStore};

/// One audit entry, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: i64,
    pub time_ms: i64,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub reason: String,
    pub task_id: String,
    pub department: String,
    pub prev_hash: String,
    pub hash: String,
}

/// What to record; seq, time and hashes are filled in by [`append`].
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub actor: String,
    pub role: String,
    pub action: String,
    pub reason: String,
    pub task_id: String,
    pub department: String,
}

impl Record {
    /// An entry made by the engine itself (timers, events from other services).
    pub fn system(
        action: &str,
        reason: impl Into<String>,
        task_id: &str,
        department: &str,
    ) -> Self {
        Self {
            actor: "system".into(),
            role: "system".into(),
            action: action.into(),
            reason: reason.into(),
            task_id: task_id.into(),
            department: department.into(),
        }
    }

    pub fn by(
        who: &tongban_auth::Identity,
        action: &str,
        reason: impl Into<String>,
        task_id: &str,
        department: &str,
    ) -> Self {
        Self {
            actor: who.actor_label(),
            role: who.role.as_str().into(),
            action: action.into(),
            reason: reason.into(),
            task_id: task_id.into(),
            department: department.into(),
        }
    }
}

/// `sha256(prev_hash || canonical fields)`, hex. Fields are length-prefixed so that no two
/// different entries share a canonical form (a field containing the separator cannot shift
/// text into its neighbour).
pub fn hash(prev_hash: &str, application_id: &str, e: &Entry) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    let seq = e.seq.to_string();
    let time = e.time_ms.to_string();
    for field in [
        application_id,
        &seq,
        &time,
        &e.actor,
        &e.role,
        &e.action,
        &e.reason,
        &e.task_id,
        &e.department,
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Checks the chain: returns the seq of the first entry whose link or hash does not verify.
pub fn verify(application_id: &str, entries: &[Entry]) -> Option<i64> {
    let mut prev = String::new();
    for (i, e) in entries.iter().enumerate() {
        let expected_seq = i as i64 + 1;
        if e.seq != expected_seq || e.prev_hash != prev || hash(&prev, application_id, e) != e.hash
        {
            return Some(e.seq.min(expected_seq));
        }
        prev = e.hash.clone();
    }
    None
}

/// Appends `r` to the application's chain at `now_ms`.
pub async fn append<S: AuditStore + Sync>(
    store: &S,
    application_id: &str,
    now_ms: i64,
    r: Record,
) -> Result<(), ApprovalError> {
    let (seq, prev_hash) = match store.last_link(application_id).await? {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, String::new()),
    };
    let mut e = Entry {
        seq,
        time_ms: now_ms,
        actor: r.actor,
        role: r.role,
        action: r.action,
        reason: r.reason,
        task_id: r.task_id,
        department: r.department,
        prev_hash,
        hash: String::new(),
    };
    e.hash = hash(&e.prev_hash, application_id, &e);
    store.insert_entry(application_id, &e).await?;
    Ok(())
}

/// An application's entries, in chain order.
pub async fn entries<S: AuditStore + Sync>(
    store: &S,
    application_id: &str,
) -> Result<Vec<Entry>, ApprovalError> {
    Ok(store.entries(application_id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<Entry> {
        let mut out: Vec<Entry> = Vec::new();
        for seq in 1..=n {
            let prev = out.last().map(|e| e.hash.clone()).unwrap_or_default();
            let mut e = Entry {
                seq,
                time_ms: seq * 1000,
                actor: "clerk:a@eco_env".into(),
                role: "clerk".into(),
                action: "approve".into(),
                reason: format!("ok {seq}"),
                task_id: "t".into(),
                department: "eco_env".into(),
                prev_hash: prev,
                hash: String::new(),
            };
            e.hash = hash(&e.prev_hash, "app", &e);
            out.push(e);
        }
        out
    }

    #[test]
    fn intact_chain_verifies_and_edits_are_found() {
        let c = chain(4);
        assert_eq!(verify("app", &c), None);
        let mut edited = c.clone();
        edited[2].reason = "changed".into();
        assert_eq!(verify("app", &edited), Some(3));
        let mut removed = c.clone();
        removed.remove(1);
        assert_eq!(verify("app", &removed), Some(2));
        assert_eq!(
            verify("other-app", &c),
            Some(1),
            "entries are bound to their application"
        );
    }
}
