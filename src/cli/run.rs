//! `aurelia run [DIR]`: a foreground daemon for the specs in DIR (default: the current
//! directory). Brings everything up, streams every service's output prefixed with its name,
//! and on Ctrl-C stops everything in reverse dependency order. For a terminal or CI.
//!
//! It uses the usual home (`$AURELIA_HOME` or `~/.aurelia`), so `aurelia status` and friends
//! work from another terminal while it runs.

use std::io::Write;
use std::path::PathBuf;

use aurelia_api::{Event, LogLine, LogStream, ServiceState};
use aurelia_supervisor::daemon::Daemon;

use super::{CliError, CliResult, Stream, paint};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The directory of spec files (default: the current directory).
    dir: Option<PathBuf>,
}

pub fn run(args: Args) -> CliResult {
    let dir = std::path::absolute(args.dir.unwrap_or_else(|| PathBuf::from(".")))
        .map_err(|e| CliError::Usage(format!("bad directory: {e}")))?;
    if !dir.is_dir() {
        return Err(CliError::Usage(format!(
            "{} is not a directory of spec files",
            dir.display()
        )));
    }
    let set = aurelia_spec::load_path(&dir)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", dir.display())))?;
    if !set.is_valid() {
        return Err(CliError::Usage(format!(
            "the specs in {} have errors; nothing was started:\n{}",
            dir.display(),
            set.render_errors()
        )));
    }
    if set.specs.is_empty() {
        return Err(CliError::Usage(format!(
            "no spec files (*.yaml, *.yml) in {}",
            dir.display()
        )));
    }
    super::daemon::init_tracing();
    let opts = super::daemon::options(Some(dir), true)?;
    super::daemon::runtime()?.block_on(async move {
        let d = Daemon::start(opts).await.map_err(super::daemon::daemon_error)?;
        let sup = d.supervisor.clone();
        let names: Vec<String> = set.specs.iter().map(|s| s.name.clone()).collect();
        let width = names.iter().map(String::len).max().unwrap_or(0);
        // Follow every log from its first line, then state changes.
        let sub = sup.shared.hub.subscribe().map_err(|e| CliError::Failed(format!("cannot follow logs: {e}")))?;
        let mut events = sup.shared.events.subscribe();
        let dir = sup.shared.home.logs_dir();
        let offsets = sub.offsets.clone();
        let backlog = {
            let names = names.clone();
            tokio::task::spawn_blocking(move || {
                let mut all = Vec::new();
                for n in &names {
                    let limit = Some(offsets.get(n).copied().unwrap_or(0));
                    if let Ok(l) = aurelia_supervisor::logs::reader::tail_service(&dir, n, 200, None, limit) {
                        all.extend(l);
                    }
                }
                all.sort_by(|a, b| a.ts.cmp(&b.ts));
                all
            })
            .await
            .unwrap_or_default()
        };
        let mut rx = sub.rx;
        let _guard = sub.guard;
        let printer = tokio::spawn(async move {
            for l in &backlog {
                print_line(l, width);
            }
            loop {
                tokio::select! {
                    l = rx.recv() => match l {
                        Ok(l) => print_line(&l, width),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            eprintln!("[aurelia] output fell behind; {n} lines not shown here (they are in the log files)");
                        }
                        Err(_) => return,
                    },
                    e = events.recv() => match e {
                        Ok(Event::State(s)) => print_state(&s, width),
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => return,
                    },
                }
            }
        });
        let r = d.run_until_signal().await.map_err(super::daemon::daemon_error);
        printer.abort();
        r
    })
}

fn print_line(l: &LogLine, width: usize) {
    if l.stream == LogStream::Aurelia {
        // Aurelia's own notes in the log files; state changes are printed from events here.
        return;
    }
    let mut out = std::io::stdout().lock();
    let prefix = paint(&format!("{:<width$} |", l.service), "36", Stream::Stdout);
    let _ = writeln!(out, "{prefix} {}", l.line);
}

fn print_state(s: &aurelia_api::ServiceStatus, width: usize) {
    let mut text = s.state.as_str().to_string();
    match s.state {
        ServiceState::Waiting if !s.waiting_for.is_empty() => {
            text.push_str(&format!(" for {}", s.waiting_for.join(", ")))
        }
        ServiceState::Running => {
            if let Some(p) = s.port {
                text.push_str(&format!(" on port {p}"));
            }
        }
        ServiceState::Failed | ServiceState::Backoff => {
            if let Some(e) = &s.last_error {
                text.push_str(&format!(": {e}"));
            }
        }
        _ => {}
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{} {}",
        paint(&format!("{:<width$} |", s.name), "36", Stream::Stdout),
        paint(
            &format!("[aurelia] {text}"),
            super::state_color(s.state),
            Stream::Stdout
        )
    );
}
