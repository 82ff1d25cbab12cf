//! Keeps intake's view of each application current from the events other services publish.

use std::sync::Arc;

use sea_orm::DatabaseTransaction;
use tongban_outbox::{EventHandler, HandlerError};
use tongban_proto::{
    events::{Envelope, envelope::Payload},
    time::ts,
};

use crate::{domain, repository::ApplicationStore, service::Intake};

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
        let stored = txn
            .find_application_for_update(&event.application_id)
            .await
            .map_err(|e| HandlerError::Rejected(e.to_string()))?;
        let Some(stored) = stored else {
            tracing::debug!(application_id = %event.application_id, r#type = %event.r#type, "event for an application intake does not hold");
            return Ok(());
        };
        let mut app = stored.application;
        if domain::apply_event(&mut app, event) {
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
