//! `tongban demo`: the whole story in one command, against a running `tongban dev` (or one it
//! starts itself with `--spawn`): the applicant submits once, each department's clerk claims and
//! approves as tasks appear, and we wait until intake says APPROVED and every platform has it.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use tongban_auth::Role;
use tongban_proto::{
    approval::{self as ap, TaskStatus},
    intake::{self as pb, ApplicationStatus},
};
use tonic::Code;

use crate::{
    MintArgs,
    applicant::{get_application, platform_total, status_name},
    client::{Conn, GlobalArgs, Svc, status_of},
    mint,
    output::{clock, local, short_enum},
};

/// The stack a scripted run plays against and the application it submits: shared by `demo`
/// and `bench`.
#[derive(clap::Args, Debug)]
pub struct StackArgs {
    /// Start `tongban dev` as a child process (temporary data dir, free ports) and stop it at the end.
    #[arg(long)]
    pub(crate) spawn: bool,
    /// Data directory of the running stack, holding the issuer.key tokens are signed with: a
    /// `tongban dev` data dir (or, for `bench`, the state dir of `tongban local`); ignored
    /// with --spawn.
    #[arg(long, default_value = "data", env = "TONGBAN_DATA_DIR")]
    pub(crate) data_dir: PathBuf,
    /// Deploy directory (matters/, platforms/, examples/), passed to the spawned `tongban dev`.
    #[arg(long, default_value = "deploy", env = "TONGBAN_DEPLOY_DIR")]
    pub(crate) deploy_dir: PathBuf,
    /// Application to submit; default <deploy-dir>/examples/env.eia.report_form.json.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Platforms to wait for; default as many as dispatch lists.
    #[arg(long)]
    pub(crate) platforms: Option<u32>,
}

impl StackArgs {
    /// The application to submit (`--file`, or the example), request id still to be set.
    pub(crate) fn example(&self) -> anyhow::Result<pb::SubmitApplicationRequest> {
        let file = self
            .file
            .clone()
            .unwrap_or_else(|| self.deploy_dir.join("examples/env.eia.report_form.json"));
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        Ok(tongban_proto::json::from_json(
            "tongban.intake.v1.SubmitApplicationRequest",
            &text,
        )?)
    }
}

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Give up (exit 1) after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

/// Kills the spawned `tongban dev` when dropped, whatever happened.
pub(crate) struct DevChild {
    child: Child,
    _dir: tempfile::TempDir,
}

impl DevChild {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for DevChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A base port whose next three ports are free too.
pub(crate) fn free_port_block() -> anyhow::Result<u16> {
    for _ in 0..100 {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        let base = probe.local_addr()?.port();
        drop(probe);
        if base > 65000 {
            continue;
        }
        let all: Result<Vec<_>, _> = (0..4)
            .map(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)))
            .collect();
        if all.is_ok() {
            return Ok(base);
        }
    }
    anyhow::bail!("found no block of 4 free ports")
}

fn say(text: impl AsRef<str>) {
    println!("[{}] {}", clock(), text.as_ref());
}

