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
        BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions,
        BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
        QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable, LongString},
};
use tokio::sync::{Mutex, mpsc};

use crate::{
    Acker, BusError, Delivery, OutgoingMessage, QueueSpec, Subscription,
    dead_letters::{DeadLetter, Handled, Op, Selection},
    reconnect_delay,
};

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

    /// The broker's name for the consumer queue `name`.
    pub fn queue_name(&self, name: &str) -> String {
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
        let broker_queue = self.queue_name(&spec.name);
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
                            // A replayed dead letter arrives through the default exchange,
                            // whose routing key is the queue's name: its event type is in
                            // the `type` property it was published with.
                            let routing_key = match d.properties.kind() {
                                Some(kind) if d.routing_key.as_str() == broker_queue => {
                                    kind.to_string()
                                }
                                _ => d.routing_key.to_string(),
                            };
                            let delivery = Delivery {
                                routing_key,
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

    /// A connection of its own for working on `queue`'s dead-letter queue: whatever it takes
    /// without ack goes back to the queue when the connection closes (or drops). Also returns
    /// the dead-letter queue's broker name and its depth now.
    async fn dlq_session(
        &self,
        queue: &str,
    ) -> Result<(Connection, Channel, String, u64), BusError> {
        let (conn, ch) = self.open().await?;
        let dlq = format!("{}.dlq", self.queue_name(queue));
        let declared = ch
            .queue_declare(
                dlq.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        match declared {
            Ok(q) => Ok((conn, ch, dlq, u64::from(q.message_count()))),
            Err(e) => {
                let _ = conn.close(200, "dead letters".into()).await;
                Err(e.into())
            }
        }
    }

    pub(crate) async fn dead_letters(
        &self,
        queue: &str,
        limit: usize,
    ) -> Result<(Vec<DeadLetter>, u64), BusError> {
        let (conn, ch, dlq, depth) = self.dlq_session(queue).await?;
        let listed = async {
            let mut out = Vec::new();
            // Bounded by the depth seen at the start: messages taken here are unacked, so
            // basic_get never hands one out twice, and new arrivals wait for the next look.
            while out.len() < limit && (out.len() as u64) < depth {
                match ch
                    .basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: false })
                    .await?
                {
                    Some(m) => out.push(letter_of(&m.delivery)),
                    None => break,
                }
            }
            Ok::<_, BusError>(out)
        }
        .await;
        // Closing gives every message taken back to the queue, in its place.
        let _ = conn.close(200, "dead letters listed".into()).await;
        Ok((listed?, depth))
    }

    pub(crate) async fn find_dead_letter(
        &self,
        queue: &str,
        event_id: &str,
    ) -> Result<Option<DeadLetter>, BusError> {
        let (conn, ch, dlq, depth) = self.dlq_session(queue).await?;
        let found = async {
            for _ in 0..depth {
                match ch
                    .basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: false })
                    .await?
                {
                    Some(m) if message_id(&m.delivery) == event_id => {
                        return Ok(Some(letter_of(&m.delivery)));
                    }
                    Some(_) => {}
                    None => break,
                }
            }
            Ok::<_, BusError>(None)
        }
        .await;
        let _ = conn.close(200, "dead letter shown".into()).await;
        found
    }

    pub(crate) async fn handle_dead_letters(
        &self,
        queue: &str,
        selection: &Selection,
        op: Op,
    ) -> Result<Handled, BusError> {
        let (conn, ch, dlq, depth) = self.dlq_session(queue).await?;
        let target = self.queue_name(queue);
        let handled = async {
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
            let mut handled = Handled::default();
            match selection {
                Selection::All => {
                    for _ in 0..depth {
                        let Some(m) = ch
                            .basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: false })
                            .await?
                        else {
                            break;
                        };
                        let id = message_id(&m.delivery);
                        // A message replayed by this call that failed again and came back is
                        // held (and given back on close), not replayed a second time.
                        if handled.done.contains(&id) {
                            continue;
                        }
                        apply(&ch, &target, op, &m.delivery).await?;
                        handled.done.push(id);
                    }
                }
                Selection::Ids(ids) => {
                    let wanted = Handled::wanted(ids);
                    let mut matched = Vec::new();
                    for _ in 0..depth {
                        let Some(m) = ch
                            .basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: false })
                            .await?
                        else {
                            break;
                        };
                        if wanted.contains(&message_id(&m.delivery)) {
                            matched.push(m);
                        }
                    }
                    handled.missing = wanted
                        .iter()
                        .filter(|w| !matched.iter().any(|m| &message_id(&m.delivery) == *w))
                        .cloned()
                        .collect();
                    if !handled.missing.is_empty() {
                        return Ok(handled);
                    }
                    for m in &matched {
                        apply(&ch, &target, op, &m.delivery).await?;
                        let id = message_id(&m.delivery);
                        if !handled.done.contains(&id) {
                            handled.done.push(id);
                        }
                    }
                }
            }
            Ok::<_, BusError>(handled)
        }
        .await;
        // Whatever was taken and not acked (not selected, or a failure midway) goes back.
        let _ = conn.close(200, "dead letters handled".into()).await;
        handled
    }
}

