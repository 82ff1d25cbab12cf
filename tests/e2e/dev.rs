//! `tongban dev` keeps production's promise: `kill -9` it mid-flow, start it again, and every
//! accepted application and every event is still there and still gets processed.

use std::{process::Command, time::Duration};

use tongban_auth::Role;
use tongban_e2e::{Proc, binary, free_port_block, wait_for_grpc};
use tongban_proto::intake::{self as pb, intake_service_client::IntakeServiceClient};
use tongban_testkit::{authed, eventually};

fn start_dev(
    data: &std::path::Path,
    base_port: u16,
    logs: &std::path::Path,
    name: &str,
) -> anyhow::Result<Proc> {
    let mut cmd = Command::new(binary("tongban")?);
    cmd.arg("dev")
        .arg("--data-dir")
        .arg(data)
        .arg("--deploy-dir")
        .arg(tongban_testkit::deploy_dir())
        .arg("--base-port")
        .arg(base_port.to_string())
        .arg("--sim-free-ports")
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{}", base_port + 4));
    Proc::spawn(name, cmd, logs)
}

fn token(data: &std::path::Path, role: Role, credit_code: Option<&str>) -> anyhow::Result<String> {
    let key = tongban_auth::SigningKey::load(&data.join(tongban_auth::keys::ISSUER_KEY_FILE))?;
    Ok(
        tongban_auth::Issuer::new(key).issue(&tongban_auth::TokenRequest {
            subject: "e2e".into(),
            role,
            department: None,
            region: None,
            credit_code: credit_code.map(Into::into),
            ttl: chrono::Duration::hours(1),
        })?,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_loses_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let base = free_port_block(5)?;
    let mut dev = start_dev(&data, base, dir.path(), "dev-1")?;
    wait_for_grpc(base, &mut [&mut dev], Duration::from_secs(60)).await?;

    let applicant = token(&data, Role::Applicant, Some("91350100M000100Y43"))?;
    let text = tongban_testkit::example_request_json()?;
    let req: pb::SubmitApplicationRequest =
        tongban_proto::json::from_json("tongban.intake.v1.SubmitApplicationRequest", &text)?;
    let mut client = IntakeServiceClient::connect(format!("http://127.0.0.1:{base}")).await?;
    let app = client
        .submit_application(authed(req.clone(), &applicant))
        .await?
        .into_inner();
    let id = app
        .application
        .map(|a| a.application_id)
        .unwrap_or_default();
    // Crash right after the accept: the event may or may not have left the outbox yet.
    dev.kill();

    let mut dev = start_dev(&data, base, dir.path(), "dev-2")?;
    wait_for_grpc(base, &mut [&mut dev], Duration::from_secs(60)).await?;
    let mut client = IntakeServiceClient::connect(format!("http://127.0.0.1:{base}")).await?;
    let got = client
        .get_application(authed(
            pb::GetApplicationRequest {
                application_id: id.clone(),
            },
            &applicant,
        ))
        .await?
        .into_inner()
        .application
        .unwrap_or_default();
    assert_eq!(
        got.application_id, id,
        "the accepted application survived kill -9"
    );
    let again = client
        .submit_application(authed(req, &applicant))
        .await?
        .into_inner();
    assert!(
        !again.created,
        "the retry after the crash is recognised, not a second application"
    );

    // The event it caused gets processed after the restart: the application moves on.
    let status = eventually(
        Duration::from_secs(30),
        "the workflow to pick the application up",
        || {
            let mut client = client.clone();
            let (id, applicant) = (id.clone(), applicant.clone());
            async move {
                let a = client
                    .get_application(authed(
                        pb::GetApplicationRequest { application_id: id },
                        &applicant,
                    ))
                    .await
                    .ok()?
                    .into_inner()
                    .application?;
                (a.status() != pb::ApplicationStatus::Submitted).then_some(a.status())
            }
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", dev.tail()))?;
    assert_eq!(status, pb::ApplicationStatus::InReview);
    Ok(())
}
