//! The supervisor: one task that owns the set of services and decides who runs.
//!
//! It holds the specs, the dependency graph, what the user wants up, port allocations and the
//! state file, and drives the per-service tasks (`service.rs`) with messages. Its core is
//! [`Orchestrator::reconcile`], run after every command and every state change a service task
//! reports. It compares what is wanted with what is, and sends the few messages that close the
//! gap:
//!
//! - a wanted service starts once everything in its `after` list is ready (running, and
//!   healthy where it has a check); until then it shows as `waiting` for them;
//! - a running service whose `requires` dependency is not ready (stopped, crashed, unhealthy,
//!   being restarted) is stopped (cascade) and stays wanted, so it returns on its own when the
//!   dependency is ready again;
//! - a service the user stops is stopped only after those of its dependents that go down with
//!   it, so stops run in reverse dependency order;
//! - a user restart first takes down the hard dependents, then restarts the service, then the
//!   dependents come back.
//!
//! Because reconcile only compares states, the same rules cover `up`, `down`, crashes, health
//! failures, reloads and daemon start-up after a crash.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use aurelia_api::{Event, ProbeResult, ReloadResult, ServiceState, ServiceStatus};
use aurelia_spec::config::Config;
use aurelia_spec::{Graph, PortSpec, ServiceKind, Spec, SpecSet};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::home::Home;
use crate::logs::hub::LogHub;
use crate::ports::PortAllocator;
use crate::service::{self, Adoption, Control, ServiceHandle, Snapshot, TaskEnv};
use crate::state::{ServiceRecord, StateFile};

/// Why an operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    #[error("no service named \"{0}\"")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    InvalidSpec(String),
    #[error("the supervisor is shutting down")]
    ShuttingDown,
}

/// What the API and CLI can ask of the supervisor.
pub enum Command {
    Up {
        services: Vec<String>,
        reply: oneshot::Sender<Result<Vec<String>, OpError>>,
    },
    Down {
        services: Vec<String>,
        reply: oneshot::Sender<Result<Vec<String>, OpError>>,
    },
    Restart {
        service: String,
        reply: oneshot::Sender<Result<Vec<String>, OpError>>,
    },
    Reload {
        reply: Option<oneshot::Sender<Result<ReloadResult, OpError>>>,
    },
    /// Stop everything (`stop_services`) or leave it running for the next daemon, then end.
    Shutdown {
        stop_services: bool,
        reply: oneshot::Sender<()>,
    },
}

/// A service as the API sees it.
pub struct Entry {
    pub spec: Arc<Spec>,
    pub snapshot: watch::Receiver<Snapshot>,
    pub history: Arc<Mutex<Vec<ProbeResult>>>,
}

/// What API handlers read without going through the supervisor task.
#[derive(Default)]
pub struct Registry {
    pub entries: BTreeMap<String, Entry>,
    pub wanted: BTreeMap<String, bool>,
    pub spec_errors: Vec<String>,
}

/// State shared with the API.
pub struct Shared {
    pub registry: RwLock<Registry>,
    pub events: broadcast::Sender<Event>,
    pub hub: LogHub,
    pub home: Home,
    pub started: Instant,
}

impl Shared {
    /// The status of one service, with `wanted` and uptime filled in.
    pub fn status(&self, name: &str) -> Option<ServiceStatus> {
        let reg = self.registry.read().unwrap_or_else(|p| p.into_inner());
        let e = reg.entries.get(name)?;
        Some(fill(e.snapshot.borrow().status.clone(), &reg))
    }

    /// Every service's status, by name.
    pub fn statuses(&self) -> Vec<ServiceStatus> {
        let reg = self.registry.read().unwrap_or_else(|p| p.into_inner());
        reg.entries
            .values()
            .map(|e| fill(e.snapshot.borrow().status.clone(), &reg))
            .collect()
    }
}

