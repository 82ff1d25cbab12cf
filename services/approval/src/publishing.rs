//! Publishing a definition version over the API: parsed against the known departments,
//! checked against the downstream platforms' code tables, stored once per (code, version) and
//! never below the latest, announced with `definition.published` in the same transaction.
//!
//! The code-table check: a form value (an enum's allowed value, a boolean), or the matter code
//! itself, that a platform taking this matter translates through a code table without entry
//! or default would make dispatch dead-letter every such application, so the definition is
//! refused before any application can use it. Dispatch runs the same check on its deploy directory at start-up.

use std::path::Path;

use tongban_auth::Identity;
use tongban_matter::DefinitionError;
use tongban_outbox::new_envelope;
use tongban_platform::{CodeGap, MatterForm, PlatformConfig};
use tongban_proto::events::{self, envelope::Payload};
use tongban_storage::begin_write;

use crate::{
    engine::{Approval, PRODUCER},
    error::{ApprovalError, Violation, invalid},
    repository::{DefinitionStore, StoredDefinition, ms},
    requests::Publish,
};

/// Every problem the definition parser found, as violations of `source`.
fn definition_violations(e: DefinitionError) -> ApprovalError {
    let problems = e.problems();
    if problems.is_empty() {
        return invalid("source", e.to_string());
    }
    ApprovalError::Invalid(
        problems
            .iter()
            .map(|p| Violation {
                field: "source".into(),
                description: p.to_string(),
            })
            .collect(),
    )
}

/// The platforms of `<deploy_dir>/platforms`, read only for their mappings: approval never
/// sends to them, so no credential is needed ([`tongban_platform::Mode::MappingsOnly`]) and
/// the environment is not read. A deploy directory without `platforms/` (approval deployed
/// without dispatch's files) gives none, and publishing then checks no code table.
pub fn load_platforms(deploy_dir: &Path) -> anyhow::Result<Vec<PlatformConfig>> {
    let dir = deploy_dir.join("platforms");
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    tongban_platform::load_dir_in(&dir, &|_| None, tongban_platform::Mode::MappingsOnly)
        .map_err(|e| anyhow::anyhow!("loading platforms from {}: {e}", dir.display()))
}

/// Each value of the definition (form value or matter code) that a platform's code table
/// lacks, as a violation of `source`.
fn code_gap_violations(gaps: &[CodeGap]) -> ApprovalError {
    ApprovalError::Invalid(
        gaps.iter()
            .map(|g| Violation {
                field: "source".into(),
                description: g.to_string(),
            })
            .collect(),
    )
}

impl Approval {
    /// What an earlier PublishDefinition with this request's `request_id` published;
    /// `RequestIdReused` when that id came with another source; `None` for no id or an unused
    /// one.
    async fn published_for<C: DefinitionStore>(
        &self,
        conn: &C,
        req: &Publish,
    ) -> Result<Option<StoredDefinition>, ApprovalError> {
        let Some(request_id) = &req.request_id else {
            return Ok(None);
        };
        match conn.definition_by_request_id(request_id).await? {
            Some(d) if d.source == req.source => Ok(Some(d)),
            Some(_) => Err(ApprovalError::RequestIdReused(request_id.clone())),
            None => Ok(None),
        }
    }

    /// Publishes a new version; a retry with the same `request_id` returns what the first
    /// call published (AIP-155) and announces nothing again.
    pub async fn publish_definition(
        &self,
        who: &Identity,
        req: Publish,
    ) -> Result<StoredDefinition, ApprovalError> {
        self.policy.check(
            who,
            tongban_authz::Action::PublishDefinition,
            &tongban_authz::Scope::default(),
            "definition",
        )?;
        let def = self
            .defs
            .parse(&req.source, "published definition")
            .map_err(definition_violations)?;
        let gaps = tongban_platform::code_table_gaps(&self.platforms, &[MatterForm::from(&def)]);
        if !gaps.is_empty() {
            return Err(code_gap_violations(&gaps));
        }
        let now = self.now();
        let txn = begin_write(&self.db).await?;
        if let Some(done) = self.published_for(&txn, &req).await? {
            return Ok(done);
        }
        let existing = txn.definitions(Some(&def.code)).await?;
        if existing.iter().any(|d| d.version == def.version) {
            return Err(ApprovalError::AlreadyExists(format!(
                "definition {} version {}",
                def.code, def.version
            )));
        }
        if let Some(latest) = existing.iter().map(|d| d.version).max()
            && def.version < latest
        {
            return Err(ApprovalError::FailedPrecondition(format!(
                "version {} of {} must be greater than the latest, {latest}",
                def.version, def.code
            )));
        }
        let stored = StoredDefinition {
            code: def.code.clone(),
            version: def.version,
            name: def.name.clone(),
            source: def.source.clone(),
            published_at: ms(now),
            published_by: who.actor_label(),
            request_id: req.request_id.clone().unwrap_or_default(),
        };
        if !txn.save_definition(&stored).await? {
            return Err(ApprovalError::AlreadyExists(format!(
                "definition {} version {}",
                def.code, def.version
            )));
        }
        crate::audit::append_to(
            &txn,
            crate::audit::SERVICE_CHAIN,
            ms(now),
            crate::audit::Record::by(
                who,
                "publish_definition",
                String::new(),
                &format!("{}@{}", def.code, def.version),
                "",
            ),
        )
        .await?;
        let event = new_envelope(
            PRODUCER,
            "",
            Payload::DefinitionPublished(events::DefinitionPublished {
                matter_code: def.code.clone(),
                version: def.version,
                source: def.source.clone(),
            }),
        );
        self.finish(txn, std::slice::from_ref(&event)).await?;
        self.defs.insert(def);
        tracing::info!(code = %stored.code, version = stored.version, by = %stored.published_by, "definition published");
        Ok(stored)
    }
}
