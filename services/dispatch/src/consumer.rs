//! Turns events into ledger rows: for each event, the canonical document is built from the
//! stored application snapshot, and every platform that accepts it gets one PENDING row with the
//! mapped payload (mapped now, so the ledger shows exactly what will be sent). A mapping error
//! makes that platform's row DEAD_LETTERED at once, with a `delivery.dead_lettered` event.
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
use tongban_outbox::{EventHandler, HandlerError, new_envelope, outbox};
use tongban_proto::events::{DeliveryDeadLettered, Envelope, envelope::Payload};

use crate::{
    canonical,
    ledger::{
        self, ApplicationSnapshots, DeliveryLedger, Involved, NewDelivery, ParkedEvents, Status,
    },
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

    /// Adds the ledger rows for `event` about `application` (its canonical section).
    async fn fan_out(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
        application: &Value,
    ) -> Result<(), HandlerError> {
        let doc = canonical::document(event, application);
        for p in self.platforms.iter().filter(|p| p.config.accepts(&doc)) {
            let (status, payload, last_error) = match p.config.mapping.apply(&doc, &event.r#type) {
                Ok(v) => (Status::Pending, v.to_string(), String::new()),
                Err(e) => (
                    Status::DeadLettered,
                    "null".to_string(),
                    format!("mapping: {e}"),
                ),
            };
            let row = NewDelivery {
                delivery_id: tongban_types::new_id(),
                application_id: event.application_id.clone(),
                platform_id: p.config.id.clone(),
                event_id: event.event_id.clone(),
                event_type: event.r#type.clone(),
                idempotency_key: ledger::idempotency_key(&p.config.id, &event.event_id),
                status,
                last_error,
                payload,
                traceparent: tongban_telemetry::current_traceparent(),
            };
            if txn.insert_delivery(&row).await? && status == Status::DeadLettered {
                tracing::warn!(platform = %row.platform_id, error = %row.last_error, "mapping failed; dead-lettered");
                let dl = new_envelope(
                    "dispatch",
                    &row.application_id,
                    Payload::DeliveryDeadLettered(DeliveryDeadLettered {
                        platform_id: row.platform_id.clone(),
                        delivery_id: row.delivery_id.clone(),
                        source_event_id: row.event_id.clone(),
                        source_event_type: row.event_type.clone(),
                        last_error: row.last_error.clone(),
                        attempts: 0,
                    }),
                );
                outbox::enqueue(txn, &[dl]).await?;
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
