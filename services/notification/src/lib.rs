//! The notification service: tells applicants and staff what happened.
//!
//! # Model
//! Events come in on the `notification` queue (every routing key). For each, in one
//! transaction with the inbox record (so redelivery changes nothing), the fan-in
//! ([`fanin`], [`consumer`]) writes:
//! - **notifications** for recipient keys (`applicant:<credit code>`, `department:<dept>`,
//!   `supervisor:<dept>`, `role:integrator`), rendered from `deploy/notification/templates.toml`
//!   in the recipient's language (applicants: their contact's locale; staff: zh-CN). Reminders
//!   (`task.due_soon`, `task.overdue`) are de-duplicated per (recipient, kind, task);
//! - **e-mails** for applicant notifications when the application has a contact address;
//! - **webhook deliveries** for every registered webhook that wants the event type and whose
//!   owner's scope includes the application ([`scope`]).
//!
//! Then three readers act on those rows:
//! - the gRPC API ([`grpc`]): `ListNotifications`, `MarkRead`, `RegisterWebhook`,
//!   `ListWebhooks`, `DeleteWebhook` (webhooks are owned; see [`scope`] and [`guard`]), and
//!   `Subscribe`, which streams the backlog after a cursor and then live notifications. The
//!   cursor is the global `seq` column, assigned in commit order, so reconnecting with the last
//!   cursor seen gives no gaps and no repeats;
//! - the e-mail sender ([`email`]), SMTP through lettre;
//! - the webhook deliverer ([`webhook`]), signed JSON POSTs.
//!
//! Both senders retry a failed attempt on a schedule kept in the row (capped, jittered
//! backoff; [`schedule::RetryPolicy`]) until the failures have lasted a window of hours, then
//! leave the row dead; admins list and replay dead rows (`ListFailedDeliveries`,
//! `ReplayFailedDeliveries`).
//!
//! # Quiet hours
//! In-app notifications are stored and streamed at once, reminders included: the inbox is read
//! when the reader chooses. Reminder *e-mails* created outside working time (per the working
//! calendar, `deploy/calendar/`) wait until the next working instant; see [`schedule`].
//!
//! # Layout
//! [`templates`] texts · [`fanin`] event → drafts (pure) · [`consumer`] the event handler ·
//! [`repository`] SQL · [`service`] use cases · [`grpc`] handlers · [`email`], [`webhook`]
//! senders · [`schedule`] timing rules · [`error`] the one error type.

pub mod config;
pub mod consumer;
pub mod email;
pub mod entity;
pub mod error;
pub mod fanin;
pub mod grpc;
pub mod guard;
mod metrics;
pub mod migration;
pub mod repository;
pub mod schedule;
pub mod scope;
pub mod service;
pub mod templates;
pub mod webhook;

use std::{sync::Arc, time::Duration};

use sea_orm_migration::MigratorTrait;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tongban_bus::QueueSpec;
use tongban_proto::notification::notification_service_server::NotificationServiceServer;
use tongban_runtime::{Context, ServiceBuilder};

pub use email::SmtpSettings;
pub use error::NotificationError;
pub use guard::WebhookPolicy;
pub use schedule::RetryPolicy;
pub use service::Notifications;

/// The queue notification consumes: every event (webhooks may ask for any type).
pub fn queue_spec() -> QueueSpec {
    QueueSpec::new("notification", tongban_types::event_type::ALL)
}

/// How the service behaves beyond its [`Context`].
#[derive(Debug, Clone)]
pub struct NotificationOptions {
    /// SMTP server for e-mail; `None` disables e-mail.
    pub smtp: Option<SmtpSettings>,
    /// Webhook retry schedule and window.
    pub webhook_retry: RetryPolicy,
    /// E-mail retry schedule and window.
    pub email_retry: RetryPolicy,
    /// How often senders and streams look for work without a wake-up (another replica may
    /// have written it).
    pub poll: Duration,
    /// Where webhooks may point (https only and public addresses unless allowed here).
    pub webhook_policy: WebhookPolicy,
    /// Open Subscribe streams one caller may hold; more are RESOURCE_EXHAUSTED.
    pub subscribe_streams_per_caller: usize,
}

