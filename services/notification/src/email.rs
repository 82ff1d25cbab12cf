//! E-mail over SMTP (lettre). The fan-in queues rows in `emails`; this sender claims due rows
//! (`send_after_ms` passed, i.e. outside quiet hours for reminders) and makes one attempt at
//! each. A transient failure (no connection, a timeout, a 4xx answer) schedules the next
//! attempt in the row ([`RetryPolicy`]: capped, jittered backoff), so an SMTP outage of hours
//! is outlasted and a restart keeps the schedule; when the failures outlast the policy's window
//! the row is dead (`failed_ms`). A permanent rejection (5xx, e.g. an unknown mailbox, or an
//! address that does not parse) makes it dead at once. Dead rows are listed and replayed by
//! an admin (see [`crate::service::Notifications::replay_failed`]).
//!
//! Because a row is written once per notification, in the transaction that applied the event,
//! a redelivered event never mails twice.

use std::{sync::Arc, time::Duration};

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
};
use tokio_util::sync::CancellationToken;

use crate::{
    error::NotificationError,
    repository::{DeliveryOutcome, EmailQueue, EmailRow},
    schedule::{AfterFailure, RetryPolicy},
    service::Shared,
};

/// Where e-mail goes (`[smtp]` in the configuration).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct SmtpSettings {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Sender address, e.g. `通办 <noreply@example.gov.cn>`.
    #[serde(default = "default_from")]
    pub from: String,
    /// STARTTLS (verified certificates) when true; plain SMTP (a local relay or test sink)
    /// when false.
    #[serde(default)]
    pub tls: bool,
    /// SMTP AUTH user; with [`password`](Self::password).
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<secrecy::SecretString>,
}

fn default_port() -> u16 {
    25
}

fn default_from() -> String {
    "Tongban <noreply@tongban.invalid>".into()
}

impl SmtpSettings {
    /// A plain relay at `host:port` sending as `from`.
    pub fn relay(host: impl Into<String>, port: u16, from: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port,
            from: from.into(),
            tls: false,
            username: None,
            password: None,
        }
    }

    pub(crate) fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.host.trim().is_empty() {
            out.push("smtp.host: must not be empty (leave [smtp] out to disable e-mail)".into());
        }
        if let Err(e) = self.from.parse::<Mailbox>() {
            out.push(format!("smtp.from: {:?} is not a mailbox: {e}", self.from));
        }
        if self.username.is_some() != self.password.is_some() {
            out.push("smtp.username: needs smtp.password, and the other way round".into());
        }
        out
    }
}

/// Sends queued e-mails.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    retry: RetryPolicy,
}

/// How long a claimed e-mail is reserved for this sender: longer than one attempt (the SMTP
/// timeout) takes, so that no other replica sends it meanwhile.
const LEASE_MS: i64 = 2 * 60 * 1000;
/// The SMTP timeout of one attempt.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

impl Mailer {
    pub fn new(s: &SmtpSettings, retry: RetryPolicy) -> Result<Self, NotificationError> {
        let from: Mailbox = s
            .from
            .parse()
            .map_err(|e| NotificationError::Config(format!("smtp.from {:?}: {e}", s.from)))?;
        let mut builder = if s.tls {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host)
                .map_err(|e| NotificationError::Config(format!("smtp.host {}: {e}", s.host)))?
        } else {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
        };
        if let (Some(user), Some(password)) = (&s.username, &s.password) {
            use secrecy::ExposeSecret as _;
            builder =
                builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
                    user.clone(),
                    password.expose_secret().to_string(),
                ));
        }
        let transport = builder.port(s.port).timeout(Some(SMTP_TIMEOUT)).build();
        Ok(Self {
            transport,
            from,
            retry,
        })
    }

    /// Claims and sends due e-mails until `shutdown`, waking on new work or every `poll`.
    pub async fn run(self, shared: Arc<Shared>, poll: Duration, shutdown: CancellationToken) {
        loop {
            match shared.db.claim_emails(LEASE_MS, 16).await {
                Ok(batch) if !batch.is_empty() => {
                    for e in batch {
                        self.send_one(&shared, e).await;
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "claiming e-mails failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = shared.outgoing.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// One attempt at `e`.
    async fn attempt(&self, e: &EmailRow) -> Result<(), SendError> {
        let to: Mailbox = e
            .to_addr
            .parse()
            .map_err(|err| SendError::Permanent(format!("address {:?}: {err}", e.to_addr)))?;
        let msg = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(e.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(e.body.clone())
            .map_err(|err| SendError::Permanent(err.to_string()))?;
        self.transport.send(msg).await.map(|_| ()).map_err(|err| {
            // A 5xx answer is the server's final word on this message; anything else (no
            // connection, a timeout, a 4xx) may go away.
            if err.is_permanent() {
                SendError::Permanent(err.to_string())
            } else {
                SendError::Transient(err.to_string())
            }
        })
    }

    async fn send_one(&self, shared: &Shared, e: EmailRow) {
        let attempts = e.attempts + 1;
        let now = tongban_storage::now_ms();
        let outcome = match self.attempt(&e).await {
            Ok(()) => {
                tracing::info!(notification_id = %e.notification_id, attempts, "e-mail sent");
                crate::metrics::record("email", "sent", 1);
                DeliveryOutcome::Delivered
            }
            Err(SendError::Permanent(error)) => {
                crate::metrics::record("email", "failed", 1);
                tracing::error!(notification_id = %e.notification_id, to = %e.to_addr, attempts, %error, "e-mail refused; it is dead until replayed");
                DeliveryOutcome::GaveUp { error }
            }
            Err(SendError::Transient(error)) => {
                let since_ms = e.retry_since_ms.unwrap_or(now);
                match self.retry.after_failure(attempts, since_ms, now) {
                    AfterFailure::RetryAt(at_ms) => {
                        crate::metrics::record("email", "retry", 1);
                        tracing::warn!(notification_id = %e.notification_id, attempts, %error, retry_in_ms = at_ms - now, "e-mail failed; will retry");
                        DeliveryOutcome::Retry {
                            at_ms,
                            since_ms,
                            error,
                        }
                    }
                    AfterFailure::GiveUp => {
                        crate::metrics::record("email", "failed", 1);
                        tracing::error!(notification_id = %e.notification_id, to = %e.to_addr, attempts, %error, "e-mail failed; giving up, it is dead until replayed");
                        DeliveryOutcome::GaveUp { error }
                    }
                }
            }
        };
        if let Err(db) = shared
            .db
            .finish_email(&e.notification_id, attempts, &outcome)
            .await
        {
            tracing::warn!(error = %db, "recording e-mail outcome failed; it may be sent again");
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("{0}")]
    Permanent(String),
    #[error("{0}")]
    Transient(String),
}
