//! The approval engine: the [`Approval`] that every use case hangs off, and the machinery they
//! share. Each use case that changes state runs in one transaction that (1) locks the
//! application's instance row, (2) feeds the input through the state machine in
//! [`crate::workflow`], (3) carries out the returned commands ([`commands`]: tasks, audit
//! entries), and (4) enqueues the events they cause in the outbox, then wakes the relay.
//!
//! The instance row lock is the one mutex per application: tasks, the audit chain and the timer
//! flags of an application only change under it, so concurrent decisions on different tasks of
//! one stage cannot both miss that the stage is complete, and audit `seq`s never collide.
//!
//! # Layout
//! - [`lifecycle`]: what happens to an instance from outside: submitted, supplemented, withdrawn
//!   (other services' events) and rated (the enterprise).
//! - [`commands`]: the executor, one method per [`crate::workflow::Command`].
//! - The staff task API is [`crate::tasks`], the read side [`crate::views`], publishing
//!   [`crate::publishing`] and the timers [`crate::timers`]; all are `impl Approval` blocks.

pub mod commands;
pub mod lifecycle;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DatabaseTransaction};
use tongban_calendar::Calendar;
use tongban_matter::MatterDefinition;
use tongban_outbox::{RelayHandle, new_envelope, outbox};
use tongban_proto::{
    events::{self, Envelope, envelope::Payload},
    time::ts,
};

use crate::{
    audit::{self, Record},
    definitions::Definitions,
    error::ApprovalError,
    model::{TaskDecision, TaskKind, TaskState},
    repository::{Instance, InstanceStore, Task, TaskStore, from_ms, ms},
    workflow::Input,
};

/// The `producer` of every event approval emits.
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

/// The engine: the database, the definitions, the calendar, the relay to wake and the clock.
pub struct Approval {
    pub(crate) db: DatabaseConnection,
    pub(crate) defs: Definitions,
    pub(crate) calendar: Calendar,
    pub(crate) relay: RelayHandle,
    pub(crate) clock: Arc<dyn Clock>,
    /// The authorization table and the registered integrators.
    pub(crate) policy: tongban_authz::Policy,
    /// The downstream platforms' mappings (no secrets), loaded once at start-up: a published
    /// definition must fit their code tables ([`crate::publishing`]).
    pub(crate) platforms: Arc<[tongban_platform::PlatformConfig]>,
}

/// Why an instance changes: who acted, on which task, with what words.
pub(crate) struct Cause {
    pub(crate) record: Record,
    pub(crate) task: Option<Task>,
    pub(crate) comment: String,
    pub(crate) requested_materials: Vec<String>,
    pub(crate) rating: Option<tongban_matter::Rating>,
}

impl Cause {
    pub(crate) fn system(action: &str) -> Self {
        Self {
            record: Record::system(action, "", "", ""),
            task: None,
            comment: String::new(),
            requested_materials: Vec::new(),
            rating: None,
        }
    }
}

/// What a new task is: where it sits, who does it, and its deadline.
pub(crate) struct TaskSpec<'a> {
    /// -1 for a follow-up outside the stages.
    pub(crate) stage_index: i64,
    pub(crate) stage_id: &'a str,
    pub(crate) stage_name: &'a str,
    pub(crate) kind: TaskKind,
    pub(crate) department: &'a str,
    pub(crate) office: &'a str,
    pub(crate) title: &'a str,
    pub(crate) deadline_hours: u32,
    pub(crate) due: DateTime<Utc>,
    /// Working hours past `due` before an active task is escalated.
    pub(crate) escalate_after_hours: u32,
}

impl<'a> TaskSpec<'a> {
    /// A follow-up task outside the stages (pledge verification, an owed material).
    pub(crate) fn follow_up(
        kind: TaskKind,
        department: &'a str,
        title: &'a str,
        due: DateTime<Utc>,
        escalate_after_hours: u32,
    ) -> Self {
        Self {
            stage_index: -1,
            stage_id: "",
            stage_name: "",
            kind,
            department,
            office: "",
            title,
            deadline_hours: 0,
            due,
            escalate_after_hours,
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
            policy: tongban_authz::Policy::default(),
            platforms: Arc::from(Vec::new()),
        }
    }

    /// Checks published definitions against these platforms' code tables; without it nothing
    /// is checked. See [`crate::publishing::load_platforms`].
    pub fn with_platforms(mut self, platforms: Vec<tongban_platform::PlatformConfig>) -> Self {
        self.platforms = Arc::from(platforms);
        self
    }