/// Default of [`NotificationOptions::subscribe_streams_per_caller`] (`limits.streams_per_caller`).
pub const DEFAULT_STREAMS_PER_CALLER: usize = 16;

impl Default for NotificationOptions {
    fn default() -> Self {
        Self {
            smtp: None,
            webhook_retry: RetryPolicy::default(),
            email_retry: RetryPolicy::default(),
            poll: Duration::from_secs(2),
            webhook_policy: WebhookPolicy::default(),
            subscribe_streams_per_caller: DEFAULT_STREAMS_PER_CALLER,
        }
    }
}

/// [`run_with`] under the configured settings ([`config::NotificationConfig`]): SMTP (none
/// means no e-mail), the webhook policy and the stream limit.
pub async fn run(
    ctx: Context,
    own: &config::NotificationConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_with(ctx, own.options(false)?, listener, shutdown).await
}

/// [`run`] as `tongban dev` runs it: webhooks may also use plain http and reach this machine.
pub async fn run_dev(
    ctx: Context,
    own: &config::NotificationConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_with(ctx, own.options(true)?, listener, shutdown).await
}

/// Migrates, starts the consumer and the senders, and serves gRPC on `listener` until
/// `shutdown`.
pub async fn run_with(
    ctx: Context,
    opts: NotificationOptions,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    migration::Migrator::up(&ctx.db, None).await?;
    let calendar = tongban_calendar::Calendar::load_dir(ctx.deploy_dir.join("calendar"))?;
    let templates =
        templates::Templates::load(&ctx.deploy_dir.join("notification/templates.toml"))?;
    let mailer = match &opts.smtp {
        Some(s) => {
            tracing::info!(host = %s.host, port = s.port, tls = s.tls, "e-mail enabled");
            Some(email::Mailer::new(s, opts.email_retry.clone())?)
        }
        None => {
            tracing::info!(
                "no SMTP server configured (smtp.host, TONGBAN_SMTP__HOST); e-mail disabled"
            );
            None
        }
    };
    let deliverer =
        webhook::Deliverer::new(opts.webhook_retry.clone(), opts.webhook_policy.clone())?;
    let shared = Arc::new(service::Shared::new(
        ctx.db.clone(),
        templates,
        calendar,
        mailer.is_some(),
        Arc::new(opts.webhook_policy.clone()),
    ));
    let integrators = tongban_authz::Integrators::load(ctx.deploy_dir.join("integrators.toml"))?;
    let mut service = ServiceBuilder::new("notification", &ctx, &shutdown);
    let (denials, writer) = tongban_audit::DenialLog::new(ctx.db.clone(), "notification");
    service.spawn("denials", writer.run(shutdown.clone()));
    let policy = tongban_authz::Policy::new(integrators).with_denials(denials);
    let notifications = Arc::new(Notifications::new(shared.clone()).with_policy(policy.clone()));
    let handler = Arc::new(consumer::FanIn::new(shared.clone()).with_policy(policy));
    service.consume(queue_spec(), 128, handler).await?;
    service.spawn(
        "prune-parked",
        tongban_outbox::prune::ParkedPruner::new(ctx.db.clone())
            .with_retention(chrono::Duration::days(i64::from(ctx.retention.parked_days)))
            .with_batch(ctx.retention.batch)
            .run(shutdown.clone()),
    );
    if let Some(m) = mailer {
        service.spawn("email", m.run(shared.clone(), opts.poll, shutdown.clone()));
    }
    service.spawn(
        "webhooks",
        deliverer.run(shared.clone(), opts.poll, shutdown.clone()),
    );
    let server = NotificationServiceServer::new(
        grpc::NotificationGrpc::new(notifications, opts.poll, shutdown.clone())
            .with_stream_limit(opts.subscribe_streams_per_caller),
    );
    service.serve(listener, server).await
}