fn fill(mut s: ServiceStatus, reg: &Registry) -> ServiceStatus {
    s.wanted = reg.wanted.get(&s.name).copied().unwrap_or(false);
    if let Some(t) = s
        .started_at
        .as_deref()
        .and_then(crate::clock::parse_rfc3339)
    {
        s.uptime_secs = Some(
            std::time::SystemTime::now()
                .duration_since(t)
                .unwrap_or_default()
                .as_secs_f64(),
        );
    }
    s
}

/// Handle to the supervisor task.
#[derive(Clone)]
pub struct Supervisor {
    pub cmd: mpsc::UnboundedSender<Command>,
    pub shared: Arc<Shared>,
}

impl Supervisor {
    /// Sends a command and waits for its reply.
    pub async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, OpError> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(make(tx)).map_err(|_| OpError::ShuttingDown)?;
        rx.await.map_err(|_| OpError::ShuttingDown)
    }
}

/// Everything needed to start the supervisor.
pub struct Options {
    pub home: Home,
    /// Where the specs are (the home's `services/`, or `aurelia run DIR`).
    pub services_dir: PathBuf,
    pub config: Config,
    pub env: Arc<TaskEnv>,
    pub changed_rx: mpsc::UnboundedReceiver<String>,
    pub events: broadcast::Sender<Event>,
    /// Mark every service wanted at start (`aurelia run`).
    pub up_all: bool,
}

/// Loads the specs of `dir` (a broken file is logged; the valid ones load).
pub fn load_specs(dir: &std::path::Path) -> SpecSet {
    match aurelia_spec::load_path(dir) {
        Ok(set) => set,
        Err(e) => {
            tracing::error!("cannot read the services directory {}: {e}", dir.display());
            SpecSet::default()
        }
    }
}

/// Starts the supervisor task with the loaded specs and state, adopting the processes found
/// by [`crate::adopt::find`] and the containers in `containers`.
pub fn start(
    opts: Options,
    set: SpecSet,
    state: StateFile,
    containers: BTreeMap<String, Adoption>,
) -> (Supervisor, tokio::task::JoinHandle<()>) {
    for line in set.render_errors().lines() {
        tracing::error!("{line}");
    }
    let shared = Arc::new(Shared {
        registry: RwLock::new(Registry::default()),
        events: opts.events.clone(),
        hub: LogHub::new(opts.home.logs_dir()),
        home: opts.home.clone(),
        started: Instant::now(),
    });
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let ports: BTreeMap<String, u16> = state
        .ports
        .iter()
        .filter(|(k, _)| {
            set.specs
                .iter()
                .any(|s| &s.name == *k && s.port == Some(PortSpec::Dynamic))
        })
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let mut orch = Orchestrator {
        shared: shared.clone(),
        env: opts.env,
        specs: BTreeMap::new(),
        graph: Graph::default(),
        handles: BTreeMap::new(),
        wanted: BTreeMap::new(),
        restart_pending: BTreeSet::new(),
        removing: BTreeSet::new(),
        ports: PortAllocator::new(opts.config.port_range, ports),
        saved: state.clone(),
        services_dir: opts.services_dir,
        shutdown: None,
        cmd_rx,
        changed_rx: opts.changed_rx,
    };
    orch.set_spec_errors(&set);
    let mut adoptions = crate::adopt::find(&opts.home, &set.specs, &state);
    adoptions.extend(containers);
    for spec in set.specs {
        let name = spec.name.clone();
        let rec = state.services.get(&name);
        let adoption = adoptions.remove(&name);
        let adopted = adoption.is_some();
        if adopted && rec.is_some_and(|r| r.spec_hash != spec.content_hash()) {
            // The spec changed while no daemon was watching: apply it like a reload would.
            orch.restart_pending.insert(name.clone());
        }
        orch.add_service(Arc::new(spec), adoption);
        let wanted = opts.up_all || rec.is_some_and(|r| r.wanted) || adopted;
        orch.wanted.insert(name, wanted);
    }
    orch.publish_wanted();
    orch.reconcile();
    orch.persist();
    let join = tokio::spawn(async move { orch.run().await });
    (
        Supervisor {
            cmd: cmd_tx,
            shared,
        },
        join,
    )
}

