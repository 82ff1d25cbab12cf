//! `tongban.notification.v1.NotificationService` over gRPC: identity from the interceptor, one
//! call into [`Notifications`], errors mapped once (see [`crate::error`]).

use std::{pin::Pin, sync::Arc, time::Duration};

use futures::Stream;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tongban_auth::identity;
use tongban_proto::notification::{self as pb, notification_service_server::NotificationService};
use tongban_runtime::streams::StreamCounter;
use tonic::{Request, Response, Status};

use crate::{error::invalid, repository::InboxStore, service::Notifications};

pub struct NotificationGrpc {
    notifications: Arc<Notifications>,
    poll: Duration,
    shutdown: CancellationToken,
    streams: StreamCounter,
    max_streams: usize,
}

impl NotificationGrpc {
    /// `poll`: how often a Subscribe stream re-reads without a local wake-up (another replica
    /// may have stored the notification). Streams end (UNAVAILABLE) when `shutdown` fires.
    pub fn new(
        notifications: Arc<Notifications>,
        poll: Duration,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            notifications,
            poll,
            shutdown,
            streams: StreamCounter::default(),
            max_streams: crate::DEFAULT_STREAMS_PER_CALLER,
        }
    }

    /// At most `max` open Subscribe streams per caller.
    pub fn with_stream_limit(mut self, max: usize) -> Self {
        self.max_streams = max;
        self
    }
}

/// Rows read per query while streaming.
const STREAM_BATCH: u64 = 100;

type NotificationStream = Pin<Box<dyn Stream<Item = Result<pb::SubscribeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl NotificationService for NotificationGrpc {
    async fn list_notifications(
        &self,
        req: Request<pb::ListNotificationsRequest>,
    ) -> Result<Response<pb::ListNotificationsResponse>, Status> {
        let who = identity(&req)?;
        let (notifications, next_page_token) = self.notifications.list(&who, req.get_ref()).await?;
        Ok(Response::new(pb::ListNotificationsResponse {
            notifications,
            next_page_token,
        }))
    }

    type SubscribeStream = NotificationStream;

    /// Backlog after the cursor (cursor 0: the unread backlog), then live, in cursor order.
    /// Cursors are assigned in commit order (see `InboxStore::lock_sequence`), so reading
    /// `seq > last` again and again never skips a row and never repeats one.
    async fn subscribe(
        &self,
        req: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let who = identity(&req)?;
        let audience = self
            .notifications
            .audience_for(&who, tongban_authz::Action::Subscribe)?;
        let after = req.get_ref().after_cursor;
        if after < 0 {
            return Err(invalid("after_cursor", "must not be negative").into());
        }
        // Held by the stream task: released when the stream ends, however it ends.
        let permit = self
            .streams
            .acquire(&who.actor_label(), self.max_streams)
            .ok_or_else(|| {
                crate::error::NotificationError::Exhausted(format!(
                    "at most {} open Subscribe streams per caller",
                    self.max_streams
                ))
            })?;
        // Subscribe to wake-ups before the first read so nothing committed in between is missed.
        let mut changes = self.notifications.shared().changes.subscribe();
        let notifications = self.notifications.clone();
        // Cursor 0 means "what I have not read": unread rows up to the current head, then
        // everything newer.
        let (mut last, mut unread_until) = if after == 0 {
            (0, notifications.head().await?)
        } else {
            (after, 0)
        };
        let poll = self.poll;
        let shutdown = self.shutdown.clone();
        let stream = tongban_runtime::stream_from_task(move |tx| async move {
            let _permit = permit;
            loop {
                let unread_only = last < unread_until;
                let batch = notifications
                    .db()
                    .notifications_after(&audience, last, unread_only, STREAM_BATCH)
                    .await;
                let batch = match batch {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = tx
                            .send(Err(Status::from(crate::error::NotificationError::from(e))))
                            .await;
                        return;
                    }
                };
                let full = batch.len() as u64 == STREAM_BATCH;
                for n in batch {
                    last = n.cursor;
                    let msg = pb::SubscribeResponse {
                        notification: Some(n),
                    };
                    if tx.send(Ok(msg)).await.is_err() {
                        return;
                    }
                }
                if full {
                    continue;
                }
                if unread_only {
                    // The unread backlog is done; from here on every new row counts.
                    last = last.max(unread_until);
                    unread_until = 0;
                    continue;
                }
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = shutdown.cancelled() => {
                        let _ = tx.send(Err(tongban_runtime::streams::shutting_down())).await;
                        return;
                    }
                    msg = changes.recv() => match msg {
                        Ok(()) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return,
                    },
                    _ = tokio::time::sleep(poll) => {}
                }
            }
        });
        Ok(Response::new(stream))
    }

    async fn mark_read(
        &self,
        req: Request<pb::MarkReadRequest>,
    ) -> Result<Response<pb::MarkReadResponse>, Status> {
        let who = identity(&req)?;
        let marked = self
            .notifications
            .mark_read(&who, &req.get_ref().notification_ids)
            .await?;
        Ok(Response::new(pb::MarkReadResponse { marked }))
    }

    async fn register_webhook(
        &self,
        req: Request<pb::RegisterWebhookRequest>,
    ) -> Result<Response<pb::RegisterWebhookResponse>, Status> {
        let who = identity(&req)?;
        let webhook = self
            .notifications
            .register_webhook(&who, req.into_inner())
            .await?;
        Ok(Response::new(pb::RegisterWebhookResponse {
            webhook: Some(webhook),
        }))
    }

    async fn list_webhooks(
        &self,
        req: Request<pb::ListWebhooksRequest>,
    ) -> Result<Response<pb::ListWebhooksResponse>, Status> {
        let who = identity(&req)?;
        let (webhooks, next_page_token) = self
            .notifications
            .list_webhooks(&who, req.get_ref())
            .await?;
        Ok(Response::new(pb::ListWebhooksResponse {
            webhooks,
            next_page_token,
        }))
    }

    async fn delete_webhook(
        &self,
        req: Request<pb::DeleteWebhookRequest>,
    ) -> Result<Response<pb::DeleteWebhookResponse>, Status> {
        let who = identity(&req)?;
        self.notifications
            .delete_webhook(&who, &req.get_ref().webhook_id)
            .await?;
        Ok(Response::new(pb::DeleteWebhookResponse {}))
    }

    async fn list_failed_deliveries(
        &self,
        req: Request<pb::ListFailedDeliveriesRequest>,
    ) -> Result<Response<pb::ListFailedDeliveriesResponse>, Status> {
        let who = identity(&req)?;
        let (deliveries, next_page_token) =
            self.notifications.list_failed(&who, req.get_ref()).await?;
        Ok(Response::new(pb::ListFailedDeliveriesResponse {
            deliveries,
            next_page_token,
        }))
    }

    async fn replay_failed_deliveries(
        &self,
        req: Request<pb::ReplayFailedDeliveriesRequest>,
    ) -> Result<Response<pb::ReplayFailedDeliveriesResponse>, Status> {
        let who = identity(&req)?;
        let delivery_ids = self
            .notifications
            .replay_failed(&who, req.get_ref())
            .await?;
        Ok(Response::new(pb::ReplayFailedDeliveriesResponse {
            replayed: u32::try_from(delivery_ids.len()).unwrap_or(u32::MAX),
            delivery_ids,
        }))
    }
}
