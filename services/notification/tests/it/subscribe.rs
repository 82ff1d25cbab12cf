//! The Subscribe stream: resuming from a cursor without gaps or repeats, and only the caller's own notifications.

use std::{collections::HashSet, time::Duration};

use tongban_auth::Role;
use tongban_proto::{
    events::{self, Envelope, envelope::Payload},
    notification as pb,
};
use tongban_testkit::{Backend, authed};

use crate::common::*;

async fn subscribe_resumes_without_gaps_or_repeats(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let clerk = h.keys.token(Role::Clerk, Some("eco_env"), None);
    let task = |i: usize| {
        tongban_outbox::new_envelope(
            "approval",
            "app-x",
            Payload::TaskCreated(events::TaskCreated {
                task_id: format!("task-{i}"),
                department: "eco_env".into(),
                ..Default::default()
            }),
        )
    };
    let first: Vec<Envelope> = (0..5).map(task).collect();
    h.publish(&first.iter().collect::<Vec<_>>()).await?;

    let mut stream = h
        .client
        .clone()
        .subscribe(authed(pb::SubscribeRequest { after_cursor: 0 }, &clerk))
        .await?
        .into_inner();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let n = tokio::time::timeout(WAIT, stream.message())
            .await??
            .ok_or_else(|| anyhow::anyhow!("stream ended"))?;
        seen.push(
            n.notification
                .ok_or_else(|| anyhow::anyhow!("empty SubscribeResponse"))?,
        );
    }
    drop(stream);
    let last = seen.last().map(|n| n.cursor).unwrap_or_default();

    let more: Vec<Envelope> = (5..9).map(task).collect();
    h.publish(&more.iter().collect::<Vec<_>>()).await?;

    let mut stream = h
        .client
        .clone()
        .subscribe(authed(pb::SubscribeRequest { after_cursor: last }, &clerk))
        .await?
        .into_inner();
    for _ in 0..6 {
        let n = tokio::time::timeout(WAIT, stream.message())
            .await??
            .ok_or_else(|| anyhow::anyhow!("stream ended"))?;
        seen.push(
            n.notification
                .ok_or_else(|| anyhow::anyhow!("empty SubscribeResponse"))?,
        );
    }
    // And nothing else.
    assert!(
        tokio::time::timeout(Duration::from_millis(600), stream.message())
            .await
            .is_err(),
        "an extra notification arrived"
    );
    let cursors: Vec<i64> = seen.iter().map(|n| n.cursor).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");
    let tasks: HashSet<String> = seen.iter().map(|n| n.task_id.clone()).collect();
    assert_eq!(tasks.len(), 9, "every task exactly once: {tasks:?}");

    // Someone else's stream stays empty.
    let mut other = h
        .client
        .clone()
        .subscribe(authed(
            pb::SubscribeRequest { after_cursor: 0 },
            &h.keys.token(Role::Clerk, Some("water"), None),
        ))
        .await?
        .into_inner();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), other.message())
            .await
            .is_err()
    );
    Ok(())
}

async fn subscribe_streams_are_capped_per_caller(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let clerk = h.keys.token(Role::Clerk, Some("eco_env"), None);
    let open = |token: String| {
        let mut c = h.client.clone();
        async move {
            c.subscribe(authed(pb::SubscribeRequest { after_cursor: 0 }, &token))
                .await
                .map(|r| r.into_inner())
        }
    };
    let mut streams = Vec::new();
    for _ in 0..tongban_notification::DEFAULT_STREAMS_PER_CALLER {
        streams.push(open(clerk.clone()).await?);
    }
    let err = open(clerk.clone())
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("one stream over the cap was opened"))?;
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    assert_eq!(reason(&err), "RESOURCE_EXHAUSTED");
    // Another caller is not affected; a closed stream gives its place back.
    let other = open(h.keys.token(Role::Clerk, Some("dev_reform"), None)).await?;
    streams.pop();
    let again = tongban_testkit::eventually(WAIT, "a freed stream", || {
        let o = open(clerk.clone());
        async move { o.await.ok() }
    })
    .await?;
    drop((streams, other, again));
    Ok(())
}

/// An open Subscribe stream does not hold up the service's shutdown: the stream ends
/// (UNAVAILABLE) and the service returns within seconds, well inside the shutdown timeout.
async fn open_subscribe_does_not_hold_up_shutdown(backend: Backend) -> anyhow::Result<()> {
    let (stopped_tx, stopped) = tokio::sync::oneshot::channel();
    let service = tongban_testkit::start_service(backend, "notification", move |s| {
        let run = tongban_notification::run_with(
            s.ctx,
            tongban_notification::NotificationOptions::default(),
            s.listener,
            s.shutdown,
        );
        async move {
            let result = run.await;
            let _ = stopped_tx.send(());
            result
        }
    })
    .await?;
    let clerk = service.keys.token(Role::Clerk, Some("eco_env"), None);
    let mut client =
        pb::notification_service_client::NotificationServiceClient::new(service.channel.clone());
    // The listener accepts before the service is ready; an answered RPC means it serves.
    let mut stream = tongban_testkit::eventually(WAIT, "a Subscribe stream", || {
        let mut c = client.clone();
        let clerk = clerk.clone();
        async move {
            c.subscribe(authed(pb::SubscribeRequest { after_cursor: 0 }, &clerk))
                .await
                .ok()
                .map(|r| r.into_inner())
        }
    })
    .await?;
    // Nothing to read yet: the stream waits.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.message())
            .await
            .is_err()
    );
    service.shutdown().cancel();
    match tokio::time::timeout(Duration::from_secs(5), stream.message()).await? {
        Err(status) => assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}"),
        Ok(None) => {}
        Ok(Some(m)) => anyhow::bail!("a notification instead of the end: {m:?}"),
    }
    tokio::time::timeout(Duration::from_secs(10), stopped).await??;
    // The channel is gone with the server.
    assert!(
        client
            .list_notifications(authed(pb::ListNotificationsRequest::default(), &clerk))
            .await
            .is_err()
    );
    Ok(())
}

tongban_testkit::on_both!(
    subscribe_resumes_without_gaps_or_repeats,
    subscribe_streams_are_capped_per_caller,
    open_subscribe_does_not_hold_up_shutdown,
);
