//! The command executor: carries out what a transition of the workflow machine returned, one
//! method per [`Command`], inside the transition's transaction. Events go to `events`, which
//! the caller enqueues in the outbox with the rest of its change.

use chrono::{DateTime, Datelike, Utc};
use sea_orm::DatabaseTransaction;
use tongban_outbox::new_envelope;
use tongban_proto::{
    events::{self, Envelope, envelope::Payload},
    time::ts,
};

use super::{Approval, Cause, PRODUCER, TaskSpec};

/// Working days the lead department has to visit an enterprise whose request closed.
pub const VISIT_WITHIN_WORKING_DAYS: u32 = 5;
use crate::{
    audit::{self, Record},
    error::ApprovalError,
    model::{TaskDecision, TaskKind},
    repository::{CounterStore, Instance, TaskStore, ms},
    workflow::Command,
};

impl Approval {
    pub(crate) async fn run_commands(
        &self,
        txn: &DatabaseTransaction,
        inst: &mut Instance,
        commands: &[Command],
        cause: &Cause,
        now: DateTime<Utc>,
        events: &mut Vec<Envelope>,
    ) -> Result<(), ApprovalError> {
        for command in commands {
            match *command {
                Command::OpenStage(i) => {
                    self.start_answer_clock(txn, inst, i, now).await?;
                    self.open_stage(txn, inst, i, now, events).await?
                }
                Command::EmitApproved => self.emit_approved(txn, inst, now, events).await?,
                Command::EmitAnswered => {
                    self.emit_answered(txn, inst, cause, now, events).await?;
                    let wait = self
                        .request_policy(txn, inst)
                        .await?
                        .close_unrated_after_working_days;
                    inst.rating_due_at = ms(self.calendar.add_working_days(now, wait));
                }
                Command::RejectApplication => {
                    self.reject_application(txn, inst, cause, now, events)
                        .await?
                }
                Command::EmitSupplementRequested => {
                    self.emit_supplement_requested(inst, cause, events)
                }
                Command::ResumeSupplementTask => {
                    self.resume_supplement_task(txn, inst, now).await?
                }
                Command::CancelOpenTasks => self.cancel_open_tasks(txn, inst, cause, now).await?,
                Command::EmitRated { reopened } => {
                    self.emit_rated(txn, inst, cause, reopened, now, events)
                        .await?;
                    inst.rating_due_at = 0;
                    // Reopened: the answer clock starts again with the stage it reopens.
                    inst.answer_due_at = 0;
                }
                Command::CloseUnrated => self.close_unrated(txn, inst, now, events).await?,
            }
        }
        Ok(())
    }

    /// The department a change is made in: the deciding task's, else the lead department.
    fn department_of(inst: &Instance, cause: &Cause) -> String {
        cause
            .task
            .as_ref()
            .map_or(inst.lead_department.clone(), |t| t.department.clone())
    }

    /// The matter's request policy; an instance of kind request always has one.
    async fn request_policy(
        &self,
        txn: &DatabaseTransaction,
        inst: &Instance,
    ) -> Result<tongban_matter::RequestPolicy, ApprovalError> {
        self.definition_of(txn, inst)
            .await?
            .request
            .clone()
            .ok_or_else(|| {
                ApprovalError::Corrupt(format!(
                    "{} v{} has no [request] policy",
                    inst.matter_code, inst.definition_version
                ))
            })
    }

    /// An enterprise request's answer deadline starts when it is accepted (its first stage
    /// done, so a later stage opens) and again when a rating reopened it.
    async fn start_answer_clock(
        &self,
        txn: &DatabaseTransaction,
        inst: &mut Instance,
        stage: usize,
        now: DateTime<Utc>,
    ) -> Result<(), ApprovalError> {
        if inst.is_request() && stage > 0 && inst.answer_due_at == 0 {
            let hours = self.request_policy(txn, inst).await?.answer_deadline_hours;
            inst.answer_due_at = ms(self.calendar.add_working_hours(now, hours));
        }
        Ok(())
    }

