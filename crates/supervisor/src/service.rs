//! One task per service: it owns the service's process, restart policy and health checks, and
//! is driven by [`Control`] messages from the supervisor (`supervisor.rs`).
//!
//! ```text
//!            Start                       spawned (health check)      first healthy probe
//!  Stopped ─────────┐          ┌────────> Starting ──────────────────────> Running
//!  Waiting ─────────┴─> (start)┤                                              │
//!     ▲                        └────────> Running  (no health check)          │
//!     │ Stop (cascade)                                                         │
//!     │                  exit / unhealthy, policy allows, attempts left        ▼
//!  Stopping <── Stop ── any running state ──────────────────────────────> Backoff ──delay──> (start)
//!     │                                    policy forbids / attempts used
//!     └──> Stopped | Waiting               ─────────────────────────────> Failed
//! ```
//!
//! The task publishes a [`Snapshot`] through a `watch` channel after every change and tells the
//! supervisor which service changed; it never looks at other services. Ordering, cascades and
//! "who is wanted" are the supervisor's business. All waiting is event-driven (child exit,
//! timers only for a pending backoff or probe); an idle service costs nothing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aurelia_api::{Event, ExitInfo, HealthState, ProbeResult, ServiceState, ServiceStatus};
use aurelia_spec::{RestartPolicy, ServiceKind, Spec};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until};

use crate::driver::{BoxFuture, Drivers, LogSink, Process, StartContext};
use crate::health::{self, HealthTracker, ProbeOutcome, ProbeTarget, Transition};
use crate::home::Home;
use crate::logs::relay::RelayArgs;

/// The attempt counter resets after the service has stayed up this long.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);

/// Messages to a service task.
pub enum Control {
    /// Start if stopped or waiting (`reset`: also from failed, with a fresh attempt count).
    Start { port: Option<u16>, reset: bool },
    /// Stop; end in `Waiting` (cascade, with what it waits for) or `Stopped` (empty list).
    Stop { waiting_for: Vec<String> },
    /// Stop if running, then start again with a fresh attempt count.
    Restart { port: Option<u16> },
    /// The supervisor cannot start it (no free port): fail with this reason.
    Refuse { reason: String },
    /// Show as waiting for these dependencies (when not running).
    Wait { waiting_for: Vec<String> },
    /// Use this spec from the next start on.
    UpdateSpec(Arc<Spec>),
    /// Take over a process a previous daemon left running.
    Adopt(Adoption),
    /// Exit the task and leave the process running (daemon SIGTERM).
    Detach(oneshot::Sender<()>),
    /// Stop the process and exit the task (spec removed, daemon exit).
    Shutdown(oneshot::Sender<()>),
}

/// A process to adopt, with the bookkeeping from before the daemon restart.
pub struct Adoption {
    pub process: Box<dyn Process>,
    pub port: Option<u16>,
    pub restarts: u32,
}

/// What the task publishes.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub status: ServiceStatus,
    pub pgid: Option<u32>,
    pub start_time: Option<u64>,
}

/// Settings for the log relays.
#[derive(Clone)]
pub struct RelaySettings {
    pub launcher: crate::driver::RelayLauncher,
    pub exe: std::path::PathBuf,
    pub max_bytes: u64,
    pub max_files: u32,
}

/// What every task shares.
pub struct TaskEnv {
    pub home: Home,
    pub drivers: Drivers,
    /// None: no relay (unit tests); output is discarded.
    pub relay: Option<RelaySettings>,
    pub changed: mpsc::UnboundedSender<String>,
    pub events: broadcast::Sender<Event>,
}

/// Handle to a running task.
pub struct ServiceHandle {
    pub tx: mpsc::UnboundedSender<Control>,
    pub snapshot: watch::Receiver<Snapshot>,
    pub history: Arc<Mutex<Vec<ProbeResult>>>,
}

impl ServiceHandle {
    pub fn send(&self, c: Control) {
        // A closed channel means the task ended (shutdown); nothing to do.
        let _ = self.tx.send(c);
    }
}

