//! One way to start a service process: the outbox relay, the event consumer, the service's own
//! background work, and the gRPC server, all stopped by one shutdown token and joined before
//! [`ServiceBuilder::serve`] returns.
//!
//! Every service used to spell this sequence out by hand; the order matters (declare the queue
//! before consuming, cancel the token when the server stops for any reason, join every task),
//! so it lives here once.

use std::{convert::Infallible, sync::Arc};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tongban_bus::QueueSpec;
use tongban_outbox::{
    Relay, RelayHandle,
    consumer::{ConsumerOptions, EventHandler},
};
use tongban_proto::ops::dead_letter_service_server::DeadLetterServiceServer;
use tonic::{
    body::Body,
    codegen::{
        Service,
        http::{Request, Response},
    },
    server::NamedService,
    service::{Routes, interceptor::InterceptedService},
};

use crate::{Context, Tasks};

/// Collects a service's background tasks, then serves its gRPC API until shutdown.
pub struct ServiceBuilder {
    name: &'static str,
    ctx: Context,
    shutdown: CancellationToken,
    tasks: Tasks,
    relay: Option<RelayHandle>,
    /// Queues [`consume`](Self::consume) was given: their dead letters are the admin API's.
    queues: Vec<String>,
}

impl ServiceBuilder {
    /// A service called `name` (it names the consumer and the task logs) over `ctx`, stopping
    /// when `shutdown` is cancelled.
    pub fn new(name: &'static str, ctx: &Context, shutdown: &CancellationToken) -> Self {
        Self {
            name,
            ctx: ctx.clone(),
            shutdown: shutdown.clone(),
            tasks: Tasks::until(shutdown.clone()),
            relay: None,
            queues: Vec::new(),
        }
    }

    /// The service's transactional-outbox relay, started on first call; later calls return the
    /// same handle.
    pub fn relay(&mut self) -> RelayHandle {
        if let Some(handle) = &self.relay {
            return handle.clone();
        }
        let r = self.ctx.retention;
        let relay = Relay::new(self.ctx.db.clone(), self.ctx.bus.clone())
            .with_service(self.name)
            .with_retention(chrono::Duration::days(i64::from(r.outbox_days)))
            .with_inbox_retention(chrono::Duration::days(i64::from(r.inbox_days)))
            .with_prune_batch(r.batch);
        let handle = relay.handle();
        self.tasks.spawn(
            format!("{}-relay", self.name),
            relay.run(self.shutdown.clone()),
        );
        self.relay = Some(handle.clone());
        handle
    }

    /// Declares `queue` and consumes it in batches of up to `batch` events with `handler`. The
    /// consumer wakes the relay after each batch when [`relay`](Self::relay) was started first,
    /// so the events a batch caused leave at once.
    pub async fn consume<H: EventHandler>(
        &mut self,
        queue: QueueSpec,
        batch: usize,
        handler: Arc<H>,
    ) -> Result<(), tongban_bus::BusError> {
        self.ctx.bus.declare(&queue).await?;
        self.queues.push(queue.name.clone());
        let opts = ConsumerOptions {
            consumer: self.name.to_string(),
            queue,
            batch,
        };
        let (db, bus, relay, stop) = (
            self.ctx.db.clone(),
            self.ctx.bus.clone(),
            self.relay.clone(),
            self.shutdown.clone(),
        );
        let name = self.name;
        // A subscription that cannot start or that ends (the bus went away for good) ends the
        // consumer; the supervisor starts it again, and health is NOT_SERVING meanwhile.
        self.tasks.supervise(format!("{name}-consumer"), move || {
            let (db, bus, opts, handler, relay, stop) = (
                db.clone(),
                bus.clone(),
                opts.clone(),
                handler.clone(),
                relay.clone(),
                stop.clone(),
            );
            async move {
                if let Err(e) =
                    tongban_outbox::run_consumer(db, bus, opts, handler, relay, stop).await
                {
                    tracing::error!(service = name, error = %e, "consumer stopped");
                }
            }
        });
        Ok(())
    }

    /// Runs the worker `make` returns (one that watches [`shutdown`](Self::shutdown)) until
    /// the service stops, starting a new one whenever it ends or panics early.
    pub fn supervise<F, Fut>(&mut self, task: &str, make: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.supervise(format!("{}-{task}", self.name), make);
    }

