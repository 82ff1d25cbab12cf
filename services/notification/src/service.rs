//! The use cases behind the RPCs, and the state the consumer, the senders and the streams share.

use std::sync::Arc;

use rand::RngCore;
use sea_orm::DatabaseConnection;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Notify, broadcast};
use tongban_auth::{Identity, Role};
use tongban_authz::{Action, Policy, Scope};
use tongban_calendar::Calendar;
use tongban_proto::{notification as pb, page::Paging, time::ts};

use crate::{
    error::{NotificationError, invalid},
    guard::WebhookPolicy,
    repository::{Audience, Channel, DeadRows, FailedRow, InboxStore, WebhookRow, WebhookStore},
    scope::Owner,
    templates::Templates,
};

/// What the fan-in, the senders and the RPCs share.
pub struct Shared {
    pub db: DatabaseConnection,
    pub templates: Templates,
    pub calendar: Calendar,
    /// False when no SMTP server is configured: no e-mails are queued.
    pub email_enabled: bool,
    /// Wakes Subscribe streams after new notifications commit.
    pub changes: broadcast::Sender<()>,
    /// Wakes the e-mail sender and the webhook deliverer.
    pub outgoing: Arc<Notify>,
    /// Where webhooks may point.
    pub webhook_policy: Arc<WebhookPolicy>,
}

impl Shared {
    pub fn new(
        db: DatabaseConnection,
        templates: Templates,
        calendar: Calendar,
        email_enabled: bool,
        webhook_policy: Arc<WebhookPolicy>,
    ) -> Self {
        Self {
            db,
            templates,
            calendar,
            email_enabled,
            changes: broadcast::channel(64).0,
            outgoing: Arc::new(Notify::new()),
            webhook_policy,
        }
    }

    /// Something committed: wake the streams and the senders.
    pub fn wake(&self) {
        let _ = self.changes.send(());
        self.outgoing.notify_waiters();
        self.outgoing.notify_one();
    }
}

/// The recipient keys `who` reads: applicant → `applicant:<cc>`; clerk → `department:<d>`;
/// supervisor → `supervisor:<d>` and `department:<d>`; integrator → `role:integrator`; admin →
/// everything.
/// Notification's own audit chain: webhook changes and denied attempts on no application.
pub fn service_chain() -> String {
    tongban_audit::service_chain("notification")
}

/// The audit chain of a reader's inbox acts (marking read).
fn inbox_chain(who: &Identity) -> String {
    format!("inbox/{}:{}", who.role, who.subject)
}

/// Appends a webhook change (`webhook.register`, `webhook.delete`, ...) by `who` to
/// notification's own chain, in the caller's transaction `txn`, so the entry commits with the
/// change. `detail` is what changed, never the secret.
pub async fn audit_webhook_change(
    txn: &sea_orm::DatabaseTransaction,
    who: &Identity,
    action: &str,
    webhook_id: &str,
    detail: &str,
) -> Result<(), NotificationError> {
    tongban_audit::append(
        txn,
        &service_chain(),
        tongban_storage::now_ms(),
        tongban_audit::Act::done(tongban_audit::Actor::from(who), action, webhook_id)
            .reason(detail),
    )
    .await?;
    Ok(())
}

pub fn audience(who: &Identity) -> Result<Audience, NotificationError> {
    let dept = || {
        who.department
            .clone()
            .ok_or(tongban_authz::Denied::MissingClaim {
                role: who.role,
                claim: "department",
            })
    };
    Ok(match who.role {
        Role::Admin => Audience::All,
        Role::Integrator => Audience::Keys(vec!["role:integrator".into()]),
        Role::Applicant => {
            let cc = who
                .credit_code
                .as_ref()
                .ok_or(tongban_authz::Denied::MissingClaim {
                    role: who.role,
                    claim: "credit_code",
                })?;
            Audience::Keys(vec![format!("applicant:{cc}")])
        }
        Role::Clerk => Audience::Keys(vec![format!("department:{}", dept()?)]),
        Role::Supervisor => {
            let d = dept()?;
            Audience::Keys(vec![format!("supervisor:{d}"), format!("department:{d}")])
        }
    })
}

