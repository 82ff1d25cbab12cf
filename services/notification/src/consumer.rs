//! The fan-in: every consumed event becomes notifications (and their e-mails) and webhook
//! deliveries, in the consumer's transaction, so a redelivered event changes nothing.

use std::sync::Arc;

use sea_orm::DatabaseTransaction;
use tongban_outbox::{EventHandler, HandlerError};
use tongban_proto::events::Envelope;

use crate::{
    fanin::{self, Facts},
    repository::{self, NewNotification},
    schedule,
    service::Shared,
};

pub struct FanIn {
    shared: Arc<Shared>,
}

impl FanIn {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl EventHandler for FanIn {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        let s = &self.shared;
        let facts = match Facts::from_event(event) {
            Some(f) => {
                repository::save_facts(txn, &f).await?;
                Some(f)
            }
            None => repository::find_facts(txn, &event.application_id).await?,
        };
        let drafts = fanin::drafts(event, facts.as_ref(), s.calendar.time_zone());
        if !drafts.is_empty() {
            repository::lock_sequence(txn).await?;
        }
        let now = chrono::Utc::now();
        for d in drafts {
            let text = s.templates.render(d.template, &d.locale, &d.vars);
            let n = NewNotification {
                notification_id: tongban_types::new_id(),
                event_id: event.event_id.clone(),
                recipient: d.recipient.clone(),
                kind: d.kind.clone(),
                title: text.title.clone(),
                body: text.body.clone(),
                locale: text.locale.clone(),
                application_id: event.application_id.clone(),
                task_id: d.task_id.clone(),
                dedup_key: d.dedup_key(),
            };
            if !repository::insert_notification(txn, &n).await? {
                tracing::debug!(recipient = %n.recipient, kind = %n.kind, "duplicate notification skipped");
                continue;
            }
            if let (true, Some(to)) = (s.email_enabled, &d.email_to) {
                let after = schedule::email_send_after(d.reminder, now, &s.calendar);
                repository::insert_email(
                    txn,
                    &n.notification_id,
                    to,
                    &text.title,
                    &text.body,
                    after.timestamp_millis(),
                )
                .await?;
            }
        }

        let hooks = repository::webhooks(txn).await?;
        let wanted: Vec<_> = hooks.iter().filter(|w| w.wants(&event.r#type)).collect();
        if !wanted.is_empty() {
            let body = crate::webhook::body(event).to_string();
            for w in wanted {
                repository::insert_delivery(txn, &w.webhook_id, &event.event_id, &body).await?;
            }
        }
        Ok(())
    }

    fn committed(&self, _events: &[Envelope]) {
        self.shared.wake();
    }
}
