//! Timers: due-soon reminders, overdue notices and escalation, each fired once per task, and
//! the close of answered enterprise requests nobody rated in time.
//! [`run`] is the worker: on start and then every [`INTERVAL`] it calls
//! [`Approval::fire_timers`]. Every replica runs one; the per-application row lock taken with
//! SKIP LOCKED keeps them from firing anything twice.
//!
//! Each task is handled in its own transaction. One that fails (a definition gone, a row that
//! no longer decodes, a lost connection) is logged at WARN with its id and rolled back, and the
//! pass goes on with the others; the task is still due, so the next pass tries it again.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use sea_orm::DatabaseTransaction;
use tokio_util::sync::CancellationToken;
use tongban_outbox::new_envelope;
use tongban_proto::{
    events::{self, envelope::Payload},
    time::ts,
};
use tongban_storage::begin_write;

use crate::{
    audit::{self, Record},
    engine::{Approval, Cause, PRODUCER},
    error::ApprovalError,
    model::{InstanceStatus, TaskKind},
    repository::{Instance, InstanceStore, Lock, Task, TaskStore, from_ms, ms},
    workflow::Input,
};

pub const INTERVAL: Duration = Duration::from_secs(1);

/// How many due tasks one page of a pass lists; a pass reads page after page (keyset, so a
/// page of tasks that keep failing cannot hide the ones after it) until none is left.
const BATCH: u64 = 200;

