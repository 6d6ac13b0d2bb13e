//! `aurelia up [SERVICE...]`: start services and wait until they are running (and healthy).
//!
//! The event stream is opened before the request, so no state change is missed. On a terminal
//! a line per service shows a spinner and what it waits for (dependencies, the health check
//! and its last error); elsewhere each state change is printed once. Exits 1 naming the
//! service that failed (with its error and last probe error) or is still not up at the
//! timeout.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aurelia_api::client::encode;
use aurelia_api::{
    ActionResult, Client, Event, ServiceDetail, ServiceState, ServiceStatus, ServicesRequest,
};

use super::{CliError, CliResult, DIM, GREEN, RED, Stream, paint, state_color};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Services to start (default: all). Their dependencies start too.
    services: Vec<String>,
    /// Return at once instead of waiting until they are running.
    #[arg(long)]
    no_wait: bool,
    /// How long to wait (Go duration).
    #[arg(long, default_value = "2m")]
    timeout: String,
}

pub fn parse_timeout(s: &str) -> Result<Duration, CliError> {
    aurelia_spec::duration::parse(s)
        .ok()
        .filter(|d| d.nanos() > 0)
        .map(|d| d.to_std())
        .ok_or_else(|| {
            CliError::Usage(format!(
                "--timeout {s:?} is not a positive duration like 30s or 2m"
            ))
        })
}

pub fn run(args: Args) -> CliResult {
    let c = super::client()?;
    let timeout = parse_timeout(&args.timeout)?;
    let events = if args.no_wait {
        None
    } else {
        Some(Events::open(&c)?)
    };
    let r: ActionResult = c.post(
        "/v1/up",
        Some(&ServicesRequest {
            services: args.services,
        }),
    )?;
    match events {
        None => {
            println!("starting {}", r.services.join(", "));
            Ok(())
        }
        Some(ev) => ev.wait_running(&c, &r.services, timeout, false),
    }
}

#[derive(Clone, Copy)]
enum Goal {
    Running { must_change: bool },
    Stopped,
}

/// A service without a health check counts as up once it has stayed running this long, so
/// that a program that crashes right after it starts is reported by `up`, not hidden by it.
const SETTLE: Duration = Duration::from_millis(250);

/// The daemon's event stream, read on a thread.
pub struct Events {
    rx: mpsc::Receiver<Result<Event, String>>,
}

