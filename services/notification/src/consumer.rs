//! The fan-in: every consumed event becomes notifications (and their e-mails) and webhook
//! deliveries, in the consumer's transaction, so a redelivered event changes nothing. Webhook
//! deliveries go only to webhooks whose owner's scope includes the event's application
//! ([`crate::scope::in_scope`]); the department an event names is remembered first, so the
//! event that brings a department in already reaches that department's webhooks.
//!
//! Applicant notifications need the facts `application.submitted` brings (credit code,
//! address, language). An event for the applicant that overtakes the submission (another
//! producer's, or a redelivery) is applied at once for staff and webhooks and also parked
//! ([`tongban_outbox::parked`]); the submission applies the parked events again in its
//! transaction, which adds just the applicant's notifications (a notification is unique per
//! event and recipient). Events parked for an application submitted before this service ran
//! are given up after the retention.

use std::sync::Arc;

use sea_orm::DatabaseTransaction;
use tongban_authz::Policy;
use tongban_outbox::{EventHandler, HandlerError, parked::ParkedEvents};
use tongban_proto::events::{Envelope, envelope::Payload};

use tongban_involved::Involved;

use crate::{
    fanin::{self, Facts},
    repository::{
        EmailQueue, FactStore, InboxStore, NewNotification, ScopeStore, WebhookDeliveries,
        WebhookStore,
    },
    schedule, scope,
    service::Shared,
};

pub struct FanIn {
    shared: Arc<Shared>,
    /// The authorization table, which decides whose webhooks hear of an application.
    policy: Policy,
    /// Inbox notifications written per event, counted once the event's transaction commits.
    stored: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl FanIn {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            policy: Policy::default(),
            stored: Default::default(),
        }
    }

    /// Decides webhook scopes with `policy` (the registered integrators); without it no
    /// integrator's webhook receives anything.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }
}

impl FanIn {
    /// The notifications and webhook deliveries of `event`, given the application's `facts`
    /// (if known); returns how many notifications it stored. Applying an event again adds
    /// only what is new: notifications are unique per (event, recipient), webhook deliveries
    /// per (webhook, event).
    async fn fan_in(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
        facts: Option<&Facts>,
    ) -> Result<u64, HandlerError> {
        let s = &self.shared;
        let drafts = fanin::drafts(event, facts, s.calendar.time_zone());
        if !drafts.is_empty() {
            txn.lock_sequence().await?;
        }
        let now = chrono::Utc::now();
        let mut stored = 0u64;
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
            if !txn.insert_notification(&n).await? {
                tracing::debug!(recipient = %n.recipient, kind = %n.kind, "duplicate notification skipped");
                continue;
            }
            stored += 1;
            if let (true, Some(to)) = (s.email_enabled, &d.email_to) {
                let after = schedule::email_send_after(d.reminder, now, &s.calendar);
                txn.insert_email(
                    &n.notification_id,
                    to,
                    &text.title,
                    &text.body,
                    after.timestamp_millis(),
                )
                .await?;
            }
        }

        if !event.application_id.is_empty() {
            txn.add_departments(&event.application_id, &departments(event))
                .await?;
        }
        let hooks = txn.webhooks().await?;
        let mut wanted: Vec<_> = hooks.iter().filter(|w| w.wants(&event.r#type)).collect();
        if !wanted.is_empty() {
            let app = txn.app_scope(&event.application_id, facts).await?;
            wanted.retain(|w| scope::in_scope(&self.policy, &w.owner, &app));
        }
        if !wanted.is_empty() {
            let body = crate::webhook::body(event).to_string();
            for w in wanted {
                txn.insert_delivery(&w.webhook_id, &event.event_id, &body)
                    .await?;
            }
        }
        Ok(stored)
    }
}

impl EventHandler for FanIn {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        let id = &event.application_id;
        let submitted = Facts::from_event(event);
        // An event for the applicant that overtook the submission waits for it (see the
        // module doc); the lock keeps a park and the submission's unpark apart.
        let may_park = submitted.is_none() && !id.is_empty() && fanin::concerns_applicant(event);
        let facts = match submitted {
            Some(f) => {
                if !id.is_empty() {
                    txn.lock_application(id).await?;
                }
                txn.save_facts(&f).await?;
                Some(f)
            }
            None => match txn.find_facts(id).await? {
                None if may_park => {
                    // Checked again under the lock: the submission may have committed meanwhile.
                    txn.lock_application(id).await?;
                    txn.find_facts(id).await?
                }
                found => found,
            },
        };
        let mut stored = self.fan_in(txn, event, facts.as_ref()).await?;
        if facts.is_none() && may_park {
            tracing::info!(application_id = %id, r#type = %event.r#type, "application facts not known yet; event parked for the applicant's notification");
            txn.park(event).await?;
        }
        if matches!(event.payload, Some(Payload::ApplicationSubmitted(_))) && !id.is_empty() {
            for parked in txn.unpark(id).await? {
                stored += self.fan_in(txn, &parked, facts.as_ref()).await?;
            }
        }
        if stored > 0 {
            let mut pending = self.stored.lock().unwrap_or_else(|p| p.into_inner());
            pending.insert(event.event_id.clone(), stored);
        }
        Ok(())
    }

    fn committed(&self, events: &[Envelope]) {
        let mut n = 0;
        {
            let mut pending = self.stored.lock().unwrap_or_else(|p| p.into_inner());
            for e in events {
                n += pending.remove(&e.event_id).unwrap_or(0);
            }
        }
        crate::metrics::record("inbox", "stored", n);
        self.shared.wake();
    }
}

/// The departments (and the township office) an event names: each has a task in the
/// application's workflow.
fn departments(event: &Envelope) -> Vec<&str> {
    use tongban_proto::events::envelope::Payload as P;
    let Some(payload) = event.payload.as_ref() else {
        return Vec::new();
    };
    let named: Vec<&String> = match payload {
        P::TaskCreated(p) => vec![&p.department, &p.office],
        P::TaskMoved(p) => vec![&p.department, &p.office],
        P::TaskDecided(p) => vec![&p.department],
        P::TaskDueSoon(p) => vec![&p.department],
        P::TaskOverdue(p) => vec![&p.department],
        P::TaskEscalated(p) => vec![&p.department],
        P::SupplementRequested(p) => vec![&p.department],
        P::ApplicationApproved(p) => vec![&p.department],
        P::ApplicationRejected(p) => vec![&p.department],
        P::RequestAnswered(p) => vec![&p.department],
        _ => Vec::new(),
    };
    named
        .into_iter()
        .map(|d| d.trim())
        .filter(|d| !d.is_empty())
        .collect()
}
