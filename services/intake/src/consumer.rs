//! Keeps intake's view of each application current from the events other services publish:
//! its status, and the departments and offices with a task in its workflow (its scope).

use std::sync::Arc;

use sea_orm::DatabaseTransaction;
use tongban_outbox::{EventHandler, HandlerError};
use tongban_proto::{
    events::{Envelope, envelope::Payload},
    time::ts,
};

use crate::{
    domain,
    repository::{ApplicationStore, Involved},
    service::Intake,
};

pub struct StatusUpdater {
    intake: Arc<Intake>,
}

impl StatusUpdater {
    pub fn new(intake: Arc<Intake>) -> Self {
        Self { intake }
    }
}

impl EventHandler for StatusUpdater {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        if let Some(Payload::DefinitionPublished(d)) = &event.payload {
            if let Some(def) = self.intake.matters().parse(
                &d.source,
                &format!("published {} v{}", d.matter_code, d.version),
            ) {
                self.intake.matters().publish(txn, def).await?;
            }
            return Ok(());
        }
        // Who has a task in the workflow (the application's scope, see `crate::authz`),
        // recorded even before intake holds the application: an event order never narrows it.
        let departments = tongban_involved::from_task_event(event);
        if let Some(departments) = departments
            && !event.application_id.is_empty()
        {
            txn.add_departments(&event.application_id, &departments)
                .await?;
        }
        let stored = txn
            .find_application_for_update(&event.application_id)
            .await
            .map_err(|e| match e {
                crate::error::IntakeError::Db(db) => HandlerError::Db(db),
                other => HandlerError::Rejected(other.to_string()),
            })?;
        let Some(stored) = stored else {
            tracing::debug!(application_id = %event.application_id, r#type = %event.r#type, "event for an application intake does not hold");
            return Ok(());
        };
        let mut app = stored.application;
        if domain::apply_event(&mut app, event) {
            if let Some(Payload::ApplicationRevoked(r)) = &event.payload {
                // The broken pledge goes back to the credit registry before the status change
                // commits: if the registry is down the event is retried, and a redelivery after
                // a lost commit repeats the same event id, which the registry can drop.
                let breach = tongban_credit::Breach {
                    credit_code: app
                        .applicant
                        .as_ref()
                        .map(|a| a.credit_code.clone())
                        .unwrap_or_default(),
                    application_id: app.application_id.clone(),
                    matter_code: app.matter_code.clone(),
                    reason: r.reason.clone(),
                    occurred_at: r
                        .revoke_time
                        .as_ref()
                        .and_then(tongban_proto::time::from_ts)
                        .unwrap_or_else(chrono::Utc::now),
                    event_id: event.event_id.clone(),
                };
                self.intake
                    .credit()
                    .record_breach(&breach)
                    .await
                    .map_err(|e| HandlerError::Transient(format!("credit registry: {e}")))?;
            }
            app.version += 1;
            app.update_time = Some(ts(chrono::Utc::now()));
            txn.update_application(&app).await?;
        }
        Ok(())
    }

    fn committed(&self, events: &[Envelope]) {
        for e in events {
            self.intake.announce(&e.application_id, &e.r#type);
        }
    }
}
