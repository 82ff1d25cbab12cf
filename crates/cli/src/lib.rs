//! The thin client behind the `tongban` command: every subcommand that talks to a running
//! Tongban over gRPC, for applicants (`submit`, `status`, `watch`, ...) and staff (`tasks`,
//! `claim`, `approve`, `show`, `audit`, ...), plus `keys generate` / `keys drop` (the issuer's
//! Ed25519 key and the JWKS services verify with), `token issue` and `demo`, a scripted
//! walkthrough of one application from submission to every platform.
//!
//! This crate depends only on the protos and the shared vocabulary (auth, types), never on a
//! service: the `tongban` binary (crate `crates/tongban`) composes it with `tongban dev` and
//! `tongban topology`, which do run the services.
//!
//! # Layout
//! - `client`: server URLs, token, config file, and the error → exit code mapping.
//! - `output`: tables (80 columns, display width), Asia/Shanghai times, proto3 JSON.
//! - `applicant`, `staff`, `inbox`, `demo`: one function per subcommand.

mod admin;
mod applicant;
mod bench;
mod client;
mod demo;
mod dlq;
pub mod health;
mod inbox;
mod notify_admin;
mod output;
mod staff;
mod supervision;

use std::path::Path;

use clap::Subcommand;

pub use client::{GlobalArgs, exit_code};

/// The argument types of [`Command`]'s variants.
pub mod args {
    pub use crate::{
        AuditVerifyArgs, IssueArgs, KeysDropArgs, KeysGenerateArgs,
        admin::{
            DefinitionsCommand, DefinitionsListArgs, DeliveriesCommand, PublishArgs, ReconcileArgs,
            RegisterArgs, ReplayArgs, WebhooksCommand,
        },
        applicant::{RateArgs, SubmitArgs, SupplementArgs, WatchArgs, WithdrawArgs},
        bench::BenchArgs,
        demo::{DemoArgs, StackArgs},
        dlq::{
            DiscardArgs, DlqCommand, HandleArgs, ListArgs, Service as DlqService, ShowArgs, Target,
        },
        inbox::{InboxArgs, ReadArgs},
        notify_admin::{ChannelArg, FailedArgs, NotificationsCommand, ReplayFailedArgs},
        staff::{
            ApproveArgs, DelegateArgs, DeliveriesArgs, RejectArgs, RequestSupplementArgs, TaskRef,
            TasksArgs,
        },
    };
}

/// Exit codes and examples, for the top-level `--help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  ok
  1  usage or local error (bad flags, unreadable file, ...)
  2  the server rejected the request (INVALID_ARGUMENT, FAILED_PRECONDITION, ALREADY_EXISTS,
     ABORTED, NOT_FOUND, ...)
  3  authentication or permission (UNAUTHENTICATED, PERMISSION_DENIED)
  4  server unreachable or unavailable (`tongban health`: some server is not SERVING)
  5  `tongban audit verify` found tampering (edits, truncation, deleted chains, forged checkpoints)

Examples:
  tongban dev                                   # the whole stack on ports 50051-50054
  export TONGBAN_TOKEN=$(tongban token issue --role applicant --credit-code 91350100M000100Y43)
  tongban submit --file deploy/examples/env.eia.report_form.json
  tongban watch <ID> --until-final
  tongban tasks --output json | jq '.tasks[].taskId'
  tongban demo --spawn";

