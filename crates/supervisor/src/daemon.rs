//! Daemon start-up and shutdown.
//!
//! Start-up, in this order, so that nothing is touched unless this daemon is the only one:
//! 1. create the home (0700) and take an exclusive lock on `daemon.lock`; if another daemon
//!    holds it, refuse before touching any service;
//! 2. if `aurelia.sock` exists, try to connect: an answer means a daemon is running after all
//!    (refuse); a failed connect means it is stale, and only then is it removed;
//! 3. read `config.yaml` (a broken one is an error naming the line), bind the socket (0600);
//! 4. start the supervisor (which adopts what a previous daemon left running), the spec
//!    watcher, and the API server.
//!
//! Signals: SIGINT (Ctrl-C) stops every service in reverse dependency order, then exits.
//! SIGTERM (what launchd and systemd send at logout or upgrade) exits and leaves the services
//! running for the next daemon to adopt. SIGHUP reloads the specs.

use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;

use aurelia_spec::config::{Config, load_config};
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{broadcast, mpsc};

use crate::driver::Drivers;
use crate::home::Home;
use crate::service::{RelaySettings, TaskEnv};
use crate::supervisor::{self, Command, Supervisor};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(
        "another Aurelia daemon is already running for {home}{pid}; stop it first, or set AURELIA_HOME to run a separate one"
    )]
    AlreadyRunning { home: String, pid: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Config(String),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> DaemonError {
    let context = context.into();
    move |source| DaemonError::Io { context, source }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub home: Home,
    /// Spec directory; default the home's `services/`.
    pub services_dir: Option<PathBuf>,
    /// Bring every service up at start (`aurelia run`).
    pub up_all: bool,
    /// The `aurelia` executable, for the log relays.
    pub relay_exe: PathBuf,
}

/// A started daemon.
pub struct Daemon {
    pub supervisor: Supervisor,
    pub config: Config,
    home: Home,
    join: tokio::task::JoinHandle<()>,
    server: tokio::task::JoinHandle<()>,
    stop_server: tokio::sync::oneshot::Sender<()>,
    _watcher: Option<tokio::task::JoinHandle<()>>,
    _lock: std::fs::File,
    signals: Signals,
}

/// The signals the daemon handles, installed before it answers anything: a signal that
/// arrives the moment the socket works must not kill it with the default action.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, DaemonError> {
        let s = |k| signal(k).map_err(io_err("installing signal handlers"));
        Ok(Signals {
            int: s(SignalKind::interrupt())?,
            term: s(SignalKind::terminate())?,
            hup: s(SignalKind::hangup())?,
        })
    }
}

fn lock(home: &Home) -> Result<std::fs::File, DaemonError> {
    use std::io::{Read, Seek, Write};
    let path = home.lock_file();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err(format!("opening {}", path.display())))?;
    // SAFETY: flock on an fd we own. O_CLOEXEC (std's default) keeps services from
    // inheriting the lock.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r != 0 {
        let mut pid = String::new();
        let _ = f.read_to_string(&mut pid);
        let pid = pid.trim();
        return Err(DaemonError::AlreadyRunning {
            home: home.root.display().to_string(),
            pid: if pid.is_empty() {
                String::new()
            } else {
                format!(" (pid {pid})")
            },
        });
    }
    f.set_len(0).map_err(io_err("writing the lock file"))?;
    f.seek(io::SeekFrom::Start(0))
        .map_err(io_err("writing the lock file"))?;
    let _ = write!(f, "{}", std::process::id());
    Ok(f)
}

fn bind(home: &Home) -> Result<UnixListener, DaemonError> {
    let sock = home.socket();
    if sock.as_os_str().len() >= 104 {
        return Err(DaemonError::Config(format!(
            "the socket path {} is too long for a Unix socket (limit about 104 bytes); set AURELIA_HOME to a shorter path",
            sock.display()
        )));
    }
    if sock.exists() {
        if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
            return Err(DaemonError::AlreadyRunning {
                home: home.root.display().to_string(),
                pid: String::new(),
            });
        }
        tracing::info!("removing stale socket {}", sock.display());
        std::fs::remove_file(&sock)
            .map_err(io_err(format!("removing stale {}", sock.display())))?;
    }
    let l = UnixListener::bind(&sock).map_err(io_err(format!("binding {}", sock.display())))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600))
        .map_err(io_err("setting the socket's permissions"))?;
    Ok(l)
}