/// Paging of ListNotifications: newest first, resumed below the last cursor.
const NOTIFICATIONS: Paging = Paging::new("notification.notifications", 50, 200);
/// Paging of ListWebhooks: by id (UUIDv7, so oldest first), resumed after the last id.
const WEBHOOKS: Paging = Paging::new("notification.webhooks", 50, 200);
/// Paging of ListFailedDeliveries: by id, resumed after the last id.
const FAILED: Paging = Paging::new("notification.failed", 50, 200);
/// Most dead rows one ReplayFailedDeliveries call names or replays.
pub const MAX_REPLAY: usize = 1000;
/// Most event types one webhook may list (there are fewer kinds than this).
pub const MAX_EVENT_TYPES: usize = 64;
/// Longest webhook URL, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// Longest id or idempotency key, in bytes.
pub const MAX_ID_BYTES: usize = 128;

pub struct Notifications {
    shared: Arc<Shared>,
    /// The authorization table and the registered integrators.
    policy: Policy,
}

impl Notifications {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            policy: Policy::default(),
        }
    }

    /// Decides with `policy` (the registered integrators); without it every integrator is
    /// denied.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The inbox `who` may read for `action` (list, subscribe, mark read).
    pub fn audience_for(
        &self,
        who: &Identity,
        action: Action,
    ) -> Result<Audience, NotificationError> {
        self.policy.check(who, action, &Scope::default(), "inbox")?;
        audience(who)
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.shared.db
    }

    #[tracing::instrument(skip(self, req), fields(role = %who.role))]
    pub async fn list(
        &self,
        who: &Identity,
        req: &pb::ListNotificationsRequest,
    ) -> Result<(Vec<pb::Notification>, String), NotificationError> {
        let audience = self.audience_for(who, Action::ListNotifications)?;
        let page = NOTIFICATIONS.page::<i64>(req.page_size, &req.page_token)?;
        let mut rows = self
            .db()
            .list_notifications(&audience, req.unread_only, page.after, page.fetch_limit())
            .await?;
        let next = page.finish(&mut rows, |n| n.cursor);
        Ok((rows, next))
    }

    #[tracing::instrument(skip(self, ids), fields(role = %who.role))]
    pub async fn mark_read(
        &self,
        who: &Identity,
        ids: &[String],
    ) -> Result<u32, NotificationError> {
        let audience = self.audience_for(who, Action::MarkRead)?;
        if ids.len() > 1000 {
            return Err(invalid("notification_ids", "at most 1000 at once"));
        }
        if let Some(i) = ids.iter().position(|s| s.len() > MAX_ID_BYTES) {
            return Err(invalid(
                format!("notification_ids[{i}]"),
                format!("at most {MAX_ID_BYTES} characters"),
            ));
        }
        let ids: Vec<String> = ids
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let txn = tongban_storage::begin_write(self.db()).await?;
        let n = txn.mark_read(&audience, &ids).await?;
        // One chain per reader: marking read is frequent and concerns no one application, and
        // separate chains keep readers from queueing on one head row.
        tongban_audit::append(
            &txn,
            &inbox_chain(who),
            tongban_storage::now_ms(),
            tongban_audit::Act::done(
                tongban_audit::Actor::from(who),
                "notifications.mark_read",
                ids.join(","),
            )
            .reason(format!("{n} marked read")),
        )
        .await?;
        txn.commit().await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// The highest cursor so far (0 when there is none).
    pub async fn head(&self) -> Result<i64, NotificationError> {
        Ok(self.db().head_cursor().await?)
    }

    #[tracing::instrument(skip(self, req), fields(role = %who.role))]
    pub async fn register_webhook(
        &self,
        who: &Identity,
        req: pb::RegisterWebhookRequest,
    ) -> Result<pb::Webhook, NotificationError> {
        self.policy
            .check(who, Action::RegisterWebhook, &Scope::default(), "webhooks")?;
        let owner = Owner::of(who)?;
        let request_id = req.request_id.trim();
        if request_id.len() > MAX_ID_BYTES || request_id.chars().any(char::is_control) {
            return Err(invalid(
                "request_id",
                "must be at most 128 characters, without control characters",
            ));
        }
        let url = validate_url(&req.url)?;
        if req.event_types.len() > MAX_EVENT_TYPES {
            return Err(invalid(
                "event_types",
                format!("at most {MAX_EVENT_TYPES} event types"),
            ));
        }
        let mut event_types: Vec<String> = Vec::new();
        for (i, t) in req.event_types.iter().enumerate() {
            let t = t.trim();
            if !tongban_types::event_type::ALL.contains(&t) {
                return Err(invalid(
                    format!("event_types[{i}]"),
                    format!("unknown event type {:?}", truncate(t, 64)),
                ));
            }
            if !event_types.iter().any(|e| e == t) {
                event_types.push(t.to_string());
            }
        }
        // Scheme and address last: it may need DNS.
        let parsed = reqwest::Url::parse(&url).map_err(|e| invalid("url", e.to_string()))?;
        self.shared
            .webhook_policy
            .check_url_resolved(&parsed)
            .await
            .map_err(|e| invalid("url", e))?;
        if let Some(done) = self
            .registered_for(&owner, request_id, &url, &event_types)
            .await?
        {
            return Ok(done);
        }
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let row = WebhookRow {
            webhook_id: tongban_types::new_id(),
            url,
            event_types,
            secret: SecretString::from(hex::encode(secret)),
            created_ms: tongban_storage::now_ms(),
            owner,
        };
        let txn = tongban_storage::begin_write(self.db()).await?;
        let inserted: Result<(), NotificationError> = async {
            txn.insert_webhook(&row, request_id).await?;
            audit_webhook_change(
                &txn,
                who,
                "webhook.register",
                &row.webhook_id,
                &format!("{} for {}", row.url, row.event_types.join(",")),
            )
            .await
        }
        .await;
        let inserted = match inserted {
            Ok(()) => txn.commit().await.map_err(NotificationError::from),
            Err(e) => {
                // Free the connection (SQLite has one) before looking up the winner below.
                txn.rollback().await?;
                Err(e)
            }
        };
        if let Err(e) = inserted {
            // A concurrent retry of this very request may have won the unique request_id.
            return match self
                .registered_for(&row.owner, request_id, &row.url, &row.event_types)
                .await?
            {
                Some(done) => Ok(done),
                None => Err(e),
            };
        }
        tracing::info!(webhook_id = %row.webhook_id, url = %row.url, owner = %row.owner.label(), "webhook registered");
        Ok(webhook_to_proto(row, true))
    }

    /// What an earlier RegisterWebhook with `request_id` registered (AIP-155): the same webhook
    /// when the caller and the request are the same, `RequestIdReused` when not. `None` for no
    /// id or an unused one.
    async fn registered_for(
        &self,
        owner: &Owner,
        request_id: &str,
        url: &str,
        event_types: &[String],
    ) -> Result<Option<pb::Webhook>, NotificationError> {
        if request_id.is_empty() {
            return Ok(None);
        }
        match self.db().webhook_by_request_id(request_id).await? {
            None => Ok(None),
            Some(w) if w.owner == *owner && w.url == url && w.event_types == event_types => {
                Ok(Some(webhook_to_proto(w, true)))
            }
            Some(_) => Err(NotificationError::RequestIdReused(request_id.to_string())),
        }
    }

    /// The caller's webhooks (an admin's: all), without secrets.
    #[tracing::instrument(skip(self, req), fields(role = %who.role))]
    pub async fn list_webhooks(
        &self,
        who: &Identity,
        req: &pb::ListWebhooksRequest,
    ) -> Result<(Vec<pb::Webhook>, String), NotificationError> {
        self.policy
            .check(who, Action::ListWebhooks, &Scope::default(), "webhooks")?;
        let owner = match who.role {
            Role::Admin => None,
            _ => Some(Owner::of(who)?),
        };
        let page = WEBHOOKS.page::<String>(req.page_size, &req.page_token)?;
        let mut rows = self
            .db()
            .list_webhooks(owner.as_ref(), page.after.as_deref(), page.fetch_limit())
            .await?;
        let next = page.finish(&mut rows, |w| w.webhook_id.clone());
        Ok((
            rows.into_iter()
                .map(|w| webhook_to_proto(w, false))
                .collect(),
            next,
        ))
    }

    /// Deletes the webhook when the caller owns it or is an admin, with its audit entry;
    /// `NotFound` otherwise, so another principal's webhook ids cannot be probed (an attempt on
    /// one is still recorded as refused).
    #[tracing::instrument(skip(self), fields(role = %who.role))]
    pub async fn delete_webhook(
        &self,
        who: &Identity,
        webhook_id: &str,
    ) -> Result<(), NotificationError> {
        let webhook_id = webhook_id.trim();
        if webhook_id.is_empty() {
            return Err(invalid("webhook_id", "required"));
        }
        if webhook_id.len() > MAX_ID_BYTES {
            return Err(invalid("webhook_id", "at most 128 characters"));
        }
        self.policy
            .check(who, Action::DeleteWebhook, &Scope::default(), webhook_id)?;
        // Owner claims are checked before anything is read.
        let owner = match who.role {
            Role::Admin => None,
            _ => Some(Owner::of(who)?),
        };
        let txn = tongban_storage::begin_write(self.db()).await?;
        let found = txn.webhook(webhook_id).await?;
        let detail = match (found, owner) {
            (Some(w), None) => format!("{} of {}", w.url, w.owner.label()),
            (Some(w), Some(o)) if w.owner == o => w.url,
            (found, _) => {
                txn.rollback().await?;
                if found.is_some() {
                    // Someone else's: refused and recorded, but answered like a missing one so
                    // that webhook ids cannot be probed.
                    self.policy.deny(
                        who,
                        Action::DeleteWebhook,
                        webhook_id,
                        tongban_authz::Denied::Forbidden {
                            role: who.role,
                            action: Action::DeleteWebhook,
                            why: "the webhook belongs to another principal".into(),
                        },
                    );
                }
                return Err(NotificationError::NotFound(format!("webhook {webhook_id}")));
            }
        };
        txn.delete_webhook(webhook_id).await?;
        audit_webhook_change(&txn, who, "webhook.delete", webhook_id, &detail).await?;
        txn.commit().await?;
        Ok(())
    }
}

