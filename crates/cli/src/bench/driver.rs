//! The load: applicants submitting the example (fresh request ids) at a fixed concurrency or
//! a fixed offered rate, clerks who claim and approve every review task as it appears, and a
//! watcher that asks intake how far each application got. Times are kept per application.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
pub(crate) use signal::Stop;
use tongban_auth::Role;
use tongban_proto::{
    approval::{self as ap, approval_service_client::ApprovalServiceClient},
    intake::{self as pb, ApplicationStatus, intake_service_client::IntakeServiceClient},
};
use tonic::{Code, transport::Channel};

use super::report::{Offered, due_after};
use crate::{MintArgs, client::Conn, output::to_utc};

/// A stop signal every loop of the run watches.
mod signal {
    use tokio::sync::watch;

    /// Cloneable; `stop()` once ends every waiter.
    #[derive(Clone)]
    pub(crate) struct Stop(watch::Sender<bool>, watch::Receiver<bool>);

    impl Stop {
        pub(crate) fn new() -> Self {
            let (tx, rx) = watch::channel(false);
            Self(tx, rx)
        }
        pub(crate) fn stop(&self) {
            let _ = self.0.send(true);
        }
        pub(crate) fn stopped(&self) -> bool {
            *self.1.borrow()
        }
        /// Sleeps `d`, or less when stopped meanwhile.
        pub(crate) async fn sleep(&self, d: std::time::Duration) {
            let mut rx = self.1.clone();
            let _ = tokio::time::timeout(d, rx.wait_for(|s| *s)).await;
        }
    }
}

/// Applicant subjects the submissions are spread over: intake limits submissions per
/// subject (600 a minute by default), which a load test must not measure.
const APPLICANT_SUBJECTS: usize = 64;
/// How often the clerks look at the open tasks when there were none.
const CLERK_IDLE: Duration = Duration::from_millis(50);
/// How often an application whose clerks are done is asked about, and any other one.
const POLL_READY: Duration = Duration::from_millis(100);
const POLL_OTHER: Duration = Duration::from_secs(2);
/// How often `--in-flight` looks whether an application finished.
const IN_FLIGHT_CHECK: Duration = Duration::from_millis(5);
const RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// What the bench learnt of one application. The clerks may see its tasks before intake's
/// answer to the submission arrives, so a track starts with whichever comes first.
#[derive(Debug, Default, Clone)]
pub(crate) struct Track {
    /// Whether this run submitted it (the clerks also approve tasks of other applications).
    pub submitted: bool,
    /// SubmitApplication round trip as the bench timed it, in ms.
    pub submit_ms: f64,
    /// Intake's create_time.
    pub created: Option<DateTime<Utc>>,
    /// The earliest create_time of its tasks.
    pub first_task: Option<DateTime<Utc>>,
    /// The latest decide_time of its tasks.
    pub last_decided: Option<DateTime<Utc>>,
    /// When the last platform's delivery was reported (dispatch's update_time).
    pub delivered: Option<DateTime<Utc>>,
    pub failed: Option<String>,
    decided_any: bool,
    last_poll: Option<Instant>,
}

impl Track {
    pub(crate) fn done(&self) -> bool {
        self.delivered.is_some() || self.failed.is_some()
    }
}

/// The run's shared state.
#[derive(Default)]
pub(crate) struct Board {
    pub apps: HashMap<String, Track>,
    /// Submissions intake refused (request id → error).
    pub refused: Vec<String>,
    /// Applications with an open review task in the clerks' latest list.
    open: HashSet<String>,
    pub first_submit: Option<DateTime<Utc>>,
}

/// Signs a token for (role, department, subject).
type Mint = Box<dyn Fn(Role, Option<&str>, String) -> anyhow::Result<String> + Send + Sync>;

/// Tokens for everyone the bench plays, signed with the stack's issuer key.
pub(crate) struct People {
    applicants: Vec<String>,
    admin: String,
    clerks: Mutex<HashMap<String, String>>,
    mint: Mint,
}

impl People {
    pub(crate) fn new(
        data_dir: &std::path::Path,
        example: &pb::SubmitApplicationRequest,
        hours: i64,
    ) -> anyhow::Result<Self> {
        let applicant = example.applicant.clone().unwrap_or_default();
        let data_dir = data_dir.to_path_buf();
        let mint = move |role: Role, department: Option<&str>, subject: String| {
            crate::mint(
                &data_dir,
                &MintArgs {
                    role,
                    subject,
                    department: department.map(str::to_string),
                    region: (!applicant.region_code.is_empty())
                        .then(|| applicant.region_code.clone()),
                    credit_code: (role == Role::Applicant).then(|| applicant.credit_code.clone()),
                    hours,
                },
            )
        };
        let credit = example
            .applicant
            .as_ref()
            .map(|a| a.credit_code.clone())
            .unwrap_or_default();
        let applicants = (0..APPLICANT_SUBJECTS)
            .map(|k| {
                mint(
                    Role::Applicant,
                    None,
                    format!("applicant.{credit}.bench{k}"),
                )
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            applicants,
            admin: mint(Role::Admin, None, "bench.admin".into())?,
            clerks: Mutex::default(),
            mint: Box::new(mint),
        })
    }