impl Daemon {
    /// Starts the daemon (see the module docs for the order of things).
    pub async fn start(opts: Options) -> Result<Daemon, DaemonError> {
        let signals = Signals::install()?;
        let home = opts.home.clone();
        home.prepare(opts.services_dir.is_none())
            .map_err(io_err(format!("creating {}", home.root.display())))?;
        let lock = lock(&home)?;
        let config = load_config(&home.config_file()).map_err(|errs| {
            DaemonError::Config(
                errs.iter()
                    .map(|d| d.render(&home.config_file()))
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })?;
        let listener = bind(&home)?;
        let (events, _) = broadcast::channel(1024);
        let (changed_tx, changed_rx) = mpsc::unbounded_channel();
        let env = Arc::new(TaskEnv {
            home: home.clone(),
            drivers: drivers(&config),
            relay: Some(RelaySettings {
                launcher: crate::driver::RelayLauncher::start(),
                exe: opts.relay_exe.clone(),
                max_bytes: config.log_max_size,
                max_files: config.log_max_files,
            }),
            changed: changed_tx,
            events: events.clone(),
        });
        let services_dir = opts
            .services_dir
            .clone()
            .unwrap_or_else(|| home.services_dir());
        let set = supervisor::load_specs(&services_dir);
        let (state, warning) = crate::state::StateFile::load(&home.state_file());
        if let Some(w) = warning {
            tracing::warn!("{w}");
        }
        #[cfg(feature = "container")]
        let containers = crate::driver::container::adoptable(
            &home,
            &set.specs,
            &state,
            config.log_max_size,
            config.log_max_files,
        )
        .await;
        #[cfg(not(feature = "container"))]
        let containers = std::collections::BTreeMap::new();
        let (sup, join) = supervisor::start(
            supervisor::Options {
                home: home.clone(),
                services_dir: services_dir.clone(),
                config: config.clone(),
                env,
                changed_rx,
                events,
                up_all: opts.up_all,
            },
            set,
            state,
            containers,
        );
        let watcher = match crate::watch::spawn(services_dir.clone(), sup.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(
                    "cannot watch {} for changes ({e}); use `aurelia reload`",
                    services_dir.display()
                );
                None
            }
        };
        let app = crate::server::router(sup.clone());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let r = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                })
                .await;
            if let Err(e) = r {
                tracing::error!("API server: {e}");
            }
        });
        tracing::info!(home = %home.root.display(), services = %services_dir.display(), "daemon started");
        Ok(Daemon {
            supervisor: sup,
            config,
            home,
            join,
            server,
            stop_server: stop_tx,
            _watcher: watcher,
            _lock: lock,
            signals,
        })
    }

    /// Runs until SIGINT (stop everything) or SIGTERM (leave everything running).
    pub async fn run_until_signal(mut self) -> Result<(), DaemonError> {
        let stop_services = loop {
            let sig = &mut self.signals;
            tokio::select! {
                _ = sig.int.recv() => {
                    tracing::info!("SIGINT: stopping every service, then exiting");
                    break true;
                }
                _ = sig.term.recv() => {
                    tracing::info!("SIGTERM: exiting and leaving services running for the next daemon");
                    break false;
                }
                _ = sig.hup.recv() => {
                    let _ = self.supervisor.cmd.send(Command::Reload { reply: None });
                }
            }
        };
        self.shutdown(stop_services).await;
        Ok(())
    }

    /// Stops (or detaches) every service and ends the daemon.
    pub async fn shutdown(self, stop_services: bool) {
        let _ = self
            .supervisor
            .ask(|reply| Command::Shutdown {
                stop_services,
                reply,
            })
            .await;
        let _ = self.join.await;
        let _ = self.stop_server.send(());
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.server).await;
        let _ = std::fs::remove_file(self.home.socket());
        tracing::info!("daemon stopped");
    }
}

fn drivers(config: &Config) -> Drivers {
    let native: Arc<dyn crate::driver::Driver> = Arc::new(crate::driver::native::NativeDriver);
    #[cfg(feature = "container")]
    let container: Arc<dyn crate::driver::Driver> = Arc::new(
        crate::driver::container::ContainerDriver::new(config.log_max_size, config.log_max_files),
    );
    #[cfg(not(feature = "container"))]
    let _ = config;
    #[cfg(not(feature = "container"))]
    let container: Arc<dyn crate::driver::Driver> = Arc::new(crate::driver::NoContainers);
    Drivers { native, container }
}
