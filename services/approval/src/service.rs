//! The approval engine's use cases. Each one that changes state runs in one transaction that
//! (1) locks the application's instance row, (2) feeds the input through the state machine in
//! [`crate::workflow`], (3) carries out the returned commands (tasks, audit entries), and
//! (4) enqueues the events they cause in the outbox, then wakes the relay.
//!
//! The instance row lock is the one mutex per application: tasks, the audit chain and the timer
//! flags of an application only change under it, so concurrent decisions on different tasks of
//! one stage cannot both miss that the stage is complete, and audit `seq`s never collide.

use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Datelike, Utc};
use sea_orm::{DatabaseConnection, DatabaseTransaction};
use serde_json::{Map, Value as Json};
use tongban_auth::{Identity, Role};
use tongban_calendar::Calendar;
use tongban_matter::{DefinitionError, EvalContext, MatterDefinition, MatterKind};
use tongban_outbox::{RelayHandle, new_envelope, outbox};
use tongban_proto::{
    approval::{self as pb, TaskKind},
    events::{self, ApplicationSnapshot, Envelope, envelope::Payload},
    time::{from_ts, ts},
};
use tongban_storage::begin_write;

use crate::{
    audit::{self, Record},
    definitions::Definitions,
    error::{ApprovalError, Violation, forbidden, invalid},
    repository::{self, Instance, Lock, StoredDefinition, Task, TaskFilter, from_ms, ms},
    workflow::{Command, Decision, Input, InstanceStatus, StagePlan, TaskState},
};

pub const PRODUCER: &str = "approval";

/// Where "now" comes from; tests pass a fixed clock to run timers at a chosen instant.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

pub struct Approval {
    db: DatabaseConnection,
    defs: Definitions,
    calendar: Calendar,
    relay: RelayHandle,
    clock: Arc<dyn Clock>,
}

/// Why an instance changes: who acted, on which task, with what words.
struct Cause {
    record: Record,
    task: Option<Task>,
    comment: String,
    requested_materials: Vec<String>,
    rating: Option<tongban_matter::Rating>,
}

impl Cause {
    fn system(action: &str) -> Self {
        Self {
            record: Record::system(action, "", "", ""),
            task: None,
            comment: String::new(),
            requested_materials: Vec::new(),
            rating: None,
        }
    }
}

impl Approval {
    pub fn new(
        db: DatabaseConnection,
        defs: Definitions,
        calendar: Calendar,
        relay: RelayHandle,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            db,
            defs,
            calendar,
            relay,
            clock,
        }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn relay(&self) -> RelayHandle {
        self.relay.clone()
    }