/// The client subcommands; the binary adds `dev`, `local`, `topology` and `completions`.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Bearer tokens (EdDSA JWTs) signed with the issuer's private key.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The issuer's signing key and the JWKS (public keys) services verify tokens with.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Save --token (and any --server URLs given) to ~/.config/tongban/config.toml.
    #[command(
        after_help = "Examples:\n  tongban login --token \"$(tongban token issue --role clerk --department eco_env)\"\n  tongban login --token T --server http://10.0.0.5:50051   # also keeps the server"
    )]
    Login,

    // ---- applicants ----
    /// Submit an application (proto3 JSON SubmitApplicationRequest); prints its id and status.
    #[command(
        after_help = "Examples:\n  tongban submit --file deploy/examples/env.eia.report_form.json\n  tongban submit -f app.json --request-id my-portal-000124 --output json"
    )]
    Submit(applicant::SubmitArgs),
    /// Show one application: status, owed materials, platforms delivered.
    #[command(
        after_help = "Examples:\n  tongban status 0195...\n  tongban status 0195... --output json | jq -r .status"
    )]
    Status {
        /// Application id.
        id: String,
    },
    /// Follow an application live: one line per change (status, version, platforms delivered).
    #[command(
        after_help = "Examples:\n  tongban watch 0195...\n  tongban watch 0195... --until-final --until-platforms 4\n  tongban watch 0195... --output json   # one JSON object per line"
    )]
    Watch(applicant::WatchArgs),
    /// Hand in owed or requested materials.
    #[command(
        after_help = "Example:\n  tongban supplement 0195... --material kind=land_use_certificate,name=不动产权证书.pdf,sha256=<64 hex>,size=204800,uri=s3://bucket/key --note 补交"
    )]
    Supplement(applicant::SupplementArgs),
    /// Withdraw an application that is not decided yet.
    #[command(after_help = "Example:\n  tongban withdraw 0195... --reason \"项目取消\"")]
    Withdraw(applicant::WithdrawArgs),
    /// Rate the answer to an enterprise request (unsatisfied reopens it).
    #[command(
        after_help = "Examples:\n  tongban rate 0195... satisfied\n  tongban rate 0195... unsatisfied --comment \"问题未解决\""
    )]
    Rate(applicant::RateArgs),
    /// List the matters (application types) that can be applied for.
    #[command(after_help = "Example:\n  tongban matters")]
    Matters,

    // ---- staff ----
    /// My department's open and claimed tasks, due soonest first (times in Asia/Shanghai).
    #[command(
        after_help = "Examples:\n  tongban tasks\n  tongban tasks --mine\n  tongban tasks --department eco_env --status open\n  tongban tasks --kind review\n  tongban tasks --all --application 0195..."
    )]
    Tasks(staff::TasksArgs),
    /// Take an open task (sends the version it has now, or --version).
    #[command(
        after_help = "Examples:\n  tongban claim 0195...\n  tongban claim 0195... --version 1"
    )]
    Claim(staff::TaskRef),
    /// Approve a task you hold.
    #[command(after_help = "Example:\n  tongban approve 0195... --comment 同意")]
    Approve(staff::ApproveArgs),
    /// Reject a task you hold (the comment is the reason the applicant sees).
    #[command(after_help = "Example:\n  tongban reject 0195... --comment \"选址不符合规划\"")]
    Reject(staff::RejectArgs),
    /// Ask the applicant for more materials.
    #[command(
        after_help = "Example:\n  tongban request-supplement 0195... --comment \"请补交不动产权证书\" --material land_use_certificate"
    )]
    RequestSupplement(staff::RequestSupplementArgs),
    /// Hand a task to another clerk (or, for supervisors, another department).
    #[command(
        after_help = "Examples:\n  tongban delegate 0195... --to clerk.eco_env.wang --reason 休假\n  tongban delegate 0195... --to clerk.water --department water"
    )]
    Delegate(staff::DelegateArgs),
    /// The supervision ledger (挂账督办): overdue tasks, owed materials, pledge verifications
    /// and enterprise requests still open, oldest first; struck-off items with --closed.
    #[command(
        after_help = "Examples:\n  tongban ledger --open\n  tongban ledger --unit eco_env --kind overdue --min-age-hours 16\n  tongban ledger --closed --kind request\n  tongban ledger --open --kind rating\n  tongban ledger --item overdue:0195..."
    )]
    Ledger(supervision::LedgerArgs),
    /// Rate the service on a finished application, 1 to 5 (好差评); 1 or 2 needs a reason.
    #[command(
        after_help = "Examples:\n  tongban evaluate 0195... --score 5\n  tongban evaluate 0195... --score 2 --reason slow --comment \"等了很久\""
    )]
    Evaluate(supervision::EvaluateArgs),
    /// Record how your department put a poor rating right (整改); the applicant is told.
    #[command(
        after_help = "Example:\n  tongban rectify 0195... --text \"已约谈经办人，压缩审查时限\""
    )]
    Rectify(supervision::RectifyArgs),
    /// The whole timeline: application, stages and tasks, follow-ups, timeline, deliveries.
    #[command(
        after_help = "Examples:\n  tongban show 0195...\n  tongban show 0195... --output json"
    )]
    Show {
        /// Application id.
        id: String,
    },
    /// The delivery ledger; `replay` puts dead letters back in the queue, `discard` gives one up
    /// for good, `reconcile` compares the ledger with what the platforms hold.
    #[command(
        args_conflicts_with_subcommands = true,
        after_help = "Examples:\n  tongban deliveries --application 0195...\n  tongban deliveries --status dead_lettered --platform eia\n  tongban deliveries replay --platform eia\n  tongban deliveries discard 0195... --reason \"filed on paper\"\n  tongban deliveries reconcile --redeliver-missing"
    )]
    Deliveries {
        #[command(flatten)]
        args: staff::DeliveriesArgs,
        #[command(subcommand)]
        command: Option<admin::DeliveriesCommand>,
    },
    /// Try one delivery again now.
    #[command(after_help = "Example:\n  tongban retry 0195...")]
    Retry {
        /// Delivery id (from `tongban deliveries`).
        delivery: String,
    },
    /// The audit log: an application's trail (`show`), or every chain of a database checked
    /// against its signed checkpoints (`verify`).
    #[command(
        after_help = "Examples:\n  tongban audit show 0195...\n  tongban audit show 0195... --output json | jq .verified\n  tongban audit verify --database sqlite://data/approval.db --checkpoints data/audit/approval.checkpoints.jsonl --public-key data/audit/approval.key.pub"
    )]
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },

    // ---- operators ----
    /// Workflow definitions: list them, publish a new version (admins).
    #[command(
        after_help = "Examples:\n  tongban definitions list\n  tongban definitions publish deploy/matters/env.eia.report_form.toml"
    )]
    Definitions {
        #[command(subcommand)]
        command: admin::DefinitionsCommand,
    },
    /// Webhooks: list, register (prints the signing secret once), delete.
    #[command(
        after_help = "Examples:\n  tongban webhooks list\n  tongban webhooks register https://portal.example.gov.cn/hooks/tongban --event application.approved\n  tongban webhooks delete 0195..."
    )]
    Webhooks {
        #[command(subcommand)]
        command: admin::WebhooksCommand,
    },
    /// Dead letters of a service's event consumer: list, show, replay, discard (admins).
    #[command(
        after_help = "Examples:\n  tongban dlq list --service approval\n  tongban dlq show --service approval 0195...\n  tongban dlq replay --service approval 0195... --reason \"definition fixed\"\n  tongban dlq discard --service intake --all --yes"
    )]
    Dlq {
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
    /// Dead e-mails and webhook calls (retries gave up): list, replay (admins).
    #[command(
        after_help = "Examples:\n  tongban notifications failed --channel email\n  tongban notifications replay --channel webhook --all"
    )]
    Notifications {
        #[command(subcommand)]
        command: notify_admin::NotificationsCommand,
    },
    /// grpc.health.v1 status of every configured service (or only --server); exits 0 only
    /// when all are SERVING, else 4. Needs no token.
    #[command(
        after_help = "Examples:\n  tongban health                                   # intake, approval, notification, dispatch\n  tongban health --server http://127.0.0.1:50052   # one server (container healthchecks)\n  tongban health --output json"
    )]
    Health(health::HealthArgs),

    // ---- everyone ----
    /// My notifications, newest first (times in Asia/Shanghai); --follow streams new ones.
    #[command(
        after_help = "Examples:\n  tongban inbox\n  tongban inbox --unread --limit 20\n  tongban inbox --output json | jq -r '.notifications[].notificationId'\n  tongban inbox --follow                     # until Ctrl-C; reconnects by itself\n  tongban inbox --follow --after 1234 --output json   # one JSON object per line"
    )]
    Inbox(inbox::InboxArgs),
    /// Mark notifications read; prints how many were marked.
    #[command(
        after_help = "Examples:\n  tongban read 0195...\n  tongban read $(tongban inbox --unread --output json | jq -r '.notifications[].notificationId')"
    )]
    Read(inbox::ReadArgs),

    /// Scripted walkthrough: submit the example, approve every task, wait for 4/4 platforms.
    #[command(
        after_help = "Examples:\n  tongban demo --spawn                 # starts its own `tongban dev` and stops it\n  tongban demo --data-dir data         # against a running `tongban dev`\n  tongban demo --spawn --timeout 120"
    )]
    Demo(demo::DemoArgs),

    /// Load harness: N applications at a fixed concurrency or rate, clerks approving, until
    /// every platform has each; reports throughput, latency percentiles and cost per application.
    #[command(
        long_about = "Load harness: submits N copies of the example (fresh request ids) at a fixed \
concurrency or a fixed offered rate, plays the clerks (claim and approve every review task as it \
appears), waits until each application is APPROVED and delivered to every platform, then waits \
(bounded) for the outboxes and queues to drain.\n\n\
Reports: applications/s (completed / first submit to last delivery); p50/p90/p99/max of submit \
(the RPC as the bench timed it), submit -> first task, approved -> all delivered and submit -> \
all delivered (from the servers' timestamps: the application's create_time, its tasks' \
create_time and decide_time, and each platform delivery's update_time); CPU seconds and peak RSS \
per process from /proc (the stack's Tongban processes: the spawned dev, the dev holding --data-dir \
open, or local.json's processes; PostgreSQL's backends summed and RabbitMQ's beam.smp: every \
process of that name on the machine, peak RSS summed over them); PostgreSQL transactions (pg_stat_database, whole \
server), AMQP messages published and delivered (RabbitMQ's Prometheus endpoint, whole broker), \
outbox events and bytes per application; the outbox backlog and queue depth at the end. \
Figures a stack cannot give are n/a (no PostgreSQL or RabbitMQ under `tongban dev`).\n\n\
Exits 1 when an application is not delivered in time or the backlog does not drain.",
        after_help = "Examples:\n  tongban bench --spawn -n 50                      # its own `tongban dev`\n  tongban bench --data-dir data -n 200 --concurrency 32   # a running `tongban dev`\n  tongban bench --data-dir data/local -n 5000 --rate 100  # `tongban local up`\n  tongban bench --spawn -n 5 --concurrency 2 --output json"
    )]
    Bench(bench::BenchArgs),
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// The hash-chained audit trail of an application, and whether it verifies.
    #[command(
        after_help = "Examples:\n  tongban audit show 0195...\n  tongban audit show 0195... --output json | jq .verified"
    )]
    Show {
        /// Application id.
        id: String,
    },
    /// Recompute every chain of a service's database and check it against the signed
    /// checkpoints: reports edited entries, truncated and deleted chains and forged
    /// checkpoints; exits 5 on any finding. Reads the database directly (no server).
    #[command(
        after_help = "Examples:\n  tongban audit verify --database postgres://postgres@127.0.0.1/tongban_approval \\\n      --checkpoints /var/log/tongban/approval.checkpoints.jsonl --public-key approval.key.pub\n  tongban audit verify --database sqlite://data/intake.db?mode=ro \\\n      --checkpoints data/audit/intake.checkpoints.jsonl --public-key data/audit/intake.key.pub --service intake"
    )]
    Verify(AuditVerifyArgs),
}

