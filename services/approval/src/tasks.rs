//! The staff task API: claim, decide, delegate and list tasks. Each change runs under the
//! application's instance lock (see [`crate::engine`]) and checks the task version the clerk
//! saw, so two clerks cannot both act on one task.

use sea_orm::DatabaseTransaction;
use tongban_auth::{Identity, Role};
use tongban_authz::{Action, Scope};
use tongban_outbox::new_envelope;
use tongban_proto::events::{self, envelope::Payload};
use tongban_storage::begin_write;

use crate::{
    audit::{self, Record},
    authz::task_scope,
    convert::decided_event,
    engine::{Approval, Cause, PRODUCER},
    error::{ApprovalError, invalid},
    model::{TaskKind, TaskState},
    repository::{Instance, InstanceStore, Lock, Task, TaskFilter, TaskStore, ms},
    requests::{Assignee, Claim, Decide, Delegate, ListTasks},
    workflow::{Decision, Input},
};

/// A page of tasks and the token for the next one ("" on the last page).
#[derive(Debug, Clone)]
pub struct TaskPage {
    pub tasks: Vec<Task>,
    pub next_page_token: String,
}

fn check_version(expected: i64, actual: i64) -> Result<(), ApprovalError> {
    if expected != 0 && expected != actual {
        return Err(ApprovalError::StaleVersion { expected, actual });
    }
    Ok(())
}

/// Whether `who` may do `action` on `task` (see [`tongban_authz::TABLE`]).
fn authorize_task(
    approval: &Approval,
    who: &Identity,
    action: Action,
    scope: &Scope,
    task: &Task,
) -> Result<(), ApprovalError> {
    Ok(approval.policy.check(who, action, scope, &task.task_id)?)
}

impl Approval {
    /// Loads a task and locks its application: (instance, task as of after the lock).
    async fn lock_task(
        &self,
        txn: &DatabaseTransaction,
        task_id: &str,
    ) -> Result<(Instance, Task), ApprovalError> {
        let not_found = || ApprovalError::NotFound(format!("task {task_id}"));
        let first = txn.find_task(task_id).await?.ok_or_else(not_found)?;
        let inst = txn
            .find_instance(&first.application_id, Lock::Update)
            .await?
            .ok_or_else(|| ApprovalError::Corrupt(format!("task {task_id} has no instance")))?;
        let task = txn.find_task(task_id).await?.ok_or_else(not_found)?;
        Ok((inst, task))
    }

    pub async fn claim(&self, who: &Identity, req: Claim) -> Result<Task, ApprovalError> {
        self.policy.check_role(who, Action::ClaimTask)?;
        let now = self.now();
        let txn = begin_write(&self.db).await?;
        let (_, task) = self.lock_task(&txn, &req.task_id).await?;
        authorize_task(self, who, Action::ClaimTask, &task_scope(&task), &task)?;
        check_version(req.expected_version, task.version)?;
        let mut claimed = task.clone();
        claimed.status = task.status.claim()?;
        claimed.assignee = who.subject.clone();
        claimed.version += 1;
        self.write_task(&txn, &claimed, task.version).await?;
        audit::append(
            &txn,
            &task.application_id,
            ms(now),
            Record::by(who, "claim", "", &task.task_id, &task.department),
        )
        .await?;
        self.finish(txn, &[]).await?;
        Ok(claimed)
    }

