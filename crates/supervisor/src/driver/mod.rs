//! Drivers: how a service's process is started, watched and stopped.
//!
//! A [`Driver`] starts a service and returns a [`Process`] handle; the service task
//! (`service.rs`) owns the handle and only ever talks to this interface, which is what lets
//! its state machine be tested against a fake child. Implementations:
//!
//! - [`native`]: fork/exec of a local program as a process-group leader.
//! - [`adopted`]: a native process left running by a previous daemon, watched by pidfd/kqueue.
//! - `container` (feature `container`): a Docker container through the Engine API.
//!
//! [`stop_group`] is the one stop procedure for process groups: stop signal to the group, wait
//! up to `stop_timeout` for every member to exit, SIGKILL the group, wait again.

pub mod adopted;
#[cfg(feature = "container")]
pub mod container;
pub mod native;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aurelia_api::ExitInfo;
use aurelia_spec::{Spec, expand};
use nix::sys::signal::Signal;

use crate::home::Home;
use crate::logs::relay::RelayArgs;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a driver needs to start a service.
pub struct StartContext<'a> {
    pub spec: &'a Spec,
    pub port: Option<u16>,
    pub home: &'a Home,
    /// Where the output goes: the write ends of the log relay's pipes (None in unit tests).
    pub log: Option<&'a LogSink>,
}

/// A running service process (or container).
pub trait Process: Send {
    fn pid(&self) -> Option<u32>;
    fn pgid(&self) -> Option<u32> {
        self.pid()
    }
    fn container_id(&self) -> Option<String> {
        None
    }
    /// Start time for identity checks (see `proc::start_time`).
    fn start_time(&self) -> Option<u64> {
        None
    }
    /// Wall-clock start of the process.
    fn started_at(&self) -> SystemTime;
    /// Completes when the process has exited. Cancel-safe: it is polled inside `select!`.
    fn wait(&mut self) -> BoxFuture<'_, ExitInfo>;
    /// Stops the process and everything it started; completes when all of it is gone.
    fn stop(&mut self, signal: Signal, timeout: Duration) -> BoxFuture<'_, ExitInfo>;
    /// Called once after `wait` reported the leader's exit on its own: cleans up what the
    /// process left behind (other members of its process group).
    fn reap_leftovers(&mut self, _timeout: Duration) {}
}

/// Why a start failed; the message is shown in `status` as the service's last error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartError {
    pub message: String,
    /// The cause is outside the service and expected to pass (the Docker engine is not
    /// running): retried with backoff without using up `max_attempts`.
    pub transient: bool,
}

impl StartError {
    pub fn new(message: impl Into<String>) -> StartError {
        StartError {
            message: message.into(),
            transient: false,
        }
    }

    pub fn transient(message: impl Into<String>) -> StartError {
        StartError {
            message: message.into(),
            transient: true,
        }
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Starts services of one kind.
pub trait Driver: Send + Sync {
    fn start<'a>(
        &'a self,
        ctx: StartContext<'a>,
    ) -> BoxFuture<'a, Result<Box<dyn Process>, StartError>>;
}

/// The container driver of a build without the `container` feature: every container service
/// fails to start with a message that says so.
#[derive(Debug, Default)]
pub struct NoContainers;

impl Driver for NoContainers {
    fn start<'a>(
        &'a self,
        _ctx: StartContext<'a>,
    ) -> BoxFuture<'a, Result<Box<dyn Process>, StartError>> {
        Box::pin(async {
            Err(StartError::new(
                "this aurelia was built without container support (cargo feature `container`); rebuild it with default features",
            ))
        })
    }
}

/// The drivers a service task chooses from by the spec's kind.
#[derive(Clone)]
pub struct Drivers {
    pub native: Arc<dyn Driver>,
    pub container: Arc<dyn Driver>,
}

/// The write ends of a service's stdout/stderr pipes and the relay process reading them.
pub struct LogSink {
    pub out: std::os::fd::OwnedFd,
    pub err: std::os::fd::OwnedFd,
    relay: RelayState,
}

enum RelayState {
    Pending(tokio::sync::oneshot::Receiver<std::io::Result<tokio::process::Child>>),
    Running(tokio::process::Child),
    Failed,
}