    pub(crate) fn admin(&self) -> &str {
        &self.admin
    }

    fn clerk(&self, department: &str) -> anyhow::Result<String> {
        let mut clerks = self
            .clerks
            .lock()
            .map_err(|_| anyhow::anyhow!("clerk tokens: lock poisoned"))?;
        if let Some(t) = clerks.get(department) {
            return Ok(t.clone());
        }
        let t = (self.mint)(
            Role::Clerk,
            Some(department),
            format!("clerk.{department}.bench"),
        )?;
        clerks.insert(department.to_string(), t.clone());
        Ok(t)
    }
}

fn authed<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.set_timeout(RPC_TIMEOUT);
    if let Ok(v) = format!("Bearer {token}").parse() {
        req.metadata_mut().insert("authorization", v);
    }
    req
}

/// One run's clients, people and state.
#[derive(Clone)]
pub(crate) struct Driver {
    intake: IntakeServiceClient<Channel>,
    approval: ApprovalServiceClient<Channel>,
    people: Arc<People>,
    example: Arc<pb::SubmitApplicationRequest>,
    run_id: String,
    pub board: Arc<Mutex<Board>>,
    platforms: u32,
}

impl Driver {
    pub(crate) fn new(
        conn: &Conn,
        people: People,
        example: pb::SubmitApplicationRequest,
        platforms: u32,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            // One HTTP/2 connection per service carries every concurrent call.
            intake: conn.intake()?,
            approval: conn.approval()?,
            people: Arc::new(people),
            example: Arc::new(example),
            run_id: format!(
                "bench-{}-{}",
                Utc::now().timestamp_millis(),
                std::process::id()
            ),
            board: Arc::default(),
            platforms,
        })
    }

    fn board(&self) -> anyhow::Result<std::sync::MutexGuard<'_, Board>> {
        self.board
            .lock()
            .map_err(|_| anyhow::anyhow!("bench state: lock poisoned"))
    }

    /// Submits application `i` and records it.
    async fn submit(&self, i: usize) -> anyhow::Result<()> {
        let mut req = (*self.example).clone();
        req.request_id = format!("{}-{i}", self.run_id);
        let token = &self.people.applicants[i % self.people.applicants.len()];
        let sent = Utc::now();
        let started = Instant::now();
        let answer = self
            .intake
            .clone()
            .submit_application(authed(req, token))
            .await;
        let took = started.elapsed().as_secs_f64() * 1000.0;
        let mut board = self.board()?;
        board.first_submit = Some(board.first_submit.map_or(sent, |f| f.min(sent)));
        match answer {
            Ok(r) => {
                let app = r.into_inner().application.unwrap_or_default();
                anyhow::ensure!(
                    !app.application_id.is_empty(),
                    "intake answered application {i} without an application id"
                );
                let track = board.apps.entry(app.application_id).or_default();
                track.submitted = true;
                track.submit_ms = took;
                track.created = to_utc(app.create_time.as_ref());
            }
            Err(s) => board
                .refused
                .push(format!("{}: {:?} {}", i, s.code(), s.message())),
        }
        Ok(())
    }

    /// How many of this run's submissions are over: delivered, failed, or refused by intake.
    fn finished(&self) -> anyhow::Result<usize> {
        let board = self.board()?;
        Ok(board
            .apps
            .values()
            .filter(|t| t.submitted && t.done())
            .count()
            + board.refused.len())
    }

    /// Submits `n` applications as `offered` says.
    pub(crate) async fn submit_all(&self, n: usize, offered: Offered) -> anyhow::Result<()> {
        match offered {
            Offered::Concurrency(c) => {
                let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..n)
                    .map(|i| self.submit(i))
                    .buffer_unordered(c.max(1))
                    .collect()
                    .await;
                results.into_iter().collect()
            }
            Offered::InFlight(k) => {
                let k = k.max(1);
                let mut set = tokio::task::JoinSet::new();
                for i in 0..n {
                    // Started minus finished (delivered, failed or refused) is what is in flight.
                    while i.saturating_sub(self.finished()?) >= k {
                        tokio::time::sleep(IN_FLIGHT_CHECK).await;
                    }
                    let me = self.clone();
                    set.spawn(async move { me.submit(i).await });
                    // Reap finished submissions so that a failed one stops the run early.
                    while let Some(r) = set.try_join_next() {
                        r.context("a submission task failed")??;
                    }
                }
                while let Some(r) = set.join_next().await {
                    r.context("a submission task failed")??;
                }
                Ok(())
            }
            Offered::Rate(rate) => {
                // Open loop: each submission starts on time, however long earlier ones take.
                let start = tokio::time::Instant::now();
                let mut set = tokio::task::JoinSet::new();
                for i in 0..n {
                    tokio::time::sleep_until(start + due_after(i, rate)).await;
                    let me = self.clone();
                    set.spawn(async move { me.submit(i).await });
                }
                while let Some(r) = set.join_next().await {
                    r.context("a submission task failed")??;
                }
                Ok(())
            }
        }
    }

    /// Every open review task, all pages: each application also holds an open follow-up task
    /// (an owed material, due weeks ahead), and a first page can be all follow-ups.
    async fn open_review_tasks(&self, admin: &str) -> Result<Vec<ap::Task>, tonic::Status> {
        let mut tasks = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .approval
                .clone()
                .list_tasks(authed(
                    ap::ListTasksRequest {
                        statuses: vec![ap::TaskStatus::Open as i32],
                        kinds: vec![ap::TaskKind::Review as i32],
                        page_size: 200,
                        page_token,
                        ..Default::default()
                    },
                    admin,
                ))
                .await?
                .into_inner();
            // Follow-ups wait for material, not for a clerk.
            tasks.extend(
                page.tasks
                    .into_iter()
                    .filter(|t| t.kind() == ap::TaskKind::Review),
            );
            if page.next_page_token.is_empty() {
                return Ok(tasks);
            }
            page_token = page.next_page_token;
        }
    }

    /// Plays the clerks until `stop`: lists the open review tasks, claims and approves each.
    pub(crate) async fn clerks(&self, stop: Stop) -> anyhow::Result<()> {
        let admin = self.people.admin().to_string();
        while !stop.stopped() {
            let tasks: Vec<ap::Task> = match self.open_review_tasks(&admin).await {
                Ok(tasks) => tasks,
                Err(s) if transient(s.code()) => Vec::new(),
                Err(s) => anyhow::bail!("listing tasks: {:?} {}", s.code(), s.message()),
            };
            {
                let mut board = self.board()?;
                board.open = tasks.iter().map(|t| t.application_id.clone()).collect();
                for t in &tasks {
                    if let Some(at) = to_utc(t.create_time.as_ref()) {
                        let track = board.apps.entry(t.application_id.clone()).or_default();
                        track.first_task = Some(track.first_task.map_or(at, |f| f.min(at)));
                    }
                }
            }
            if tasks.is_empty() {
                stop.sleep(CLERK_IDLE).await;
                continue;
            }
            let outcomes: Vec<anyhow::Result<()>> = futures::stream::iter(tasks)
                .map(|t| self.approve(t))
                .buffer_unordered(8)
                .collect()
                .await;
            outcomes.into_iter().collect::<anyhow::Result<()>>()?;
        }
        Ok(())
    }

    /// Claims and approves one task as a clerk of its department.
    async fn approve(&self, t: ap::Task) -> anyhow::Result<()> {
        let clerk = self.people.clerk(&t.department)?;
        let mut client = self.approval.clone();
        let claimed = client
            .claim_task(authed(
                ap::ClaimTaskRequest {
                    task_id: t.task_id.clone(),
                    expected_version: t.version,
                },
                &clerk,
            ))
            .await;
        let version = match claimed {
            Ok(r) => r.into_inner().task.map_or(t.version, |t| t.version),
            // Taken or changed since listed (e.g. the application was withdrawn), or a busy
            // server: the next list shows the task again if it is still open.
            Err(s) if lost_race(s.code()) || transient(s.code()) => return Ok(()),
            Err(s) => anyhow::bail!(
                "claiming task {}: {:?} {}",
                t.task_id,
                s.code(),
                s.message()
            ),
        };
        let decided = client
            .decide_task(authed(
                ap::DecideTaskRequest {
                    task_id: t.task_id.clone(),
                    decision: ap::Decision::Approve as i32,
                    comment: "同意（压测）".into(),
                    expected_version: version,
                    requested_materials: vec![],
                    assign_departments: vec![],
                },
                &clerk,
            ))
            .await;
        match decided {
            Ok(r) => {
                let at = r
                    .into_inner()
                    .task
                    .and_then(|t| to_utc(t.decide_time.as_ref()));
                let mut board = self.board()?;
                let track = board.apps.entry(t.application_id.clone()).or_default();
                track.decided_any = true;
                if let Some(at) = at {
                    track.last_decided = Some(track.last_decided.map_or(at, |l| l.max(at)));
                }
                Ok(())
            }
            Err(s) if lost_race(s.code()) || transient(s.code()) => Ok(()),
            Err(s) => anyhow::bail!(
                "deciding task {}: {:?} {}",
                t.task_id,
                s.code(),
                s.message()
            ),
        }
    }

    /// Asks intake about the applications that may have finished until every one has (or
    /// `stop`): those whose clerks are done often, the others now and then.
    pub(crate) async fn watch(&self, stop: Stop) -> anyhow::Result<()> {
        let admin = self.people.admin().to_string();
        while !stop.stopped() {
            let now = Instant::now();
            let due: Vec<String> = {
                let mut board = self.board()?;
                let open = std::mem::take(&mut board.open);
                let due = board
                    .apps
                    .iter_mut()
                    .filter(|(_, t)| t.submitted && !t.done())
                    .filter(|(id, t)| {
                        let every = if t.decided_any && !open.contains(*id) {
                            POLL_READY
                        } else {
                            POLL_OTHER
                        };
                        t.last_poll.is_none_or(|p| now.duration_since(p) >= every)
                    })
                    .map(|(id, t)| {
                        t.last_poll = Some(now);
                        id.clone()
                    })
                    .collect();
                board.open = open;
                due
            };
            let seen: Vec<(String, Result<pb::Application, tonic::Status>)> =
                futures::stream::iter(due)
                    .map(|id| {
                        let mut client = self.intake.clone();
                        let admin = admin.clone();
                        async move {
                            let got = client
                                .get_application(authed(
                                    pb::GetApplicationRequest {
                                        application_id: id.clone(),
                                    },
                                    &admin,
                                ))
                                .await
                                .map(|r| r.into_inner().application.unwrap_or_default());
                            (id, got)
                        }
                    })
                    .buffer_unordered(8)
                    .collect()
                    .await;
            {
                let mut board = self.board()?;
                for (id, got) in seen {
                    let Some(track) = board.apps.get_mut(&id) else {
                        continue;
                    };
                    match got {
                        Ok(app) => self.note(track, &app),
                        // Asked again on the next round.
                        Err(s) if transient(s.code()) => {}
                        Err(s) => {
                            track.failed = Some(format!("{:?} {}", s.code(), s.message()));
                        }
                    }
                }
            }
            stop.sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Records how far `app` got.
    fn note(&self, track: &mut Track, app: &pb::Application) {
        let progress = app.deliveries.clone().unwrap_or_default();
        match app.status() {
            ApplicationStatus::Approved if progress.succeeded >= self.platforms => {
                let last = progress
                    .per_platform
                    .iter()
                    .filter_map(|p| to_utc(p.update_time.as_ref()))
                    .max();
                track.delivered = Some(last.unwrap_or_else(Utc::now));
            }
            ApplicationStatus::Approved if progress.dead_lettered > 0 => {
                track.failed = Some(format!(
                    "{} deliveries dead-lettered",
                    progress.dead_lettered
                ));
            }
            ApplicationStatus::Rejected
            | ApplicationStatus::Withdrawn
            | ApplicationStatus::Closed
            | ApplicationStatus::Revoked => {
                track.failed = Some(format!(
                    "ended {}: {}",
                    app.status().as_str_name(),
                    app.status_reason
                ));
            }
            _ => {}
        }
    }

    /// Whether every submitted application is done (delivered or failed) and `n` were tried.
    pub(crate) fn all_done(&self, n: usize) -> anyhow::Result<bool> {
        let board = self.board()?;
        let mine = board.apps.values().filter(|t| t.submitted);
        let (count, done) = mine.fold((0, true), |(c, d), t| (c + 1, d && t.done()));
        Ok(count + board.refused.len() >= n && done)
    }
}

/// The answers that mean another clerk (or the applicant) moved the task first.
fn lost_race(code: Code) -> bool {
    matches!(
        code,
        Code::Aborted | Code::FailedPrecondition | Code::NotFound
    )
}

/// The answers of a busy or restarting server, worth asking again.
fn transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Cancelled
            | Code::Unknown
            | Code::Internal
    )
}

/// Milliseconds from `a` to `b`, when both are known.
pub(crate) fn between(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<f64> {
    let d = b? - a?;
    Some(d.num_microseconds()? as f64 / 1000.0)
}
