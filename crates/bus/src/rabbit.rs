//! RabbitMQ through lapin.
//!
//! Topology per exchange `E` (e.g. `tongban.events`):
//! - `E`: durable topic exchange every event is published to, routing key = event type;
//! - `E.dlx`: durable direct exchange for dead letters;
//! - per consumer queue `Q`: a durable quorum queue bound to its keys on `E`, dead-lettering to
//!   `E.dlx` with key `Q` after `delivery_limit` deliveries, and `Q.dlq` bound there.
//!
//! Publishing reuses one confirm-mode channel; a batch is sent back to back and then all
//! confirms are awaited together, so a batch costs one round trip, not one per message. A
//! connection error drops the channel; the next call reconnects.

use std::sync::Arc;

use futures::StreamExt;
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind,
    options::{
        BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
        ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable, LongString},
};
use tokio::sync::{Mutex, mpsc};

use crate::{Acker, BusError, Delivery, OutgoingMessage, QueueSpec, Subscription, reconnect_delay};

#[derive(Clone)]
pub struct RabbitBus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RabbitBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitBus")
            .field("exchange", &self.inner.exchange)
            .finish()
    }
}

struct Inner {
    url: String,
    exchange: String,
    /// Queues unused this long are deleted by the broker (tests set it; production does not).
    queue_expires: Option<std::time::Duration>,
    publisher: Mutex<Option<(Connection, Channel)>>,
    /// Per subscribed queue: whether its consumer is connected right now (for health).
    consumers: std::sync::Mutex<Vec<(String, Arc<std::sync::atomic::AtomicBool>)>>,
}

impl RabbitBus {
    /// Connects once to check the broker is there and declares the exchanges.
    pub async fn connect(url: &str, exchange: &str) -> Result<Self, BusError> {
        Self::connect_with_expiry(url, exchange, None).await
    }

    /// Like [`RabbitBus::connect`], with queues that the broker deletes after `queue_expires`
    /// unused (for tests, which make fresh names every run).
    pub async fn connect_with_expiry(
        url: &str,
        exchange: &str,
        queue_expires: Option<std::time::Duration>,
    ) -> Result<Self, BusError> {
        let bus = Self {
            inner: Arc::new(Inner {
                url: url.to_string(),
                exchange: exchange.to_string(),
                queue_expires,
                publisher: Mutex::new(None),
                consumers: std::sync::Mutex::new(Vec::new()),
            }),
        };
        let mut guard = bus.inner.publisher.lock().await;
        *guard = Some(bus.open_publisher().await?);
        drop(guard);
        Ok(bus)
    }

    pub fn exchange(&self) -> &str {
        &self.inner.exchange
    }

    /// Queues are named after the exchange (`tongban.events.intake`), so that two
    /// deployments (or two tests) on one broker never share a queue.
    fn spec_on_broker(&self, spec: &QueueSpec) -> QueueSpec {
        QueueSpec {
            name: self.queue_name(&spec.name),
            ..spec.clone()
        }
    }

    fn queue_name(&self, name: &str) -> String {
        format!("{}.{}", self.inner.exchange, name)
    }

    async fn open(&self) -> Result<(Connection, Channel), BusError> {
        let conn = Connection::connect(&self.inner.url, ConnectionProperties::default()).await?;
        let ch = conn.create_channel().await?;
        declare_exchanges(&ch, &self.inner.exchange).await?;
        Ok((conn, ch))
    }

    async fn open_publisher(&self) -> Result<(Connection, Channel), BusError> {
        let (conn, ch) = self.open().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok((conn, ch))
    }

    pub async fn declare(&self, spec: &QueueSpec) -> Result<(), BusError> {
        let (conn, ch) = self.open().await?;
        declare_queue(
            &ch,
            &self.inner.exchange,
            &self.spec_on_broker(spec),
            self.inner.queue_expires,
        )
        .await?;
        let _ = conn.close(200, "declared".into()).await;
        Ok(())
    }