    /// [`Command::CloseUnrated`]: the answer waited its period without a rating.
    async fn close_unrated(
        &self,
        txn: &DatabaseTransaction,
        inst: &mut Instance,
        now: DateTime<Utc>,
        events: &mut Vec<Envelope>,
    ) -> Result<(), ApprovalError> {
        let days = self
            .request_policy(txn, inst)
            .await?
            .close_unrated_after_working_days;
        let reason = format!("not rated within {days} working days of the answer");
        inst.rating_due_at = 0;
        events.push(new_envelope(
            PRODUCER,
            &inst.application_id,
            Payload::ApplicationClosed(events::ApplicationClosed {
                reason: reason.clone(),
                unrated: true,
            }),
        ));
        audit::append(
            txn,
            &inst.application_id,
            ms(now),
            Record::system("closed_unrated", reason, "", &inst.lead_department),
        )
        .await?;
        self.follow_up_visit(txn, inst, now, events).await
    }

    /// [`Command::OpenStage`]: creates the stage's tasks, one per planned department.
    async fn open_stage(
        &self,
        txn: &DatabaseTransaction,
        inst: &Instance,
        i: usize,
        now: DateTime<Utc>,
        events: &mut Vec<Envelope>,
    ) -> Result<(), ApprovalError> {
        let stage = inst
            .plan
            .get(i)
            .cloned()
            .ok_or_else(|| ApprovalError::Corrupt(format!("plan has no stage {i}")))?;
        let kind = if inst.is_request() {
            TaskKind::HandleRequest
        } else {
            TaskKind::Review
        };
        let grace = self.definition_of(txn, inst).await?.escalate_after_hours;
        for tp in &stage.tasks {
            let mut due = self.calendar.add_working_hours(now, tp.deadline_hours);
            // No task of a request is due after the request's answer deadline.
            if inst.answer_due_at > 0 {
                due = due.min(crate::repository::from_ms(inst.answer_due_at));
            }
            let spec = TaskSpec {
                stage_index: i as i64,
                stage_id: &stage.stage_id,
                stage_name: &stage.name,
                kind,
                department: &tp.department,
                office: tp.office.as_deref().unwrap_or(""),
                title: &tp.title,
                deadline_hours: tp.deadline_hours,
                due,
                escalate_after_hours: grace,
            };
            let t = self.new_task(inst, spec, now);
            self.create_task(txn, &t, events).await?;
        }
        audit::append(
            txn,
            &inst.application_id,
            ms(now),
            Record::system("open_stage", stage.name.clone(), "", ""),
        )
        .await
    }

    /// [`Command::EmitApproved`]: draws the decision number and emits `application.approved`;
    /// on pledge, opens the verification follow-up.
    async fn emit_approved(
        &self,
        txn: &DatabaseTransaction,
        inst: &Instance,
        now: DateTime<Utc>,
        events: &mut Vec<Envelope>,
    ) -> Result<(), ApprovalError> {
        let def = self.definition_of(txn, inst).await?;
        let prefix = def.decision_prefix();
        let year = now.with_timezone(&self.calendar.time_zone()).year();
        let n = txn
            .next_counter(&format!("decision_number:{prefix}:{year}"))
            .await?;
        let decision_number = format!("{prefix}〔{year}〕{n}号");
        events.push(new_envelope(
            PRODUCER,
            &inst.application_id,
            Payload::ApplicationApproved(events::ApplicationApproved {
                decision_number: decision_number.clone(),
                decide_time: Some(ts(now)),
                on_pledge: inst.on_pledge,
                department: inst.lead_department.clone(),
            }),
        ));
        audit::append(
            txn,
            &inst.application_id,
            ms(now),
            Record::system("approved", decision_number, "", &inst.lead_department),
        )
        .await?;
        if inst.on_pledge {
            self.pledge_follow_up(txn, inst, now, events).await?;
        }
        Ok(())
    }

