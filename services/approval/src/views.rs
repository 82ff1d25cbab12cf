//! The read side: an application's workflow (stages, tasks, follow-ups and timeline), its
//! audit trail with the chain verified, and the stored definitions. Views are plain data;
//! [`crate::convert`] turns them into the API's messages.

use std::cmp::Ordering;

use tongban_auth::Identity;
use tongban_authz::Action;

use crate::{
    audit::{self, Entry},
    engine::Approval,
    error::ApprovalError,
    repository::{
        DefinitionStore, Instance, InstanceStore, Lock, StoredDefinition, Task, TaskStore,
    },
    requests::ListDefinitions,
};

/// Where a stage of the definition stands for one application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageState {
    Done,
    Active,
    Pending,
    /// In the definition, but left out of this application's plan.
    Skipped,
}

#[derive(Debug, Clone)]
pub struct StageView {
    pub stage_id: String,
    pub name: String,
    pub state: StageState,
    pub tasks: Vec<Task>,
}

/// One application's workflow as the API shows it.
#[derive(Debug, Clone)]
pub struct WorkflowView {
    pub instance: Instance,
    pub stages: Vec<StageView>,
    pub follow_ups: Vec<Task>,
    pub timeline: Vec<Entry>,
}

/// The audit trail and whether its chain verifies.
#[derive(Debug, Clone)]
pub struct AuditTrail {
    pub entries: Vec<Entry>,
    /// The seq of the first entry that does not verify; `None` when the chain is intact.
    pub first_bad_seq: Option<i64>,
}

impl Approval {
    /// The instance of `application_id`, if `who` may do `action` on it (its enterprise, or a
    /// department of its workflow).
    async fn visible_instance(
        &self,
        who: &Identity,
        action: Action,
        application_id: &str,
    ) -> Result<Instance, ApprovalError> {
        self.policy.check_role(who, action)?;
        let inst = self
            .db
            .find_instance(application_id.trim(), Lock::None)
            .await?
            .ok_or_else(|| {
                ApprovalError::NotFound(format!("workflow of application {application_id}"))
            })?;
        let tasks = self.db.tasks_of_instance(&inst.instance_id).await?;
        self.policy.check(
            who,
            action,
            &crate::authz::instance_scope(&inst, &tasks),
            &inst.application_id,
        )?;
        Ok(inst)
    }

    pub async fn workflow(
        &self,
        who: &Identity,
        application_id: &str,
    ) -> Result<WorkflowView, ApprovalError> {
        let inst = self
            .visible_instance(who, Action::GetWorkflow, application_id)
            .await?;
        let tasks = self.db.tasks_of_instance(&inst.instance_id).await?;
        let timeline = audit::entries(&self.db, &inst.application_id).await?;
        let running = inst.state.current_stage().is_some();
        let mut stages: Vec<StageView> = inst
            .plan
            .iter()
            .enumerate()
            .map(|(i, s)| StageView {
                stage_id: s.stage_id.clone(),
                name: s.name.clone(),
                state: match (i.cmp(&inst.state.stage), running) {
                    (Ordering::Less, _) => StageState::Done,
                    (Ordering::Equal, true) => StageState::Active,
                    (Ordering::Equal, false) => StageState::Done,
                    (Ordering::Greater, _) => StageState::Pending,
                },
                tasks: tasks
                    .iter()
                    .filter(|t| t.stage_index == i as i64)
                    .cloned()
                    .collect(),
            })
            .collect();
        // Stages of the definition that this application's plan left out are shown as skipped.
        if let Some(def) = self
            .defs
            .get(&self.db, &inst.matter_code, inst.definition_version)
            .await
        {
            let mut all = Vec::new();
            for sd in &def.stages {
                match stages.iter().position(|s| s.stage_id == sd.id) {
                    Some(p) => all.push(stages[p].clone()),
                    None => all.push(StageView {
                        stage_id: sd.id.clone(),
                        name: sd.name.clone(),
                        state: StageState::Skipped,
                        tasks: vec![],
                    }),
                }
            }
            if all.len() >= stages.len() {
                stages = all;
            }
        }
        let follow_ups = tasks.into_iter().filter(Task::is_follow_up).collect();
        Ok(WorkflowView {
            instance: inst,
            stages,
            follow_ups,
            timeline,
        })
    }

    pub async fn audit_trail(
        &self,
        who: &Identity,
        application_id: &str,
    ) -> Result<AuditTrail, ApprovalError> {
        let inst = self
            .visible_instance(who, Action::GetAuditTrail, application_id)
            .await?;
        let (entries, first_bad_seq) = audit::verify(&self.db, &inst.application_id).await?;
        Ok(AuditTrail {
            entries,
            first_bad_seq,
        })
    }

    /// The stored definitions, by code then version: every version, or the latest of each.
    pub async fn list_definitions(
        &self,
        who: &Identity,
        req: ListDefinitions,
    ) -> Result<(Vec<StoredDefinition>, String), ApprovalError> {
        self.policy.check(
            who,
            Action::ListDefinitions,
            &tongban_authz::Scope::default(),
            "definitions",
        )?;
        let all = self.db.definitions(req.matter_code.as_deref()).await?;
        let mut out: Vec<StoredDefinition> = Vec::new();
        for d in all {
            // Rows come ordered by code then version: the last of each code is its latest.
            if !req.all_versions && out.last().is_some_and(|last| last.code == d.code) {
                out.pop();
            }
            out.push(d);
        }
        Ok(req.page.slice(&out, |d| (d.code.clone(), d.version)))
    }
}
