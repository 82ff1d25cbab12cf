//! The outbox's and the consumer's instruments: events published, consumed and failed by
//! type (`messaging.client.sent.messages`, `messaging.client.consumed.messages`, with
//! `error.type` on failures), redeliveries and dead letters, and the outbox backlog with the
//! age of its oldest row.

use opentelemetry::{
    KeyValue,
    metrics::{Counter, Gauge},
};
use sea_orm::{ConnectionTrait, DbErr};
use tongban_bus::Bus;
use tongban_storage::stmt;

/// `messaging.system` for `bus`.
pub(crate) fn system(bus: &Bus) -> &'static str {
    match bus {
        Bus::Rabbit(_) => "rabbitmq",
        Bus::Local(_) => "tongban_embedded",
    }
}

#[derive(Clone)]
pub(crate) struct Instruments {
    sent: Counter<u64>,
    consumed: Counter<u64>,
    redeliveries: Counter<u64>,
    dead_letters: Counter<u64>,
    backlog: Gauge<u64>,
    oldest_age: Gauge<f64>,
    base: Vec<KeyValue>,
}

impl Instruments {
    /// Instruments of `service`'s outbox and consumer on `bus`.
    pub(crate) fn new(service: &str, bus: &Bus) -> Self {
        let m = tongban_telemetry::metrics::meter();
        Self {
            sent: m
                .u64_counter("messaging.client.sent.messages")
                .with_unit("{message}")
                .with_description("Events published to the bus, by type; failures carry error.type")
                .build(),
            consumed: m
                .u64_counter("messaging.client.consumed.messages")
                .with_unit("{message}")
                .with_description("Events taken from the bus, by type; failures carry error.type")
                .build(),
            redeliveries: m
                .u64_counter("tongban.consumer.redeliveries")
                .with_description("Events the bus delivered again after a failure or a crash")
                .build(),
            dead_letters: m
                .u64_counter("tongban.dead_letters")
                .with_description(
                    "Events sent to the dead-letter queue because they cannot be applied",
                )
                .build(),
            backlog: m
                .u64_gauge("tongban.outbox.backlog")
                .with_description("Outbox rows not yet confirmed by the bus")
                .build(),
            oldest_age: m
                .f64_gauge("tongban.outbox.oldest.age")
                .with_unit("s")
                .with_description("Age of the oldest outbox row not yet confirmed by the bus")
                .build(),
            base: vec![
                KeyValue::new("tongban.service", service.to_string()),
                KeyValue::new("messaging.system", system(bus)),
            ],
        }
    }

    fn attrs(
        &self,
        operation: &'static str,
        event_type: &str,
        error: Option<&'static str>,
    ) -> Vec<KeyValue> {
        let mut a = self.base.clone();
        a.push(KeyValue::new("messaging.operation.name", operation));
        a.push(KeyValue::new("tongban.event.type", event_type.to_string()));
        if let Some(e) = error {
            a.push(KeyValue::new("error.type", e));
        }
        a
    }

    pub(crate) fn sent<'a>(
        &self,
        types: impl Iterator<Item = &'a str>,
        error: Option<&'static str>,
    ) {
        for t in types {
            self.sent.add(1, &self.attrs("publish", t, error));
        }
    }

    pub(crate) fn consumed(&self, event_type: &str, error: Option<&'static str>) {
        self.consumed
            .add(1, &self.attrs("process", event_type, error));
    }

    pub(crate) fn redelivered(&self, event_type: &str) {
        self.redeliveries
            .add(1, &self.attrs("process", event_type, None));
    }

    pub(crate) fn dead_lettered(&self, event_type: &str) {
        self.dead_letters
            .add(1, &self.attrs("process", event_type, None));
    }

    /// Reads the backlog and the oldest row's age from `db` and records them.
    pub(crate) async fn observe_backlog<C: ConnectionTrait>(&self, db: &C) -> Result<(), DbErr> {
        let backend = db.get_database_backend();
        let pending = crate::outbox::pending_count(db).await?;
        let oldest = db
            .query_one_raw(stmt(
                backend,
                "SELECT created_at FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT 1",
                vec![],
            ))
            .await?
            .map(|r| r.try_get::<chrono::DateTime<chrono::Utc>>("", "created_at"))
            .transpose()?;
        let age = oldest
            .map(|t| (chrono::Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        self.backlog.record(pending, &self.base);
        self.oldest_age.record(age, &self.base);
        Ok(())
    }
}