    /// After approval on pledge (告知承诺制): a task to verify the pledge within its window.
    async fn pledge_follow_up(
        &self,
        txn: &DatabaseTransaction,
        inst: &Instance,
        now: DateTime<Utc>,
        events: &mut Vec<Envelope>,
    ) -> Result<(), ApprovalError> {
        let def = self.definition_of(txn, inst).await?;
        let Some(p) = &def.pledge else { return Ok(()) };
        let due = self
            .calendar
            .add_working_days(now, p.verify_within_working_days);
        let spec = TaskSpec::follow_up(
            TaskKind::VerifyPledge,
            &p.verify_department,
            "告知承诺事项核查",
            due,
            def.escalate_after_hours,
        );
        let t = self.new_task(inst, spec, now);
        self.create_task(txn, &t, events).await
    }

    /// A rejected pledge verification (告知承诺制): the approval is revoked. Emits
    /// `application.revoked`, which intake turns into status REVOKED and a breach record in the
    /// credit registry, dispatch sends to the platforms that declare it, and notification tells
    /// the applicant.
    pub(crate) async fn revoke_approval(
        &self,
        txn: &DatabaseTransaction,
        inst: &Instance,
        verification: &crate::repository::Task,
        now: DateTime<Utc>,
        events: &mut Vec<Envelope>,
    ) -> Result<(), ApprovalError> {
        events.push(new_envelope(
            PRODUCER,
            &inst.application_id,
            Payload::ApplicationRevoked(events::ApplicationRevoked {
                reason: verification.comment.clone(),
                department: verification.department.clone(),
                revoke_time: Some(ts(now)),
                task_id: verification.task_id.clone(),
            }),
        ));
        audit::append(
            txn,
            &inst.application_id,
            ms(now),
            Record::system(
                "revoked",
                verification.comment.clone(),
                &verification.task_id,
                &verification.department,
            ),
        )
        .await
    }

    /// [`Command::EmitAnswered`]: an enterprise request's answer, `request.answered`.
    async fn emit_answered(
        &self,
        txn: &DatabaseTransaction,
        inst: &Instance,
        cause: &Cause,
        now: DateTime<Utc>,
        events: &mut Vec<Envelope>,
    ) -> Result<(), ApprovalError> {
        let department = Self::department_of(inst, cause);
        events.push(new_envelope(
            PRODUCER,
            &inst.application_id,
            Payload::RequestAnswered(events::RequestAnswered {
                department: department.clone(),
                answer: cause.comment.clone(),
            }),
        ));
        audit::append(
            txn,
            &inst.application_id,
            ms(now),
            Record::system("answered", cause.comment.clone(), "", &department),
        )
        .await
    }

    /// [`Command::RejectApplication`]: cancels the other open tasks, emits
    /// `application.rejected`.
    async fn reject_application(
        &self,
        txn: &DatabaseTransaction,
        inst: &Instance,
        cause: &Cause,
        now: DateTime<Utc>,
        events: &mut Vec<Envelope>,
    ) -> Result<(), ApprovalError> {
        let department = Self::department_of(inst, cause);
        self.cancel_active(txn, inst, now, "rejected").await?;
        events.push(new_envelope(
            PRODUCER,
            &inst.application_id,
            Payload::ApplicationRejected(events::ApplicationRejected {
                reason: cause.comment.clone(),
                department: department.clone(),
                decide_time: Some(ts(now)),
            }),
        ));
        audit::append(
            txn,
            &inst.application_id,
            ms(now),
            Record::system("rejected", cause.comment.clone(), "", &department),
        )
        .await
    }

    /// [`Command::EmitSupplementRequested`]: remembers which task asked, and emits
    /// `application.supplement_requested`.
    fn emit_supplement_requested(
        &self,
        inst: &mut Instance,
        cause: &Cause,
        events: &mut Vec<Envelope>,
    ) {
        let task_id = cause
            .task
            .as_ref()
            .map(|t| t.task_id.clone())
            .unwrap_or_default();
        inst.supplement_task_id = task_id.clone();
        events.push(new_envelope(
            PRODUCER,
            &inst.application_id,
            Payload::SupplementRequested(events::SupplementRequested {
                task_id,
                department: Self::department_of(inst, cause),
                comment: cause.comment.clone(),
                requested_materials: cause.requested_materials.clone(),
            }),
        ));
    }