struct Shutdown {
    stop_services: bool,
    deadline: Instant,
    replies: Vec<oneshot::Sender<()>>,
}

struct Orchestrator {
    shared: Arc<Shared>,
    env: Arc<TaskEnv>,
    specs: BTreeMap<String, Arc<Spec>>,
    graph: Graph,
    handles: BTreeMap<String, ServiceHandle>,
    wanted: BTreeMap<String, bool>,
    restart_pending: BTreeSet<String>,
    removing: BTreeSet<String>,
    ports: PortAllocator,
    saved: StateFile,
    services_dir: PathBuf,
    shutdown: Option<Shutdown>,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    changed_rx: mpsc::UnboundedReceiver<String>,
}

impl Orchestrator {
    async fn run(&mut self) {
        loop {
            let deadline = self.shutdown.as_ref().map(|s| s.deadline);
            let timer = async move {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(_) = self.changed_rx.recv() => {
                    // Take every pending notification: one reconcile and one state write for a
                    // burst (100 services starting at once).
                    while self.changed_rx.try_recv().is_ok() {}
                }
                c = self.cmd_rx.recv() => match c {
                    Some(c) => self.command(c).await,
                    None => {
                        // Every handle is gone: nobody can talk to us any more.
                        self.finish(false).await;
                        return;
                    }
                },
                _ = timer => {
                    tracing::warn!("services did not stop in time; stopping the rest now");
                    let stop = self.shutdown.as_ref().is_some_and(|s| s.stop_services);
                    self.finish(stop).await;
                    return;
                }
            }
            self.reconcile();
            self.reap_removed();
            self.persist();
            if self.shutdown_complete() {
                let stop = self.shutdown.as_ref().is_some_and(|s| s.stop_services);
                self.finish(stop).await;
                return;
            }
        }
    }

    fn snapshot(&self, name: &str) -> Option<Snapshot> {
        self.handles.get(name).map(|h| h.snapshot.borrow().clone())
    }

    fn state(&self, name: &str) -> ServiceState {
        self.handles
            .get(name)
            .map_or(ServiceState::Stopped, |h| h.snapshot.borrow().status.state)
    }

    fn kind(&self, name: &str) -> Option<ServiceKind> {
        self.specs.get(name).map(|s| s.kind)
    }

    fn wanted(&self, name: &str) -> bool {
        // While stopping everything (SIGINT) nothing is wanted; while detaching (SIGTERM)
        // wants are unchanged, so nothing is stopped.
        self.wanted.get(name).copied().unwrap_or(false)
            && !self.removing.contains(name)
            && !self.shutdown.as_ref().is_some_and(|s| s.stop_services)
    }

    /// Ready for dependents: running (healthy where checked) and not about to go down.
    fn ready(&self, name: &str) -> bool {
        let up = matches!(
            self.state(name),
            ServiceState::Running | ServiceState::Completed
        );
        if self.kind(name) == Some(ServiceKind::External) {
            return up;
        }
        up && self.wanted(name) && !self.restart_pending.contains(name)
    }

    fn active(state: ServiceState) -> bool {
        matches!(
            state,
            ServiceState::Starting
                | ServiceState::Running
                | ServiceState::Backoff
                | ServiceState::Stopping
        )
    }

