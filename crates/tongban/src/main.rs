//! `tongban`: one command for newcomers, operators and staff.
//!
//! This crate composes; it holds no client logic and no service logic of its own:
//! - `tongban dev` runs every service in this process (SQLite files and the durable embedded bus
//!   under `./data`), the same code the production binaries run;
//! - `tongban local up|down|status` runs the production topology as separate processes
//!   (N replicas of each service binary) against the local PostgreSQL and RabbitMQ;
//! - `tongban topology declare` declares every service's queue before a deployment starts;
//! - `tongban audit verify` checks a service's audit chains against its signed checkpoints;
//! - every other subcommand is the thin gRPC client from `tongban-cli`.

mod audit;
mod dev;
mod local;
mod topology;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "tongban",
    version,
    about = "Tongban: enter once, approved across departments, delivered everywhere",
    after_help = tongban_cli::EXIT_CODES
)]
struct Cli {
    #[command(flatten)]
    global: tongban_cli::GlobalArgs,
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
    /// The production topology on this machine: each service its own process (N replicas),
    /// own database on the local PostgreSQL, events over the local RabbitMQ.
    #[command(
        after_help = "Examples:\n  tongban local up --replicas 2\n  tongban local status\n  tongban local down --purge"
    )]
    Local {
        #[command(subcommand)]
        command: local::LocalCommand,
    },
    /// Declare every service's queue on the bus before the services start (run once per deployment).
    #[command(
        after_help = "Example:\n  tongban topology declare --bus-url amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    Topology {
        #[command(subcommand)]
        command: TopologyCommand,
    },
    #[command(flatten)]
    Client(tongban_cli::Command),
    /// Print shell completions.
    #[command(
        after_help = "Examples:\n  tongban completions bash > ~/.local/share/bash-completion/completions/tongban\n  tongban completions zsh > ~/.zfunc/_tongban\n  tongban completions fish > ~/.config/fish/completions/tongban.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand, Debug)]
enum TopologyCommand {
    /// Declare the exchange, every consumer queue and its bindings, and the dead-letter queues.
    #[command(
        after_help = "Example:\n  TONGBAN_BUS_URL=amqp://tongban:secret@rabbitmq:5672/%2f tongban topology declare"
    )]
    Declare(topology::DeclareArgs),
}

fn main() -> std::process::ExitCode {
    // Usage errors exit 1 (exit 2 means the server rejected a request); help and version 0.
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let cli = match parsed {
        Ok((cli, matches)) => {
            let mut cli = cli;
            // `tongban health --server URL` checks that one server; TONGBAN_SERVER alone (also
            // read into --server) only moves where the four services are looked for.
            if let Command::Client(tongban_cli::Command::Health(args)) = &mut cli.command {
                args.server_on_command_line = matches
                    .subcommand_matches("health")
                    .and_then(|m| m.value_source("server"))
                    == Some(clap::parser::ValueSource::CommandLine);
            }
            cli
        }
        Err(e) => {
            let _ = e.print();
            return std::process::ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "tongban",
            &mut std::io::stdout(),
        );
        return std::process::ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    if let Command::Client(tongban_cli::Command::Audit {
        command: tongban_cli::AuditCommand::Verify(args),
    }) = cli.command
    {
        return match runtime.block_on(audit::verify(args)) {
            Ok(true) => std::process::ExitCode::SUCCESS,
            Ok(false) => std::process::ExitCode::from(audit::EXIT_FINDINGS),
            Err(e) => {
                eprintln!("error: {}", tongban_cli::error_line(&e));
                std::process::ExitCode::from(1)
            }
        };
    }
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Dev(args) => dev::run(args).await,
            Command::Local { command } => local::run(command, cli.global.json()).await,
            Command::Topology {
                command: TopologyCommand::Declare(args),
            } => topology::declare(args).await,
            Command::Client(command) => tongban_cli::run(&cli.global, command).await,
            Command::Completions { .. } => Ok(()),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", tongban_cli::error_line(&e));
            std::process::ExitCode::from(tongban_cli::exit_code(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }
}