    pub async fn publish_batch(&self, messages: &[OutgoingMessage]) -> Result<(), BusError> {
        let mut guard = self.inner.publisher.lock().await;
        if guard
            .as_ref()
            .is_none_or(|(c, ch)| !c.status().connected() || !ch.status().connected())
        {
            *guard = Some(self.open_publisher().await?);
        }
        let Some((_, ch)) = guard.as_ref() else {
            return Err(BusError::Closed);
        };
        let result = publish_on(ch, &self.inner.exchange, messages).await;
        if result.is_err() {
            // A failed channel is useless; the next batch reconnects.
            *guard = None;
        }
        result
    }

    /// Whether the broker is reachable now: the publisher connection is up (reopened here if
    /// it dropped, so that recovery shows without waiting for the next publish) and every
    /// consumer of this bus is connected.
    pub async fn check(&self) -> Result<(), BusError> {
        {
            let mut guard = self.inner.publisher.lock().await;
            if guard
                .as_ref()
                .is_none_or(|(c, ch)| !c.status().connected() || !ch.status().connected())
            {
                *guard = Some(self.open_publisher().await?);
            }
        }
        let consumers = match self.inner.consumers.lock() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        for (queue, up) in consumers {
            if !up.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(BusError::Disconnected(queue));
            }
        }
        Ok(())
    }

    /// Closes the publisher connection (e.g. on graceful shutdown). It stays in place closed, so
    /// the next [`RabbitBus::publish_batch`] finds it dead and reconnects, exactly as after the
    /// broker dropped it.
    pub async fn close_publisher(&self) -> Result<(), BusError> {
        let guard = self.inner.publisher.lock().await;
        if let Some((conn, _)) = guard.as_ref()
            && conn.status().connected()
        {
            conn.close(200, "publisher closed".into()).await?;
        }
        Ok(())
    }

    pub async fn subscribe(&self, spec: &QueueSpec) -> Result<Subscription, BusError> {
        let (tx, rx) = mpsc::channel(spec.prefetch.max(1) as usize);
        // The first connection is made here so that errors surface to the caller and the queue
        // exists (bindings in place) before subscribe returns.
        let first = self.open_consumer(spec).await?;
        let connected = Arc::new(std::sync::atomic::AtomicBool::new(true));
        if let Ok(mut list) = self.inner.consumers.lock() {
            list.push((spec.name.clone(), connected.clone()));
        }
        let bus = self.clone();
        let spec = spec.clone();
        let task = tokio::spawn(async move {
            use std::sync::atomic::Ordering;
            let mut current = Some(first);
            let mut attempt = 0u32;
            loop {
                let (conn, consumer) = match current.take() {
                    Some(c) => c,
                    None => match bus.open_consumer(&spec).await {
                        Ok(c) => {
                            attempt = 0;
                            connected.store(true, Ordering::Relaxed);
                            c
                        }
                        Err(e) => {
                            tracing::warn!(queue = %spec.name, error = %e, "reconnecting consumer");
                            tokio::time::sleep(reconnect_delay(attempt)).await;
                            attempt += 1;
                            continue;
                        }
                    },
                };
                let mut consumer = consumer;
                while let Some(next) = consumer.next().await {
                    match next {
                        Ok(d) => {
                            let traceparent = d
                                .properties
                                .headers()
                                .as_ref()
                                .and_then(|h| h.inner().get("traceparent").cloned())
                                .and_then(|v| match v {
                                    AMQPValue::LongString(s) => Some(s.to_string()),
                                    _ => None,
                                });
                            let delivery = Delivery {
                                routing_key: d.routing_key.to_string(),
                                payload: d.data,
                                redelivered: d.redelivered,
                                traceparent,
                                acker: Acker::Rabbit(d.acker),
                            };
                            if tx.send(delivery).await.is_err() {
                                let _ = conn.close(200, "subscriber gone".into()).await;
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(queue = %spec.name, error = %e, "consumer stream error");
                            break;
                        }
                    }
                }
                connected.store(false, Ordering::Relaxed);
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(reconnect_delay(attempt)).await;
                attempt += 1;
            }
        });
        Ok(Subscription { rx, task })
    }

    async fn open_consumer(
        &self,
        spec: &QueueSpec,
    ) -> Result<(Connection, lapin::Consumer), BusError> {
        let spec = &self.spec_on_broker(spec);
        let (conn, ch) = self.open().await?;
        declare_queue(&ch, &self.inner.exchange, spec, self.inner.queue_expires).await?;
        ch.basic_qos(spec.prefetch, BasicQosOptions::default())
            .await?;
        let consumer = ch
            .basic_consume(
                spec.name.as_str().into(),
                format!("{}-{}", spec.name, std::process::id()).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok((conn, consumer))
    }

    pub async fn queue_depth(&self, queue: &str) -> Result<u64, BusError> {
        let (conn, ch) = self.open().await?;
        let q = ch
            .queue_declare(
                self.queue_name(queue).as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let _ = conn.close(200, "depth".into()).await;
        Ok(u64::from(q.message_count()))
    }
}

async fn publish_on(
    ch: &Channel,
    exchange: &str,
    messages: &[OutgoingMessage],
) -> Result<(), BusError> {
    let mut confirms = Vec::with_capacity(messages.len());
    for m in messages {
        let mut headers = FieldTable::default();
        if let Some(tp) = &m.traceparent {
            headers.insert(
                "traceparent".into(),
                AMQPValue::LongString(LongString::from(tp.as_str())),
            );
        }
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(m.event_id.as_str().into())
            .with_content_type("application/x-protobuf".into())
            .with_type(m.routing_key.as_str().into())
            .with_headers(headers);
        let confirm = ch
            .basic_publish(
                exchange.into(),
                m.routing_key.as_str().into(),
                BasicPublishOptions::default(),
                &m.payload,
                props,
            )
            .await?;
        confirms.push((m.event_id.as_str(), confirm));
    }
    for (id, confirm) in confirms {
        if !confirm.await?.is_ack() {
            return Err(BusError::Nacked(id.to_string()));
        }
    }
    Ok(())
}

async fn declare_exchanges(ch: &Channel, exchange: &str) -> Result<(), BusError> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    ch.exchange_declare(
        exchange.into(),
        ExchangeKind::Topic,
        durable,
        FieldTable::default(),
    )
    .await?;
    ch.exchange_declare(
        format!("{exchange}.dlx").into(),
        ExchangeKind::Direct,
        durable,
        FieldTable::default(),
    )
    .await?;
    Ok(())
}

async fn declare_queue(
    ch: &Channel,
    exchange: &str,
    spec: &QueueSpec,
    expires: Option<std::time::Duration>,
) -> Result<(), BusError> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let dlx = format!("{exchange}.dlx");
    let dlq = spec.dead_letter_queue();
    let mut dlq_args = FieldTable::default();
    dlq_args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    if let Some(ttl) = expires {
        dlq_args.insert(
            "x-expires".into(),
            AMQPValue::LongInt(ttl.as_millis().min(i32::MAX as u128) as i32),
        );
    }
    ch.queue_declare(dlq.as_str().into(), durable, dlq_args)
        .await?;
    ch.queue_bind(
        dlq.as_str().into(),
        dlx.as_str().into(),
        spec.name.as_str().into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;

    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(dlx.as_str().into()),
    );
    args.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(spec.name.as_str().into()),
    );
    args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongInt(spec.delivery_limit as i32),
    );
    if let Some(ttl) = expires {
        args.insert(
            "x-expires".into(),
            AMQPValue::LongInt(ttl.as_millis().min(i32::MAX as u128) as i32),
        );
    }
    ch.queue_declare(spec.name.as_str().into(), durable, args)
        .await?;
    for key in &spec.bindings {
        ch.queue_bind(
            spec.name.as_str().into(),
            exchange.into(),
            key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    }
    Ok(())
}