    /// Compare wanted and actual states; send the messages that close the gap.
    fn reconcile(&mut self) {
        let names: Vec<String> = self.specs.keys().cloned().collect();
        for name in &names {
            if self.kind(name) == Some(ServiceKind::External) {
                continue;
            }
            let state = self.state(name);
            let Some(h) = self.handles.get(name) else {
                continue;
            };
            if self.restart_pending.contains(name) {
                // Hard dependents go first; then the service restarts.
                let deps_down = self
                    .graph
                    .hard_dependents(name)
                    .iter()
                    .all(|d| !Self::active(self.state(d)));
                if deps_down {
                    self.restart_pending.remove(name);
                    if self.wanted(name) {
                        let port = self.port_for(name);
                        if let Some(h) = self.handles.get(name) {
                            match port {
                                Ok(port) => h.send(Control::Restart { port }),
                                Err(reason) => h.send(Control::Refuse { reason }),
                            }
                        }
                    }
                }
                continue;
            }
            if self.wanted(name) {
                let not_ready = |deps: Vec<&str>| -> Vec<String> {
                    deps.into_iter()
                        .filter(|d| !self.ready(d))
                        .map(str::to_string)
                        .collect()
                };
                let missing_req = not_ready(self.graph.requires_of(name).collect());
                let missing_after = not_ready(self.graph.after_of(name).collect());
                match state {
                    ServiceState::Starting | ServiceState::Running | ServiceState::Backoff
                        if !missing_req.is_empty() =>
                    {
                        h.send(Control::Stop {
                            waiting_for: missing_req,
                        });
                    }
                    ServiceState::Stopped | ServiceState::Waiting => {
                        if missing_after.is_empty() {
                            let port = self.port_for(name);
                            if let Some(h) = self.handles.get(name) {
                                match port {
                                    Ok(port) => h.send(Control::Start { port, reset: false }),
                                    Err(reason) => h.send(Control::Refuse { reason }),
                                }
                            }
                        } else {
                            h.send(Control::Wait {
                                waiting_for: missing_after,
                            });
                        }
                    }
                    _ => {}
                }
            } else {
                let stoppable = matches!(
                    state,
                    ServiceState::Starting
                        | ServiceState::Running
                        | ServiceState::Backoff
                        | ServiceState::Waiting
                );
                if !stoppable {
                    continue;
                }
                // Dependents that go down too (not wanted, or requiring this one) stop first.
                let blocked = self.graph.direct_dependents(name).into_iter().any(|d| {
                    let goes_down = !self.wanted(d) || self.graph.requires_of(d).any(|r| r == name);
                    goes_down && Self::active(self.state(d))
                });
                if !blocked {
                    h.send(Control::Stop {
                        waiting_for: Vec::new(),
                    });
                }
            }
        }
    }

    /// The port to start `name` with.
    fn port_for(&mut self, name: &str) -> Result<Option<u16>, String> {
        let Some(spec) = self.specs.get(name) else {
            return Ok(None);
        };
        match spec.port {
            None => Ok(None),
            Some(PortSpec::Static(p)) => Ok(Some(p)),
            Some(PortSpec::Dynamic) => {
                let reserved: Vec<u16> = self
                    .specs
                    .values()
                    .filter_map(|s| s.static_port())
                    .collect();
                let own = self
                    .snapshot(name)
                    .is_some_and(|s| s.status.pid.is_some() || s.status.container_id.is_some());
                self.ports
                    .allocate(name, &reserved, own)
                    .map(Some)
                    .map_err(|e| e.to_string())
            }
        }
    }

    fn add_service(&mut self, spec: Arc<Spec>, adoption: Option<Adoption>) {
        let name = spec.name.clone();
        let restarts = self.saved.services.get(&name).map_or(0, |r| r.restarts);
        let h = service::spawn(spec.clone(), self.env.clone(), restarts, adoption);
        let entry = Entry {
            spec: spec.clone(),
            snapshot: h.snapshot.clone(),
            history: h.history.clone(),
        };
        self.shared
            .registry
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .insert(name.clone(), entry);
        self.handles.insert(name.clone(), h);
        self.specs.insert(name, spec);
        self.rebuild_graph();
    }

