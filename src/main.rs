//! `aurelia`: the CLI and the daemon in one binary.
//!
//! `main` parses the command line and hands off to one module per verb under `cli/`. Client
//! verbs talk to the daemon over its Unix socket with a small blocking client (no async
//! runtime: `aurelia status` should take milliseconds); `daemon` and `run` start a tokio
//! runtime and the supervisor. The hidden `__log-relay` verb is the per-service log relay
//! (see `aurelia_supervisor::logs::relay`) and is dispatched before anything else is set up.
//!
//! Exit codes: 0 ok, 1 an operation failed, 2 usage or spec error, 3 the daemon is not
//! reachable. A broken pipe on stdout (`aurelia logs api | head`) is success.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("AURELIA_GIT_COMMIT"),
    ")"
);

/// A process supervisor for developers: native processes and containers, dependency order,
/// health checks, restarts, crash recovery.
#[derive(Debug, Parser)]
#[command(name = "aurelia", version = VERSION, about, propagate_version = true)]
#[command(
    after_help = "Home: $AURELIA_HOME, or ~/.aurelia. Specs live in its services/ directory.\n\
Exit codes: 0 ok, 1 operation failed, 2 usage or spec error, 3 daemon not reachable."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate spec files without running anything.
    Check(cli::check::Args),
    /// Run the supervisor daemon in the foreground.
    Daemon(cli::daemon::Args),
    /// Run the services of a directory in the foreground, streaming their logs; Ctrl-C stops all.
    Run(cli::run::Args),
    /// Start services (all if none named) and wait until they are running and healthy.
    Up(cli::up::Args),
    /// Stop services (all if none named), in reverse dependency order.
    Down(cli::down::Args),
    /// Restart a service (its hard dependents bounce with it).
    Restart(cli::restart::Args),
    /// Show services: name, type, state, health, PID, port, uptime, restarts. Name one for details.
    Status(cli::status::Args),
    /// Show a service's recent output (all services if none named).
    Logs(cli::logs::Args),
    /// Re-read spec files and apply the changes (only changed services restart).
    Reload(cli::reload::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__log-relay") {
        return ExitCode::from(aurelia_supervisor::logs::relay::main(&args[2..]) as u8);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(a) => cli::check::run(a),
        Command::Daemon(a) => cli::daemon::run(a),
        Command::Run(a) => cli::run::run(a),
        Command::Up(a) => cli::up::run(a),
        Command::Down(a) => cli::down::run(a),
        Command::Restart(a) => cli::restart::run(a),
        Command::Status(a) => cli::status::run(a),
        Command::Logs(a) => cli::logs::run(a),
        Command::Reload(a) => cli::reload::run(a),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "aurelia",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(),
    }
}
