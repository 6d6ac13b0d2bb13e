//! `aurelia daemon`: run the supervisor in the foreground until a signal.

use aurelia_supervisor::daemon::{Daemon, DaemonError, Options};

use super::{CliError, CliResult};

#[derive(Debug, clap::Args)]
pub struct Args {}

/// Sets up logging for daemon modes (`RUST_LOG` overrides the default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(super::color(super::Stream::Stderr))
        .try_init();
}

/// The runtime for daemon modes: two workers are plenty for a supervisor, and keep it light.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the async runtime: {e}")))
}

pub fn daemon_error(e: DaemonError) -> CliError {
    match e {
        DaemonError::AlreadyRunning { .. } | DaemonError::Config(_) => {
            CliError::Usage(e.to_string())
        }
        DaemonError::Io { .. } => CliError::Failed(e.to_string()),
    }
}

pub fn options(
    services_dir: Option<std::path::PathBuf>,
    up_all: bool,
) -> Result<Options, CliError> {
    Ok(Options {
        home: super::home()?,
        services_dir,
        up_all,
        relay_exe: std::env::current_exe()
            .map_err(|e| CliError::Failed(format!("cannot find the aurelia executable: {e}")))?,
    })
}

pub fn run(_args: Args) -> CliResult {
    init_tracing();
    let opts = options(None, false)?;
    runtime()?.block_on(async {
        let d = Daemon::start(opts).await.map_err(daemon_error)?;
        d.run_until_signal().await.map_err(daemon_error)
    })
}
