//! Test harness: a real `aurelia` daemon in a temporary `AURELIA_HOME`, driven through the
//! CLI and the API. Conditions are polled with deadlines, never fixed sleeps. Dropping a
//! [`Stack`] kills its daemon and every process tagged with its home, so tests never leak
//! processes into each other.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use aurelia_api::{Client, Endpoint, ServiceDetail, ServiceList, ServiceState, ServiceStatus};

pub const BIN: &str = env!("CARGO_BIN_EXE_aurelia");

pub struct Stack {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub services: PathBuf,
    /// A scratch directory for test files (markers, scripts).
    pub work: PathBuf,
    daemon: Option<Child>,
    extra_env: Vec<(String, String)>,
}

impl Stack {
    pub fn new() -> Stack {
        let dir = tempfile::Builder::new()
            .prefix("aur")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let home = dir.path().join("h");
        let services = home.join("services");
        let work = dir.path().join("w");
        std::fs::create_dir_all(&services).expect("services dir");
        std::fs::create_dir_all(&work).expect("work dir");
        Stack {
            dir,
            home,
            services,
            work,
            daemon: None,
            extra_env: Vec::new(),
        }
    }

    /// Adds an environment variable for the daemon (and so for its services).
    pub fn env(&mut self, k: &str, v: &str) {
        self.extra_env.push((k.into(), v.into()));
    }

    /// Writes `services/<name>.yaml`.
    pub fn spec(&self, name: &str, yaml: &str) {
        std::fs::write(self.services.join(format!("{name}.yaml")), yaml).expect("write spec");
    }

    /// Writes an executable script into the work directory and returns its path.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.work.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write script");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    }