/// Arguments of `tongban audit verify`.
#[derive(clap::Args, Debug, Clone)]
pub struct AuditVerifyArgs {
    /// The service's database URL (postgres://… or sqlite://…).
    #[arg(long, env = "TONGBAN_AUDIT_DATABASE")]
    pub database: String,
    /// The JSON-lines checkpoint file the service exported.
    #[arg(long)]
    pub checkpoints: std::path::PathBuf,
    /// The service's Ed25519 public key file (hex), e.g. `<signing key>.pub`; repeat it for
    /// the keys before and after a rotation.
    #[arg(long, required = true)]
    pub public_key: Vec<std::path::PathBuf>,
    /// Only checkpoints of this service (when one file holds several).
    #[arg(long)]
    pub service: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Print a token signed with --key, or with the dev key in --data-dir (created by
    /// `tongban dev`, or here when there is none yet).
    #[command(
        after_help = "Examples:\n  tongban token issue --role clerk --department eco_env\n  tongban token issue --role applicant --credit-code 91350100M000100Y43\n  tongban token issue --key /etc/tongban/keys/issuer.key --role integrator --subject portal.fj --hours 1"
    )]
    Issue(IssueArgs),
}

#[derive(clap::Args, Debug)]
pub struct IssueArgs {
    /// applicant, clerk, supervisor, admin or integrator.
    #[arg(long)]
    role: String,
    /// Department or township office code (clerks and supervisors), e.g. eco_env or
    /// eco_env.songyuan.
    #[arg(long)]
    department: Option<String>,
    /// Region code the caller works in, e.g. 350724.
    #[arg(long)]
    region: Option<String>,
    /// Unified social credit code (applicants).
    #[arg(long)]
    credit_code: Option<String>,
    /// User id; defaults to a name derived from role and department.
    #[arg(long)]
    subject: Option<String>,
    /// Hours until the token expires (at most the lifetime cap).
    #[arg(long, default_value_t = 12)]
    hours: i64,
    /// Private key to sign with (PKCS#8 PEM from `tongban keys generate`); the token's kid
    /// comes from it. Default: issuer.key in --data-dir.
    #[arg(long)]
    key: Option<std::path::PathBuf>,
    /// Directory of the dev key (issuer.key, jwks.json), used without --key.
    #[arg(long, default_value = "data", env = "TONGBAN_DATA_DIR")]
    data_dir: std::path::PathBuf,
    /// The token's `aud`; must match the services' jwt_audience.
    #[arg(long, default_value = tongban_auth::DEFAULT_AUDIENCE, env = "TONGBAN_JWT_AUDIENCE")]
    audience: String,
    /// Longest lifetime this issuer signs, in seconds (the services' max_token_lifetime_secs).
    #[arg(long, default_value_t = tongban_auth::DEFAULT_MAX_LIFETIME.as_secs(), env = "TONGBAN_MAX_TOKEN_LIFETIME_SECS")]
    max_lifetime_secs: u64,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Write DIR/issuer.key (private, mode 0600) and DIR/jwks.json; on a DIR that has keys,
    /// rotate: a new key (new kid) signs from now on and jwks.json keeps the old public keys.
    #[command(
        after_help = "Examples:\n  tongban keys generate /etc/tongban/keys\n  tongban keys generate /etc/tongban/keys   # again: rotates, old tokens still verify\n  tongban keys generate --if-missing /etc/tongban/keys   # init steps: never rotates\n\nCopy jwks.json to every service (jwks_file) and restart them before issuing tokens with\nthe new key. Once the old key's tokens have expired (max_token_lifetime_secs), remove its\npublic key with `tongban keys drop DIR KID`."
    )]
    Generate(KeysGenerateArgs),
    /// Remove an old public key from DIR/jwks.json (never the current signing key).
    #[command(
        after_help = "Example:\n  tongban keys drop /etc/tongban/keys kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    )]
    Drop(KeysDropArgs),
}