/// One queued relay start.
struct Launch {
    exe: PathBuf,
    args: RelayArgs,
    out_r: std::os::fd::OwnedFd,
    err_r: std::os::fd::OwnedFd,
    done: tokio::sync::oneshot::Sender<std::io::Result<tokio::process::Child>>,
}

/// Starts log relays one at a time, off the path of the service starts.
///
/// A service only needs the write ends of its pipes to start; what it writes waits in the
/// pipe (1 MiB on Linux) until its relay runs. Starting 100 services at once is bound by
/// process start-up CPU on a small machine, so the services go first and the relays follow
/// on one queue instead of competing with them.
#[derive(Clone)]
pub struct RelayLauncher {
    tx: tokio::sync::mpsc::UnboundedSender<Launch>,
}

impl RelayLauncher {
    /// Starts the launcher task (needs a tokio runtime).
    pub fn start() -> RelayLauncher {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Launch>();
        tokio::spawn(async move {
            while let Some(l) = rx.recv().await {
                let r = tokio::process::Command::new(&l.exe)
                    .args(l.args.to_args())
                    .stdin(std::process::Stdio::from(l.out_r))
                    .stdout(std::process::Stdio::from(l.err_r))
                    .stderr(std::process::Stdio::inherit())
                    .process_group(0)
                    .kill_on_drop(false)
                    .spawn();
                if let Err(e) = &r {
                    tracing::error!(service = %l.args.service, "cannot start the log relay ({}): {e}", l.exe.display());
                }
                let _ = l.done.send(r);
                tokio::task::yield_now().await;
            }
        });
        RelayLauncher { tx }
    }
}

impl LogSink {
    /// Creates the pipes and queues `relay_exe __log-relay ...` on their read ends.
    pub fn spawn(
        launcher: &RelayLauncher,
        relay_exe: &std::path::Path,
        args: &RelayArgs,
    ) -> std::io::Result<LogSink> {
        let (out_r, out_w) = cloexec_pipe()?;
        let (err_r, err_w) = cloexec_pipe()?;
        #[cfg(target_os = "linux")]
        for fd in [&out_w, &err_w] {
            // A bigger pipe absorbs bursts while the relay catches up (best effort).
            // SAFETY: fcntl on an fd we own.
            unsafe {
                libc::fcntl(
                    std::os::fd::AsRawFd::as_raw_fd(fd),
                    libc::F_SETPIPE_SZ,
                    1 << 20,
                );
            }
        }
        let (done, rx) = tokio::sync::oneshot::channel();
        launcher
            .tx
            .send(Launch {
                exe: relay_exe.to_path_buf(),
                args: args.clone(),
                out_r,
                err_r,
                done,
            })
            .map_err(|_| std::io::Error::other("the relay launcher has stopped"))?;
        Ok(LogSink {
            out: out_w,
            err: err_w,
            relay: RelayState::Pending(rx),
        })
    }

    /// Whether the relay runs or is about to (a sink whose relay died must be replaced).
    pub fn healthy(&mut self) -> bool {
        if let RelayState::Pending(rx) = &mut self.relay {
            match rx.try_recv() {
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => return true,
                Ok(Ok(child)) => self.relay = RelayState::Running(child),
                Ok(Err(_)) | Err(_) => self.relay = RelayState::Failed,
            }
        }
        match &mut self.relay {
            RelayState::Running(c) => matches!(c.try_wait(), Ok(None)),
            RelayState::Failed => false,
            RelayState::Pending(_) => true,
        }
    }
}

/// A pipe whose ends are not inherited by children (they are passed explicitly).
fn cloexec_pipe() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    #[cfg(target_os = "linux")]
    {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        use nix::fcntl::{FcntlArg, FdFlag, fcntl};
        let (r, w) = nix::unistd::pipe().map_err(std::io::Error::from)?;
        for fd in [&r, &w] {
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(std::io::Error::from)?;
        }
        Ok((r, w))
    }
}

/// A native command resolved for one start: program path, arguments, directory, environment.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    /// Variables added to (or overriding) the daemon's environment.
    pub env: Vec<(String, String)>,
}

