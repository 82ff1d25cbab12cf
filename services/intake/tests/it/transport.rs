//! What rides on the transport: reflection and health without a token, and the caller's trace continuing into the events.

use crate::common::*;

/// What `grpcurl list` and `grpc_health_probe` do: reflection lists the service and health
/// reports it serving, without a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_and_health_work_without_a_token() -> anyhow::Result<()> {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let h = Harness::start(Backend::Sqlite).await?;
    let channel = Channel::from_shared(format!("http://{}", h.addr))?
        .connect()
        .await?;
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await?
        .into_inner();
    let response = responses
        .message()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no reflection response"))?;
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        anyhow::bail!("unexpected reflection response");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"tongban.intake.v1.IntakeService".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "tongban.intake.v1.IntakeService".into(),
        })
        .await?
        .into_inner();
    assert_eq!(
        status.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    Ok(())
}

/// One application is one trace: the caller's `traceparent` continues into the event intake
/// publishes, so every consumer's span joins the same trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_trace_rides_on_the_event() -> anyhow::Result<()> {
    let _telemetry = tongban_telemetry::init("intake-test");
    let mut h = Harness::start(Backend::Sqlite).await?;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut req = authed(example()?, &h.applicant());
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01").parse()?,
    );
    h.client.submit_application(req).await?;
    let b = h.db.get_database_backend();
    let row =
        h.db.query_one_raw(sea_orm::Statement::from_string(
            b,
            "SELECT traceparent FROM outbox".to_string(),
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no event"))?;
    let traceparent: Option<String> = row.try_get("", "traceparent")?;
    let traceparent = traceparent.unwrap_or_default();
    assert!(
        traceparent.starts_with(&format!("00-{trace_id}-")),
        "event traceparent {traceparent:?}"
    );
    Ok(())
}