    fn rebuild_graph(&mut self) {
        let specs: Vec<Spec> = self.specs.values().map(|s| (**s).clone()).collect();
        self.graph = Graph::from_specs(&specs);
    }

    fn publish_wanted(&self) {
        let mut reg = self
            .shared
            .registry
            .write()
            .unwrap_or_else(|p| p.into_inner());
        reg.wanted = self.wanted.clone();
    }

    fn set_spec_errors(&self, set: &SpecSet) {
        let mut reg = self
            .shared
            .registry
            .write()
            .unwrap_or_else(|p| p.into_inner());
        reg.spec_errors = set.render_errors().lines().map(str::to_string).collect();
    }

    fn check_names(&self, services: &[String]) -> Result<(), OpError> {
        for s in services {
            if !self.specs.contains_key(s) || self.removing.contains(s) {
                return Err(OpError::NotFound(s.clone()));
            }
        }
        Ok(())
    }

    async fn command(&mut self, c: Command) {
        if self.shutdown.is_some() {
            match c {
                Command::Shutdown { reply, .. } => {
                    if let Some(s) = &mut self.shutdown {
                        s.replies.push(reply);
                    }
                }
                Command::Up { reply, .. }
                | Command::Down { reply, .. }
                | Command::Restart { reply, .. } => {
                    let _ = reply.send(Err(OpError::ShuttingDown));
                }
                Command::Reload { reply } => {
                    if let Some(r) = reply {
                        let _ = r.send(Err(OpError::ShuttingDown));
                    }
                }
            }
            return;
        }
        match c {
            Command::Up { services, reply } => {
                let _ = reply.send(self.up(services));
            }
            Command::Down { services, reply } => {
                let _ = reply.send(self.down(services));
            }
            Command::Restart { service, reply } => {
                let _ = reply.send(self.restart(service));
            }
            Command::Reload { reply } => {
                let r = self.reload();
                match (&r, reply) {
                    (_, Some(reply)) => {
                        let _ = reply.send(r);
                    }
                    (Ok(res), None) => tracing::info!(
                        "reloaded specs: added {:?}, removed {:?}, restarted {:?}",
                        res.added,
                        res.removed,
                        res.restarted
                    ),
                    (Err(e), None) => {
                        for line in e.to_string().lines() {
                            tracing::error!("reload refused, nothing changed: {line}");
                        }
                    }
                }
            }
            Command::Shutdown {
                stop_services,
                reply,
            } => {
                let timeout = self
                    .specs
                    .values()
                    .map(|s| s.stop_timeout.to_std())
                    .max()
                    .unwrap_or_default();
                self.shutdown = Some(Shutdown {
                    stop_services,
                    deadline: Instant::now() + timeout * 2 + Duration::from_secs(5),
                    replies: vec![reply],
                });
                if !stop_services {
                    // Leave everything as it is for the next daemon.
                    self.persist_with(|_| {});
                }
            }
        }
    }

    fn up(&mut self, services: Vec<String>) -> Result<Vec<String>, OpError> {
        self.check_names(&services)?;
        let explicit = !services.is_empty();
        for s in &services {
            if self.kind(s) == Some(ServiceKind::External) {
                return Err(OpError::Conflict(format!(
                    "\"{s}\" is an external service: Aurelia only watches its health and never starts it"
                )));
            }
        }
        let mut targets: BTreeSet<String> = BTreeSet::new();
        let roots: Vec<String> = if explicit {
            services
        } else {
            self.specs.keys().cloned().collect()
        };
        for s in &roots {
            targets.insert(s.clone());
            targets.extend(self.graph.transitive_after(s));
        }
        let targets: Vec<String> = targets
            .into_iter()
            .filter(|s| self.kind(s) != Some(ServiceKind::External))
            .collect();
        for s in &targets {
            self.wanted.insert(s.clone(), true);
            if matches!(
                self.state(s),
                ServiceState::Failed | ServiceState::Completed
            ) && let Some(h) = self.handles.get(s)
            {
                // A fresh start for what gave up (no dependency gate: reconcile would have
                // started it anyway once its dependencies are ready; Start only acts on
                // stopped/failed services).
                let deps_ready = self.graph.after_of(s).all(|d| self.ready(d));
                if deps_ready {
                    let port = self.port_for(s);
                    if let Some(h) = self.handles.get(s) {
                        match port {
                            Ok(port) => h.send(Control::Start { port, reset: true }),
                            Err(reason) => h.send(Control::Refuse { reason }),
                        }
                    }
                } else {
                    h.send(Control::Wait {
                        waiting_for: self.graph.after_of(s).map(str::to_string).collect(),
                    });
                }
            }
        }
        self.publish_wanted();
        Ok(targets)
    }