/// Starts `tongban dev` on free ports; `announce` tells the user where (the bench sends it to
/// stderr, keeping stdout for its JSON).
pub(crate) async fn spawn_dev(
    deploy_dir: &Path,
    announce: impl Fn(String),
) -> anyhow::Result<(DevChild, u16, PathBuf)> {
    let dir = tempfile::Builder::new().prefix("tongban-demo-").tempdir()?;
    let data = dir.path().join("data");
    let base = free_port_block()?;
    let log_path = dir.path().join("dev.log");
    let log = std::fs::File::create(&log_path)?;
    let exe = std::env::current_exe().context("locating the tongban binary")?;
    let child = Command::new(exe)
        .arg("dev")
        .arg("--data-dir")
        .arg(&data)
        .arg("--deploy-dir")
        .arg(deploy_dir)
        .arg("--base-port")
        .arg(base.to_string())
        .arg("--sim-free-ports")
        // The demo's stack must not take the metrics port of a `tongban dev` already running.
        .arg("--metrics-listen")
        .arg("127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .context("starting `tongban dev`")?;
    let mut guard = DevChild { child, _dir: dir };
    announce(format!(
        "started `tongban dev` (pid {}) on ports {base}-{}, data in {}",
        guard.child.id(),
        base + 3,
        data.display()
    ));
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = guard.child.try_wait()? {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(5).collect();
            anyhow::bail!(
                "`tongban dev` exited ({status}): {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            );
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", base))
            .await
            .is_ok()
            && data.join(tongban_auth::keys::JWKS_FILE).exists()
        {
            return Ok((guard, base, data));
        }
        if Instant::now() > until {
            anyhow::bail!("`tongban dev` did not accept connections within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The servers of a `tongban dev` spawned on `base`, with `global`'s output format.
pub(crate) fn spawned_args(base: u16, global: &GlobalArgs) -> GlobalArgs {
    GlobalArgs {
        server: Some(format!("http://127.0.0.1:{base}")),
        approval_server: Some(format!("http://127.0.0.1:{}", base + 1)),
        notification_server: Some(format!("http://127.0.0.1:{}", base + 2)),
        dispatch_server: Some(format!("http://127.0.0.1:{}", base + 3)),
        token: None,
        output: global.output,
    }
}

pub(crate) async fn run(global: &GlobalArgs, args: DemoArgs) -> anyhow::Result<()> {
    let (_child, conn, data_dir) = if args.stack.spawn {
        let (child, base, data) = spawn_dev(&args.stack.deploy_dir, say).await?;
        (
            Some(child),
            Conn::resolve(&spawned_args(base, global))?,
            data,
        )
    } else {
        (None, Conn::resolve(global)?, args.stack.data_dir.clone())
    };
    let mut req = args.stack.example()?;
    req.request_id = format!(
        "demo-{}-{}",
        chrono::Utc::now().timestamp_millis(),
        std::process::id()
    );
    let applicant = req.applicant.clone().unwrap_or_default();
    let token = |role: Role, department: Option<&str>, subject: String| {
        mint(
            &data_dir,
            &MintArgs {
                role,
                subject,
                department: department.map(str::to_string),
                region: (!applicant.region_code.is_empty()).then(|| applicant.region_code.clone()),
                credit_code: (role == Role::Applicant).then(|| applicant.credit_code.clone()),
                hours: 1,
            },
        )
    };
    let applicant_subject = format!("applicant.{}", applicant.credit_code);
    let as_applicant = conn.with_token(token(Role::Applicant, None, applicant_subject.clone())?);
    let as_admin = conn.with_token(token(Role::Admin, None, "demo.admin".into())?);

    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout);
    say(format!(
        "{applicant_subject} ({}) submits {} to intake at {}",
        applicant.name, req.matter_code, conn.intake_url
    ));
    let resp = as_applicant
        .intake()?
        .submit_application(as_applicant.req(req))
        .await
        .map_err(as_applicant.err(Svc::Intake))?
        .into_inner();
    let app = resp.application.unwrap_or_default();
    let id = app.application_id.clone();
    say(format!(
        "intake accepted application {id}: {} (v{})",
        status_name(app.status()),
        app.version
    ));
    // Demo: 4 when dispatch cannot say.
    let total = match args.stack.platforms {
        Some(n) => n,
        None => platform_total(&as_admin)
            .await
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0)
            .unwrap_or(4),
    };

    let mut last_status = app.status();
    let mut last_delivered = 0u32;
    let mut handled: HashSet<String> = HashSet::new();
    loop {
        let app = get_application(&as_applicant, &id).await?;
        if app.status() != last_status {
            last_status = app.status();
            say(format!(
                "intake: application is {} (v{}){}",
                status_name(last_status),
                app.version,
                if app.decision_number.is_empty() {
                    String::new()
                } else {
                    format!(", decision no. {}", app.decision_number)
                }
            ));
        }
        let progress = app.deliveries.clone().unwrap_or_default();
        if progress.succeeded != last_delivered {
            last_delivered = progress.succeeded;
            say(format!(
                "dispatch: {}/{total} platforms delivered ({})",
                progress.succeeded,
                progress.platforms.join(", ")
            ));
        }
        if matches!(
            last_status,
            ApplicationStatus::Rejected | ApplicationStatus::Withdrawn
        ) {
            anyhow::bail!(
                "application {id} ended {}: {}",
                status_name(last_status),
                app.status_reason
            );
        }
        if last_status == ApplicationStatus::Approved && progress.succeeded >= total {
            say(format!(
                "done: approved and delivered to {total}/{total} platforms in {:.1} s",
                started.elapsed().as_secs_f64()
            ));
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "demo did not complete within {} s: application {id} is {}, {}/{total} platforms delivered",
                args.timeout,
                status_name(last_status),
                progress.succeeded
            );
        }
        if !matches!(
            last_status,
            ApplicationStatus::Approved | ApplicationStatus::Closed
        ) {
            work_tasks(&as_admin, &id, &mut handled, &token).await?;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Claims and approves every open task of the application, each as a clerk of its department.
async fn work_tasks(
    as_admin: &Conn,
    id: &str,
    handled: &mut HashSet<String>,
    token: &impl Fn(Role, Option<&str>, String) -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    let tasks = match as_admin
        .approval()?
        .list_tasks(as_admin.req(ap::ListTasksRequest {
            application_id: id.to_string(),
            statuses: vec![TaskStatus::Open as i32, TaskStatus::Claimed as i32],
            page_size: 200,
            ..Default::default()
        }))
        .await
        .map_err(as_admin.err(Svc::Approval))
    {
        Ok(r) => r.into_inner().tasks,
        Err(e) if status_of(&e).map(|s| s.code()) == Some(Code::NotFound) => return Ok(()),
        Err(e) => return Err(e.context("listing tasks (is approval running in `tongban dev`?)")),
    };
    // Follow-ups (the owed land-use certificate) wait for the material, not for a clerk.
    for task in tasks
        .into_iter()
        .filter(|t| t.kind() == ap::TaskKind::Review)
    {
        if handled.contains(&task.task_id) {
            continue;
        }
        let dept = task.department.clone();
        let unit = if task.office.is_empty() {
            dept.clone()
        } else {
            task.office.clone()
        };
        say(format!(
            "approval: task for {unit} in stage \"{}\" ({}), due {}",
            task.stage_name,
            short_enum(task.kind().as_str_name(), "TASK_KIND_").to_lowercase(),
            local(task.due_time.as_ref())
        ));
        let clerk = format!("clerk.{dept}");
        let as_clerk = as_admin.with_token(token(Role::Clerk, Some(&dept), clerk.clone())?);
        let mut client = as_clerk.approval()?;
        let mut version = task.version;
        if task.status() == TaskStatus::Open {
            match client
                .claim_task(as_clerk.req(ap::ClaimTaskRequest {
                    task_id: task.task_id.clone(),
                    expected_version: version,
                }))
                .await
            {
                Ok(r) => {
                    version = r.into_inner().task.map(|t| t.version).unwrap_or(version);
                    say(format!(
                        "{clerk} claimed task {} (v{version})",
                        task.task_id
                    ));
                }
                // Someone else moved it; look again on the next round.
                Err(s) if s.code() == Code::Aborted => continue,
                Err(s) => return Err(as_clerk.err(Svc::Approval)(s)),
            }
        }
        match client
            .decide_task(as_clerk.req(ap::DecideTaskRequest {
                task_id: task.task_id.clone(),
                decision: ap::Decision::Approve as i32,
                comment: "同意（演示）".into(),
                expected_version: version,
                requested_materials: vec![],
                assign_departments: vec![],
            }))
            .await
        {
            Ok(_) => {
                say(format!("{clerk} approved task {}", task.task_id));
                handled.insert(task.task_id);
            }
            Err(s) if s.code() == Code::Aborted => continue,
            Err(s) => return Err(as_clerk.err(Svc::Approval)(s)),
        }
    }
    Ok(())
}