impl Events {
    pub fn open(c: &Client) -> Result<Events, CliError> {
        let stream = c
            .clone()
            .with_timeout(None)
            .stream::<Event>("/v1/events?logs=false")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for ev in stream {
                if tx.send(ev.map_err(|e| e.to_string())).is_err() {
                    return;
                }
            }
            let _ = tx.send(Err("the daemon closed the event stream".into()));
        });
        Ok(Events { rx })
    }

    /// Waits until `targets` run. With `must_change`, each must first be seen not running
    /// (a restart).
    pub fn wait_running(
        self,
        c: &Client,
        targets: &[String],
        timeout: Duration,
        must_change: bool,
    ) -> CliResult {
        self.wait(c, targets, Goal::Running { must_change }, timeout)
    }

    /// Waits until `targets` are stopped.
    pub fn wait_stopped(self, c: &Client, targets: &[String]) -> CliResult {
        self.wait(c, targets, Goal::Stopped, Duration::from_secs(600))
    }

    fn wait(self, c: &Client, targets: &[String], goal: Goal, timeout: Duration) -> CliResult {
        let tty = std::io::stderr().is_terminal();
        let deadline = Instant::now() + timeout;
        let mut states: BTreeMap<String, ServiceStatus> = BTreeMap::new();
        let mut changed: BTreeMap<String, bool> = BTreeMap::new();
        let mut since: BTreeMap<String, Instant> = BTreeMap::new();
        // Events seen per service: the first is its state from before the request (the
        // stream starts with a snapshot), so a failure counts only from the second on.
        let mut seen: BTreeMap<String, u32> = BTreeMap::new();
        let mut printed: BTreeMap<String, String> = BTreeMap::new();
        let mut probe_errors: BTreeMap<String, String> = BTreeMap::new();
        let mut last_detail = Instant::now();
        let mut drawn = 0usize;
        let mut tick = 0usize;
        loop {
            match self.rx.recv_timeout(Duration::from_millis(50)) {
                Ok(Ok(Event::State(s))) => {
                    // The stream was opened before the request: any non-running state seen
                    // since is part of this operation.
                    if s.state != ServiceState::Running {
                        changed.insert(s.name.clone(), true);
                    }
                    if states
                        .get(&s.name)
                        .is_none_or(|old| old.state != s.state || old.pid != s.pid)
                    {
                        since.insert(s.name.clone(), Instant::now());
                    }
                    *seen.entry(s.name.clone()).or_default() += 1;
                    states.insert(s.name.clone(), s);
                }
                Ok(Ok(Event::Removed { service })) => {
                    states.remove(&service);
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    return Err(CliError::Failed(format!(
                        "lost the daemon's event stream: {e}"
                    )));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(CliError::Failed("lost the daemon's event stream".into()));
                }
            }
            // Collect the verdict per target.
            let mut done = 0;
            let mut failed: Vec<String> = Vec::new();
            for t in targets {
                let Some(s) = states.get(t) else { continue };
                let reached = match goal {
                    Goal::Running { must_change } => {
                        let settled = s.health.is_some()
                            || since.get(t).is_some_and(|at| at.elapsed() >= SETTLE)
                            || s.uptime_secs.is_some_and(|u| u >= SETTLE.as_secs_f64());
                        (s.state == ServiceState::Completed
                            && changed.get(t).copied().unwrap_or(false))
                            || s.state == ServiceState::Running
                                && settled
                                && (!must_change || changed.get(t).copied().unwrap_or(false))
                    }
                    Goal::Stopped => matches!(
                        s.state,
                        ServiceState::Stopped
                            | ServiceState::Failed
                            | ServiceState::Waiting
                            | ServiceState::Completed
                    ),
                };
                if reached {
                    done += 1;
                    continue;
                }
                if let Goal::Running { .. } = goal {
                    let fresh = |n: &str| seen.get(n).copied().unwrap_or(0) >= 2;
                    if s.state == ServiceState::Failed && fresh(t) {
                        failed.push(failure(s, probe_errors.get(t)));
                    } else if s.state == ServiceState::Waiting {
                        for d in &s.waiting_for {
                            if fresh(d)
                                && states
                                    .get(d)
                                    .is_some_and(|ds| ds.state == ServiceState::Failed)
                            {
                                failed.push(format!("{t}: waits for {d}, which failed"));
                            }
                        }
                    }
                }
            }
            // On a terminal, fetch the last probe error of services waiting for health.
            if tty && last_detail.elapsed() > Duration::from_millis(700) {
                last_detail = Instant::now();
                for t in targets {
                    if states
                        .get(t)
                        .is_some_and(|s| s.state == ServiceState::Starting)
                        && let Ok(d) =
                            c.get::<ServiceDetail>(&format!("/v1/services/{}", encode(t)))
                        && let Some(e) = d.health_history.last().and_then(|r| r.error.clone())
                    {
                        probe_errors.insert(t.clone(), e);
                    }
                }
            }
            if tty {
                drawn = draw(targets, &states, &probe_errors, drawn, tick);
                tick += 1;
            } else if let Goal::Running { .. } = goal {
                for t in targets {
                    if let Some(s) = states.get(t) {
                        if s.state == ServiceState::Stopped && !printed.contains_key(t) {
                            continue; // where it starts from is not news
                        }
                        let line = describe(s);
                        if printed.get(t) != Some(&line) {
                            eprintln!("{t}: {line}");
                            printed.insert(t.clone(), line);
                        }
                    }
                }
            }
            if !failed.is_empty() {
                return Err(CliError::Failed(failed.join("\n")));
            }
            if done == targets.len() && !targets.is_empty() {
                let word = match goal {
                    Goal::Running { .. } => "running",
                    Goal::Stopped => "stopped",
                };
                println!(
                    "{} {} service{} {word}",
                    paint("✓", GREEN, Stream::Stdout),
                    targets.len(),
                    if targets.len() == 1 { "" } else { "s" }
                );
                return Ok(());
            }
            if targets.is_empty() {
                println!("nothing to do");
                return Ok(());
            }
            if Instant::now() >= deadline {
                let pending: Vec<String> = targets
                    .iter()
                    .filter_map(|t| states.get(t))
                    .filter(|s| match goal {
                        Goal::Running { .. } => s.state != ServiceState::Running,
                        Goal::Stopped => !matches!(
                            s.state,
                            ServiceState::Stopped | ServiceState::Failed | ServiceState::Completed
                        ),
                    })
                    .map(|s| {
                        failure(
                            s,
                            probe_errors
                                .get(&s.name)
                                .or(fetch_probe_error(c, &s.name).as_ref()),
                        )
                    })
                    .collect();
                return Err(CliError::Failed(format!(
                    "timed out after {}:\n  {}",
                    super::human_duration(timeout.as_secs_f64()),
                    pending.join("\n  ")
                )));
            }
        }
    }
}

