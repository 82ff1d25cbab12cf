//! Applies other services' events to workflows: submission starts an instance, supplement
//! resumes it, withdrawal cancels it (see [`crate::engine::lifecycle`]). Runs inside
//! `run_consumer`'s transaction, whose inbox makes a redelivered event (same `event_id`) a no-op.
//!
//! Events from intake can arrive out of order (a nacked `application.submitted` comes back
//! after the withdrawal that followed it). A supplement or withdrawal for an application
//! without an instance is parked ([`tongban_outbox::parked`], table `parked_events`) and
//! applied, oldest first, in the submission's transaction right after the instance starts. A
//! parked withdrawal means the workflow never starts: the instance is recorded `WITHDRAWN`
//! with no task (see [`Approval::on_submitted`]). The submission and a park take the
//! application's park lock, so on two replicas an event cannot be parked behind a
//! submission's back.

use std::sync::Arc;

use sea_orm::DatabaseTransaction;
use tongban_outbox::{EventHandler, HandlerError, parked::ParkedEvents};
use tongban_proto::events::{Envelope, envelope::Payload};

use crate::{
    engine::Approval,
    error::ApprovalError,
    repository::{InstanceStore, Lock},
    requests::Submission,
};

pub struct WorkflowDriver {
    approval: Arc<Approval>,
}

impl WorkflowDriver {
    pub fn new(approval: Arc<Approval>) -> Self {
        Self { approval }
    }

    /// Applies a supplement or withdrawal to the application's existing instance.
    async fn apply_to_instance(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
    ) -> Result<(), ApprovalError> {
        let a = &self.approval;
        match &event.payload {
            Some(Payload::ApplicationSupplemented(s)) => {
                a.on_supplemented(txn, &event.application_id, &s.fulfilled_kinds)
                    .await
            }
            Some(Payload::ApplicationWithdrawn(w)) => {
                a.on_withdrawn(txn, &event.application_id, &w.reason).await
            }
            _ => Ok(()),
        }
    }
}

/// Storage errors and a concurrent change are worth retrying; anything else the event itself
/// causes, and it goes to the dead-letter queue.
fn handler_error(e: ApprovalError) -> HandlerError {
    match e {
        ApprovalError::Db(db) => HandlerError::Db(db),
        e @ ApprovalError::StaleVersion { .. } => HandlerError::Transient(e.to_string()),
        other => HandlerError::Rejected(other.to_string()),
    }
}

async fn has_instance(txn: &DatabaseTransaction, id: &str) -> Result<bool, HandlerError> {
    Ok(txn
        .find_instance(id, Lock::None)
        .await
        .map_err(handler_error)?
        .is_some())
}

/// The reason of the first withdrawal among `events`, if there is one.
fn withdrawal(events: &[Envelope]) -> Option<&str> {
    events.iter().find_map(|e| match &e.payload {
        Some(Payload::ApplicationWithdrawn(w)) => Some(w.reason.as_str()),
        _ => None,
    })
}

impl EventHandler for WorkflowDriver {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        let id = &event.application_id;
        match &event.payload {
            Some(Payload::ApplicationSubmitted(s)) => {
                let Some(snap) = &s.application else {
                    return Err(HandlerError::Rejected(
                        "application.submitted without a snapshot".into(),
                    ));
                };
                txn.lock_application(id).await?;
                let parked = txn.unpark(id).await?;
                self.approval
                    .on_submitted(
                        txn,
                        &Submission::from_event(event, snap),
                        withdrawal(&parked),
                    )
                    .await
                    .map_err(handler_error)?;
                for p in &parked {
                    self.apply_to_instance(txn, p)
                        .await
                        .map_err(handler_error)?;
                }
                Ok(())
            }
            Some(Payload::ApplicationSupplemented(_) | Payload::ApplicationWithdrawn(_))
                if !id.is_empty() =>
            {
                // Checked again under the lock: the submission may have committed meanwhile.
                if !has_instance(txn, id).await? && {
                    txn.lock_application(id).await?;
                    !has_instance(txn, id).await?
                } {
                    tracing::info!(application_id = %id, r#type = %event.r#type, "no instance yet; event parked until the submission arrives");
                    txn.park(event).await?;
                    return Ok(());
                }
                self.apply_to_instance(txn, event)
                    .await
                    .map_err(handler_error)
            }
            _ => Ok(()),
        }
    }
}