impl Notifications {
    /// Dead e-mails or webhook calls of `channel` (admins).
    #[tracing::instrument(skip(self, req), fields(role = %who.role))]
    pub async fn list_failed(
        &self,
        who: &Identity,
        req: &pb::ListFailedDeliveriesRequest,
    ) -> Result<(Vec<pb::FailedDelivery>, String), NotificationError> {
        self.policy.check_role(who, Action::ListFailedDeliveries)?;
        let channel = channel(req.channel)?;
        let page = FAILED.page::<String>(req.page_size, &req.page_token)?;
        let mut rows = self
            .db()
            .list_failed(channel, page.after.as_deref(), page.fetch_limit())
            .await?;
        let next = page.finish(&mut rows, |r| r.id.clone());
        Ok((rows.into_iter().map(failed_to_proto).collect(), next))
    }

    /// Makes dead rows of the channel due again with a fresh retry window (admins), recorded
    /// on notification's audit chain in the same transaction. Returns the ids replayed.
    #[tracing::instrument(skip(self, req), fields(role = %who.role))]
    pub async fn replay_failed(
        &self,
        who: &Identity,
        req: &pb::ReplayFailedDeliveriesRequest,
    ) -> Result<Vec<String>, NotificationError> {
        self.policy
            .check_role(who, Action::ReplayFailedDeliveries)?;
        let channel = channel(req.channel)?;
        if req.delivery_ids.len() > MAX_REPLAY {
            return Err(invalid(
                "delivery_ids",
                format!("at most {MAX_REPLAY} at once"),
            ));
        }
        if let Some(i) = req.delivery_ids.iter().position(|s| s.len() > MAX_ID_BYTES) {
            return Err(invalid(
                format!("delivery_ids[{i}]"),
                format!("at most {MAX_ID_BYTES} characters"),
            ));
        }
        let ids: Vec<String> = req
            .delivery_ids
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let ids = match (req.all, ids.is_empty()) {
            (true, true) => None,
            (false, false) => Some(ids),
            (true, false) => {
                return Err(invalid("delivery_ids", "give ids or `all`, not both"));
            }
            (false, true) => return Err(invalid("delivery_ids", "required unless `all` is set")),
        };
        let txn = tongban_storage::begin_write(self.db()).await?;
        let replayed = txn
            .replay_failed(channel, ids.as_deref(), MAX_REPLAY as u64)
            .await?;
        if replayed.is_empty() {
            txn.rollback().await?;
            return Ok(replayed);
        }
        tongban_audit::append(
            &txn,
            &service_chain(),
            tongban_storage::now_ms(),
            tongban_audit::Act::done(
                tongban_audit::Actor::from(who),
                "deliveries.replay",
                channel.as_str(),
            )
            .reason(format!(
                "{} replayed: {}",
                replayed.len(),
                replayed.join(",")
            )),
        )
        .await?;
        txn.commit().await?;
        crate::metrics::record(channel.as_str(), "replayed", replayed.len() as u64);
        tracing::info!(
            channel = channel.as_str(),
            n = replayed.len(),
            "dead deliveries replayed"
        );
        self.shared.wake();
        Ok(replayed)
    }
}