pub async fn run(approval: Arc<Approval>, interval: Duration, shutdown: CancellationToken) {
    loop {
        match approval.fire_timers(approval.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(events = n, "timers fired"),
            Err(e) => tracing::warn!(error = %e, "timer pass failed; will retry"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

impl Approval {
    /// One pass of the timer worker at `now`: fires due-soon, overdue and escalation, each once
    /// per task. Safe with several workers: each task is handled under its application's
    /// instance lock, taken with SKIP LOCKED on PostgreSQL (a locked application is left to the
    /// worker holding it), and the flags change in the same transaction as the outbox rows.
    /// A task whose handling fails is logged and skipped (see the module doc); only failing to
    /// list the due tasks fails the pass. Returns how many events it emitted.
    pub async fn fire_timers(&self, now: DateTime<Utc>) -> Result<usize, ApprovalError> {
        let fired = self.fire_timers_paged(now, BATCH).await?;
        Ok(fired + self.close_lapsed_ratings(now).await?)
    }

    /// Closes the answered requests nobody rated within their matter's waiting period, each in
    /// its own transaction under its instance lock (SKIP LOCKED, as the task timers). A failing
    /// one is logged and left for the next pass. Returns how many events it emitted.
    pub async fn close_lapsed_ratings(&self, now: DateTime<Utc>) -> Result<usize, ApprovalError> {
        let mut emitted = 0;
        for application_id in self.db.lapsed_ratings(ms(now), BATCH).await? {
            match self.close_lapsed(now, &application_id).await {
                Ok(n) => emitted += n,
                Err(e) => tracing::warn!(
                    %application_id,
                    error = %e,
                    "closing an unrated request failed; retried on the next pass"
                ),
            }
        }
        Ok(emitted)
    }

    async fn close_lapsed(
        &self,
        now: DateTime<Utc>,
        application_id: &str,
    ) -> Result<usize, ApprovalError> {
        let txn = begin_write(&self.db).await?;
        let Some(mut inst) = txn.find_instance(application_id, Lock::SkipLocked).await? else {
            txn.rollback().await?;
            return Ok(0);
        };
        // Rated (or withdrawn) since the list was read.
        if inst.state.status != InstanceStatus::AwaitingRating
            || inst.rating_due_at == 0
            || inst.rating_due_at > ms(now)
        {
            txn.rollback().await?;
            return Ok(0);
        }
        let cause = Cause {
            record: Record::system("rating_lapsed", "", "", &inst.lead_department),
            task: None,
            comment: String::new(),
            requested_materials: vec![],
            rating: None,
        };
        let mut events = Vec::new();
        self.transition(
            &txn,
            &mut inst,
            Input::RatingLapsed,
            &cause,
            now,
            &mut events,
        )
        .await?;
        self.save_instance(&txn, &mut inst, now).await?;
        self.finish(txn, &events).await?;
        Ok(events.len())
    }

    /// [`Approval::fire_timers`], listing due tasks `page` at a time.
    pub async fn fire_timers_paged(
        &self,
        now: DateTime<Utc>,
        page: u64,
    ) -> Result<usize, ApprovalError> {
        let page_size = page.max(1);
        let now_ms = ms(now);
        let mut emitted = 0;
        let mut after = None;
        loop {
            let page = self.db.due_timers(now_ms, after.take(), page_size).await?;
            for due in &page {
                let (application_id, task_id) = (&due.application_id, &due.task_id);
                match self.fire_task_timers(now_ms, application_id, task_id).await {
                    Ok(n) => emitted += n,
                    Err(e) => tracing::warn!(
                        task_id = %task_id,
                        application_id = %application_id,
                        error = %e,
                        "timers of a task failed; skipped, retried on the next pass"
                    ),
                }
            }
            match page.last() {
                Some(last) if page.len() as u64 == page_size => after = Some(last.key()),
                _ => return Ok(emitted),
            }
        }
    }

    /// Fires what is due of one task, in one transaction (rolled back on error); returns how
    /// many events it emitted.
    async fn fire_task_timers(
        &self,
        now_ms: i64,
        application_id: &str,
        task_id: &str,
    ) -> Result<usize, ApprovalError> {
        let txn = begin_write(&self.db).await?;
        let Some(inst) = txn.find_instance(application_id, Lock::SkipLocked).await? else {
            txn.rollback().await?;
            return Ok(0);
        };
        let Some(task) = txn.find_task(task_id).await? else {
            txn.rollback().await?;
            return Ok(0);
        };
        if !task.status.is_active() {
            txn.rollback().await?;
            return Ok(0);
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
                    application_id,
                    Payload::TaskDueSoon(events::TaskDueSoon {
                        task_id: t.task_id.clone(),
                        department: t.department.clone(),
                        due_time: Some(ts(due)),
                        kind: t.kind.event_kind() as i32,
                        title: t.title.clone(),
                    }),
                ));
            }
        }
        if !t.overdue_sent && now_ms >= t.due_at {
            t.overdue_sent = true;
            events.push(new_envelope(
                PRODUCER,
                application_id,
                Payload::TaskOverdue(events::TaskOverdue {
                    task_id: t.task_id.clone(),
                    department: t.department.clone(),
                    due_time: Some(ts(due)),
                    kind: t.kind.event_kind() as i32,
                    title: t.title.clone(),
                }),
            ));
            // 容缺受理: where the matter says so, an overdue owed material suspends the
            // application until it is supplied (intake resumes it on the supplement).
            if t.kind == TaskKind::FollowUpMaterial
                && self
                    .definition_of(&txn, &inst)
                    .await?
                    .material(&t.material_kind)
                    .is_some_and(|m| m.suspend_when_overdue)
            {
                events.push(new_envelope(
                    PRODUCER,
                    application_id,
                    Payload::ApplicationSuspended(events::ApplicationSuspended {
                        material_kind: t.material_kind.clone(),
                        due_time: Some(ts(due)),
                        task_id: t.task_id.clone(),
                    }),
                ));
                audit::append(
                    &txn,
                    application_id,
                    now_ms,
                    Record::system(
                        "suspend",
                        format!("owed material {} overdue", t.material_kind),
                        &t.task_id,
                        &t.department,
                    ),
                )
                .await?;
            }
        }
        if !t.escalated && now_ms >= t.escalate_at {
            t.escalated = true;
            let to = format!(
                "supervisor:{}",
                self.escalation_department(&txn, &inst, &t).await?
            );
            events.push(new_envelope(
                PRODUCER,
                application_id,
                Payload::TaskEscalated(events::TaskEscalated {
                    task_id: t.task_id.clone(),
                    department: t.department.clone(),
                    escalated_to: to.clone(),
                    title: t.title.clone(),
                }),
            ));
            audit::append(
                &txn,
                application_id,
                now_ms,
                Record::system("escalate", to, &t.task_id, &t.department),
            )
            .await?;
        }
        // Timer flags do not bump the task version: a clerk's expected_version must not go
        // stale because a reminder went out.
        if !txn.update_task_if_version(&t, task.version).await? {
            txn.rollback().await?;
            return Ok(0);
        }
        self.finish(txn, &events).await?;
        Ok(events.len())
    }

    /// Whose supervisors an overdue task is escalated to: for an enterprise request, the
    /// supervising department its matter names (督办), else the task's own department.
    async fn escalation_department(
        &self,
        txn: &DatabaseTransaction,
        inst: &Instance,
        t: &Task,
    ) -> Result<String, ApprovalError> {
        if inst.is_request() {
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