    pub fn calendar(&self) -> &Calendar {
        &self.calendar
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    async fn finish(
        &self,
        txn: DatabaseTransaction,
        events: &[Envelope],
    ) -> Result<(), ApprovalError> {
        outbox::enqueue(&txn, events).await?;
        txn.commit().await?;
        self.relay.wake();
        Ok(())
    }

    // ------------------------------------------------------------------------------------------
    // Events from other services (called inside the consumer's transaction).

    /// `application.submitted`: start the instance pinned to the version the application names.
    pub async fn on_submitted(
        &self,
        txn: &DatabaseTransaction,
        env: &Envelope,
        snap: &ApplicationSnapshot,
    ) -> Result<(), ApprovalError> {
        let now = self.now();
        let application_id = if snap.application_id.is_empty() {
            env.application_id.clone()
        } else {
            snap.application_id.clone()
        };
        if repository::find_instance(txn, &application_id, Lock::None)
            .await?
            .is_some()
        {
            tracing::info!(%application_id, "instance exists already; submission ignored");
            return Ok(());
        }
        let def = match self
            .defs
            .get(txn, &snap.matter_code, snap.matter_version)
            .await
        {
            Some(d) => d,
            None => {
                let d = self
                    .defs
                    .latest(txn, &snap.matter_code)
                    .await
                    .ok_or_else(|| {
                        ApprovalError::FailedPrecondition(format!(
                            "unknown matter {}",
                            snap.matter_code
                        ))
                    })?;
                tracing::warn!(matter = %snap.matter_code, asked = snap.matter_version, using = d.version, "definition version unknown; using the latest");
                d
            }
        };
        let form = struct_to_json(snap.form.as_ref());
        let applicant = snap.applicant.clone().unwrap_or_default();
        let ctx = EvalContext {
            form: &form,
            credit_class: credit_class(applicant.credit_class),
            region_code: &applicant.region_code,
            pledge_signed: snap.pledge.as_ref().is_some_and(|p| p.signed),
        };
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
            is_request: def.kind == MatterKind::EnterpriseRequest,
            status: InstanceStatus::Running { stage: 0 },
            stage_index: 0,
            plan,
            on_pledge,
            lead_department: def.lead_department.clone(),
            owner_credit_code: applicant.credit_code.clone(),
            supplement_task_id: String::new(),
            snapshot: snap.clone(),
            version: 1,
            created_at: ms(now),
            updated_at: ms(now),
        };
        let (status, commands) =
            inst.status
                .apply(Input::Started, inst.plan.len(), inst.is_request)?;
        inst.status = status;
        if !repository::insert_instance(txn, &inst).await? {
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
        for owed in snap
            .owed_materials
            .iter()
            .filter(|o| o.fulfilled_time.is_none())
        {
            let due = owed
                .due_time
                .as_ref()
                .and_then(from_ts)
                .unwrap_or_else(|| self.calendar.add_working_days(now, 20));
            let name = def
                .material(&owed.material_kind)
                .map_or(owed.material_kind.clone(), |m| m.name.clone());
            let mut t = self.new_task(
                &inst,
                -1,
                "",
                "",
                TaskKind::FollowUpMaterial,
                &inst.lead_department,
                "",
                &format!("补交材料：{name}"),
                0,
                due,
                def.escalate_after_hours,
                now,
            );
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
        s: &events::ApplicationSupplemented,
    ) -> Result<(), ApprovalError> {
        let now = self.now();
        let Some(mut inst) = repository::find_instance(txn, application_id, Lock::Update).await?
        else {
            return Ok(());
        };
        let mut events = Vec::new();
        if matches!(inst.status, InstanceStatus::WaitingSupplement { .. }) {
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
        for t in repository::tasks_of_instance(txn, &inst.instance_id).await? {
            if t.kind == TaskKind::FollowUpMaterial
                && t.status.is_active()
                && s.fulfilled_kinds.contains(&t.material_kind)
            {
                let mut done = t.clone();
                done.status = TaskState::Done;
                done.version += 1;
                done.decided_at = Some(ms(now));
                done.decision = "done".into();
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
        let Some(mut inst) = repository::find_instance(txn, application_id, Lock::Update).await?
        else {
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

    // ------------------------------------------------------------------------------------------
    // The state machine, applied.

    async fn transition(
        &self,
        txn: &DatabaseTransaction,
        inst: &mut Instance,
        input: Input,
        cause: &Cause,
        now: DateTime<Utc>,
        events: &mut Vec<Envelope>,
    ) -> Result<(), ApprovalError> {
        let (next, commands) = inst.status.apply(input, inst.plan.len(), inst.is_request)?;
        inst.status = next;
        if let Some(stage) = next.stage() {
            inst.stage_index = stage;
        }
        self.run_commands(txn, inst, &commands, cause, now, events)
            .await
    }

    async fn save_instance(
        &self,
        txn: &DatabaseTransaction,
        inst: &mut Instance,
        now: DateTime<Utc>,
    ) -> Result<(), ApprovalError> {
        inst.version += 1;
        inst.updated_at = ms(now);
        repository::update_instance(txn, inst).await?;
        Ok(())
    }

    async fn run_commands(
        &self,
        txn: &DatabaseTransaction,
        inst: &mut Instance,
        commands: &[Command],
        cause: &Cause,
        now: DateTime<Utc>,
        events: &mut Vec<Envelope>,
    ) -> Result<(), ApprovalError> {
        let app = inst.application_id.clone();
        let department = cause
            .task
            .as_ref()
            .map_or(inst.lead_department.clone(), |t| t.department.clone());
        for command in commands {
            match *command {
                Command::OpenStage(i) => {
                    let stage =
                        inst.plan.get(i).cloned().ok_or_else(|| {
                            ApprovalError::Corrupt(format!("plan has no stage {i}"))
                        })?;
                    inst.stage_index = i;
                    let kind = if inst.is_request {
                        TaskKind::HandleRequest
                    } else {
                        TaskKind::Review
                    };
                    let grace = self.definition_of(txn, inst).await?.escalate_after_hours;
                    for tp in &stage.tasks {
                        let due = self.calendar.add_working_hours(now, tp.deadline_hours);
                        let t = self.new_task(
                            inst,
                            i as i64,
                            &stage.stage_id,
                            &stage.name,
                            kind,
                            &tp.department,
                            tp.office.as_deref().unwrap_or(""),
                            &tp.title,
                            tp.deadline_hours,
                            due,
                            grace,
                            now,
                        );
                        self.create_task(txn, &t, events).await?;
                    }
                    audit::append(
                        txn,
                        &app,
                        ms(now),
                        Record::system("open_stage", stage.name.clone(), "", ""),
                    )
                    .await?;
                }
                Command::EmitApproved => {
                    let def = self.definition_of(txn, inst).await?;
                    let prefix = def.decision_prefix();
                    let year = now.with_timezone(&self.calendar.time_zone()).year();
                    let n =
                        repository::next_counter(txn, &format!("decision_number:{prefix}:{year}"))
                            .await?;
                    let decision_number = format!("{prefix}〔{year}〕{n}号");
                    events.push(new_envelope(
                        PRODUCER,
                        &app,
                        Payload::ApplicationApproved(events::ApplicationApproved {
                            decision_number: decision_number.clone(),
                            decide_time: Some(ts(now)),
                            on_pledge: inst.on_pledge,
                            department: inst.lead_department.clone(),
                        }),
                    ));
                    audit::append(
                        txn,
                        &app,
                        ms(now),
                        Record::system("approved", decision_number, "", &inst.lead_department),
                    )
                    .await?;
                    if inst.on_pledge {
                        self.pledge_follow_up(txn, inst, now, events).await?;
                    }
                }
                Command::EmitAnswered => {
                    events.push(new_envelope(
                        PRODUCER,
                        &app,
                        Payload::RequestAnswered(events::RequestAnswered {
                            department: department.clone(),
                            answer: cause.comment.clone(),
                        }),
                    ));
                    audit::append(
                        txn,
                        &app,
                        ms(now),
                        Record::system("answered", cause.comment.clone(), "", &department),
                    )
                    .await?;
                }
                Command::RejectApplication => {
                    self.cancel_active(txn, inst, now, "rejected").await?;
                    events.push(new_envelope(
                        PRODUCER,
                        &app,
                        Payload::ApplicationRejected(events::ApplicationRejected {
                            reason: cause.comment.clone(),
                            department: department.clone(),
                            decide_time: Some(ts(now)),
                        }),
                    ));
                    audit::append(
                        txn,
                        &app,
                        ms(now),
                        Record::system("rejected", cause.comment.clone(), "", &department),
                    )
                    .await?;
                }
                Command::EmitSupplementRequested => {
                    let task_id = cause
                        .task
                        .as_ref()
                        .map(|t| t.task_id.clone())
                        .unwrap_or_default();
                    inst.supplement_task_id = task_id.clone();
                    events.push(new_envelope(
                        PRODUCER,
                        &app,
                        Payload::SupplementRequested(events::SupplementRequested {
                            task_id,
                            department: department.clone(),
                            comment: cause.comment.clone(),
                            requested_materials: cause.requested_materials.clone(),
                        }),
                    ));
                }
                Command::ResumeSupplementTask => {
                    let id = std::mem::take(&mut inst.supplement_task_id);
                    if let Some(t) = repository::find_task(txn, &id).await? {
                        let mut open = t.clone();
                        open.status = t.status.resume()?;
                        open.assignee.clear();
                        open.version += 1;
                        open.decided_at = None;
                        open.decision.clear();
                        // The applicant's time does not count against the department: a new
                        // deadline, and its timers start again.
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
                            &app,
                            ms(now),
                            Record::system(
                                "resume",
                                "materials supplemented",
                                &t.task_id,
                                &t.department,
                            ),
                        )
                        .await?;
                    }
                }
                Command::CancelOpenTasks => {
                    self.cancel_active(txn, inst, now, "withdrawn").await?;
                    audit::append(
                        txn,
                        &app,
                        ms(now),
                        Record::system("withdrawn", cause.comment.clone(), "", ""),
                    )
                    .await?;
                }
                Command::EmitRated { reopened } => {
                    let rating = cause
                        .rating
                        .map(|r| r.as_str())
                        .unwrap_or_default()
                        .to_string();
                    events.push(new_envelope(
                        PRODUCER,
                        &app,
                        Payload::OutcomeRated(events::OutcomeRated {
                            rating: rating.clone(),
                            comment: cause.comment.clone(),
                            reopened,
                        }),
                    ));
                    let mut record = cause.record.clone();
                    record.action = if reopened {
                        "reopened".into()
                    } else {
                        "closed".into()
                    };
                    record.reason = format!("{rating}: {}", cause.comment);
                    audit::append(txn, &app, ms(now), record).await?;
                    if !reopened {
                        events.push(new_envelope(
                            PRODUCER,
                            &app,
                            Payload::ApplicationClosed(events::ApplicationClosed {
                                reason: format!("rated {rating}"),
                            }),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

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
        let t = self.new_task(
            inst,
            -1,
            "",
            "",
            TaskKind::VerifyPledge,
            &p.verify_department,
            "",
            "告知承诺事项核查",
            0,
            due,
            def.escalate_after_hours,
            now,
        );
        self.create_task(txn, &t, events).await
    }

    async fn definition_of(
        &self,
        txn: &DatabaseTransaction,
        inst: &Instance,
    ) -> Result<Arc<MatterDefinition>, ApprovalError> {
        self.defs
            .get(txn, &inst.matter_code, inst.definition_version)
            .await
            .ok_or_else(|| {
                ApprovalError::Corrupt(format!(
                    "definition {} v{} is gone",
                    inst.matter_code, inst.definition_version
                ))
            })
    }

    async fn cancel_active(
        &self,
        txn: &DatabaseTransaction,
        inst: &Instance,
        now: DateTime<Utc>,
        why: &str,
    ) -> Result<(), ApprovalError> {
        for t in repository::tasks_of_instance(txn, &inst.instance_id).await? {
            if let Ok(cancelled) = t.status.cancel() {
                let mut c = t.clone();
                c.status = cancelled;
                c.version += 1;
                c.decided_at = Some(ms(now));
                self.write_task(txn, &c, t.version).await?;
                audit::append(
                    txn,
                    &inst.application_id,
                    ms(now),
                    Record::system("cancel", why, &t.task_id, &t.department),
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn write_task(
        &self,
        txn: &DatabaseTransaction,
        t: &Task,
        expected_version: i64,
    ) -> Result<(), ApprovalError> {
        if repository::update_task_if_version(txn, t, expected_version).await? {
            Ok(())
        } else {
            let actual = repository::find_task(txn, &t.task_id)
                .await?
                .map_or(-1, |t| t.version);
            Err(ApprovalError::StaleVersion {
                expected: expected_version,
                actual,
            })
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn new_task(
        &self,
        inst: &Instance,
        stage_index: i64,
        stage_id: &str,
        stage_name: &str,
        kind: TaskKind,
        department: &str,
        office: &str,
        title: &str,
        deadline_hours: u32,
        due: DateTime<Utc>,
        escalate_after_hours: u32,
        now: DateTime<Utc>,
    ) -> Task {
        Task {
            task_id: tongban_types::new_id(),
            instance_id: inst.instance_id.clone(),
            application_id: inst.application_id.clone(),
            matter_code: inst.matter_code.clone(),
            stage_index,
            stage_id: stage_id.into(),
            stage_name: stage_name.into(),
            kind,
            status: TaskState::Open,
            department: department.into(),
            office: office.into(),
            assignee: String::new(),
            title: title.into(),
            material_kind: String::new(),
            deadline_hours,
            version: 1,
            created_at: ms(now),
            due_at: ms(due),
            due_soon_at: ms(self.calendar.due_soon_at(due)),
            escalate_at: ms(self.calendar.add_working_hours(due, escalate_after_hours)),
            decided_at: None,
            decision: String::new(),
            comment: String::new(),
            due_soon_sent: false,
            overdue_sent: false,
            escalated: false,
        }
    }

    async fn create_task(
        &self,
        txn: &DatabaseTransaction,
        t: &Task,
        events: &mut Vec<Envelope>,
    ) -> Result<(), ApprovalError> {
        repository::insert_task(txn, t).await?;
        audit::append(
            txn,
            &t.application_id,
            t.created_at,
            Record::system("create_task", t.title.clone(), &t.task_id, &t.department),
        )
        .await?;
        events.push(new_envelope(
            PRODUCER,
            &t.application_id,
            Payload::TaskCreated(events::TaskCreated {
                task_id: t.task_id.clone(),
                department: t.department.clone(),
                office: t.office.clone(),
                kind: kind_word(t.kind).into(),
                stage_id: t.stage_id.clone(),
                title: t.title.clone(),
                due_time: Some(ts(from_ms(t.due_at))),
                matter_code: t.matter_code.clone(),
            }),
        ));
        Ok(())
    }

    // ------------------------------------------------------------------------------------------
    // Staff task API.

    /// Loads a task and locks its application: (instance, task as of after the lock).
    async fn lock_task(
        &self,
        txn: &DatabaseTransaction,
        task_id: &str,
    ) -> Result<(Instance, Task), ApprovalError> {
        let not_found = || ApprovalError::NotFound(format!("task {task_id}"));
        let first = repository::find_task(txn, task_id.trim())
            .await?
            .ok_or_else(not_found)?;
        let inst = repository::find_instance(txn, &first.application_id, Lock::Update)
            .await?
            .ok_or_else(|| ApprovalError::Corrupt(format!("task {task_id} has no instance")))?;
        let task = repository::find_task(txn, task_id.trim())
            .await?
            .ok_or_else(not_found)?;
        Ok((inst, task))
    }

    pub async fn claim(
        &self,
        who: &Identity,
        task_id: &str,
        expected_version: i64,
    ) -> Result<Task, ApprovalError> {
        who.require(&[Role::Clerk, Role::Supervisor, Role::Admin])?;
        let now = self.now();
        let txn = begin_write(&self.db).await?;
        let (_, task) = self.lock_task(&txn, task_id).await?;
        authorize_task(who, &task)?;
        check_version(expected_version, task.version)?;
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
    pub async fn decide(
        &self,
        who: &Identity,
        req: pb::DecideTaskRequest,
    ) -> Result<Task, ApprovalError> {
        who.require(&[Role::Clerk, Role::Supervisor, Role::Admin])?;
        let decision = match pb::Decision::try_from(req.decision) {
            Ok(pb::Decision::Approve) => Decision::Approve,
            Ok(pb::Decision::Reject) => Decision::Reject,
            Ok(pb::Decision::RequestSupplement) => Decision::RequestSupplement,
            _ => {
                return Err(invalid(
                    "decision",
                    "must be approve, reject or request_supplement",
                ));
            }
        };
        let comment = req.comment.trim().to_string();
        if decision != Decision::Approve && comment.is_empty() {
            return Err(invalid(
                "comment",
                "is required to reject or request a supplement",
            ));
        }
        if comment.chars().count() > 2000 {
            return Err(invalid("comment", "must be at most 2000 characters"));
        }
        if req.expected_version <= 0 {
            return Err(invalid(
                "expected_version",
                "must be the task version you saw",
            ));
        }
        let now = self.now();
        let txn = begin_write(&self.db).await?;
        let (mut inst, task) = self.lock_task(&txn, &req.task_id).await?;
        authorize_task(who, &task)?;
        check_version(req.expected_version, task.version)?;
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
        decided.decision = decision.event_name().into();
        decided.comment = comment.clone();
        // The conditional write is the guard: of two decisions with the same version, one
        // matches and the other gets ABORTED.
        self.write_task(&txn, &decided, req.expected_version)
            .await?;
        audit::append(
            &txn,
            &task.application_id,
            ms(now),
            Record::by(
                who,
                decision.event_name(),
                comment.clone(),
                &task.task_id,
                &task.department,
            ),
        )
        .await?;
        let mut events = vec![decided_event(
            &decided,
            if task.is_follow_up() && decision == Decision::Approve {
                "done"
            } else {
                decision.event_name()
            },
            &who.actor_label(),
        )];
        if !task.is_follow_up() {
            if inst.status.stage() != Some(task.stage_index as usize) {
                return Err(ApprovalError::FailedPrecondition(format!(
                    "workflow is {}; this task's stage is not current",
                    inst.status.name()
                )));
            }
            let input = match decision {
                Decision::Approve => {
                    let siblings = repository::tasks_of_instance(&txn, &inst.instance_id).await?;
                    let complete = siblings
                        .iter()
                        .filter(|t| {
                            t.stage_index == task.stage_index && t.status != TaskState::Cancelled
                        })
                        .all(|t| {
                            if t.task_id == decided.task_id {
                                true
                            } else {
                                t.status == TaskState::Approved
                            }
                        });
                    Input::TaskApproved {
                        stage_complete: complete,
                    }
                }
                Decision::Reject => Input::TaskRejected,
                Decision::RequestSupplement => Input::SupplementRequested,
            };
            let cause = Cause {
                record: Record::by(
                    who,
                    decision.event_name(),
                    comment.clone(),
                    &task.task_id,
                    &task.department,
                ),
                task: Some(decided.clone()),
                comment,
                requested_materials: req.requested_materials.clone(),
                rating: None,
            };
            self.transition(&txn, &mut inst, input, &cause, now, &mut events)
                .await?;
            self.save_instance(&txn, &mut inst, now).await?;
        }
        self.finish(txn, &events).await?;
        Ok(decided)
    }

    /// Hands a task to another clerk; moving it to another department is for supervisors and
    /// admins. The task becomes CLAIMED by the new assignee.
    pub async fn delegate(
        &self,
        who: &Identity,
        req: pb::DelegateTaskRequest,
    ) -> Result<Task, ApprovalError> {
        who.require(&[Role::Clerk, Role::Supervisor, Role::Admin])?;
        let assignee = req.assignee.trim().to_string();
        if assignee.is_empty() {
            return Err(invalid("assignee", "is required"));
        }
        let department = req.department.trim().to_string();
        if !department.is_empty() && !self.defs.departments().contains(&department) {
            return Err(invalid(
                "department",
                format!("unknown department {department}"),
            ));
        }
        let now = self.now();
        let txn = begin_write(&self.db).await?;
        let (_, task) = self.lock_task(&txn, &req.task_id).await?;
        authorize_task(who, &task)?;
        check_version(req.expected_version, task.version)?;
        if !task.status.is_active() {
            return Err(ApprovalError::FailedPrecondition(format!(
                "task is {}; cannot delegate it",
                task.status.name()
            )));
        }
        let mut moved = task.clone();
        if !department.is_empty() && department != task.department {
            if who.role == Role::Clerk {
                return Err(forbidden(
                    "only a supervisor or admin may move a task to another department",
                ));
            }
            moved.department = department.clone();
            moved.office.clear();
        }
        moved.assignee = assignee.clone();
        moved.status = TaskState::Claimed;
        moved.version += 1;
        self.write_task(&txn, &moved, task.version).await?;
        let reason = format!(
            "to {assignee}{}; {}",
            if department.is_empty() {
                String::new()
            } else {
                format!("@{department}")
            },
            req.reason.trim()
        );
        audit::append(
            &txn,
            &task.application_id,
            ms(now),
            Record::by(who, "delegate", reason, &task.task_id, &moved.department),
        )
        .await?;
        self.finish(txn, &[]).await?;
        Ok(moved)
    }

    pub async fn list_tasks(
        &self,
        who: &Identity,
        req: &pb::ListTasksRequest,
    ) -> Result<(Vec<Task>, String), ApprovalError> {
        who.require(&[Role::Clerk, Role::Supervisor, Role::Admin, Role::Integrator])?;
        let limit = match req.page_size {
            n if n < 0 => return Err(invalid("page_size", "must not be negative")),
            0 => 50,
            n => n.min(200) as u64,
        };
        let mut department =
            (!req.department.trim().is_empty()).then(|| req.department.trim().to_string());
        if matches!(who.role, Role::Clerk | Role::Supervisor) && department.is_none() {
            department = who.department.clone();
        }
        if who.role == Role::Clerk
            && let (Some(asked), Some(own)) = (&department, &who.department)
            && !(asked == own || asked.starts_with(&format!("{own}.")))
        {
            return Err(forbidden("clerks see their own department's tasks"));
        }
        let assignee = match req.assignee.trim() {
            "" => None,
            "me" => Some(who.subject.clone()),
            other => Some(other.to_string()),
        };
        let mut statuses = Vec::new();
        for (i, s) in req.statuses.iter().enumerate() {
            let st = pb::TaskStatus::try_from(*s)
                .ok()
                .and_then(TaskState::from_proto);
            statuses.push(st.ok_or_else(|| invalid(format!("statuses[{i}]"), "unknown status"))?);
        }
        if statuses.is_empty() {
            statuses = vec![TaskState::Open, TaskState::Claimed];
        }
        let after = if req.page_token.is_empty() {
            None
        } else {
            let bad = || invalid("page_token", "is not a token this service issued");
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&req.page_token)
                .map_err(|_| bad())?;
            let raw = String::from_utf8(raw).map_err(|_| bad())?;
            let (due, id) = raw.split_once(':').ok_or_else(bad)?;
            Some((due.parse::<i64>().map_err(|_| bad())?, id.to_string()))
        };
        let filter = TaskFilter {
            department,
            assignee,
            statuses,
            due_before: req.due_before.as_ref().and_then(from_ts).map(ms),
            application_id: (!req.application_id.trim().is_empty())
                .then(|| req.application_id.trim().to_string()),
            after,
            limit: limit + 1,
        };
        let mut tasks = repository::list_tasks(&self.db, &filter).await?;
        let next = if tasks.len() as u64 > limit {
            tasks.truncate(limit as usize);
            tasks
                .last()
                .map(|t| {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(format!("{}:{}", t.due_at, t.task_id))
                })
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok((tasks, next))
    }

    async fn visible_instance(
        &self,
        who: &Identity,
        application_id: &str,
    ) -> Result<Instance, ApprovalError> {
        let inst = repository::find_instance(&self.db, application_id.trim(), Lock::None)
            .await?
            .ok_or_else(|| {
                ApprovalError::NotFound(format!("workflow of application {application_id}"))
            })?;
        if who.role == Role::Applicant
            && who.credit_code.as_ref().map(|c| c.as_str()) != Some(inst.owner_credit_code.as_str())
        {
            return Err(forbidden("this application belongs to another applicant"));
        }
        Ok(inst)
    }

    pub async fn workflow(
        &self,
        who: &Identity,
        application_id: &str,
    ) -> Result<pb::Workflow, ApprovalError> {
        let inst = self.visible_instance(who, application_id).await?;
        let tasks = repository::tasks_of_instance(&self.db, &inst.instance_id).await?;
        let entries = audit::entries(&self.db, &inst.application_id).await?;
        let now = ms(self.now());
        let running = inst.status.stage().is_some();
        let mut stages: Vec<pb::Stage> = inst
            .plan
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let state = match (i.cmp(&inst.stage_index), running) {
                    (std::cmp::Ordering::Less, _) => "done",
                    (std::cmp::Ordering::Equal, true) => "active",
                    (std::cmp::Ordering::Equal, false) => "done",
                    (std::cmp::Ordering::Greater, _) => "pending",
                };
                pb::Stage {
                    stage_id: s.stage_id.clone(),
                    name: s.name.clone(),
                    state: state.into(),
                    tasks: tasks
                        .iter()
                        .filter(|t| t.stage_index == i as i64)
                        .map(|t| task_to_proto(t, now))
                        .collect(),
                }
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
                    None => all.push(pb::Stage {
                        stage_id: sd.id.clone(),
                        name: sd.name.clone(),
                        state: "skipped".into(),
                        tasks: vec![],
                    }),
                }
            }
            if all.len() >= stages.len() {
                stages = all;
            }
        }
        Ok(pb::Workflow {
            instance_id: inst.instance_id.clone(),
            application_id: inst.application_id.clone(),
            matter_code: inst.matter_code.clone(),
            definition_version: inst.definition_version,
            status: inst.status.to_proto() as i32,
            stages,
            follow_ups: tasks
                .iter()
                .filter(|t| t.is_follow_up())
                .map(|t| task_to_proto(t, now))
                .collect(),
            timeline: entries
                .iter()
                .map(|e| pb::TimelineEntry {
                    time: Some(ts(from_ms(e.time_ms))),
                    actor: e.actor.clone(),
                    action: e.action.clone(),
                    detail: e.reason.clone(),
                    task_id: e.task_id.clone(),
                })
                .collect(),
            create_time: Some(ts(from_ms(inst.created_at))),
            update_time: Some(ts(from_ms(inst.updated_at))),
            version: inst.version,
        })
    }

    pub async fn audit_trail(
        &self,
        who: &Identity,
        application_id: &str,
    ) -> Result<pb::GetAuditTrailResponse, ApprovalError> {
        who.require(&[Role::Clerk, Role::Supervisor, Role::Admin, Role::Integrator])?;
        let inst = self.visible_instance(who, application_id).await?;
        let entries = audit::entries(&self.db, &inst.application_id).await?;
        let bad = audit::verify(&inst.application_id, &entries);
        Ok(pb::GetAuditTrailResponse {
            entries: entries
                .into_iter()
                .map(|e| pb::AuditEntry {
                    seq: e.seq,
                    time: Some(ts(from_ms(e.time_ms))),
                    actor: e.actor,
                    role: e.role,
                    action: e.action,
                    reason: e.reason,
                    task_id: e.task_id,
                    prev_hash: e.prev_hash,
                    hash: e.hash,
                    department: e.department,
                })
                .collect(),
            verified: bad.is_none(),
            first_bad_seq: bad.unwrap_or(0),
        })
    }

    /// The enterprise rates the answer to its request.
    pub async fn rate(
        &self,
        who: &Identity,
        req: pb::RateOutcomeRequest,
    ) -> Result<pb::Workflow, ApprovalError> {
        who.require(&[Role::Applicant])?;
        let rating = match pb::Rating::try_from(req.rating) {
            Ok(pb::Rating::Satisfied) => tongban_matter::Rating::Satisfied,
            Ok(pb::Rating::BasicallySatisfied) => tongban_matter::Rating::BasicallySatisfied,
            Ok(pb::Rating::Unsatisfied) => tongban_matter::Rating::Unsatisfied,
            _ => {
                return Err(invalid(
                    "rating",
                    "must be satisfied, basically_satisfied or unsatisfied",
                ));
            }
        };
        if req.comment.chars().count() > 2000 {
            return Err(invalid("comment", "must be at most 2000 characters"));
        }
        let now = self.now();
        let txn = begin_write(&self.db).await?;
        let mut inst = repository::find_instance(&txn, req.application_id.trim(), Lock::Update)
            .await?
            .ok_or_else(|| {
                ApprovalError::NotFound(format!("workflow of application {}", req.application_id))
            })?;
        if who.credit_code.as_ref().map(|c| c.as_str()) != Some(inst.owner_credit_code.as_str()) {
            return Err(forbidden(
                "only the applicant that raised the request may rate it",
            ));
        }
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
            record: Record::by(who, "rate", req.comment.trim(), "", ""),
            task: None,
            comment: req.comment.trim().to_string(),
            requested_materials: vec![],
            rating: Some(rating),
        };
        let mut events = Vec::new();
        self.transition(
            &txn,
            &mut inst,
            Input::Rated {
                reopen: policy.reopen_on.contains(&rating),
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

    // ------------------------------------------------------------------------------------------
    // Definitions.

    pub async fn list_definitions(
        &self,
        who: &Identity,
        req: &pb::ListDefinitionsRequest,
    ) -> Result<Vec<pb::Definition>, ApprovalError> {
        let _ = who;
        let code = req.matter_code.trim();
        let all = repository::definitions(&self.db, (!code.is_empty()).then_some(code)).await?;
        let mut out: Vec<pb::Definition> = Vec::new();
        for d in all {
            // Rows come ordered by code then version: the last of each code is its latest.
            if !req.all_versions && out.last().is_some_and(|last| last.matter_code == d.code) {
                out.pop();
            }
            out.push(stored_to_proto(d));
        }
        Ok(out)
    }

    pub async fn publish_definition(
        &self,
        who: &Identity,
        source: &str,
    ) -> Result<pb::Definition, ApprovalError> {
        who.require(&[Role::Admin])?;
        if source.trim().is_empty() {
            return Err(invalid("source", "must hold the definition (TOML)"));
        }
        if source.len() > 256 * 1024 {
            return Err(invalid("source", "must be at most 256 KiB"));
        }
        let def = self
            .defs
            .parse(source, "published definition")
            .map_err(definition_violations)?;
        let now = self.now();
        let txn = begin_write(&self.db).await?;
        let existing = repository::definitions(&txn, Some(&def.code)).await?;
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
        if !repository::save_definition(&txn, &stored).await? {
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
        Ok(stored_to_proto(stored))
    }

    // ------------------------------------------------------------------------------------------
    // Timers.

    /// One pass of the timer worker at `now`: fires due-soon, overdue and escalation, each once
    /// per task. Safe with several workers: each task is handled under its application's
    /// instance lock, taken with SKIP LOCKED on PostgreSQL (a locked application is left to the
    /// worker holding it), and the flags change in the same transaction as the outbox rows.
    /// Returns how many events it emitted.
    pub async fn fire_timers(&self, now: DateTime<Utc>) -> Result<usize, ApprovalError> {
        let now_ms = ms(now);
        let mut emitted = 0;
        for (application_id, task_id) in repository::due_timers(&self.db, now_ms, 200).await? {
            let txn = begin_write(&self.db).await?;
            let Some(inst) =
                repository::find_instance(&txn, &application_id, Lock::SkipLocked).await?
            else {
                txn.rollback().await?;
                continue;
            };
            let Some(task) = repository::find_task(&txn, &task_id).await? else {
                txn.rollback().await?;
                continue;
            };
            if !task.status.is_active() {
                txn.rollback().await?;
                continue;
            }
            let mut t = task.clone();
            let mut events = Vec::new();
            let due = from_ms(t.due_at);
            if !t.due_soon_sent && now_ms >= t.due_soon_at {
                t.due_soon_sent = true;
                // Past due already (e.g. the worker was down): "overdue" says it better.
                if now_ms < t.due_at {
                    events.push(new_envelope(
                        PRODUCER,
                        &application_id,
                        Payload::TaskDueSoon(events::TaskDueSoon {
                            task_id: t.task_id.clone(),
                            department: t.department.clone(),
                            due_time: Some(ts(due)),
                            kind: kind_word(t.kind).into(),
                            title: t.title.clone(),
                        }),
                    ));
                }
            }
            if !t.overdue_sent && now_ms >= t.due_at {
                t.overdue_sent = true;
                events.push(new_envelope(
                    PRODUCER,
                    &application_id,
                    Payload::TaskOverdue(events::TaskOverdue {
                        task_id: t.task_id.clone(),
                        department: t.department.clone(),
                        due_time: Some(ts(due)),
                        kind: kind_word(t.kind).into(),
                        title: t.title.clone(),
                    }),
                ));
            }
            if !t.escalated && now_ms >= t.escalate_at {
                t.escalated = true;
                let to = format!(
                    "supervisor:{}",
                    self.escalation_department(&txn, &inst, &t).await?
                );
                events.push(new_envelope(
                    PRODUCER,
                    &application_id,
                    Payload::TaskEscalated(events::TaskEscalated {
                        task_id: t.task_id.clone(),
                        department: t.department.clone(),
                        escalated_to: to.clone(),
                        title: t.title.clone(),
                    }),
                ));
                audit::append(
                    &txn,
                    &application_id,
                    now_ms,
                    Record::system("escalate", to, &t.task_id, &t.department),
                )
                .await?;
            }
            // Timer flags do not bump the task version: a clerk's expected_version must not go
            // stale because a reminder went out.
            if !repository::update_task_if_version(&txn, &t, task.version).await? {
                txn.rollback().await?;
                continue;
            }
            emitted += events.len();
            self.finish(txn, &events).await?;
        }
        Ok(emitted)
    }
}

impl Approval {
    /// Whose supervisors an overdue task is escalated to: for an enterprise request, the
    /// supervising department its matter names (督办), else the task's own department.
    async fn escalation_department(
        &self,
        txn: &DatabaseTransaction,
        inst: &Instance,
        t: &Task,
    ) -> Result<String, ApprovalError> {
        if inst.is_request {
            let def = self.definition_of(txn, inst).await?;
            if let Some(d) = def
                .request
                .as_ref()
                .and_then(|r| r.supervising_department.as_deref())
            {
                return Ok(d.to_string());
            }
        }
        Ok(t.department.clone())
    }
}

fn check_version(expected: i64, actual: i64) -> Result<(), ApprovalError> {
    if expected != 0 && expected != actual {
        return Err(ApprovalError::StaleVersion { expected, actual });
    }
    Ok(())
}

/// Clerks act on tasks of their department (or of one of its township offices, or of the
/// office they belong to); supervisors of their department; admins on all.
fn authorize_task(who: &Identity, task: &Task) -> Result<(), ApprovalError> {
    if who.role == Role::Admin {
        return Ok(());
    }
    let own = who.department.as_deref().unwrap_or("");
    let ok = !own.is_empty() && (own == task.department || own == task.office);
    if ok {
        Ok(())
    } else {
        Err(forbidden(format!("task belongs to {}", task.department)))
    }
}

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

fn stored_to_proto(d: StoredDefinition) -> pb::Definition {
    pb::Definition {
        matter_code: d.code,
        version: d.version,
        name: d.name,
        source: d.source,
        publish_time: Some(ts(from_ms(d.published_at))),
        published_by: d.published_by,
    }
}

pub fn kind_word(k: TaskKind) -> &'static str {
    match k {
        TaskKind::VerifyPledge => "verify_pledge",
        TaskKind::FollowUpMaterial => "follow_up_material",
        TaskKind::HandleRequest => "handle_request",
        _ => "review",
    }
}

fn decided_event(t: &Task, decision: &str, actor: &str) -> Envelope {
    new_envelope(
        PRODUCER,
        &t.application_id,
        Payload::TaskDecided(events::TaskDecided {
            task_id: t.task_id.clone(),
            department: t.department.clone(),
            decision: decision.into(),
            actor: actor.into(),
            comment: t.comment.clone(),
        }),
    )
}

pub fn task_to_proto(t: &Task, now_ms: i64) -> pb::Task {
    let decision = match t.decision.as_str() {
        "approve" => pb::Decision::Approve,
        "reject" => pb::Decision::Reject,
        "request_supplement" => pb::Decision::RequestSupplement,
        _ => pb::Decision::Unspecified,
    };
    pb::Task {
        task_id: t.task_id.clone(),
        application_id: t.application_id.clone(),
        matter_code: t.matter_code.clone(),
        stage_id: t.stage_id.clone(),
        stage_name: t.stage_name.clone(),
        kind: t.kind as i32,
        status: t.status.to_proto() as i32,
        department: t.department.clone(),
        office: t.office.clone(),
        assignee: t.assignee.clone(),
        version: t.version,
        create_time: Some(ts(from_ms(t.created_at))),
        due_time: Some(ts(from_ms(t.due_at))),
        decide_time: t.decided_at.map(|d| ts(from_ms(d))),
        decision: decision as i32,
        comment: t.comment.clone(),
        overdue: t.status.is_active() && now_ms > t.due_at,
        escalated: t.escalated,
        title: t.title.clone(),
        deadline_working_hours: t.deadline_hours,
    }
}

/// A protobuf `Struct` as the JSON object conditions are evaluated against.
pub fn struct_to_json(s: Option<&prost_types::Struct>) -> Map<String, Json> {
    s.map(|s| {
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect()
    })
    .unwrap_or_default()
}

fn value_to_json(v: &prost_types::Value) -> Json {
    use prost_types::value::Kind;
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::NumberValue(n)) => {
            serde_json::Number::from_f64(*n).map_or(Json::Null, Json::Number)
        }
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::StructValue(s)) => Json::Object(struct_to_json(Some(s))),
        Some(Kind::ListValue(l)) => Json::Array(l.values.iter().map(value_to_json).collect()),
    }
}

fn credit_class(c: i32) -> Option<tongban_matter::CreditClass> {
    use tongban_proto::common::CreditClass as C;
    match C::try_from(c).ok()? {
        C::A => Some(tongban_matter::CreditClass::A),
        C::B => Some(tongban_matter::CreditClass::B),
        C::C => Some(tongban_matter::CreditClass::C),
        C::D => Some(tongban_matter::CreditClass::D),
        C::Unspecified => None,
    }
}