/// The channel a request names; unset is INVALID_ARGUMENT.
fn channel(raw: i32) -> Result<Channel, NotificationError> {
    match pb::DeliveryChannel::try_from(raw) {
        Ok(pb::DeliveryChannel::Email) => Ok(Channel::Email),
        Ok(pb::DeliveryChannel::Webhook) => Ok(Channel::Webhook),
        _ => Err(invalid("channel", "required: email or webhook")),
    }
}

fn failed_to_proto(r: FailedRow) -> pb::FailedDelivery {
    pb::FailedDelivery {
        channel: match r.channel {
            Channel::Email => pb::DeliveryChannel::Email,
            Channel::Webhook => pb::DeliveryChannel::Webhook,
        } as i32,
        delivery_id: r.id,
        target: r.target,
        event_id: r.event_id,
        attempts: i32::try_from(r.attempts).unwrap_or(i32::MAX),
        last_error: r.last_error,
        fail_time: chrono::DateTime::from_timestamp_millis(r.failed_ms).map(ts),
    }
}

fn truncate(s: &str, max_chars: usize) -> &str {
    s.char_indices().nth(max_chars).map_or(s, |(i, _)| &s[..i])
}

/// The webhook as the API shows it; the secret only when `with_secret` (RegisterWebhook).
fn webhook_to_proto(row: WebhookRow, with_secret: bool) -> pb::Webhook {
    pb::Webhook {
        owner: row.owner.label(),
        webhook_id: row.webhook_id,
        url: row.url,
        event_types: row.event_types,
        secret: if with_secret {
            row.secret.expose_secret().to_string()
        } else {
            String::new()
        },
        create_time: chrono::DateTime::from_timestamp_millis(row.created_ms).map(ts),
    }
}