    pub fn daemon_log(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    /// Starts `aurelia daemon` and waits until it answers.
    pub fn start_daemon(&mut self) {
        let child = self.spawn_daemon();
        self.daemon = Some(child);
        self.wait_answering();
    }

    /// Spawns a daemon process without waiting.
    pub fn spawn_daemon(&self) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.daemon_log())
            .expect("daemon log");
        let mut c = Command::new(BIN);
        c.arg("daemon")
            .env("AURELIA_HOME", &self.home)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log);
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c.spawn().expect("spawn daemon")
    }

    pub fn wait_answering(&mut self) {
        let c = self.client();
        let log = self.daemon_log();
        let daemon = &mut self.daemon;
        wait_for("the daemon to answer", Duration::from_secs(20), || {
            if let Some(d) = daemon.as_mut()
                && let Ok(Some(st)) = d.try_wait()
            {
                panic!(
                    "daemon exited with {st}; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            c.get::<serde_json::Value>("/v1/health").is_ok()
        });
    }

    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Child::id)
    }

    /// Sends a signal to the daemon and waits for it to exit.
    pub fn signal_daemon(&mut self, sig: nix::sys::signal::Signal) {
        let Some(mut d) = self.daemon.take() else {
            return;
        };
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(d.id() as i32), sig);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(_)) = d.try_wait() {
                return;
            }
            assert!(Instant::now() < deadline, "daemon did not exit after {sig}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn stop_daemon(&mut self) {
        self.signal_daemon(nix::sys::signal::Signal::SIGINT);
    }

    pub fn kill_daemon(&mut self) {
        self.signal_daemon(nix::sys::signal::Signal::SIGKILL);
    }

    pub fn client(&self) -> Client {
        Client::new(Endpoint::Unix(self.home.join("aurelia.sock")))
    }

    /// Runs the CLI with this home; fails the test if it takes longer than 60 s.
    pub fn cli(&self, args: &[&str]) -> Output {
        run_with_timeout(
            Command::new(BIN)
                .args(args)
                .env("AURELIA_HOME", &self.home)
                .env("NO_COLOR", "1"),
            Duration::from_secs(60),
        )
    }

    pub fn status(&self, name: &str) -> ServiceStatus {
        self.detail(name).status
    }

    pub fn detail(&self, name: &str) -> ServiceDetail {
        self.client()
            .get::<ServiceDetail>(&format!("/v1/services/{name}"))
            .unwrap_or_else(|e| panic!("GET /v1/services/{name}: {e}"))
    }

    pub fn try_status(&self, name: &str) -> Option<ServiceStatus> {
        self.client()
            .get::<ServiceDetail>(&format!("/v1/services/{name}"))
            .ok()
            .map(|d| d.status)
    }

    pub fn list(&self) -> ServiceList {
        self.client().get("/v1/services").expect("GET /v1/services")
    }

    /// Waits until `name` is in `state`; panics with the status and daemon log otherwise.
    pub fn wait_state(&self, name: &str, state: ServiceState, timeout: Duration) -> ServiceStatus {
        let mut last = None;
        let ok = poll(timeout, || {
            last = self.try_status(name);
            last.as_ref().is_some_and(|s| s.state == state)
        });
        if !ok {
            panic!(
                "{name} did not become {state:?} within {timeout:?}; last status: {last:#?}\ndaemon log:\n{}",
                std::fs::read_to_string(self.daemon_log()).unwrap_or_default()
            );
        }
        last.expect("status")
    }

    /// The service's log file content (current file only).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.home.join("logs").join(format!("{name}.log")))
            .unwrap_or_default()
    }

    /// POST to the API.
    pub fn post(&self, path: &str) -> serde_json::Value {
        self.client()
            .post::<(), serde_json::Value>(path, None)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// Every live process whose environment says it belongs to this home.
    pub fn tagged_processes(&self) -> Vec<u32> {
        tagged_processes(&self.home)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        for pid in tagged_processes(&self.home) {
            // kill the whole group of each service process
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Processes (not zombies) with `AURELIA_HOME=<home>` in their environment.
pub fn tagged_processes(home: &Path) -> Vec<u32> {
    let needle = format!("AURELIA_HOME={}", home.display());
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || !alive(pid) {
            continue;
        }
        if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ"))
            && env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes())
        {
            out.push(pid);
        }
    }
    out
}

/// Whether `pid` is alive and not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s
                .rfind(')')
                .and_then(|i| s[i + 2..].split_whitespace().next().map(str::to_string));
            !matches!(state.as_deref(), Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

/// Live (non-zombie) members of process group `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            let Some(i) = s.rfind(')') else { continue };
            let f: Vec<&str> = s[i + 2..].split_whitespace().collect();
            if f.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid) && f.first() != Some(&"Z")
            {
                out.push(pid);
            }
        }
    }
    out
}

/// Polls `f` every 10 ms until it is true or `timeout` passes.
pub fn poll(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Like [`poll`], but panics naming `what` on timeout.
pub fn wait_for(what: &str, timeout: Duration, f: impl FnMut() -> bool) {
    assert!(
        poll(timeout, f),
        "timed out after {timeout:?} waiting for {what}"
    );
}

/// Runs a command, killing it and failing the test if it runs past `timeout`. Output is read
/// while it runs (a child writing more than a pipe holds must not block).
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let clip = |v: Vec<u8>| {
                let s = String::from_utf8_lossy(&v).into_owned();
                s.chars().take(2000).collect::<String>()
            };
            panic!(
                "{cmd:?} ran longer than {timeout:?}\nstdout: {}\nstderr: {}",
                clip(out.join().unwrap_or_default()),
                clip(err.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Timestamps (ms since the epoch) of the `A` records in a log that contain `needle`.
pub fn note_times(log: &str, needle: &str) -> Vec<i64> {
    log.lines()
        .filter(|l| l.len() > 27 && &l[25..26] == "A" && l[27..].contains(needle))
        .filter_map(|l| parse_ts_ms(&l[..24]))
        .collect()
}

/// `2026-11-27T10:00:00.123Z` to ms since the epoch.
pub fn parse_ts_ms(ts: &str) -> Option<i64> {
    aurelia_supervisor::clock::parse_rfc3339(ts)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
}