/// Spawns the task for `spec`, optionally adopting a process left by a previous daemon (done
/// before the first snapshot, so nobody ever sees the service as stopped meanwhile).
pub fn spawn(
    spec: Arc<Spec>,
    env: Arc<TaskEnv>,
    restarts: u32,
    adoption: Option<Adoption>,
) -> ServiceHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut task = Task::new(spec, env, rx, restarts);
    if let Some(a) = adoption {
        task.adopt(a);
    }
    let snapshot = task.status_rx.take().expect("created in new");
    let history = task.history.clone();
    tokio::spawn(async move { task.run().await });
    ServiceHandle {
        tx,
        snapshot,
        history,
    }
}

struct Task {
    spec: Arc<Spec>,
    env: Arc<TaskEnv>,
    rx: mpsc::UnboundedReceiver<Control>,
    status_tx: watch::Sender<Snapshot>,
    status_rx: Option<watch::Receiver<Snapshot>>,
    history: Arc<Mutex<Vec<ProbeResult>>>,

    state: ServiceState,
    proc: Option<Box<dyn Process>>,
    sink: Option<LogSink>,
    port: Option<u16>,
    attempts: u32,
    /// Consecutive transient start failures (engine down), for their own backoff.
    transient_tries: u32,
    restarts: u32,
    last_exit: Option<ExitInfo>,
    last_error: Option<String>,
    waiting_for: Vec<String>,
    adopted: bool,
    started_at: Option<SystemTime>,

    health: Option<HealthTracker>,
    probe_target: Option<ProbeTarget>,
    next_probe: Option<Instant>,
    probe: Option<(Instant, BoxFuture<'static, ProbeOutcome>)>,
    backoff_until: Option<Instant>,
    stable_at: Option<Instant>,
}

enum Flow {
    Continue,
    Exit,
}

impl Task {
    fn new(
        spec: Arc<Spec>,
        env: Arc<TaskEnv>,
        rx: mpsc::UnboundedReceiver<Control>,
        restarts: u32,
    ) -> Task {
        let init = Snapshot {
            status: ServiceStatus {
                name: spec.name.clone(),
                kind: spec.kind.as_str().to_string(),
                state: ServiceState::Stopped,
                health: None,
                wanted: false,
                pid: None,
                container_id: None,
                port: None,
                started_at: None,
                uptime_secs: None,
                restarts,
                last_exit: None,
                last_error: None,
                waiting_for: Vec::new(),
                adopted: false,
                spec_hash: spec.content_hash(),
            },
            pgid: None,
            start_time: None,
        };
        let (status_tx, status_rx) = watch::channel(init);
        let mut t = Task {
            spec,
            env,
            rx,
            status_tx,
            status_rx: Some(status_rx),
            history: Arc::new(Mutex::new(Vec::new())),
            state: ServiceState::Stopped,
            proc: None,
            sink: None,
            port: None,
            attempts: 0,
            transient_tries: 0,
            restarts,
            last_exit: None,
            last_error: None,
            waiting_for: Vec::new(),
            adopted: false,
            started_at: None,
            health: None,
            probe_target: None,
            next_probe: None,
            probe: None,
            backoff_until: None,
            stable_at: None,
        };
        if t.spec.kind == ServiceKind::External {
            t.begin_health(Instant::now(), false);
            t.state = ServiceState::Starting;
            t.publish();
        }
        t
    }

