//! Approval's audit trail on the shared log ([`tongban_audit`]): one chain per application
//! (`application/<id>`), and approval's own chain (`service/approval`) for acts on no
//! application, such as publishing a definition. This module maps approval's words (a task,
//! the department concerned) onto log entries and back.
//!
//! Appending takes the caller's transaction, so the entry commits with the state it
//! describes; the log's heads row makes `seq` race-free even across replicas.

use sea_orm::ConnectionTrait;
use tongban_audit::{Act, Actor, Outcome};

use crate::error::ApprovalError;

/// The chain approval's acts on no application go to.
pub const SERVICE_CHAIN: &str = "service/approval";

/// One audit entry as the trail shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: i64,
    pub time_ms: i64,
    /// `clerk:alice@eco_env`, or `system`.
    pub actor: String,
    pub role: String,
    /// The enterprise the actor acted for, when any.
    pub on_behalf_of: String,
    pub action: String,
    pub reason: String,
    pub task_id: String,
    pub department: String,
    /// `done` or `denied`.
    pub outcome: String,
    pub prev_hash: String,
    pub hash: String,
}

impl From<tongban_audit::Entry> for Entry {
    fn from(e: tongban_audit::Entry) -> Self {
        let actor = Actor {
            on_behalf_of: String::new(),
            ..e.actor.clone()
        }
        .label();
        Self {
            seq: e.seq,
            time_ms: e.time_ms,
            actor,
            role: e.actor.role,
            on_behalf_of: e.actor.on_behalf_of,
            action: e.action,
            reason: e.reason,
            task_id: e.target,
            department: e.department,
            outcome: e.outcome,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

/// What to record; seq, time and hashes are filled in by [`append`].
#[derive(Debug, Clone)]
pub struct Record {
    pub actor: Actor,
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
            actor: Actor::system(),
            action: action.into(),
            reason: reason.into(),
            task_id: task_id.into(),
            department: department.into(),
        }
    }

    /// An entry made by the caller `who`.
    pub fn by(
        who: &tongban_auth::Identity,
        action: &str,
        reason: impl Into<String>,
        task_id: &str,
        department: &str,
    ) -> Self {
        Self {
            actor: Actor::from(who),
            action: action.into(),
            reason: reason.into(),
            task_id: task_id.into(),
            department: department.into(),
        }
    }

    fn into_act(self, outcome: Outcome) -> Act {
        Act {
            actor: self.actor,
            action: self.action,
            target: self.task_id,
            department: self.department,
            reason: self.reason,
            outcome,
        }
    }
}

/// Appends `r` to the application's chain at `now_ms`, in the caller's transaction.
pub async fn append<C: ConnectionTrait>(
    txn: &C,
    application_id: &str,
    now_ms: i64,
    r: Record,
) -> Result<(), ApprovalError> {
    append_to(
        txn,
        &tongban_audit::application_chain(application_id),
        now_ms,
        r,
    )
    .await
}

/// Appends `r` to `chain` (an application's, or [`SERVICE_CHAIN`]) at `now_ms`.
pub async fn append_to<C: ConnectionTrait>(
    txn: &C,
    chain: &str,
    now_ms: i64,
    r: Record,
) -> Result<(), ApprovalError> {
    tongban_audit::append(txn, chain, now_ms, r.into_act(Outcome::Done)).await?;
    Ok(())
}

/// An application's entries, in chain order.
pub async fn entries<C: ConnectionTrait>(
    db: &C,
    application_id: &str,
) -> Result<Vec<Entry>, ApprovalError> {
    Ok(
        tongban_audit::entries(db, &tongban_audit::application_chain(application_id))
            .await?
            .into_iter()
            .map(Entry::from)
            .collect(),
    )
}

/// Checks an application's chain: the seq of the first entry that does not verify.
pub async fn verify<C: ConnectionTrait>(
    db: &C,
    application_id: &str,
) -> Result<(Vec<Entry>, Option<i64>), ApprovalError> {
    let chain = tongban_audit::application_chain(application_id);
    let raw = tongban_audit::entries(db, &chain).await?;
    let bad = tongban_audit::verify_chain(&chain, &raw);
    Ok((raw.into_iter().map(Entry::from).collect(), bad))
}
