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

/// Where e-mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// Sender address, e.g. `通办 <noreply@example.gov.cn>`.
    pub from: String,
    /// STARTTLS (verified certificates) when true; plain SMTP (a local relay or test sink)
    /// when false.
    pub tls: bool,
}

impl SmtpSettings {
    /// From `TONGBAN_SMTP_HOST`, `TONGBAN_SMTP_PORT` (default 25), `TONGBAN_SMTP_FROM` and
    /// `TONGBAN_SMTP_TLS` (`true`/`1`); `None` without a host.
    pub fn from_env() -> Option<Self> {
        let host = std::env::var("TONGBAN_SMTP_HOST").ok()?.trim().to_string();
        if host.is_empty() {
            return None;
        }
        let port = std::env::var("TONGBAN_SMTP_PORT")
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(25);
        let from = std::env::var("TONGBAN_SMTP_FROM")
            .unwrap_or_else(|_| "Tongban <noreply@tongban.invalid>".into());
        let tls = std::env::var("TONGBAN_SMTP_TLS")
            .map(|v| matches!(v.trim(), "1" | "true" | "yes"))
            .unwrap_or(false);
        Some(Self {
            host,
            port,
            from,
            tls,
        })
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
        let from: Mailbox = s.from.parse().map_err(|e| {
            NotificationError::Config(format!("TONGBAN_SMTP_FROM {:?}: {e}", s.from))
        })?;
        let transport = if s.tls {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host)
                .map_err(|e| NotificationError::Config(format!("SMTP host {}: {e}", s.host)))?
                .port(s.port)
                .timeout(Some(Duration::from_secs(20)))
                .build()
        } else {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
                .port(s.port)
                .timeout(Some(Duration::from_secs(20)))
                .build()
        };
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
                None
            }
            Err(err) => {
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
