//! WatchApplication ends: after the application's final state (sent, then the stream ends
//! OK), and when the service shuts down (UNAVAILABLE), so an open watch never holds up the
//! server's graceful shutdown.

use tonic::Streaming;

use crate::common::*;

async fn submit(h: &Harness, token: &str) -> anyhow::Result<String> {
    Ok(h.client
        .clone()
        .submit_application(authed(example()?, token))
        .await?
        .into_inner()
        .application
        .ok_or_else(|| anyhow::anyhow!("none"))?
        .application_id)
}

async fn watch(
    client: &mut pb::intake_service_client::IntakeServiceClient<Channel>,
    id: &str,
    token: &str,
) -> anyhow::Result<Streaming<pb::WatchApplicationResponse>> {
    Ok(client
        .watch_application(authed(
            pb::WatchApplicationRequest {
                application_id: id.into(),
            },
            token,
        ))
        .await?
        .into_inner())
}

fn rejected(id: &str) -> events::Envelope {
    tongban_outbox::new_envelope(
        "approval",
        id,
        Payload::ApplicationRejected(events::ApplicationRejected {
            reason: "选址不符合规划".into(),
            department: "eco_env".into(),
            ..Default::default()
        }),
    )
}

async fn watch_ends_after_the_final_state(backend: Backend) -> anyhow::Result<()> {
    let h = Harness::start(backend).await?;
    let token = h.applicant();
    let id = submit(&h, &token).await?;
    let mut stream = watch(&mut h.client.clone(), &id, &token).await?;
    let first = stream
        .message()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no snapshot"))?;
    assert_eq!(first.event_type, "snapshot");

    h.publish(&[&rejected(&id)]).await?;
    let wait = Duration::from_secs(20);
    let mut last = None;
    while let Some(m) = tokio::time::timeout(wait, stream.message()).await?? {
        last = m.application;
    }
    // The stream ended by itself, OK, and its last message is the final state.
    let last = last.ok_or_else(|| anyhow::anyhow!("no update before the end"))?;
    assert_eq!(last.status(), pb::ApplicationStatus::Rejected);
    assert_eq!(last.status_reason, "选址不符合规划");

    // Watching an application that is final already: the snapshot, then the end.
    let mut again = watch(&mut h.client.clone(), &id, &token).await?;
    let snapshot = tokio::time::timeout(wait, again.message())
        .await??
        .ok_or_else(|| anyhow::anyhow!("no snapshot"))?;
    assert_eq!(
        snapshot.application.map(|a| a.status()),
        Some(pb::ApplicationStatus::Rejected)
    );
    assert!(
        tokio::time::timeout(wait, again.message())
            .await??
            .is_none()
    );
    Ok(())
}

async fn open_watch_does_not_hold_up_shutdown(backend: Backend) -> anyhow::Result<()> {
    let (stopped_tx, stopped) = tokio::sync::oneshot::channel();
    let credit = tongban_credit::CreditSettings::default().build(&tongban_testkit::deploy_dir())?;
    let service = tongban_testkit::start_service(backend, "intake", move |s| {
        let run = tongban_intake::run_with(
            s.ctx,
            credit,
            IntakeLimits::default(),
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
    let token = service.keys.token(Role::Applicant, None, Some(APPLICANT));
    let mut client = pb::intake_service_client::IntakeServiceClient::new(service.channel.clone());
    let mut req = example()?;
    req.request_id = tongban_types::new_id();
    let id = client
        .submit_application(authed(req, &token))
        .await?
        .into_inner()
        .application
        .ok_or_else(|| anyhow::anyhow!("none"))?
        .application_id;
    let mut stream = watch(&mut client, &id, &token).await?;
    stream
        .message()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no snapshot"))?;

    let asked = tokio::time::Instant::now();
    service.shutdown().cancel();
    // The client sees the stream end: UNAVAILABLE, to watch again elsewhere.
    let end = tokio::time::timeout(Duration::from_secs(5), stream.message()).await?;
    match end {
        Err(status) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
        Ok(None) => {}
        Ok(Some(m)) => anyhow::bail!("an update instead of the end: {m:?}"),
    }
    // And the service returns well within the shutdown timeout (30 s).
    tokio::time::timeout(Duration::from_secs(10), stopped).await??;
    assert!(asked.elapsed() < Duration::from_secs(10));
    Ok(())
}

tongban_testkit::on_both!(
    watch_ends_after_the_final_state,
    open_watch_does_not_hold_up_shutdown
);
