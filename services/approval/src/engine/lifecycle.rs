//! Inputs to an instance from outside the staff task API: other services' events (called
//! inside the consumer's transaction, whose inbox makes a redelivery a no-op) and the
//! enterprise's rating of an answered request.

use sea_orm::DatabaseTransaction;
use tongban_auth::Identity;
use tongban_matter::MatterKind;
use tongban_outbox::outbox;
use tongban_storage::begin_write;

use super::{Approval, Cause, TaskSpec};
use crate::{
    audit::{self, Record},
    convert::decided_event,
    error::ApprovalError,
    model::{InstanceKind, InstanceStatus, TaskDecision, TaskKind, TaskState},
    repository::{Instance, InstanceStore, Lock, TaskStore, ms},
    requests::{Rate, Submission},
    views::WorkflowView,
    workflow::{Input, InstanceState, StagePlan},
};

impl Approval {
    /// `application.submitted`: start the instance pinned to the version the application names.
    ///
    /// `withdrawn`: the reason of a withdrawal that overtook the submission (parked, see
    /// [`crate::consumer`]). Then no workflow starts: the instance is recorded `WITHDRAWN`
    /// with its plan and no task, no event goes out, and the audit trail says why, so
    /// GetWorkflow and the reports show a withdrawn application, not a running one.
    pub async fn on_submitted(
        &self,
        txn: &DatabaseTransaction,
        sub: &Submission,
        withdrawn: Option<&str>,
    ) -> Result<(), ApprovalError> {
        let now = self.now();
        let application_id = sub.application_id.clone();
        if txn
            .find_instance(&application_id, Lock::None)
            .await?
            .is_some()
        {
            tracing::info!(%application_id, "instance exists already; submission ignored");
            return Ok(());
        }
        let def = match self
            .defs
            .get(txn, &sub.matter_code, sub.matter_version)
            .await
        {
            Some(d) => d,
            None => {
                let d = self
                    .defs
                    .latest(txn, &sub.matter_code)
                    .await
                    .ok_or_else(|| {
                        ApprovalError::FailedPrecondition(format!(
                            "unknown matter {}",
                            sub.matter_code
                        ))
                    })?;
                tracing::warn!(matter = %sub.matter_code, asked = sub.matter_version, using = d.version, "definition version unknown; using the latest");
                d
            }
        };
        // Region-routed tasks follow the project site when the matter declares one.
        let ctx = def.eval_context(
            &sub.form,
            sub.credit_class,
            &sub.region_code,
            sub.pledge_signed,
        );
        let plan: Vec<StagePlan> = def
            .plan(&ctx, self.defs.departments())
            .map_err(|e| {
                ApprovalError::FailedPrecondition(format!("cannot plan {}: {e}", def.code))
            })?
            .iter()
            .map(StagePlan::from)
            .collect();
        let on_pledge = def.pledge_applies(&ctx);
        if plan.is_empty() && !on_pledge {
            return Err(ApprovalError::FailedPrecondition(format!(
                "{} v{} plans no stage for this application",
                def.code, def.version
            )));
        }
        let mut inst = Instance {
            instance_id: tongban_types::new_id(),
            application_id: application_id.clone(),
            matter_code: def.code.clone(),
            definition_version: def.version,
            kind: if def.kind == MatterKind::EnterpriseRequest {
                InstanceKind::EnterpriseRequest
            } else {
                InstanceKind::Application
            },
            state: InstanceState::start(),
            plan,
            on_pledge,
            lead_department: def.lead_department.clone(),
            owner_credit_code: sub.credit_code.clone(),
            supplement_task_id: String::new(),
            snapshot: sub.snapshot.clone(),
            version: 1,
            created_at: ms(now),
            updated_at: ms(now),
            answer_due_at: 0,
            rating_due_at: 0,
        };
        if let Some(reason) = withdrawn {
            inst.state = InstanceState::new(InstanceStatus::Withdrawn, 0);
            if !txn.insert_instance(&inst).await? {
                return Ok(());
            }
            audit::append(
                txn,
                &application_id,
                ms(now),
                Record::system(
                    "withdrawn",
                    format!(
                        "withdrawn before its submission arrived; no workflow started ({} v{}): {reason}",
                        def.code, def.version
                    ),
                    "",
                    &def.lead_department,
                ),
            )
            .await?;
            tracing::info!(%application_id, matter = %def.code, "withdrawn before the submission arrived; no workflow started");
            return Ok(());
        }
        let (state, commands) =
            inst.state
                .apply(Input::Started, inst.plan.len(), inst.is_request())?;
        inst.state = state;
        if !txn.insert_instance(&inst).await? {
            return Ok(());
        }
        let mut events = Vec::new();
        audit::append(
            txn,
            &application_id,
            ms(now),
            Record::system(
                "start",
                format!(
                    "{} v{}{}",
                    def.code,
                    def.version,
                    if inst.on_pledge { " (on pledge)" } else { "" }
                ),
                "",
                &def.lead_department,
            ),
        )
        .await?;
        self.run_commands(
            txn,
            &mut inst,
            &commands,
            &Cause::system("start"),
            now,
            &mut events,
        )
        .await?;
        // 容缺受理: each owed material is followed up on its own clock.
        for owed in &sub.owed {
            let due = owed
                .due
                .unwrap_or_else(|| self.calendar.add_working_days(now, 20));
            let name = def
                .material(&owed.material_kind)
                .map_or(owed.material_kind.clone(), |m| m.name.clone());
            let title = format!("补交材料：{name}");
            let spec = TaskSpec::follow_up(
                TaskKind::FollowUpMaterial,
                &inst.lead_department,
                &title,
                due,
                def.escalate_after_hours,
            );
            let mut t = self.new_task(&inst, spec, now);
            t.material_kind = owed.material_kind.clone();
            self.create_task(txn, &t, &mut events).await?;
        }
        outbox::enqueue(txn, &events).await?;
        tracing::info!(%application_id, matter = %def.code, version = def.version, "instance started");
        Ok(())
    }