    /// Decides a task. A clerk may decide an OPEN task of their department directly: that
    /// claims it implicitly (the decision records them as assignee). A task CLAIMED by someone
    /// else can only be decided by that clerk, or a supervisor/admin.
    pub async fn decide(&self, who: &Identity, req: Decide) -> Result<Task, ApprovalError> {
        self.policy.check_role(who, Action::DecideTask)?;
        let Decide {
            task_id,
            decision,
            comment,
            expected_version,
            requested_materials,
            assign_departments,
        } = req;
        let now = self.now();
        let txn = begin_write(&self.db).await?;
        let (mut inst, task) = self.lock_task(&txn, &task_id).await?;
        authorize_task(self, who, Action::DecideTask, &task_scope(&task), &task)?;
        check_version(expected_version, task.version)?;
        let required = self.definition_of(&txn, &inst).await?.reason_required;
        let needs_reason = match decision {
            Decision::Approve => required.approve && !task.is_follow_up(),
            Decision::Reject => required.reject,
            // Always required (see `Decide`): the applicant must know what to bring.
            Decision::RequestSupplement => false,
        };
        if needs_reason && comment.is_empty() {
            return Err(ApprovalError::Invalid(vec![crate::error::Violation::new(
                "comment",
                format!(
                    "matter {} requires a reason to {}",
                    inst.matter_code,
                    decision.event_name()
                ),
            )]));
        }
        if task.status == TaskState::Claimed
            && task.assignee != who.subject
            && who.role == Role::Clerk
        {
            return Err(ApprovalError::FailedPrecondition(format!(
                "task is claimed by {}",
                task.assignee
            )));
        }
        let mut decided = task.clone();
        decided.status = task.status.decide(decision, task.is_follow_up())?;
        if decided.assignee.is_empty() {
            decided.assignee = who.subject.clone();
        }
        decided.version += 1;
        decided.decided_at = Some(ms(now));
        decided.decision = decision.into();
        decided.comment = comment.clone();
        // The conditional write is the guard: of two decisions with the same version, one
        // matches and the other gets ABORTED.
        self.write_task(&txn, &decided, expected_version).await?;
        let record = Record::by(
            who,
            decision.event_name(),
            comment.clone(),
            &task.task_id,
            &task.department,
        );
        audit::append(&txn, &task.application_id, ms(now), record.clone()).await?;
        let mut events = vec![decided_event(
            &decided,
            if task.is_follow_up() && decision == Decision::Approve {
                "done"
            } else {
                decision.event_name()
            },
            &who.actor_label(),
        )];
        // 告知承诺制: a failed pledge verification revokes the approval it followed.
        if task.kind == TaskKind::VerifyPledge && decision == Decision::Reject {
            self.revoke_approval(&txn, &inst, &decided, now, &mut events)
                .await?;
        }
        if !assign_departments.is_empty() {
            self.assign(&txn, &mut inst, &task, &assign_departments, who, now)
                .await?;
        }
        if !task.is_follow_up() {
            if inst.state.current_stage() != Some(task.stage_index as usize) {
                return Err(ApprovalError::FailedPrecondition(format!(
                    "workflow is {}; this task's stage is not current",
                    inst.state.status
                )));
            }
            let input = match decision {
                Decision::Approve => Input::TaskApproved {
                    stage_complete: self.stage_complete(&txn, &inst, &decided).await?,
                },
                Decision::Reject => Input::TaskRejected,
                Decision::RequestSupplement => Input::SupplementRequested,
            };
            let cause = Cause {
                record,
                task: Some(decided.clone()),
                comment,
                requested_materials,
                rating: None,
            };
            self.transition(&txn, &mut inst, input, &cause, now, &mut events)
                .await?;
            self.save_instance(&txn, &mut inst, now).await?;
        }
        self.finish(txn, &events).await?;
        Ok(decided)
    }

    /// 分类交办 / 协调会商: the approval of a request's assignment stage names the departments
    /// that handle it; the next stage is planned again with one task for each, in parallel,
    /// with the title and deadline the plan gave its task.
    async fn assign(
        &self,
        txn: &DatabaseTransaction,
        inst: &mut Instance,
        task: &Task,
        departments: &[String],
        who: &Identity,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), ApprovalError> {
        let policy = self.definition_of(txn, inst).await?.request.clone();
        let assign_stage = policy.as_ref().and_then(|p| p.assign_stage.as_deref());
        if task.is_follow_up() || assign_stage != Some(task.stage_id.as_str()) {
            return Err(invalid(
                "assign_departments",
                match assign_stage {
                    Some(s) => format!("departments are assigned only at stage `{s}`"),
                    None => format!("matter {} assigns no departments", inst.matter_code),
                },
            ));
        }
        for (i, d) in departments.iter().enumerate() {
            if !self.defs.departments().contains(d) {
                return Err(invalid(
                    format!("assign_departments[{i}]"),
                    format!("unknown department {d}"),
                ));
            }
        }
        let next = usize::try_from(task.stage_index).unwrap_or(usize::MAX) + 1;
        let stage = inst.plan.get_mut(next).ok_or_else(|| {
            ApprovalError::Corrupt(format!("plan has no stage after {}", task.stage_id))
        })?;
        let template = stage.tasks.first().cloned().ok_or_else(|| {
            ApprovalError::Corrupt(format!("stage {} plans no task", stage.stage_id))
        })?;
        stage.tasks = departments
            .iter()
            .map(|d| crate::workflow::TaskPlan {
                department: d.clone(),
                // The department keeps the township office the plan routed to, if any.
                office: template
                    .office
                    .clone()
                    .filter(|o| *d == template.department && !o.is_empty()),
                title: template.title.clone(),
                deadline_hours: template.deadline_hours,
            })
            .collect();
        audit::append(
            txn,
            &inst.application_id,
            ms(now),
            Record::by(
                who,
                "assign",
                departments.join(","),
                &task.task_id,
                &task.department,
            ),
        )
        .await
    }

