//! `tongban audit verify`: recomputes every chain of a database and checks it against the
//! latest checkpointed head and length of each chain. A chain that does not recompute was
//! edited; one shorter than checkpointed was truncated; one checkpointed but absent was
//! deleted; a checkpoint whose signature does not verify was forged (and is not trusted for
//! anything else).

use std::collections::BTreeMap;

use ed25519_dalek::VerifyingKey;
use sea_orm::{ConnectionTrait, DbErr};

use crate::anchor::{ChainHead, Checkpoint};

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// An entry's hash or link does not recompute, or the chain no longer leads to the
    /// checkpointed head: `seq` is the first entry that differs.
    Edited { chain: String, seq: i64 },
    /// The chain is shorter than a checkpoint recorded.
    Truncated {
        chain: String,
        checkpointed: i64,
        found: i64,
    },
    /// A checkpoint recorded the chain; the database has none of it.
    Deleted { chain: String, checkpointed: i64 },
    /// The checkpoint on this line (from 1) does not carry a valid signature of the key.
    ForgedCheckpoint { line: usize },
    /// The checkpoint file has a line that is not a checkpoint.
    UnreadableCheckpoint { line: usize, error: String },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Edited { chain, seq } => {
                write!(f, "EDITED     {chain}: entry {seq} does not verify")
            }
            Finding::Truncated {
                chain,
                checkpointed,
                found,
            } => write!(
                f,
                "TRUNCATED  {chain}: {found} entries, checkpoint recorded {checkpointed}"
            ),
            Finding::Deleted {
                chain,
                checkpointed,
            } => write!(
                f,
                "DELETED    {chain}: absent, checkpoint recorded {checkpointed} entries"
            ),
            Finding::ForgedCheckpoint { line } => {
                write!(
                    f,
                    "FORGED     checkpoint on line {line}: signature does not verify"
                )
            }
            Finding::UnreadableCheckpoint { line, error } => {
                write!(f, "UNREADABLE checkpoint on line {line}: {error}")
            }
        }
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Chains recomputed.
    pub chains: usize,
    /// Entries recomputed.
    pub entries: usize,
    /// Checkpoints whose signature verified.
    pub checkpoints: usize,
    /// Chains some valid checkpoint covers.
    pub anchored_chains: usize,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Checks every chain of `db` against `checkpoints` (as [`crate::anchor::read_checkpoints`]
/// returns them, in file order) signed by one of `keys`. With `service`, checkpoints of other services
/// are skipped (one file may hold several services' checkpoints).
pub async fn verify<C: ConnectionTrait>(
    db: &C,
    checkpoints: &[Result<Checkpoint, String>],
    keys: &[VerifyingKey],
    service: Option<&str>,
) -> Result<Report, DbErr> {
    let mut report = Report::default();
    let mut latest: BTreeMap<String, ChainHead> = BTreeMap::new();
    for (i, cp) in checkpoints.iter().enumerate() {
        let line = i + 1;
        let cp = match cp {
            Ok(cp) => cp,
            Err(error) => {
                report.findings.push(Finding::UnreadableCheckpoint {
                    line,
                    error: error.clone(),
                });
                continue;
            }
        };
        if service.is_some_and(|s| s != cp.body.service) {
            continue;
        }
        // Several keys: checkpoints signed before and after a key rotation.
        if !keys.iter().any(|k| cp.verify(k)) {
            report.findings.push(Finding::ForgedCheckpoint { line });
            continue;
        }
        report.checkpoints += 1;
        for head in &cp.body.chains {
            let newer = latest
                .get(&head.chain)
                .is_none_or(|seen| head.seq >= seen.seq);
            if newer {
                latest.insert(head.chain.clone(), head.clone());
            }
        }
    }
    report.anchored_chains = latest.len();
    let mut keys = crate::chains(db).await?;
    for k in latest.keys() {
        if !keys.contains(k) {
            keys.push(k.clone());
        }
    }
    keys.sort();
    for chain in keys {
        let entries = crate::entries(db, &chain).await?;
        if !entries.is_empty() {
            report.chains += 1;
            report.entries += entries.len();
        }
        let mut edited = crate::verify_chain(&chain, &entries);
        if let Some(head) = latest.get(&chain) {
            let found = entries.len() as i64;
            if found == 0 {
                report.findings.push(Finding::Deleted {
                    chain: chain.clone(),
                    checkpointed: head.seq,
                });
                continue;
            }
            if found < head.seq {
                report.findings.push(Finding::Truncated {
                    chain: chain.clone(),
                    checkpointed: head.seq,
                    found,
                });
            } else if edited.is_none()
                && entries
                    .get(head.seq as usize - 1)
                    .is_none_or(|e| e.hash != head.hash)
            {
                // The chain recomputes but no longer passes through the signed head: it was
                // rewritten whole. The first entry that differs is unknown; name the head.
                edited = Some(head.seq);
            }
        }
        if let Some(seq) = edited {
            report.findings.push(Finding::Edited { chain, seq });
        }
    }
    Ok(report)
}
