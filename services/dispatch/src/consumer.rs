//! Turns events into ledger rows: for each event, the canonical document is built from the
//! stored application snapshot, and every platform that accepts it gets one PENDING row holding
//! that document. The worker maps it at every attempt, so a mapping fixed after a failure applies
//! to the replay.
//!
//! `task.created` and `task.moved` also record the departments and offices in the
//! application's workflow, which scope who of the staff may read its deliveries.
//!
//! Events about an application whose `application.submitted` has not arrived yet are parked
//! (table `parked_events`) and fanned out when it does, in event-id (time) order: nothing is
//! lost, and no redelivery loop against the bus's delivery limit. The submission and a park
//! take the application's park lock, so on two replicas an event cannot be parked after the
//! submission unparked and before it committed.

use std::sync::Arc;

use sea_orm::DatabaseTransaction;
use serde_json::Value;
use tongban_outbox::{EventHandler, HandlerError};
use tongban_platform::DeliveryMode;
use tongban_proto::events::{Envelope, envelope::Payload};

use crate::{
    canonical,
    ledger::{self, ApplicationSnapshots, DeliveryLedger, Involved, NewDelivery, ParkedEvents},
    worker::PlatformRuntime,
};

pub struct Fanout {
    platforms: Arc<Vec<Arc<PlatformRuntime>>>,
}

impl Fanout {
    pub fn new(platforms: Arc<Vec<Arc<PlatformRuntime>>>) -> Self {
        Self { platforms }
    }

    fn wanted(&self, event_type: &str) -> bool {
        self.platforms.iter().any(|p| p.config.wants(event_type))
    }

    /// Adds the ledger rows for `event` about `application` (its canonical section): the
    /// document itself, which the worker maps at every attempt. On a platform that takes
    /// snapshots of state, the new row supersedes the application's older ones still waiting.
    async fn fan_out(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
        application: &Value,
    ) -> Result<(), HandlerError> {
        let doc = canonical::document(event, application);
        let document = doc.to_string();
        for p in self.platforms.iter().filter(|p| p.config.accepts(&doc)) {
            let row = NewDelivery {
                delivery_id: tongban_types::new_id(),
                application_id: event.application_id.clone(),
                platform_id: p.config.id.clone(),
                event_id: event.event_id.clone(),
                event_type: event.r#type.clone(),
                idempotency_key: ledger::idempotency_key(&p.config.id, &event.event_id),
                document: document.clone(),
                traceparent: tongban_telemetry::current_traceparent(),
            };
            if txn.insert_delivery(&row).await? && p.config.delivery == DeliveryMode::LatestState {
                let n = txn
                    .supersede_older(&row.platform_id, &row.application_id, &row.event_id)
                    .await?;
                if n > 0 {
                    tracing::info!(platform = %row.platform_id, superseded = n, "older states superseded");
                }
            }
        }
        Ok(())
    }

    /// Applies an event whose application is known.
    async fn apply_known(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
        application: &mut Value,
    ) -> Result<(), HandlerError> {
        if canonical::apply_to_application(application, event) {
            txn.save_application(&event.application_id, application)
                .await?;
        }
        if self.wanted(&event.r#type) {
            self.fan_out(txn, event, application).await?;
        }
        Ok(())
    }
}

impl EventHandler for Fanout {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        // Who has a task in the workflow (the application's scope, see `crate::authz`),
        // recorded whether or not the application is known yet.
        let departments = tongban_involved::from_task_event(event);
        if let Some(departments) = departments
            && !event.application_id.is_empty()
        {
            txn.add_departments(&event.application_id, &departments)
                .await?;
        }
        if let Some(Payload::ApplicationSubmitted(s)) = &event.payload {
            let Some(snapshot) = &s.application else {
                return Err(HandlerError::Rejected(
                    "application.submitted without a snapshot".into(),
                ));
            };
            // Before unparking: an event parked by another replica meanwhile waits for this.
            txn.lock_application(&event.application_id).await?;
            let mut application = canonical::application_section(snapshot);
            txn.save_application(&event.application_id, &application)
                .await?;
            if self.wanted(&event.r#type) {
                self.fan_out(txn, event, &application).await?;
            }
            for parked in txn.unpark(&event.application_id).await? {
                self.apply_known(txn, &parked, &mut application).await?;
            }
            return Ok(());
        }
        let relevant = self.wanted(&event.r#type)
            || matches!(event.payload, Some(Payload::ApplicationSupplemented(_)));
        if !relevant || event.application_id.is_empty() {
            return Ok(());
        }
        let mut known = txn.load_application(&event.application_id).await?;
        if known.is_none() {
            // Checked again under the lock: the submission may have committed meanwhile.
            txn.lock_application(&event.application_id).await?;
            known = txn.load_application(&event.application_id).await?;
        }
        match known {
            Some(mut application) => self.apply_known(txn, event, &mut application).await,
            None => {
                tracing::info!(application_id = %event.application_id, r#type = %event.r#type, "application not known yet; event parked");
                txn.park(event).await?;
                Ok(())
            }
        }
    }

    fn committed(&self, _events: &[Envelope]) {
        for p in self.platforms.iter() {
            p.wake.notify_one();
        }
    }
}
