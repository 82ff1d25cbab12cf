//! Publishing a definition version over the API: parsed against the known departments, stored
//! once per (code, version) and never below the latest, announced with `definition.published`
//! in the same transaction.

use tongban_auth::{Identity, Role};
use tongban_matter::DefinitionError;
use tongban_outbox::new_envelope;
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

impl Approval {
    pub async fn publish_definition(
        &self,
        who: &Identity,
        req: Publish,
    ) -> Result<StoredDefinition, ApprovalError> {
        who.require(&[Role::Admin])?;
        let def = self
            .defs
            .parse(&req.source, "published definition")
            .map_err(definition_violations)?;
        let now = self.now();
        let txn = begin_write(&self.db).await?;
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
        };
        if !txn.save_definition(&stored).await? {
            return Err(ApprovalError::AlreadyExists(format!(
                "definition {} version {}",
                def.code, def.version
            )));
        }
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