/// An absolute http(s) URL with a host, normalised. The policy (https, public addresses) is
/// checked afterwards by [`WebhookPolicy`].
pub fn validate_url(raw: &str) -> Result<String, NotificationError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(invalid("url", "required"));
    }
    if raw.len() > MAX_URL_BYTES {
        return Err(invalid("url", "longer than 2048 characters"));
    }
    let url = reqwest::Url::parse(raw).map_err(|e| invalid("url", format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("url", "must be https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("url", "has no host"));
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn mark_read_caps_id_lengths() {
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        let shared = Arc::new(Shared::new(
            db,
            Templates::load(std::path::Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../deploy/notification/templates.toml"
            )))
            .unwrap(),
            Calendar::standard(),
            false,
            Arc::new(WebhookPolicy::default()),
        ));
        let who = Identity {
            subject: "s".into(),
            role: Role::Admin,
            department: None,
            region: None,
            credit_code: None,
        };
        let err = Notifications::new(shared)
            .mark_read(&who, &["ok".into(), "x".repeat(129)])
            .await
            .unwrap_err();
        assert!(
            matches!(err, NotificationError::Invalid { ref field, .. } if field == "notification_ids[1]")
        );
    }

    #[test]
    fn urls_are_checked() {
        assert!(validate_url("https://example.com/hook").is_ok());
        assert!(validate_url("http://127.0.0.1:8080/").is_ok());
        for bad in ["", "ftp://example.com", "example.com", "http://"] {
            assert!(
                matches!(validate_url(bad), Err(NotificationError::Invalid { ref field, .. }) if field == "url"),
                "{bad}"
            );
        }
    }
}