/// The variables Aurelia injects and that `${...}` may refer to at start time.
pub fn injected_env(spec: &Spec, port: Option<u16>, home: &Home) -> Vec<(String, String)> {
    let mut v = vec![
        ("AURELIA_SERVICE".to_string(), spec.name.clone()),
        ("AURELIA_HOME".to_string(), home.root.display().to_string()),
    ];
    if let Some(p) = port {
        v.push(("PORT".to_string(), p.to_string()));
    }
    v
}

fn home_dir() -> String {
    std::env::var("HOME").unwrap_or_else(|_| "/".to_string())
}

/// Looks a variable up for expansion: the service's own values first, then the daemon's env.
pub fn lookup_fn<'a>(spec: &'a Spec, port: Option<u16>) -> impl Fn(&str) -> Option<String> + 'a {
    move |name: &str| match name {
        "PORT" => port.map(|p| p.to_string()),
        "SERVICE_NAME" => Some(spec.name.clone()),
        _ => std::env::var(name).ok(),
    }
}

/// Expands the working directory (`~`, `$VAR`; relative to the spec file's directory).
pub fn resolve_cwd(spec: &Spec, port: Option<u16>) -> Result<PathBuf, StartError> {
    let lookup = lookup_fn(spec, port);
    let cwd = match &spec.working_dir {
        Some(wd) => {
            let e = expand::expand(wd, &home_dir(), &lookup)
                .map_err(|e| StartError::new(format!("service.working_dir: {e}")))?;
            let p = PathBuf::from(e);
            if p.is_absolute() {
                p
            } else {
                spec.base_dir.join(p)
            }
        }
        None => spec.base_dir.clone(),
    };
    Ok(cwd)
}

/// Expands the spec's `env:` values.
pub fn resolve_env(
    spec: &Spec,
    port: Option<u16>,
    home: &Home,
) -> Result<Vec<(String, String)>, StartError> {
    let lookup = lookup_fn(spec, port);
    let mut env = injected_env(spec, port, home);
    for (k, v) in &spec.env {
        let val = expand::expand(v, &home_dir(), &lookup)
            .map_err(|e| StartError::new(format!("env.{k}: {e}")))?;
        env.push((k.clone(), val));
    }
    if !spec.secrets.is_empty() {
        let keys: Vec<&str> = spec.secrets.keys().map(String::as_str).collect();
        return Err(StartError::new(format!(
            "this service needs secrets ({}), and this version of Aurelia has no secret store yet; pass them through env for now",
            keys.join(", ")
        )));
    }
    Ok(env)
}

/// Resolves a native service's command for a start.
pub fn resolve(spec: &Spec, port: Option<u16>, home: &Home) -> Result<Resolved, StartError> {
    let lookup = lookup_fn(spec, port);
    let cwd = resolve_cwd(spec, port)?;
    match std::fs::metadata(&cwd) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(StartError::new(format!(
                "working_dir {} is not a directory",
                cwd.display()
            )));
        }
        Err(e) => {
            return Err(StartError::new(format!(
                "working_dir {} does not exist ({e}); create it or fix service.working_dir",
                cwd.display()
            )));
        }
    }
    let env = resolve_env(spec, port, home)?;
    let words = spec
        .command
        .as_ref()
        .ok_or_else(|| StartError::new("no command"))?;
    let mut expanded = Vec::with_capacity(words.len());
    for w in words {
        expanded.push(
            expand::expand(w, &home_dir(), &lookup)
                .map_err(|e| StartError::new(format!("service.command: {e}")))?,
        );
    }
    let (prog, args) = expanded
        .split_first()
        .ok_or_else(|| StartError::new("empty command"))?;
    let path_var = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    let program = find_program(prog, &cwd, &path_var)?;
    Ok(Resolved {
        program,
        args: args.to_vec(),
        cwd,
        env,
    })
}

fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Finds `prog`: a path (relative to the working directory) or a name searched in PATH.
pub fn find_program(
    prog: &str,
    cwd: &std::path::Path,
    path_var: &str,
) -> Result<PathBuf, StartError> {
    if prog.contains('/') {
        let p = PathBuf::from(prog);
        let p = if p.is_absolute() { p } else { cwd.join(p) };
        return match std::fs::metadata(&p) {
            Err(_) => Err(StartError::new(format!(
                "command not found: {} does not exist",
                p.display()
            ))),
            Ok(m) if !m.is_file() => Err(StartError::new(format!("{} is not a file", p.display()))),
            Ok(_) if !is_executable(&p) => Err(StartError::new(format!(
                "{} is not executable (chmod +x it)",
                p.display()
            ))),
            Ok(_) => Ok(p),
        };
    }
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let p = std::path::Path::new(dir).join(prog);
        if is_executable(&p) {
            return Ok(p);
        }
    }
    Err(StartError::new(format!(
        "command not found: {prog} (searched PATH={path_var})"
    )))
}

/// Stops process group `pgid` whose leader's exit is `leader_exit`: `signal` to the group,
/// up to `timeout` for every member to go, then SIGKILL to the group and a last wait.
pub async fn stop_group<F>(
    pgid: u32,
    signal: Signal,
    timeout: Duration,
    leader_exit: F,
) -> Option<ExitInfo>
where
    F: Future<Output = ExitInfo>,
{
    let _ = crate::proc::signal_group(pgid, signal);
    let deadline = Instant::now() + timeout;
    tokio::pin!(leader_exit);
    let mut exit = tokio::time::timeout(timeout, &mut leader_exit).await.ok();
    // The leader is gone (or the time is up); wait for the rest of the group.
    while Instant::now() < deadline && crate::proc::group_has_live_member(pgid) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if crate::proc::group_has_live_member(pgid) || exit.is_none() {
        let _ = crate::proc::signal_group(pgid, Signal::SIGKILL);
        if exit.is_none() {
            exit = tokio::time::timeout(Duration::from_secs(5), &mut leader_exit)
                .await
                .ok();
        }
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end && crate::proc::group_has_live_member(pgid) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    exit
}

/// After a leader exited on its own: SIGTERM the rest of its group now, SIGKILL it after
/// `timeout` if anything is left. Runs in the background.
pub fn clean_group_after_exit(pgid: u32, timeout: Duration) {
    if !crate::proc::group_has_live_member(pgid) {
        return;
    }
    let _ = crate::proc::signal_group(pgid, Signal::SIGTERM);
    tokio::spawn(async move {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline && crate::proc::group_has_live_member(pgid) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = crate::proc::signal_group(pgid, Signal::SIGKILL);
    });
}

/// The ExitInfo for a `std::process::ExitStatus`.
pub fn exit_info(status: std::process::ExitStatus) -> ExitInfo {
    use std::os::unix::process::ExitStatusExt;
    ExitInfo {
        note: None,
        code: status.code(),
        signal: status.signal().map(|s| {
            Signal::try_from(s)
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|_| format!("signal {s}"))
        }),
        at: crate::clock::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_build_without_containers_says_so() {
        let (spec, d) = aurelia_spec::load::load_str(
            "service: {name: db, type: container, image: postgres:16}\n",
            std::path::Path::new("/tmp/db.yaml"),
        );
        assert!(d.is_empty());
        let spec = spec.expect("spec");
        let home = Home::at("/tmp/aurelia-test-home");
        let ctx = StartContext {
            spec: &spec,
            port: None,
            home: &home,
            log: None,
        };
        let err = NoContainers.start(ctx).await.err().expect("an error");
        assert!(
            err.message.contains("built without container support"),
            "{err}"
        );
        assert!(!err.transient);
    }

    #[test]
    fn programs_are_found_or_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let e = find_program("nope-not-here", dir.path(), "/usr/bin:/bin").unwrap_err();
        assert_eq!(
            e.message,
            "command not found: nope-not-here (searched PATH=/usr/bin:/bin)"
        );
        assert!(find_program("sh", dir.path(), "/usr/bin:/bin").is_ok());
        std::fs::write(dir.path().join("script"), "#!/bin/sh\n").expect("write");
        let e = find_program("./script", dir.path(), "").unwrap_err();
        assert!(e.message.contains("is not executable"), "{e}");
    }
}