#[derive(clap::Args, Debug)]
pub struct KeysGenerateArgs {
    /// Key directory (created if missing).
    dir: std::path::PathBuf,
    /// Keep an existing key instead of rotating (for init steps that run on every start).
    #[arg(long)]
    if_missing: bool,
}

#[derive(clap::Args, Debug)]
pub struct KeysDropArgs {
    /// Key directory holding jwks.json.
    dir: std::path::PathBuf,
    /// The kid to remove.
    kid: String,
}

/// Runs one client subcommand.
pub async fn run(global: &GlobalArgs, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Token {
            command: TokenCommand::Issue(args),
        } => issue(args),
        Command::Keys {
            command: KeysCommand::Generate(args),
        } => keys_generate(&args),
        Command::Keys {
            command: KeysCommand::Drop(args),
        } => keys_drop(&args),
        Command::Demo(args) => demo::run(global, args).await,
        Command::Bench(args) => bench::run(global, args).await,
        Command::Health(args) => health::run(global, args).await,
        Command::Login => login(global),
        other => remote(global, other).await,
    }
}

/// One line: a server error as `CODE: field: why`, anything else with its causes.
pub fn error_line(e: &anyhow::Error) -> String {
    let text = match e.chain().find_map(|c| c.downcast_ref::<client::RpcError>()) {
        // Keep the outermost context ("listing tasks ...") when there is one.
        Some(rpc) if e.to_string() != rpc.to_string() => format!("{rpc} ({e})"),
        Some(rpc) => rpc.to_string(),
        None => format!("{e:#}"),
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The subcommands that call a server.
async fn remote(global: &GlobalArgs, command: Command) -> anyhow::Result<()> {
    let conn = client::Conn::resolve(global)?;
    match command {
        Command::Submit(a) => applicant::submit(&conn, a).await,
        Command::Status { id } => applicant::status(&conn, &id).await,
        Command::Watch(a) => applicant::watch(&conn, a).await,
        Command::Supplement(a) => applicant::supplement(&conn, a).await,
        Command::Withdraw(a) => applicant::withdraw(&conn, a).await,
        Command::Rate(a) => applicant::rate(&conn, a).await,
        Command::Matters => applicant::matters(&conn).await,
        Command::Tasks(a) => staff::tasks(&conn, a).await,
        Command::Claim(r) => staff::claim(&conn, r).await,
        Command::Approve(a) => staff::approve(&conn, a).await,
        Command::Reject(a) => staff::reject(&conn, a).await,
        Command::RequestSupplement(a) => staff::request_supplement(&conn, a).await,
        Command::Delegate(a) => staff::delegate(&conn, a).await,
        Command::Show { id } => staff::show(&conn, &id).await,
        Command::Ledger(a) => supervision::ledger(&conn, a).await,
        Command::Evaluate(a) => supervision::evaluate(&conn, a).await,
        Command::Rectify(a) => supervision::rectify(&conn, a).await,
        Command::Deliveries {
            command: Some(c), ..
        } => admin::deliveries(&conn, c).await,
        Command::Deliveries {
            args,
            command: None,
        } => staff::deliveries(&conn, args).await,
        Command::Definitions { command } => admin::definitions(&conn, command).await,
        Command::Webhooks { command } => admin::webhooks(&conn, command).await,
        Command::Dlq { command } => dlq::run(&conn, command).await,
        Command::Notifications { command } => notify_admin::notifications(&conn, command).await,
        Command::Retry { delivery } => staff::retry(&conn, &delivery).await,
        Command::Audit {
            command: AuditCommand::Show { id },
        } => staff::audit(&conn, &id).await,
        Command::Audit {
            command: AuditCommand::Verify(_),
        } => anyhow::bail!("`tongban audit verify` is run by the tongban binary"),
        Command::Inbox(a) => inbox::inbox(&conn, a).await,
        Command::Read(a) => inbox::read(&conn, a).await,
        Command::Token { .. }
        | Command::Keys { .. }
        | Command::Login
        | Command::Demo(_)
        | Command::Bench(_)
        | Command::Health(_) => {
            anyhow::bail!("handled by run")
        }
    }
}

/// Keeps `--token` (and the server URLs given) in the config file.
fn login(global: &client::GlobalArgs) -> anyhow::Result<()> {
    let mut cfg = client::Config::load()?;
    let token = global
        .token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| anyhow::anyhow!("pass the token to keep: tongban login --token T"))?;
    cfg.token = Some(token.to_string());
    let keep = |flag: &Option<String>, slot: &mut Option<String>| {
        if let Some(v) = flag {
            *slot = Some(v.clone());
        }
    };
    keep(&global.server, &mut cfg.server);
    keep(&global.approval_server, &mut cfg.approval_server);
    keep(&global.dispatch_server, &mut cfg.dispatch_server);
    keep(&global.notification_server, &mut cfg.notification_server);
    let path = cfg.save()?;
    println!("Saved token to {}", path.display());
    Ok(())
}

fn keys_generate(args: &KeysGenerateArgs) -> anyhow::Result<()> {
    if args.if_missing && args.dir.join(tongban_auth::keys::ISSUER_KEY_FILE).exists() {
        let key = tongban_auth::keys::ensure(&args.dir)?;
        println!("Kept: kid {} (--if-missing).", key.kid());
        return Ok(());
    }
    let g = tongban_auth::keys::generate(&args.dir)?;
    match &g.previous_kid {
        Some(old) => println!("Rotated: kid {} now signs (was {old}).", g.kid),
        None => println!("Generated: kid {}.", g.kid),
    }
    println!(
        "  private key  {}  (mode 0600; keep it with the issuer only)",
        g.key_path.display()
    );
    println!(
        "  public keys  {}  ({} key(s): {})",
        g.jwks_path.display(),
        g.kids.len(),
        g.kids.join(", ")
    );
    if g.previous_kid.is_some() {
        println!(
            "Install the new jwks.json on every service before issuing tokens with the new key; \
             drop old keys once their tokens have expired: tongban keys drop {} <KID>",
            args.dir.display()
        );
    }
    Ok(())
}

fn keys_drop(args: &KeysDropArgs) -> anyhow::Result<()> {
    let jwks = tongban_auth::keys::drop_key(&args.dir, &args.kid)?;
    println!(
        "Dropped {}; {} now holds: {}",
        args.kid,
        args.dir.join(tongban_auth::keys::JWKS_FILE).display(),
        jwks.kids().join(", ")
    );
    Ok(())
}

fn issue(args: IssueArgs) -> anyhow::Result<()> {
    let role: tongban_auth::Role = args.role.parse()?;
    let subject = args
        .subject
        .unwrap_or_else(|| match (&args.department, &args.credit_code) {
            (Some(d), _) => format!("{role}.{d}"),
            (None, Some(c)) => format!("{role}.{}", c.trim().to_ascii_uppercase()),
            (None, None) => role.to_string(),
        });
    let key = match &args.key {
        Some(path) => tongban_auth::SigningKey::load(path)?,
        // The dev convenience: the key `tongban dev` uses, made here if it does not exist yet.
        None => tongban_auth::keys::ensure(&args.data_dir)?,
    };
    let rules = tongban_auth::TokenRules {
        audience: args.audience,
        max_lifetime: std::time::Duration::from_secs(args.max_lifetime_secs),
        ..tongban_auth::TokenRules::default()
    };
    let token = sign(
        key,
        rules,
        &MintArgs {
            role,
            subject,
            department: args.department,
            region: args.region,
            credit_code: args.credit_code,
            hours: args.hours,
        },
    )?;
    println!("{token}");
    Ok(())
}

/// What `mint` signs.
struct MintArgs {
    role: tongban_auth::Role,
    subject: String,
    department: Option<String>,
    region: Option<String>,
    credit_code: Option<String>,
    hours: i64,
}

/// Signs a token with the dev key of a running `tongban dev` in `data_dir` (the demo); it
/// must use that stack's key, so it refuses to invent one.
fn mint(data_dir: &Path, args: &MintArgs) -> anyhow::Result<String> {
    use anyhow::Context as _;
    let path = data_dir.join(tongban_auth::keys::ISSUER_KEY_FILE);
    let key = tongban_auth::SigningKey::load(&path).with_context(|| {
        format!(
            "reading {}; is `tongban dev --data-dir {}` running? (or use --spawn)",
            path.display(),
            data_dir.display()
        )
    })?;
    sign(key, tongban_auth::TokenRules::default(), args)
}

fn sign(
    key: tongban_auth::SigningKey,
    rules: tongban_auth::TokenRules,
    args: &MintArgs,
) -> anyhow::Result<String> {
    Ok(tongban_auth::Issuer::new(key)
        .with_rules(rules)
        .issue(&tongban_auth::TokenRequest {
            subject: args.subject.clone(),
            role: args.role,
            department: args.department.clone(),
            region: args.region.clone(),
            credit_code: args.credit_code.clone(),
            ttl: chrono::Duration::hours(args.hours),
        })?)
}