    /// Whether approving `decided` completes its stage: every other task of the stage that
    /// was not cancelled is approved.
    async fn stage_complete(
        &self,
        txn: &DatabaseTransaction,
        inst: &Instance,
        decided: &Task,
    ) -> Result<bool, ApprovalError> {
        let siblings = txn.tasks_of_instance(&inst.instance_id).await?;
        Ok(siblings
            .iter()
            .filter(|t| t.stage_index == decided.stage_index && t.status != TaskState::Cancelled)
            .all(|t| t.task_id == decided.task_id || t.status == TaskState::Approved))
    }

    /// Hands a task to another clerk; moving it to another department is for supervisors and
    /// admins. The task becomes CLAIMED by the new assignee.
    pub async fn delegate(&self, who: &Identity, req: Delegate) -> Result<Task, ApprovalError> {
        self.policy.check_role(who, Action::DelegateTask)?;
        if let Some(d) = &req.department
            && !self.defs.departments().contains(d)
        {
            return Err(invalid("department", format!("unknown department {d}")));
        }
        let now = self.now();
        let txn = begin_write(&self.db).await?;
        let (_, task) = self.lock_task(&txn, &req.task_id).await?;
        let mut scope = task_scope(&task);
        if let Some(t) = scope.task.as_mut() {
            t.moves_department = req
                .department
                .as_ref()
                .is_some_and(|d| *d != task.department);
        }
        authorize_task(self, who, Action::DelegateTask, &scope, &task)?;
        check_version(req.expected_version, task.version)?;
        if !task.status.is_active() {
            return Err(ApprovalError::FailedPrecondition(format!(
                "task is {}; cannot delegate it",
                task.status
            )));
        }
        let mut moved = task.clone();
        if let Some(d) = &req.department
            && *d != task.department
        {
            moved.department = d.clone();
            moved.office.clear();
        }
        moved.assignee = req.assignee.clone();
        moved.status = TaskState::Claimed;
        moved.version += 1;
        self.write_task(&txn, &moved, task.version).await?;
        let reason = format!(
            "to {}{}; {}",
            req.assignee,
            req.department
                .as_ref()
                .map(|d| format!("@{d}"))
                .unwrap_or_default(),
            req.reason
        );
        audit::append(
            &txn,
            &task.application_id,
            ms(now),
            Record::by(who, "delegate", reason, &task.task_id, &moved.department),
        )
        .await?;
        // A move brings another department into the application's workflow: intake, dispatch
        // and notification widen the application's scope from this event.
        let events: Vec<_> = (moved.department != task.department)
            .then(|| {
                new_envelope(
                    PRODUCER,
                    &task.application_id,
                    Payload::TaskMoved(events::TaskMoved {
                        task_id: moved.task_id.clone(),
                        from_department: task.department.clone(),
                        department: moved.department.clone(),
                        office: moved.office.clone(),
                    }),
                )
            })
            .into_iter()
            .collect();
        self.finish(txn, &events).await?;
        Ok(moved)
    }

    /// Tasks soonest due first, a page at a time. Clerks and supervisors see their own
    /// department's unless they name another (clerks may name only their own or its offices).
    pub async fn list_tasks(
        &self,
        who: &Identity,
        req: ListTasks,
    ) -> Result<TaskPage, ApprovalError> {
        self.policy.check_role(who, Action::ListTasks)?;
        let mut department = req.department;
        if who.role != Role::Admin && department.is_none() {
            department = who.department.clone();
        }
        // Staff of the department asked for, or of the department it is an office of, may
        // list it; nobody lists another department's tasks.
        self.policy.check(
            who,
            Action::ListTasks,
            &Scope::departments(
                department
                    .as_deref()
                    .map(|d| self.covering(d))
                    .unwrap_or_default(),
            ),
            department.as_deref().unwrap_or("all departments"),
        )?;
        let filter = TaskFilter {
            department,
            assignee: req.assignee.map(|a| match a {
                Assignee::Me => who.subject.clone(),
                Assignee::Named(n) => n,
            }),
            statuses: req.statuses,
            due_before: req.due_before,
            application_id: req.application_id,
            kinds: req.kinds,
            after: req.page.after.clone(),
            limit: req.page.fetch_limit(),
        };
        let mut tasks = self.db.list_tasks(&filter).await?;
        let next_page_token = req
            .page
            .finish(&mut tasks, |t| (t.due_at, t.task_id.clone()));
        Ok(TaskPage {
            tasks,
            next_page_token,
        })
    }
}
