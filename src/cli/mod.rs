//! Shared pieces of the CLI verbs: errors and exit codes, the client, output helpers.

pub mod check;
pub mod daemon;
pub mod down;
pub mod logs;
pub mod reload;
pub mod restart;
pub mod run;
pub mod status;
pub mod up;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use aurelia_api::{Client, ClientError, Endpoint, ErrorCode};
use aurelia_supervisor::Home;

/// An error that ends the command, with its exit code.
#[derive(Debug)]
pub enum CliError {
    /// 1: an operation failed.
    Failed(String),
    /// 2: bad usage or an invalid spec.
    Usage(String),
    /// 3: the daemon is not reachable.
    Unreachable(String),
    /// Output already printed; just exit with this code.
    Exit(u8),
}

impl CliError {
    pub fn report(self) -> ExitCode {
        let (code, msg) = match self {
            CliError::Failed(m) => (1, Some(m)),
            CliError::Usage(m) => (2, Some(m)),
            CliError::Unreachable(m) => (3, Some(m)),
            CliError::Exit(c) => (c, None),
        };
        if let Some(m) = msg {
            let _ = writeln!(
                std::io::stderr(),
                "{} {m}",
                paint("error:", RED, Stream::Stderr)
            );
        }
        ExitCode::from(code)
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> CliError {
        match e {
            ClientError::Unreachable { endpoint, source } => CliError::Unreachable(format!(
                "the Aurelia daemon is not running (nothing answers on {endpoint}: {source})\n  \
                 start it with `aurelia daemon` (or `aurelia run DIR` in the foreground)"
            )),
            ClientError::Api { code, message, .. } => match code {
                ErrorCode::NotFound | ErrorCode::BadRequest | ErrorCode::InvalidSpec => {
                    CliError::Usage(message)
                }
                _ => CliError::Failed(message),
            },
            other => CliError::Failed(other.to_string()),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> CliError {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            // `aurelia logs api | head`: the reader has what it wanted.
            return CliError::Exit(0);
        }
        CliError::Failed(e.to_string())
    }
}

pub type CliResult = Result<(), CliError>;

/// The home, or a usage error saying why there is none.
pub fn home() -> Result<Home, CliError> {
    Home::from_env().map_err(|e| CliError::Usage(format!("cannot find the Aurelia home: {e}")))
}

/// A client for the daemon of the current home.
pub fn client() -> Result<Client, CliError> {
    Ok(Client::new(Endpoint::Unix(home()?.socket())))
}

#[derive(Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Whether to colour output on `stream`: a terminal, and NO_COLOR not set.
pub fn color(stream: Stream) -> bool {
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    match stream {
        Stream::Stdout => std::io::stdout().is_terminal(),
        Stream::Stderr => std::io::stderr().is_terminal(),
    }
}

pub const RED: &str = "31";
pub const GREEN: &str = "32";
pub const YELLOW: &str = "33";
pub const DIM: &str = "2";

/// `text` in an ANSI colour when colour is on for `stream`.
pub fn paint(text: &str, code: &str, stream: Stream) -> String {
    if color(stream) {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// The colour of a state word.
pub fn state_color(state: aurelia_api::ServiceState) -> &'static str {
    use aurelia_api::ServiceState::*;
    match state {
        Running => GREEN,
        Starting | Waiting | Stopping | Backoff => YELLOW,
        Failed => RED,
        Stopped | Completed => DIM,
    }
}

/// `1h2m`, `3m4s`, `12s`.
pub fn human_duration(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    let (d, h, m, sec) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60, s % 60);
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m{sec}s")
    } else {
        format!("{sec}s")
    }
}

/// Writes JSON to stdout.
pub fn print_json<T: serde::Serialize>(v: &T) -> CliResult {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v).map_err(|e| CliError::Failed(e.to_string()))?;
    writeln!(out)?;
    Ok(())
}
