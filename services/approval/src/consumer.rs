//! Applies other services' events to workflows: submission starts an instance, supplement
//! resumes it, withdrawal cancels it (see [`crate::engine::lifecycle`]). Runs inside `run_consumer`'s transaction, whose inbox
//! makes a redelivered event (same `event_id`) a no-op.

use std::sync::Arc;

use sea_orm::DatabaseTransaction;
use tongban_outbox::{EventHandler, HandlerError};
use tongban_proto::events::{Envelope, envelope::Payload};

use crate::{engine::Approval, error::ApprovalError, requests::Submission};

pub struct WorkflowDriver {
    approval: Arc<Approval>,
}

impl WorkflowDriver {
    pub fn new(approval: Arc<Approval>) -> Self {
        Self { approval }
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

impl EventHandler for WorkflowDriver {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        let a = &self.approval;
        let result = match &event.payload {
            Some(Payload::ApplicationSubmitted(s)) => match &s.application {
                Some(snap) => {
                    a.on_submitted(txn, &Submission::from_event(event, snap))
                        .await
                }
                None => {
                    return Err(HandlerError::Rejected(
                        "application.submitted without a snapshot".into(),
                    ));
                }
            },
            Some(Payload::ApplicationSupplemented(s)) => {
                a.on_supplemented(txn, &event.application_id, &s.fulfilled_kinds)
                    .await
            }
            Some(Payload::ApplicationWithdrawn(w)) => {
                a.on_withdrawn(txn, &event.application_id, &w.reason).await
            }
            _ => Ok(()),
        };
        result.map_err(handler_error)
    }
}