    /// Runs `fut` (a worker that watches [`shutdown`](Self::shutdown)) until the service stops.
    pub fn spawn(
        &mut self,
        task: &str,
        fut: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        self.tasks.spawn(format!("{}-{task}", self.name), fut);
    }

    /// The token every task of this service watches.
    pub fn shutdown(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Starts the periodic signed audit checkpoint when [`Context::audit`] configures one. A
    /// configured key that cannot be read stops the start: a service must not run believing
    /// it anchors its audit log when it does not.
    fn anchor_audit(&mut self) -> anyhow::Result<()> {
        let Some(cfg) = self.ctx.audit.clone() else {
            tracing::warn!(
                service = self.name,
                "audit checkpoints are off: no [audit] signing_key_file configured"
            );
            return Ok(());
        };
        let key = tongban_audit::anchor::load_signing_key(&cfg.signing_key_file)?;
        tracing::info!(service = self.name, file = %cfg.checkpoint_file.display(), every_secs = cfg.interval_secs, "audit checkpoints on");
        let run = tongban_audit::anchor::run(
            self.ctx.db.clone(),
            self.name.to_string(),
            key,
            cfg,
            self.shutdown.clone(),
        );
        self.spawn("audit-anchor", run);
        Ok(())
    }

    /// Serves `server` (behind the bearer-token interceptor, with health, reflection and
    /// grpc-web) on `listener` until shutdown; then stops every task and waits for them.
    /// A server that fails also stops the tasks, so nothing is left running.
    pub async fn serve<S>(mut self, listener: TcpListener, server: S) -> anyhow::Result<()>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.anchor_audit()?;
        if let Some(addr) = self.ctx.metrics_listen {
            let metrics = crate::metrics::bind(addr).await?;
            tracing::info!(service = self.name, addr = %metrics.local_addr()?, "metrics at /metrics");
            let stop = self.shutdown.clone();
            self.spawn("metrics", async move {
                if let Err(e) = crate::metrics::serve(metrics, stop).await {
                    tracing::error!(error = %e, "metrics server stopped");
                }
            });
        }
        let svc = InterceptedService::new(server, self.ctx.auth.clone());
        // Every service answers for its consumer's dead letters (admins only); refusals are
        // recorded on its chain like those of its own API.
        let (denials, writer) = tongban_audit::DenialLog::new(self.ctx.db.clone(), self.name);
        self.spawn("dead-letter-denials", writer.run(self.shutdown.clone()));
        let dead_letters = crate::dead_letters::DeadLetterAdmin::new(
            self.name,
            self.ctx.db.clone(),
            self.ctx.bus.clone(),
            self.queues.clone(),
            tongban_authz::Policy::default().with_denials(denials),
        );
        let depth = dead_letters
            .clone()
            .watch_depth(crate::dead_letters::DEPTH_INTERVAL, self.shutdown.clone());
        self.spawn("dead-letter-depth", depth);
        let routes = Routes::new(svc).add_service(InterceptedService::new(
            DeadLetterServiceServer::new(dead_letters),
            self.ctx.auth.clone(),
        ));
        let probe = crate::health::Probe {
            service: self.name,
            db: self.ctx.db.clone(),
            bus: self.ctx.bus.clone(),
            stopped: self.tasks.stopped(),
        };
        tracing::info!(service = self.name, addr = %listener.local_addr()?, "serving");
        let served = crate::serve_grpc(
            listener,
            routes,
            &[
                S::NAME,
                DeadLetterServiceServer::<crate::dead_letters::DeadLetterAdmin>::NAME,
            ],
            Some(probe),
            self.ctx.tls.as_ref(),
            self.ctx.shutdown_timeout,
            self.shutdown.clone(),
        )
        .await;
        self.shutdown.cancel();
        // Tasks watch the token; one that does not stop in time is cut off (dropping the set
        // aborts it) rather than keeping the process alive.
        if tokio::time::timeout(self.ctx.shutdown_timeout, self.tasks.join())
            .await
            .is_err()
        {
            tracing::warn!(service = self.name, grace = ?self.ctx.shutdown_timeout, "background tasks still running after the shutdown grace period; stopping them");
        }
        served?;
        Ok(())
    }
}
