//! `tongban local`: the production topology with two replicas of every service, started,
//! used for one application from submission to all four platforms, inspected and stopped.

use std::time::Duration;

use tongban_auth::Role;
use tongban_e2e::{LocalStack, running};
use tongban_proto::{
    approval::{self as apb, approval_service_client::ApprovalServiceClient},
    intake::{self as pb, intake_service_client::IntakeServiceClient},
};
use tongban_testkit::{authed, eventually};

const APPLICANT: &str = "91350100M000100Y43";

/// Submits the example application through `intake`, approves every review task through the
/// approval replicas in turn, and returns the application once approved and delivered to all
/// four platforms.
pub async fn one_application_end_to_end(
    stack: &LocalStack,
    intake_url: &str,
    approval_urls: &[String],
) -> anyhow::Result<pb::Application> {
    let mut intake = IntakeServiceClient::connect(intake_url.to_string()).await?;
    let mut approvals = Vec::new();
    for url in approval_urls {
        approvals.push(ApprovalServiceClient::connect(url.clone()).await?);
    }
    let applicant = stack.keys.token(Role::Applicant, None, Some(APPLICANT));
    let admin = stack.keys.token(Role::Admin, None, None);
    let text = tongban_testkit::example_request_json()?;
    let req: pb::SubmitApplicationRequest =
        tongban_proto::json::from_json("tongban.intake.v1.SubmitApplicationRequest", &text)?;
    let id = intake
        .submit_application(authed(req, &applicant))
        .await?
        .into_inner()
        .application
        .map(|a| a.application_id)
        .unwrap_or_default();
    anyhow::ensure!(!id.is_empty(), "no application id");

    let mut decided = 0;
    for round in 0..10 {
        let approval = approvals[round % approvals.len()].clone();
        let open = eventually(Duration::from_secs(30), "open tasks or APPROVED", || {
            let (mut a, mut i, id, admin, applicant) = (
                approval.clone(),
                intake.clone(),
                id.clone(),
                admin.clone(),
                applicant.clone(),
            );
            async move {
                let tasks: Vec<apb::Task> = a
                    .list_tasks(authed(
                        apb::ListTasksRequest {
                            application_id: id.clone(),
                            ..Default::default()
                        },
                        &admin,
                    ))
                    .await
                    .ok()?
                    .into_inner()
                    .tasks
                    .into_iter()
                    .filter(|t| t.kind() == apb::TaskKind::Review)
                    .collect();
                if !tasks.is_empty() {
                    return Some(tasks);
                }
                let status = i
                    .get_application(authed(
                        pb::GetApplicationRequest { application_id: id },
                        &applicant,
                    ))
                    .await
                    .ok()?
                    .into_inner()
                    .application?
                    .status();
                (status == pb::ApplicationStatus::Approved).then(Vec::new)
            }
        })
        .await?;
        if open.is_empty() {
            break;
        }
        for t in open {
            let clerk = stack.keys.token(Role::Clerk, Some(&t.department), None);
            approval
                .clone()
                .decide_task(authed(
                    apb::DecideTaskRequest {
                        task_id: t.task_id.clone(),
                        decision: apb::Decision::Approve as i32,
                        comment: "同意".into(),
                        expected_version: t.version,
                        requested_materials: vec![],
                    },
                    &clerk,
                ))
                .await?;
            decided += 1;
        }
    }
    anyhow::ensure!(
        decided == 5,
        "acceptance, three joint reviews and the decision: {decided} decided"
    );
    eventually(Duration::from_secs(60), "4/4 platforms delivered", || {
        let (mut i, id, applicant) = (intake.clone(), id.clone(), applicant.clone());
        async move {
            let a = i
                .get_application(authed(
                    pb::GetApplicationRequest { application_id: id },
                    &applicant,
                ))
                .await
                .ok()?
                .into_inner()
                .application?;
            (a.status() == pb::ApplicationStatus::Approved
                && a.deliveries.as_ref().is_some_and(|d| d.succeeded == 4))
            .then_some(a)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_up_serves_two_replicas_end_to_end_and_down_stops_everything() -> anyhow::Result<()> {
    let mut stack = LocalStack::up(2)?;
    let intakes = stack.grpc("intake");
    let approvals = stack.grpc("approval");
    assert_eq!(intakes.len(), 2, "{}", stack.state);
    assert_eq!(approvals.len(), 2, "{}", stack.state);
    assert_eq!(stack.grpc("dispatch").len(), 2, "{}", stack.state);
    assert_eq!(stack.grpc("notification").len(), 2, "{}", stack.state);
    // Four services x two replicas, and the simulators.
    let pids = stack.pids();
    assert_eq!(pids.len(), 9, "{}", stack.state);
    assert!(pids.iter().all(|p| running(*p)), "{}", stack.state);

    // Submitted on the second intake replica, decided on both approval replicas.
    let app = one_application_end_to_end(&stack, &intakes[1], &approvals).await?;
    assert!(
        app.decision_number.starts_with("松环审"),
        "{}",
        app.decision_number
    );

    // `status`: every process alive and SERVING.
    let state_dir = stack.state_dir();
    let run = stack.tongban(&["local", "status", "--state-dir", &state_dir])?;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout.lines().filter(|l| l.contains("SERVING")).count(),
        9,
        "{run:?}"
    );
    let run = stack.tongban(&[
        "local",
        "status",
        "--state-dir",
        &state_dir,
        "--output",
        "json",
    ])?;
    let v: serde_json::Value = serde_json::from_str(&run.stdout)?;
    let procs = v["processes"].as_array().cloned().unwrap_or_default();
    assert!(
        procs
            .iter()
            .all(|p| p["alive"] == true && p["health"] == "SERVING"),
        "{v}"
    );

    // `tongban health` finds the four services of replica 2 from its intake URL alone.
    let run = stack.tongban(&["health", "--server", &intakes[1]])?;
    assert_eq!(run.code, 0, "{run:?}");

    // A second `up` on the same state dir refuses while the stack runs.
    let run = stack.tongban(&["local", "up", "--free-ports", "--state-dir", &state_dir])?;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("already running"), "{run:?}");

    // One replica dies: status says so and exits 4.
    let victim = procs
        .iter()
        .find(|p| p["name"] == "dispatch-2")
        .and_then(|p| p["pid"].as_i64())
        .ok_or_else(|| anyhow::anyhow!("no dispatch-2: {v}"))?;
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .status()?;
    assert!(killed.success());
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while running(i32::try_from(victim)?) && std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let run = stack.tongban(&["local", "status", "--state-dir", &state_dir])?;
    assert_eq!(run.code, 4, "{run:?}");
    assert!(run.stderr.contains("dispatch-2"), "{run:?}");

    // `down` stops everything and forgets the stack.
    let run = stack.down()?;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("Stopped 8 process(es)."), "{run:?}");
    let left: Vec<i32> = pids.iter().copied().filter(|p| running(*p)).collect();
    assert!(left.is_empty(), "still running after down: {left:?}");
    let run = stack.tongban(&["local", "status", "--state-dir", &state_dir])?;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("no local stack"), "{run:?}");
    Ok(())
}