fn fetch_probe_error(c: &Client, name: &str) -> Option<String> {
    c.get::<ServiceDetail>(&format!("/v1/services/{}", encode(name)))
        .ok()
        .and_then(|d| d.health_history.last().and_then(|r| r.error.clone()))
}

fn failure(s: &ServiceStatus, probe_error: Option<&String>) -> String {
    let mut m = format!("{} is {}", s.name, s.state.as_str());
    if let Some(e) = &s.last_error {
        m.push_str(&format!(": {e}"));
    }
    if let Some(p) = probe_error
        && !s
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains(p.as_str()))
    {
        m.push_str(&format!(" (last health probe: {p})"));
    }
    m
}

fn describe(s: &ServiceStatus) -> String {
    let mut d = s.state.as_str().to_string();
    match s.state {
        ServiceState::Waiting if !s.waiting_for.is_empty() => {
            d.push_str(&format!(" for {}", s.waiting_for.join(", ")))
        }
        ServiceState::Starting => d.push_str(" (waiting for the health check)"),
        ServiceState::Running => {
            let mut parts = Vec::new();
            if let Some(p) = s.pid {
                parts.push(format!("pid {p}"));
            }
            if let Some(p) = s.port {
                parts.push(format!("port {p}"));
            }
            if !parts.is_empty() {
                d.push_str(&format!(" ({})", parts.join(", ")));
            }
        }
        _ => {
            if let Some(e) = &s.last_error {
                d.push_str(&format!(": {e}"));
            }
        }
    }
    d
}

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

fn draw(
    targets: &[String],
    states: &BTreeMap<String, ServiceStatus>,
    probe_errors: &BTreeMap<String, String>,
    drawn: usize,
    tick: usize,
) -> usize {
    let mut err = std::io::stderr().lock();
    if drawn > 0 {
        let _ = write!(err, "\x1b[{drawn}A");
    }
    let w = targets.iter().map(String::len).max().unwrap_or(0);
    for t in targets {
        let (mark, text) = match states.get(t) {
            None => (SPINNER[tick % SPINNER.len()].to_string(), "…".to_string()),
            Some(s) => {
                let mark = match s.state {
                    ServiceState::Running => paint("✓", GREEN, Stream::Stderr),
                    ServiceState::Failed => paint("✗", RED, Stream::Stderr),
                    _ => paint(
                        SPINNER[tick % SPINNER.len()],
                        state_color(s.state),
                        Stream::Stderr,
                    ),
                };
                let mut text = describe(s);
                if s.state == ServiceState::Starting
                    && let Some(e) = probe_errors.get(t)
                {
                    text = format!("starting (health check: {e})");
                }
                (
                    mark,
                    paint(
                        &text,
                        if s.state == ServiceState::Running {
                            DIM
                        } else {
                            "0"
                        },
                        Stream::Stderr,
                    ),
                )
            }
        };
        let _ = writeln!(err, "\x1b[2K{mark} {t:<w$}  {text}");
    }
    targets.len()
}