    /// Decides with `policy` (the registered integrators); without it every integrator is
    /// denied.
    pub fn with_policy(mut self, policy: tongban_authz::Policy) -> Self {
        self.policy = policy;
        self
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

    /// [`Self::now`] in Unix milliseconds, as times are stored.
    pub fn now_ms(&self) -> i64 {
        ms(self.now())
    }

    /// Enqueues `events`, commits, and wakes the relay.
    pub(crate) async fn finish(
        &self,
        txn: DatabaseTransaction,
        events: &[Envelope],
    ) -> Result<(), ApprovalError> {
        outbox::enqueue(&txn, events).await?;
        txn.commit().await?;
        self.relay.wake();
        Ok(())
    }

    /// Feeds `input` to the instance's machine and carries out what it returns.
    pub(crate) async fn transition(
        &self,
        txn: &DatabaseTransaction,
        inst: &mut Instance,
        input: Input,
        cause: &Cause,
        now: DateTime<Utc>,
        events: &mut Vec<Envelope>,
    ) -> Result<(), ApprovalError> {
        let (next, commands) = inst
            .state
            .apply(input, inst.plan.len(), inst.is_request())?;
        inst.state = next;
        self.run_commands(txn, inst, &commands, cause, now, events)
            .await
    }

    pub(crate) async fn save_instance(
        &self,
        txn: &DatabaseTransaction,
        inst: &mut Instance,
        now: DateTime<Utc>,
    ) -> Result<(), ApprovalError> {
        inst.version += 1;
        inst.updated_at = ms(now);
        txn.update_instance(inst).await?;
        Ok(())
    }

    /// The definition version an instance is pinned to.
    pub(crate) async fn definition_of(
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

    /// Cancels every task of the instance that can still be cancelled.
    pub(crate) async fn cancel_active(
        &self,
        txn: &DatabaseTransaction,
        inst: &Instance,
        now: DateTime<Utc>,
        why: &str,
    ) -> Result<(), ApprovalError> {
        for t in txn.tasks_of_instance(&inst.instance_id).await? {
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

    /// Writes `t` if it is still at `expected_version`, else ABORTED with the version it is at.
    pub(crate) async fn write_task(
        &self,
        txn: &DatabaseTransaction,
        t: &Task,
        expected_version: i64,
    ) -> Result<(), ApprovalError> {
        if txn.update_task_if_version(t, expected_version).await? {
            Ok(())
        } else {
            let actual = txn.find_task(&t.task_id).await?.map_or(-1, |t| t.version);
            Err(ApprovalError::StaleVersion {
                expected: expected_version,
                actual,
            })
        }
    }

    /// A new OPEN task of `inst`, with its reminder and escalation times from the calendar.
    pub(crate) fn new_task(&self, inst: &Instance, spec: TaskSpec<'_>, now: DateTime<Utc>) -> Task {
        Task {
            task_id: tongban_types::new_id(),
            instance_id: inst.instance_id.clone(),
            application_id: inst.application_id.clone(),
            matter_code: inst.matter_code.clone(),
            stage_index: spec.stage_index,
            stage_id: spec.stage_id.into(),
            stage_name: spec.stage_name.into(),
            kind: spec.kind,
            status: TaskState::Open,
            department: spec.department.into(),
            office: spec.office.into(),
            assignee: String::new(),
            title: spec.title.into(),
            material_kind: String::new(),
            deadline_hours: spec.deadline_hours,
            version: 1,
            created_at: ms(now),
            due_at: ms(spec.due),
            due_soon_at: ms(self.calendar.due_soon_at(spec.due)),
            escalate_at: ms(self
                .calendar
                .add_working_hours(spec.due, spec.escalate_after_hours)),
            decided_at: None,
            decision: TaskDecision::None,
            comment: String::new(),
            due_soon_sent: false,
            overdue_sent: false,
            escalated: false,
        }
    }

    /// Stores a new task, records it, and emits `task.created`.
    pub(crate) async fn create_task(
        &self,
        txn: &DatabaseTransaction,
        t: &Task,
        events: &mut Vec<Envelope>,
    ) -> Result<(), ApprovalError> {
        txn.insert_task(t).await?;
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
                kind: t.kind.event_kind() as i32,
                stage_id: t.stage_id.clone(),
                title: t.title.clone(),
                due_time: Some(ts(from_ms(t.due_at))),
                matter_code: t.matter_code.clone(),
            }),
        ));
        Ok(())
    }
}
