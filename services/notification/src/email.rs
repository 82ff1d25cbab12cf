//! E-mail over SMTP (lettre). The fan-in queues rows in `emails`; this sender claims due rows
//! (`send_after_ms` passed, i.e. outside quiet hours for reminders), sends each with a few
//! quick retries (backon), and records it sent or failed. Because a row is written once per
//! notification, in the transaction that applied the event, a redelivered event never mails
//! twice.

use std::{sync::Arc, time::Duration};

use backon::{ExponentialBuilder, Retryable};
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
};
use tokio_util::sync::CancellationToken;

use crate::{
    error::NotificationError,
    repository::{EmailQueue, EmailRow},
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
}

/// How long a claimed e-mail is reserved for this sender (covers the quick retries).
const LEASE_MS: i64 = 5 * 60 * 1000;

impl Mailer {
    pub fn new(s: &SmtpSettings) -> Result<Self, NotificationError> {
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
        let transport = builder
            .port(s.port)
            .timeout(Some(Duration::from_secs(20)))
            .build();
        Ok(Self { transport, from })
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

    async fn send_one(&self, shared: &Shared, e: EmailRow) {
        let attempts = std::sync::atomic::AtomicI64::new(e.attempts);
        let result = (|| async {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
            self.transport
                .send(msg)
                .await
                .map(|_| ())
                .map_err(|err| SendError::Transient(err.to_string()))
        })
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(500))
                .with_max_times(3)
                .with_jitter(),
        )
        .when(|err| matches!(err, SendError::Transient(_)))
        .await;
        let attempts = attempts.load(std::sync::atomic::Ordering::Relaxed);
        let error = match &result {
            Ok(()) => {
                tracing::info!(notification_id = %e.notification_id, "e-mail sent");
                crate::metrics::record("email", "sent", 1);
                None
            }
            Err(err) => {
                crate::metrics::record("email", "failed", 1);
                tracing::error!(notification_id = %e.notification_id, to = %e.to_addr, attempts, error = %err, "e-mail failed; giving up");
                Some(err.to_string())
            }
        };
        if let Err(db) = shared
            .db
            .finish_email(&e.notification_id, attempts, error.as_deref())
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
