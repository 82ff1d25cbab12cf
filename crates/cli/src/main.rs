//! `tongban`: one command for newcomers and staff.
//!
//! - `tongban dev` runs the whole stack in this process: SQLite files and the durable embedded
//!   bus under `./data`, each service on its own port.
//! - `tongban token issue` signs a bearer token with the dev secret.

mod dev;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "tongban",
    version,
    about = "Tongban: enter once, approved across departments, delivered everywhere"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run every service in one process with SQLite and the embedded bus (data under ./data).
    #[command(
        after_help = "Example:\n  tongban dev\n  tongban dev --data-dir /tmp/tongban --deploy-dir ./deploy"
    )]
    Dev(dev::DevArgs),
    /// Bearer tokens for the dev stack.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Print a token signed with the dev secret (created by `tongban dev` in ./data).
    #[command(
        after_help = "Examples:\n  tongban token issue --role clerk --department eco_env\n  tongban token issue --role applicant --credit-code 91350100M000100Y43"
    )]
    Issue(IssueArgs),
}

#[derive(clap::Args, Debug)]
struct IssueArgs {
    /// applicant, clerk, supervisor, admin or integrator.
    #[arg(long)]
    role: String,
    /// Department code (clerks and supervisors), e.g. eco_env.
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
    /// Hours until the token expires.
    #[arg(long, default_value_t = 12)]
    hours: i64,
    /// Directory holding jwt.secret.
    #[arg(long, default_value = "data", env = "TONGBAN_DATA_DIR")]
    data_dir: std::path::PathBuf,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Dev(args) => dev::run(args).await,
            Command::Token {
                command: TokenCommand::Issue(args),
            } => issue(args),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

fn issue(args: IssueArgs) -> anyhow::Result<()> {
    let role: tongban_auth::Role = args.role.parse()?;
    let path = args.data_dir.join("jwt.secret");
    let secret = tongban_auth::Secret::load_or_create(&path)?;
    let subject = args
        .subject
        .unwrap_or_else(|| match (&args.department, &args.credit_code) {
            (Some(d), _) => format!("{role}.{d}"),
            (None, Some(c)) => format!("{role}.{}", c.trim().to_ascii_uppercase()),
            (None, None) => role.to_string(),
        });
    let token = tongban_auth::Issuer::new(secret).issue(&tongban_auth::TokenRequest {
        subject,
        role,
        department: args.department,
        region: args.region,
        credit_code: args.credit_code,
        ttl: chrono::Duration::hours(args.hours.max(1)),
    })?;
    println!("{token}");
    Ok(())
}