    /// [`Command::ResumeSupplementTask`]: reopens the task that asked for the supplement.
    async fn resume_supplement_task(
        &self,
        txn: &DatabaseTransaction,
        inst: &mut Instance,
        now: DateTime<Utc>,
    ) -> Result<(), ApprovalError> {
        let id = std::mem::take(&mut inst.supplement_task_id);
        let Some(t) = txn.find_task(&id).await? else {
            return Ok(());
        };
        let mut open = t.clone();
        open.status = t.status.resume()?;
        open.assignee.clear();
        open.version += 1;
        open.decided_at = None;
        open.decision = TaskDecision::None;
        // The applicant's time does not count against the department: a new deadline, and its
        // timers start again.
        let due = self.calendar.add_working_hours(now, t.deadline_hours);
        let grace = self.definition_of(txn, inst).await?.escalate_after_hours;
        open.due_at = ms(due);
        open.due_soon_at = ms(self.calendar.due_soon_at(due));
        open.escalate_at = ms(self.calendar.add_working_hours(due, grace));
        open.due_soon_sent = false;
        open.overdue_sent = false;
        open.escalated = false;
        self.write_task(txn, &open, t.version).await?;
        audit::append(
            txn,
            &inst.application_id,
            ms(now),
            Record::system(
                "resume",
                "materials supplemented",
                &t.task_id,
                &t.department,
            ),
        )
        .await
    }

    /// [`Command::CancelOpenTasks`]: a withdrawal cancels everything still open.
    async fn cancel_open_tasks(
        &self,
        txn: &DatabaseTransaction,
        inst: &Instance,
        cause: &Cause,
        now: DateTime<Utc>,
    ) -> Result<(), ApprovalError> {
        self.cancel_active(txn, inst, now, "withdrawn").await?;
        audit::append(
            txn,
            &inst.application_id,
            ms(now),
            Record::system("withdrawn", cause.comment.clone(), "", ""),
        )
        .await
    }

    /// [`Command::EmitRated`]: `outcome.rated`, then `application.closed` unless reopened.
    async fn emit_rated(
        &self,
        txn: &DatabaseTransaction,
        inst: &Instance,
        cause: &Cause,
        reopened: bool,
        now: DateTime<Utc>,
        events: &mut Vec<Envelope>,
    ) -> Result<(), ApprovalError> {
        let app = &inst.application_id;
        let rating = cause
            .rating
            .map(|r| r.as_str())
            .unwrap_or_default()
            .to_string();
        events.push(new_envelope(
            PRODUCER,
            app,
            Payload::OutcomeRated(events::OutcomeRated {
                rating: crate::convert::event_rating(cause.rating) as i32,
                comment: cause.comment.clone(),
                reopened,
            }),
        ));
        let mut record = cause.record.clone();
        record.action = if reopened { "reopened" } else { "closed" }.into();
        record.reason = format!("{rating}: {}", cause.comment);
        audit::append(txn, app, ms(now), record).await?;
        if !reopened {
            events.push(new_envelope(
                PRODUCER,
                app,
                Payload::ApplicationClosed(events::ApplicationClosed {
                    reason: format!("rated {rating}"),
                    unrated: false,
                }),
            ));
            self.follow_up_visit(txn, inst, now, events).await?;
        }
        Ok(())
    }

    /// 回访评估: once a request closes (rated or not), its lead department visits the
    /// enterprise and records how the outcome held up, within [`VISIT_WITHIN_WORKING_DAYS`].
    async fn follow_up_visit(
        &self,
        txn: &DatabaseTransaction,
        inst: &Instance,
        now: DateTime<Utc>,
        events: &mut Vec<Envelope>,
    ) -> Result<(), ApprovalError> {
        let grace = self.definition_of(txn, inst).await?.escalate_after_hours;
        let due = self
            .calendar
            .add_working_days(now, VISIT_WITHIN_WORKING_DAYS);
        let spec = TaskSpec::follow_up(
            TaskKind::FollowUpVisit,
            &inst.lead_department,
            "诉求回访评估",
            due,
            grace,
        );
        let t = self.new_task(inst, spec, now);
        self.create_task(txn, &t, events).await
    }
}