/// Replays (to `target`, through the default exchange, confirmed) or discards one dead letter,
/// then acks it in the dead-letter queue. A crash between the two leaves it in both places:
/// replayed and still listed, which the consumer's inbox makes harmless.
async fn apply(
    ch: &Channel,
    target: &str,
    op: Op,
    d: &lapin::message::Delivery,
) -> Result<(), BusError> {
    if op == Op::Replay {
        let letter = letter_of(d);
        let mut headers = FieldTable::default();
        if let Some(tp) = &letter.traceparent {
            headers.insert(
                "traceparent".into(),
                AMQPValue::LongString(LongString::from(tp.as_str())),
            );
        }
        // A new message, not the old one requeued: no x-death, no delivery count.
        let mut props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(letter.event_id.as_str().into())
            .with_type(letter.event_type.as_str().into())
            .with_headers(headers);
        if let Some(ct) = d.properties.content_type() {
            props = props.with_content_type(ct.clone());
        }
        let confirm = ch
            .basic_publish(
                "".into(),
                target.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &d.data,
                props,
            )
            .await?
            .await?;
        match confirm {
            lapin::Confirmation::Ack(None) => {}
            lapin::Confirmation::Ack(Some(_)) => {
                return Err(BusError::Unroutable(target.to_string()));
            }
            _ => return Err(BusError::Nacked(letter.event_id)),
        }
    }
    ch.basic_ack(d.delivery_tag, BasicAckOptions::default())
        .await?;
    Ok(())
}

fn message_id(d: &lapin::message::Delivery) -> String {
    d.properties
        .message_id()
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default()
}

fn long_string(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

fn integer(v: &AMQPValue) -> Option<u64> {
    match *v {
        AMQPValue::LongLongInt(n) => u64::try_from(n).ok(),
        AMQPValue::LongInt(n) => u64::try_from(n).ok(),
        AMQPValue::LongUInt(n) => Some(u64::from(n)),
        AMQPValue::ShortInt(n) => u64::try_from(n).ok(),
        AMQPValue::ShortUInt(n) => Some(u64::from(n)),
        AMQPValue::Timestamp(n) => Some(n),
        _ => None,
    }
}

/// A dead letter as the broker gave it: id and type from the properties, when and why from
/// the newest `x-death` entry (the broker adds one per dead-lettering queue and reason).
fn letter_of(d: &lapin::message::Delivery) -> DeadLetter {
    let headers = d.properties.headers().as_ref().map(|h| h.inner());
    let traceparent = headers
        .and_then(|h| h.get("traceparent"))
        .and_then(long_string);
    let death = headers
        .and_then(|h| h.get("x-death"))
        .and_then(|v| match v {
            AMQPValue::FieldArray(a) => a.as_slice().first().cloned(),
            _ => None,
        })
        .and_then(|v| match v {
            AMQPValue::FieldTable(t) => Some(t),
            _ => None,
        });
    let death = death.as_ref().map(|t| t.inner());
    DeadLetter {
        event_id: message_id(d),
        event_type: d
            .properties
            .kind()
            .as_ref()
            .map(|k| k.to_string())
            .unwrap_or_else(|| d.routing_key.to_string()),
        payload: d.data.clone(),
        traceparent,
        dead_lettered_at: death
            .and_then(|t| t.get("time"))
            .and_then(integer)
            .and_then(|secs| i64::try_from(secs).ok())
            .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0)),
        death_count: death.and_then(|t| t.get("count")).and_then(integer),
        reason: death.and_then(|t| t.get("reason")).and_then(long_string),
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