    async fn run(&mut self) {
        loop {
            let proc = &mut self.proc;
            let exit = async move {
                match proc {
                    Some(p) => p.wait().await,
                    None => std::future::pending().await,
                }
            };
            let backoff_until = self.backoff_until;
            let backoff = async move {
                match backoff_until {
                    Some(t) => sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let next_probe = if self.probe.is_none() {
                self.next_probe
            } else {
                None
            };
            let probe_due = async move {
                match next_probe {
                    Some(t) => sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let probe = &mut self.probe;
            let probe_done = async move {
                match probe {
                    Some((_, f)) => f.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                c = self.rx.recv() => match c {
                    Some(c) => {
                        if let Flow::Exit = self.control(c).await {
                            return;
                        }
                    }
                    // The supervisor is gone: leave the process as it is.
                    None => return,
                },
                e = exit => self.on_exit(e).await,
                outcome = probe_done => self.on_probe(outcome).await,
                _ = backoff => self.start_attempt().await,
                _ = probe_due => self.launch_probe(),
            }
        }
    }

    async fn control(&mut self, c: Control) -> Flow {
        match c {
            Control::Start { port, reset } => {
                let startable = matches!(self.state, ServiceState::Stopped | ServiceState::Waiting)
                    || (reset
                        && matches!(self.state, ServiceState::Failed | ServiceState::Completed));
                if self.spec.kind != ServiceKind::External && startable {
                    if reset {
                        self.attempts = 0;
                        if matches!(self.state, ServiceState::Failed | ServiceState::Completed) {
                            // Say that a new run begins, even if it fails the same way again.
                            self.state = ServiceState::Stopped;
                            self.publish();
                        }
                    }
                    self.set_port(port);
                    self.start_attempt().await;
                }
            }
            Control::Stop { waiting_for } => {
                if self.spec.kind != ServiceKind::External {
                    self.stop_process().await;
                    self.attempts = 0;
                    if waiting_for.is_empty() {
                        self.sink = None;
                        self.state = ServiceState::Stopped;
                    } else {
                        self.state = ServiceState::Waiting;
                    }
                    self.waiting_for = waiting_for;
                    self.publish();
                }
            }
            Control::Restart { port } => {
                if self.spec.kind != ServiceKind::External {
                    self.stop_process().await;
                    self.attempts = 0;
                    self.set_port(port);
                    self.start_attempt().await;
                }
            }
            Control::Refuse { reason } => {
                if matches!(
                    self.state,
                    ServiceState::Stopped
                        | ServiceState::Waiting
                        | ServiceState::Failed
                        | ServiceState::Completed
                ) {
                    self.note(&reason);
                    self.fail(reason);
                }
            }
            Control::Wait { waiting_for } => {
                if matches!(self.state, ServiceState::Failed | ServiceState::Completed) {
                    // `up` of a service that gave up, whose dependencies are not ready yet:
                    // wait for them with a fresh attempt count, then start as usual.
                    self.attempts = 0;
                    self.state = ServiceState::Stopped;
                }
                if matches!(self.state, ServiceState::Stopped | ServiceState::Waiting)
                    && (self.state != ServiceState::Waiting || self.waiting_for != waiting_for)
                {
                    self.state = if waiting_for.is_empty() {
                        ServiceState::Stopped
                    } else {
                        ServiceState::Waiting
                    };
                    self.waiting_for = waiting_for;
                    self.publish();
                }
            }
            Control::UpdateSpec(spec) => {
                self.spec = spec;
                self.probe_target = None;
                self.publish();
            }
            Control::Adopt(a) => self.adopt(a),
            Control::Detach(done) => {
                // Dropping the sink closes only the daemon's copies of the pipes; the relay
                // keeps reading while the service lives.
                let _ = done.send(());
                return Flow::Exit;
            }
            Control::Shutdown(done) => {
                if self.spec.kind != ServiceKind::External {
                    self.stop_process().await;
                }
                self.sink = None;
                self.state = ServiceState::Stopped;
                self.publish();
                let _ = done.send(());
                return Flow::Exit;
            }
        }
        Flow::Continue
    }

    /// The port changes rarely (a dynamic port taken by a stranger): then the cached probe
    /// target, which carries it, must go too.
    fn set_port(&mut self, port: Option<u16>) {
        if self.port != port {
            self.port = port;
            self.probe_target = None;
        }
    }

    fn adopt(&mut self, a: Adoption) {
        self.set_port(a.port);
        self.restarts = a.restarts;
        self.started_at = Some(a.process.started_at());
        if let Some(pid) = a.process.pid() {
            self.note(&format!("re-adopted (pid {pid}) by a new daemon"));
        }
        self.proc = Some(a.process);
        self.adopted = true;
        self.state = ServiceState::Running;
        self.last_error = None;
        self.stable_at = Some(Instant::now() + STABLE_AFTER);
        if self.spec.health.is_some() {
            // It was up before the daemon restarted: judge it by the normal threshold rather
            // than as a fresh start, and probe right away.
            self.begin_health(Instant::now(), true);
        }
        self.publish();
    }

    /// Stops the process if there is one (and cancels backoff and probes).
    async fn stop_process(&mut self) {
        self.backoff_until = None;
        self.stable_at = None;
        self.end_health();
        if let Some(mut p) = self.proc.take() {
            self.state = ServiceState::Stopping;
            self.publish();
            let sig = crate::proc::parse_signal(&self.spec.stop_signal);
            let exit = p.stop(sig, self.spec.stop_timeout.to_std()).await;
            self.note(&format!("stopped ({exit})"));
            self.last_exit = Some(exit);
        }
        self.adopted = false;
        self.started_at = None;
    }

    fn ensure_sink(&mut self) -> Result<(), String> {
        let Some(relay) = &self.env.relay else {
            return Ok(());
        };
        if let Some(s) = &mut self.sink
            && s.healthy()
        {
            return Ok(());
        }
        let args = RelayArgs {
            service: self.spec.name.clone(),
            file: self.env.home.log_file(&self.spec.name),
            max_bytes: relay.max_bytes,
            max_files: relay.max_files,
        };
        self.sink = Some(
            LogSink::spawn(&relay.launcher, &relay.exe, &args).map_err(|e| {
                format!("cannot start the log relay ({}): {e}", relay.exe.display())
            })?,
        );
        Ok(())
    }

    async fn start_attempt(&mut self) {
        self.backoff_until = None;
        self.waiting_for.clear();
        if let Err(e) = self.ensure_sink() {
            self.on_failure(e);
            return;
        }
        let driver = match self.spec.kind {
            ServiceKind::Native => self.env.drivers.native.clone(),
            ServiceKind::Container => self.env.drivers.container.clone(),
            ServiceKind::External => return,
        };
        let ctx = StartContext {
            spec: &self.spec,
            port: self.port,
            home: &self.env.home,
            log: self.sink.as_ref(),
        };
        match driver.start(ctx).await {
            Ok(p) => {
                let now = Instant::now();
                self.started_at = Some(p.started_at());
                if let Some(pid) = p.pid() {
                    self.note(&format!("started (pid {pid})"));
                } else if let Some(id) = p.container_id() {
                    self.note(&format!("started (container {})", &id[..id.len().min(12)]));
                }
                self.proc = Some(p);
                self.adopted = false;
                self.transient_tries = 0;
                self.last_error = None;
                self.stable_at = Some(now + STABLE_AFTER);
                if self.spec.health.is_some() {
                    self.begin_health(now, false);
                    self.state = ServiceState::Starting;
                } else {
                    self.state = ServiceState::Running;
                }
                self.publish();
            }
            Err(e) if e.transient => self.on_transient(e.message),
            Err(e) => self.on_failure(e.message),
        }
    }

    /// A start failed for a reason outside the service that should pass (the Docker engine
    /// is down): retry with backoff, 1 s doubling to 30 s, without using up attempts.
    fn on_transient(&mut self, reason: String) {
        if self
            .last_error
            .as_deref()
            .is_none_or(|e| !e.starts_with(&reason))
        {
            self.note(&reason);
        }
        self.transient_tries = self.transient_tries.saturating_add(1);
        let delay = Duration::from_secs(1u64 << self.transient_tries.min(5).saturating_sub(1))
            .min(Duration::from_secs(30));
        self.last_error = Some(format!(
            "{reason}; retrying in {}",
            aurelia_spec::GoDuration(delay.as_nanos() as i64)
        ));
        self.state = ServiceState::Backoff;
        self.backoff_until = Some(Instant::now() + delay);
        self.publish();
    }

    /// The attempt counter resets once a run has lasted [`STABLE_AFTER`]. Checked when the run
    /// ends rather than with a timer, so a long-running service costs no wake-up.
    fn forgive_if_stable(&mut self) {
        if self.stable_at.take().is_some_and(|t| Instant::now() >= t) {
            self.attempts = 0;
        }
    }

    /// A failed start or an unwanted exit: restart per policy, or give up.
    fn on_failure(&mut self, reason: String) {
        self.note(&reason);
        let r = &self.spec.restart;
        if r.policy == RestartPolicy::Never {
            self.fail(reason);
            return;
        }
        if r.max_attempts > 0 && self.attempts >= r.max_attempts {
            self.fail(format!(
                "{reason}; gave up after {} restart attempts",
                self.attempts
            ));
            return;
        }
        self.attempts += 1;
        self.restarts += 1;
        let delay = r.delay_for(self.attempts);
        let of = if r.max_attempts > 0 {
            format!("{}/{}", self.attempts, r.max_attempts)
        } else {
            self.attempts.to_string()
        };
        self.last_error = Some(format!(
            "{reason}; restarting in {} (attempt {of})",
            aurelia_spec::GoDuration(delay.as_nanos() as i64)
        ));
        self.state = ServiceState::Backoff;
        self.backoff_until = Some(Instant::now() + delay);
        self.publish();
    }

    fn fail(&mut self, reason: String) {
        self.state = ServiceState::Failed;
        self.last_error = Some(reason);
        self.sink = None;
        self.publish();
    }

    async fn on_exit(&mut self, exit: ExitInfo) {
        if let Some(mut p) = self.proc.take() {
            p.reap_leftovers(self.spec.stop_timeout.to_std());
        }
        self.end_health();
        self.forgive_if_stable();
        self.started_at = None;
        self.adopted = false;
        let failed = exit.code != Some(0);
        let reason = match (&exit.code, &exit.signal, &exit.note) {
            (Some(c), _, _) => format!("exited with code {c}"),
            (None, Some(sig), _) => format!("was killed by {sig}"),
            (None, None, Some(n)) => n.clone(),
            (None, None, None) => "exited (status unknown)".to_string(),
        };
        self.last_exit = Some(exit);
        match (self.spec.restart.policy, failed) {
            (RestartPolicy::Always, _) | (RestartPolicy::OnFailure, true) => {
                self.on_failure(reason);
                // delay 0: restart now rather than after a timer round trip
                if self.backoff_until.is_some_and(|t| t <= Instant::now()) {
                    self.start_attempt().await;
                }
            }
            (RestartPolicy::Never, true) => {
                self.note(&reason);
                self.fail(reason);
            }
            (_, false) => {
                self.note(&reason);
                self.state = ServiceState::Completed;
                self.last_error = None;
                self.sink = None;
                self.publish();
            }
        }
    }

    fn begin_health(&mut self, now: Instant, assume_healthy: bool) {
        let Some(h) = &self.spec.health else { return };
        let mut tracker = match self.health.take() {
            Some(mut t) => {
                t.restart(now.into_std());
                t
            }
            None => HealthTracker::new(h, now.into_std()),
        };
        if assume_healthy {
            tracker.assume_healthy();
        }
        self.next_probe = Some(if assume_healthy {
            now
        } else {
            Instant::from_std(tracker.first_probe_at())
        });
        self.health = Some(tracker);
        self.probe = None;
    }

    fn end_health(&mut self) {
        self.next_probe = None;
        self.probe = None;
        if let Some(h) = &mut self.health {
            h.restart(Instant::now().into_std());
        }
    }

    fn target(&mut self) -> Option<ProbeTarget> {
        if self.probe_target.is_none() {
            let h = self.spec.health.as_ref()?;
            let (cwd, env) = match h.probe {
                aurelia_spec::Probe::Exec { .. } if self.spec.kind == ServiceKind::Native => (
                    crate::driver::resolve_cwd(&self.spec, self.port).ok(),
                    crate::driver::resolve_env(&self.spec, self.port, &self.env.home)
                        .unwrap_or_default(),
                ),
                _ => (None, Vec::new()),
            };
            self.probe_target = Some(ProbeTarget {
                probe: h.probe.clone(),
                port: h.port.or(self.port).or(self.spec.static_port()),
                timeout: h.timeout.to_std(),
                cwd,
                env,
            });
        }
        self.probe_target.clone()
    }

    fn launch_probe(&mut self) {
        self.next_probe = None;
        let Some(t) = self.target() else { return };
        self.probe = Some((Instant::now(), Box::pin(health::run_probe(t))));
    }

    async fn on_probe(&mut self, outcome: ProbeOutcome) {
        let started = self
            .probe
            .take()
            .map(|(s, _)| s)
            .unwrap_or_else(Instant::now);
        let now = Instant::now();
        let Some(tracker) = &mut self.health else {
            return;
        };
        let transition = tracker.record(&outcome, crate::clock::now(), now.into_std());
        let history = tracker.history();
        let next = Instant::from_std(tracker.next_probe_at(started.into_std())).max(now);
        let last_err = tracker.last_error();
        if let Ok(mut h) = self.history.lock() {
            *h = history;
        }
        self.next_probe = Some(next);
        match transition {
            Transition::None => {}
            Transition::BecameHealthy => {
                if self.spec.kind == ServiceKind::External || self.state == ServiceState::Starting {
                    self.state = ServiceState::Running;
                }
                self.last_error = None;
                self.publish();
            }
            Transition::BecameUnhealthy => {
                let reason = format!("unhealthy: {}", last_err.unwrap_or_default());
                if self.spec.kind == ServiceKind::External {
                    self.state = ServiceState::Failed;
                    self.last_error = Some(reason);
                    self.publish();
                } else if self.spec.restart.policy == RestartPolicy::Never {
                    if self.state == ServiceState::Starting {
                        // It never became ready and will not be restarted: stop it and say so.
                        self.stop_process().await;
                        self.fail(format!(
                            "{reason}; it never became healthy (restart policy is never)"
                        ));
                    } else {
                        self.last_error = Some(format!("{reason} (restart policy is never)"));
                        self.publish();
                    }
                } else {
                    self.forgive_if_stable();
                    self.stop_process().await;
                    self.on_failure(reason);
                }
            }
        }
    }

    /// Writes a line from Aurelia into the service's log.
    fn note(&self, text: &str) {
        if self.env.relay.is_some() {
            crate::logs::note(&self.env.home, &self.spec.name, text);
        }
    }

    fn publish(&mut self) {
        let health = if self.spec.health.is_some() {
            Some(
                self.health
                    .as_ref()
                    .filter(|_| self.proc.is_some() || self.spec.kind == ServiceKind::External)
                    .map_or(HealthState::Unknown, HealthTracker::state),
            )
        } else {
            None
        };
        let p = self.proc.as_ref();
        let snap = Snapshot {
            status: ServiceStatus {
                name: self.spec.name.clone(),
                kind: self.spec.kind.as_str().to_string(),
                state: self.state,
                health,
                wanted: false,
                pid: p.and_then(|p| p.pid()),
                container_id: p.and_then(|p| p.container_id()),
                port: self.port.or(self.spec.static_port()),
                started_at: self.started_at.map(crate::clock::rfc3339_millis),
                uptime_secs: None,
                restarts: self.restarts,
                last_exit: self.last_exit.clone(),
                last_error: self.last_error.clone(),
                waiting_for: self.waiting_for.clone(),
                adopted: self.adopted,
                spec_hash: self.spec.content_hash(),
            },
            pgid: p.and_then(|p| p.pgid()),
            start_time: p.and_then(|p| p.start_time()),
        };
        let changed = self.status_tx.send_if_modified(|cur| {
            if *cur == snap {
                false
            } else {
                *cur = snap.clone();
                true
            }
        });
        if changed {
            let _ = self.env.changed.send(self.spec.name.clone());
            let _ = self.env.events.send(Event::State(snap.status));
        }
    }
}

#[cfg(test)]
mod tests;
