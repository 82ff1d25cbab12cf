//! Approval over real gRPC (see `common` for the harness). Dead letters through the admin API
//! every service serves (`tongban.ops.v1.DeadLetterService`): a submission for a matter
//! approval does not know is refused and dead-lettered, listed and shown; once the matter's
//! definition is published, replaying it starts the workflow. Garbage is discarded. Only
//! admins may; refusals, replays and discards are on approval's audit chain.

use tongban_proto::ops::{self, dead_letter_service_client::DeadLetterServiceClient};

use crate::common::*;

/// The field named by an INVALID_ARGUMENT's BadRequest details.
fn bad_field(status: &tonic::Status) -> String {
    status
        .get_details_bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default()
}

async fn poison_is_listed_replayed_once_acceptable_and_discarded(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut h = Harness::start(backend).await?;
    let mut dlq = DeadLetterServiceClient::new(h.service.channel.clone());
    let admin = h.admin();

    // Refused by the consumer (unknown matter): dead-lettered at once.
    let mut snap = snapshot()?;
    snap.matter_code = "env.dlq_probe".into();
    let app = h.submit(snap).await?;
    // Not an envelope at all.
    let garbage_id = tongban_types::new_id();
    h.bus
        .publish_batch(&[tongban_bus::OutgoingMessage {
            event_id: garbage_id.clone(),
            routing_key: "application.submitted".into(),
            payload: b"not an envelope".to_vec(),
            traceparent: None,
        }])
        .await?;

    let listed = eventually(WAIT, "two dead letters", || {
        let (mut dlq, admin) = (dlq.clone(), admin.clone());
        async move {
            let r = dlq
                .list_dead_letters(authed(ops::ListDeadLettersRequest::default(), &admin))
                .await
                .ok()?
                .into_inner();
            (r.depth == 2 && r.dead_letters.len() == 2).then_some(r)
        }
    })
    .await?;
    assert_eq!(listed.queue, "approval");
    let submitted = listed
        .dead_letters
        .iter()
        .find(|d| d.application_id == app)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("submission not listed: {listed:?}"))?;
    assert_eq!(submitted.event_type, "application.submitted");
    assert_eq!(submitted.reason, "rejected");
    assert!(submitted.dead_letter_time.is_some() && submitted.payload_size > 0);
    let garbage = listed
        .dead_letters
        .iter()
        .find(|d| d.event_id == garbage_id)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("garbage not listed: {listed:?}"))?;
    assert_eq!(garbage.application_id, "");
    assert_eq!(garbage.payload_size, 15);

    // Show: decoded when it decodes, the bytes either way.
    let shown = dlq
        .get_dead_letter(authed(
            ops::GetDeadLetterRequest {
                queue: String::new(),
                event_id: submitted.event_id.clone(),
            },
            &admin,
        ))
        .await?
        .into_inner();
    assert_eq!(shown.envelope.map(|e| e.application_id), Some(app.clone()));
    let shown = dlq
        .get_dead_letter(authed(
            ops::GetDeadLetterRequest {
                queue: "approval".into(),
                event_id: garbage_id.clone(),
            },
            &admin,
        ))
        .await?
        .into_inner();
    assert!(shown.envelope.is_none() && !shown.decode_error.is_empty());
    assert_eq!(shown.payload, b"not an envelope");

    // Admins only; each refusal is recorded.
    let clerk = h.clerk("eco_env");
    let e = dlq
        .list_dead_letters(authed(ops::ListDeadLettersRequest::default(), &clerk))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a clerk listed dead letters"))?;
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = dlq
        .replay_dead_letters(authed(
            ops::ReplayDeadLettersRequest {
                all: true,
                ..Default::default()
            },
            &h.keys.token(Role::Supervisor, Some("eco_env"), None),
        ))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a supervisor replayed dead letters"))?;
    assert_eq!(e.code(), Code::PermissionDenied);
    let refusals = tongban_testkit::refusals_recorded(&h.db, "approval", 2).await?;
    assert_eq!(
        refusals
            .iter()
            .map(|r| r.action.as_str())
            .collect::<Vec<_>>(),
        ["ListDeadLetters", "ReplayBusDeadLetters"]
    );

    // Bad requests name the field; nothing is touched.
    let e = dlq
        .replay_dead_letters(authed(ops::ReplayDeadLettersRequest::default(), &admin))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("an empty selection was accepted"))?;
    assert_eq!(
        (e.code(), bad_field(&e)),
        (Code::InvalidArgument, "event_ids".into())
    );
    let e = dlq
        .replay_dead_letters(authed(
            ops::ReplayDeadLettersRequest {
                event_ids: vec![submitted.event_id.clone(), "no-such-event".into()],
                ..Default::default()
            },
            &admin,
        ))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("an unknown id was accepted"))?;
    assert_eq!(e.code(), Code::NotFound);
    assert!(
        e.message().contains("event_ids") && e.message().contains("no-such-event"),
        "{}",
        e.message()
    );
    let e = dlq
        .get_dead_letter(authed(
            ops::GetDeadLetterRequest {
                queue: "dispatch".into(),
                event_id: garbage_id.clone(),
            },
            &admin,
        ))
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("another service's queue was accepted"))?;
    assert!(e.code() == Code::NotFound && e.message().starts_with("queue"));

    // Make the submission acceptable, then replay it: the workflow starts.
    let v1 = std::fs::read_to_string(
        tongban_testkit::deploy_dir().join("matters/env.eia.report_form.v1.toml"),
    )?;
    h.client
        .publish_definition(authed(
            publish(
                &v1.replace("code = \"env.eia.report_form\"", "code = \"env.dlq_probe\""),
                "",
            ),
            &admin,
        ))
        .await?;
    let replayed = dlq
        .replay_dead_letters(authed(
            ops::ReplayDeadLettersRequest {
                event_ids: vec![submitted.event_id.clone()],
                reason: "definition published".into(),
                ..Default::default()
            },
            &admin,
        ))
        .await?
        .into_inner();
    assert_eq!(replayed.event_ids, vec![submitted.event_id.clone()]);
    h.stage(&app, "acceptance", 1).await?;

    // The garbage goes for good.
    let discarded = dlq
        .discard_dead_letters(authed(
            ops::DiscardDeadLettersRequest {
                all: true,
                ..Default::default()
            },
            &admin,
        ))
        .await?
        .into_inner();
    assert_eq!(discarded.event_ids, vec![garbage_id.clone()]);
    let after = dlq
        .list_dead_letters(authed(ops::ListDeadLettersRequest::default(), &admin))
        .await?
        .into_inner();
    assert_eq!((after.depth, after.dead_letters.len()), (0, 0));

    // Both on approval's own chain, naming the events and who did it.
    let chain = tongban_audit::entries(&h.db, &tongban_audit::service_chain("approval")).await?;
    let done: Vec<_> = chain
        .iter()
        .filter(|e| e.outcome == "done" && e.action.ends_with("_dead_letters"))
        .map(|e| (e.action.as_str(), e.target.as_str(), e.actor.role.as_str()))
        .collect();
    assert_eq!(
        done,
        [
            ("replay_dead_letters", submitted.event_id.as_str(), "admin"),
            ("discard_dead_letters", garbage_id.as_str(), "admin"),
        ]
    );
    assert!(
        chain
            .iter()
            .any(|e| e.reason == "queue approval: definition published"),
        "{chain:#?}"
    );
    let report = tongban_audit::verify::verify(&h.db, &[], &[], None).await?;
    assert!(report.is_clean(), "{report:?}");
    Ok(())
}

tongban_testkit::on_both!(poison_is_listed_replayed_once_acceptable_and_discarded);