    fn down(&mut self, services: Vec<String>) -> Result<Vec<String>, OpError> {
        self.check_names(&services)?;
        for s in &services {
            if self.kind(s) == Some(ServiceKind::External) {
                return Err(OpError::Conflict(format!(
                    "\"{s}\" is an external service: Aurelia never stops it"
                )));
            }
        }
        let targets: Vec<String> = if services.is_empty() {
            self.specs
                .keys()
                .filter(|s| self.kind(s) != Some(ServiceKind::External))
                .cloned()
                .collect()
        } else {
            services
        };
        for s in &targets {
            self.wanted.insert(s.clone(), false);
            self.restart_pending.remove(s);
        }
        self.publish_wanted();
        Ok(targets)
    }

    fn restart(&mut self, service: String) -> Result<Vec<String>, OpError> {
        self.check_names(std::slice::from_ref(&service))?;
        if self.kind(&service) == Some(ServiceKind::External) {
            return Err(OpError::Conflict(format!(
                "\"{service}\" is an external service: Aurelia never restarts it"
            )));
        }
        if !self.wanted(&service) {
            // Restarting a stopped service starts it.
            return self.up(vec![service]);
        }
        self.restart_pending.insert(service.clone());
        let mut affected = vec![service.clone()];
        affected.extend(self.graph.hard_dependents(&service));
        Ok(affected)
    }

    /// Re-reads the specs and applies the differences. An invalid set changes nothing.
    fn reload(&mut self) -> Result<ReloadResult, OpError> {
        let set = match aurelia_spec::load_path(&self.services_dir) {
            Ok(set) => set,
            Err(e) => {
                return Err(OpError::InvalidSpec(format!(
                    "cannot read the services directory {}: {e}; keeping the current services",
                    self.services_dir.display()
                )));
            }
        };
        if !set.is_valid() {
            self.set_spec_errors(&set);
            return Err(OpError::InvalidSpec(set.render_errors()));
        }
        self.set_spec_errors(&set);
        let mut result = ReloadResult::default();
        let new: BTreeMap<String, Spec> =
            set.specs.into_iter().map(|s| (s.name.clone(), s)).collect();
        for name in self.specs.keys() {
            if !new.contains_key(name) && !self.removing.contains(name) {
                result.removed.push(name.clone());
            }
        }
        for name in &result.removed {
            self.removing.insert(name.clone());
            self.restart_pending.remove(name);
        }
        for (name, spec) in new {
            let hash = spec.content_hash();
            match self.specs.get(&name) {
                None => {
                    result.added.push(name.clone());
                    self.removing.remove(&name);
                    self.add_service(Arc::new(spec), None);
                    self.wanted.insert(name, true);
                }
                Some(old) if old.content_hash() != hash => {
                    result.restarted.push(name.clone());
                    let spec = Arc::new(spec);
                    if spec.port != Some(PortSpec::Dynamic) {
                        self.ports.release(&name);
                    }
                    self.specs.insert(name.clone(), spec.clone());
                    if let Some(reg) = self
                        .shared
                        .registry
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .entries
                        .get_mut(&name)
                    {
                        reg.spec = spec.clone();
                    }
                    if let Some(h) = self.handles.get(&name) {
                        h.send(Control::UpdateSpec(spec));
                    }
                    self.wanted.insert(name.clone(), true);
                    if Self::active(self.state(&name)) {
                        self.restart_pending.insert(name);
                    }
                }
                Some(_) => result.unchanged.push(name),
            }
        }
        self.rebuild_graph();
        self.publish_wanted();
        let _ = self.shared.events.send(Event::Reload(result.clone()));
        Ok(result)
    }