    /// `application.supplemented`: resume the task that asked, complete owed-material follow-ups.
    pub async fn on_supplemented(
        &self,
        txn: &DatabaseTransaction,
        application_id: &str,
        fulfilled_kinds: &[String],
    ) -> Result<(), ApprovalError> {
        let now = self.now();
        let Some(mut inst) = txn.find_instance(application_id, Lock::Update).await? else {
            return Ok(());
        };
        let mut events = Vec::new();
        if inst.state.status == InstanceStatus::WaitingSupplement {
            self.transition(
                txn,
                &mut inst,
                Input::Supplemented,
                &Cause::system("supplemented"),
                now,
                &mut events,
            )
            .await?;
        }
        for t in txn.tasks_of_instance(&inst.instance_id).await? {
            if t.kind == TaskKind::FollowUpMaterial
                && t.status.is_active()
                && fulfilled_kinds.contains(&t.material_kind)
            {
                let mut done = t.clone();
                done.status = TaskState::Done;
                done.version += 1;
                done.decided_at = Some(ms(now));
                done.decision = TaskDecision::Done;
                done.comment = "材料已补交".into();
                self.write_task(txn, &done, t.version).await?;
                audit::append(
                    txn,
                    application_id,
                    ms(now),
                    Record::system("done", "owed material supplied", &t.task_id, &t.department),
                )
                .await?;
                events.push(decided_event(&done, "done", "system"));
            }
        }
        self.save_instance(txn, &mut inst, now).await?;
        outbox::enqueue(txn, &events).await?;
        Ok(())
    }

    /// `application.withdrawn`: cancel what is open; a finished instance stays as it is.
    pub async fn on_withdrawn(
        &self,
        txn: &DatabaseTransaction,
        application_id: &str,
        reason: &str,
    ) -> Result<(), ApprovalError> {
        let now = self.now();
        let Some(mut inst) = txn.find_instance(application_id, Lock::Update).await? else {
            return Ok(());
        };
        let mut events = Vec::new();
        let mut cause = Cause::system("withdrawn");
        cause.comment = reason.to_string();
        match self
            .transition(txn, &mut inst, Input::Withdrawn, &cause, now, &mut events)
            .await
        {
            Ok(()) => {}
            Err(ApprovalError::FailedPrecondition(why)) => {
                tracing::info!(%application_id, %why, "withdrawal ignored");
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        self.save_instance(txn, &mut inst, now).await?;
        outbox::enqueue(txn, &events).await?;
        Ok(())
    }

    /// The enterprise rates the answer to its request.
    pub async fn rate(&self, who: &Identity, req: Rate) -> Result<WorkflowView, ApprovalError> {
        self.policy
            .check_role(who, tongban_authz::Action::RateOutcome)?;
        let now = self.now();
        let txn = begin_write(&self.db).await?;
        let mut inst = txn
            .find_instance(&req.application_id, Lock::Update)
            .await?
            .ok_or_else(|| {
                ApprovalError::NotFound(format!("workflow of application {}", req.application_id))
            })?;
        self.policy.check(
            who,
            tongban_authz::Action::RateOutcome,
            &crate::authz::instance_scope(&inst, &[]),
            &inst.application_id,
        )?;
        let def = self.definition_of(&txn, &inst).await?;
        let policy = def.request.as_ref().ok_or_else(|| {
            ApprovalError::FailedPrecondition(format!(
                "{} is not an enterprise request; nothing to rate",
                inst.matter_code
            ))
        })?;
        let reopen_stage = inst
            .plan
            .iter()
            .position(|s| s.stage_id == policy.reopen_stage)
            .unwrap_or(usize::MAX);
        let cause = Cause {
            record: Record::by(who, "rate", req.comment.clone(), "", ""),
            task: None,
            comment: req.comment.clone(),
            requested_materials: vec![],
            rating: Some(req.rating),
        };
        let mut events = Vec::new();
        self.transition(
            &txn,
            &mut inst,
            Input::Rated {
                reopen: policy.reopen_on.contains(&req.rating),
                reopen_stage,
            },
            &cause,
            now,
            &mut events,
        )
        .await?;
        self.save_instance(&txn, &mut inst, now).await?;
        self.finish(txn, &events).await?;
        self.workflow(who, &inst.application_id).await
    }
}