    /// Removes services whose spec is gone once they are stopped.
    fn reap_removed(&mut self) {
        let done: Vec<String> = self
            .removing
            .iter()
            .filter(|n| !Self::active(self.state(n)))
            .filter(|n| {
                // dependents that require it must be gone first (they are removed too, or the
                // reload would have been invalid)
                self.graph
                    .hard_dependents(n)
                    .iter()
                    .all(|d| !Self::active(self.state(d)))
            })
            .cloned()
            .collect();
        if done.is_empty() {
            return;
        }
        for name in done {
            self.removing.remove(&name);
            if let Some(h) = self.handles.remove(&name) {
                let (tx, _rx) = oneshot::channel();
                h.send(Control::Shutdown(tx));
            }
            self.specs.remove(&name);
            self.wanted.remove(&name);
            self.ports.release(&name);
            self.shared
                .registry
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .entries
                .remove(&name);
            let _ = self.shared.events.send(Event::Removed { service: name });
        }
        self.rebuild_graph();
        self.publish_wanted();
    }

    fn shutdown_complete(&self) -> bool {
        match &self.shutdown {
            None => false,
            Some(s) if !s.stop_services => true,
            Some(_) => self
                .specs
                .iter()
                .filter(|(_, s)| s.kind != ServiceKind::External)
                .all(|(n, _)| !Self::active(self.state(n))),
        }
    }

    /// Ends every task: stops what is left (`stop`) or detaches, then answers the shutdown.
    async fn finish(&mut self, stop: bool) {
        if stop {
            // Whatever did not stop in order (timeout) is stopped now, all at once.
            for w in self.wanted.values_mut() {
                *w = false;
            }
        }
        self.persist();
        let mut waits = Vec::new();
        for h in self.handles.values() {
            let (tx, rx) = oneshot::channel();
            h.send(if stop {
                Control::Shutdown(tx)
            } else {
                Control::Detach(tx)
            });
            waits.push(rx);
        }
        for w in waits {
            let _ = w.await;
        }
        if let Some(s) = self.shutdown.take() {
            for r in s.replies {
                let _ = r.send(());
            }
        }
    }

    fn persist(&mut self) {
        self.persist_with(|_| {});
    }

    fn persist_with(&mut self, f: impl FnOnce(&mut StateFile)) {
        let mut st = StateFile::empty();
        for (name, h) in &self.handles {
            let snap = h.snapshot.borrow();
            let s = &snap.status;
            st.services.insert(
                name.clone(),
                ServiceRecord {
                    pid: s.pid,
                    pgid: snap.pgid,
                    start_time: snap.start_time,
                    container_id: s.container_id.clone(),
                    port: s.port,
                    spec_hash: s.spec_hash.clone(),
                    restarts: s.restarts,
                    started_at: s.started_at.clone(),
                    wanted: self.wanted.get(name).copied().unwrap_or(false),
                },
            );
        }
        st.ports = self.ports.assigned().clone();
        f(&mut st);
        if st != self.saved {
            match st.save(&self.shared.home.state_file()) {
                Ok(()) => self.saved = st,
                Err(e) => tracing::error!(
                    "cannot write {}: {e}; a daemon crash now would not re-adopt services",
                    self.shared.home.state_file().display()
                ),
            }
        }
    }
}
