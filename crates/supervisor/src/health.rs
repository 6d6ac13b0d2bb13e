//! Health probes (HTTP, TCP, exec) and the health state machine.
//!
//! [`HealthTracker`] is pure: it takes results with their times and says when the state
//! changes and when to probe next, so its rules are unit-tested with injected time:
//!
//! - `unknown` until the first result, and through `grace_period` (no probe runs then).
//! - **Fast readiness**: until the first healthy result, probe every 20 ms for the first two
//!   seconds, then every 100 ms (never more often than `interval`); then settle to
//!   `interval`. A service that listens 200 ms after spawn is healthy within about 20 ms of
//!   listening, not after 10 s, and a chain of such services adds little to their own
//!   start-up times.
//! - Before the first healthy result, failures are not counted one by one (fast probing would
//!   otherwise turn three 100 ms misses into "unhealthy" while the service is still booting);
//!   instead the service is unhealthy if it is not healthy by `grace_period + interval ×
//!   unhealthy_threshold`, the time slow probing would have taken to decide.
//! - After that, `unhealthy_threshold` consecutive failures make it `unhealthy`; one success
//!   makes it `healthy`.
//!
//! Probes themselves ([`run_probe`]) never hang: everything is bounded by `timeout`, HTTP
//! bodies are never read (a 10 GB body costs nothing), redirects are reported, not followed.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aurelia_api::{HealthState, ProbeResult};
use aurelia_spec::{HealthSpec, Probe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How many recent results are kept for the detail view.
pub const HISTORY: usize = 20;
/// Probe period before the first healthy result, for the first [`EAGER_FOR`] after start.
pub const EAGER_INTERVAL: Duration = Duration::from_millis(20);
/// How long the eager period lasts.
pub const EAGER_FOR: Duration = Duration::from_secs(2);
/// Probe period before the first healthy result, after the eager period.
pub const FAST_INTERVAL: Duration = Duration::from_millis(100);

/// A state change reported by [`HealthTracker::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    BecameHealthy,
    BecameUnhealthy,
}

/// The health state machine for one run of a service.
#[derive(Debug, Clone)]
pub struct HealthTracker {
    interval: Duration,
    timeout: Duration,
    grace: Duration,
    threshold: u32,
    started: Instant,
    state: HealthState,
    ever_healthy: bool,
    failures: u32,
    history: VecDeque<ProbeResult>,
}

impl HealthTracker {
    pub fn new(spec: &HealthSpec, started: Instant) -> HealthTracker {
        HealthTracker {
            interval: spec.interval.to_std(),
            timeout: spec.timeout.to_std(),
            grace: spec.grace_period.to_std(),
            threshold: spec.unhealthy_threshold.max(1),
            started,
            state: HealthState::Unknown,
            ever_healthy: false,
            failures: 0,
            history: VecDeque::with_capacity(HISTORY),
        }
    }

    pub fn state(&self) -> HealthState {
        self.state
    }

    pub fn history(&self) -> Vec<ProbeResult> {
        self.history.iter().cloned().collect()
    }

    /// Keeps the history but starts a new run (after a restart).
    pub fn restart(&mut self, now: Instant) {
        self.started = now;
        self.state = HealthState::Unknown;
        self.ever_healthy = false;
        self.failures = 0;
    }

    /// Treats the service as having been healthy before (an adopted process that was up
    /// under the previous daemon): failures then count against the threshold right away.
    pub fn assume_healthy(&mut self) {
        self.ever_healthy = true;
    }

    /// When the first probe may run.
    pub fn first_probe_at(&self) -> Instant {
        self.started + self.grace
    }

    /// When the next probe should run, given the last one started at `last_start`.
    pub fn next_probe_at(&self, last_start: Instant) -> Instant {
        let period = if self.ever_healthy {
            self.interval
        } else if last_start.saturating_duration_since(self.started) < EAGER_FOR {
            EAGER_INTERVAL.min(self.interval)
        } else {
            FAST_INTERVAL.min(self.interval)
        };
        last_start + period
    }

    /// The time by which the service must have become healthy once (see module docs).
    pub fn startup_deadline(&self) -> Instant {
        self.started + self.grace + self.interval * self.threshold
    }

    /// The probe timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Records a result that completed at `now`.
    pub fn record(&mut self, outcome: &ProbeOutcome, at: String, now: Instant) -> Transition {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(ProbeResult {
            at,
            ok: outcome.ok,
            latency_ms: outcome.latency.as_secs_f64() * 1000.0,
            error: outcome.error.clone(),
        });
        if outcome.ok {
            self.failures = 0;
            self.ever_healthy = true;
            if self.state != HealthState::Healthy {
                self.state = HealthState::Healthy;
                return Transition::BecameHealthy;
            }
            return Transition::None;
        }
        self.failures += 1;
        let unhealthy = if self.ever_healthy {
            self.failures >= self.threshold
        } else {
            now >= self.startup_deadline()
        };
        if unhealthy && self.state != HealthState::Unhealthy {
            self.state = HealthState::Unhealthy;
            return Transition::BecameUnhealthy;
        }
        Transition::None
    }

    /// The last probe error, for messages.
    pub fn last_error(&self) -> Option<String> {
        self.history.back().and_then(|r| r.error.clone())
    }
}

/// The result of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    pub ok: bool,
    pub latency: Duration,
    pub error: Option<String>,
}

/// Everything a probe needs, owned, so a probe can run as a detached future.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    pub probe: Probe,
    pub port: Option<u16>,
    pub timeout: Duration,
    /// For exec probes: the service's working directory and environment.
    pub cwd: Option<PathBuf>,
    pub env: Vec<(String, String)>,
}

/// Runs one probe; never takes (much) longer than the timeout.
pub async fn run_probe(t: ProbeTarget) -> ProbeOutcome {
    let start = Instant::now();
    let res = match tokio::time::timeout(t.timeout, probe_inner(&t)).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {}", fmt_dur(t.timeout))),
    };
    ProbeOutcome {
        ok: res.is_ok(),
        latency: start.elapsed(),
        error: res.err(),
    }
}

fn fmt_dur(d: Duration) -> String {
    aurelia_spec::GoDuration(d.as_nanos().min(i64::MAX as u128) as i64).to_string()
}

async fn probe_inner(t: &ProbeTarget) -> Result<(), String> {
    match &t.probe {
        Probe::Tcp => {
            let port = t.port.ok_or("no port to probe")?;
            connect(port).await.map(|_| ())
        }
        Probe::Http { path } => {
            let port = t.port.ok_or("no port to probe")?;
            http_get(port, path).await
        }
        Probe::Exec { command } => exec(command, t).await,
    }
}

async fn connect(port: u16) -> Result<TcpStream, String> {
    match TcpStream::connect(("127.0.0.1", port)).await {
        Ok(s) => Ok(s),
        Err(e4) => match TcpStream::connect(("::1", port)).await {
            Ok(s) => Ok(s),
            Err(_) => Err(format!("connect to 127.0.0.1:{port}: {e4}")),
        },
    }
}

/// GET `path`; reads the status line and headers only (bounded), never the body.
async fn http_get(port: u16, path: &str) -> Result<(), String> {
    let mut s = connect(port).await?;
    let _ = s.set_nodelay(true);
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: aurelia-health\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("sending request: {e}"))?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    loop {
        let n = s
            .read(&mut buf)
            .await
            .map_err(|e| format!("reading response: {e}"))?;
        if n == 0 {
            if head.is_empty() {
                return Err("connection closed without a response".into());
            }
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.len() > 16 * 1024 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head);
    let status_line = text.lines().next().unwrap_or("");
    let mut parts = status_line.split_whitespace();
    let proto = parts.next().unwrap_or("");
    let code: u16 = parts
        .next()
        .and_then(|c| c.parse().ok())
        .filter(|_| proto.starts_with("HTTP/"))
        .ok_or_else(|| format!("not an HTTP response: {:?}", truncate(status_line, 80)))?;
    match code {
        200..=299 => Ok(()),
        300..=399 => {
            let loc = text
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case("location")
                        .then(|| v.trim().to_string())
                })
                .unwrap_or_default();
            Err(format!(
                "HTTP {code} redirect to {loc:?} (redirects are not followed; point health.path at the final URL)"
            ))
        }
        _ => Err(format!("HTTP {code}")),
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

async fn exec(command: &[String], t: &ProbeTarget) -> Result<(), String> {
    let Some((prog, args)) = command.split_first() else {
        return Err("empty health command".into());
    };
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &t.cwd {
        cmd.current_dir(cwd);
    }
    cmd.envs(t.env.iter().map(|(k, v)| (k, v)));
    let child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("health command not found: {prog}")
        } else {
            format!("starting health command {prog}: {e}")
        }
    })?;
    let pgid = child.id();
    // On timeout, run_probe drops this future: kill_on_drop kills the leader, and the guard
    // below kills the rest of its process group.
    struct GroupGuard(Option<u32>);
    impl Drop for GroupGuard {
        fn drop(&mut self) {
            if let Some(p) = self.0 {
                let _ = crate::proc::signal_group(p, nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
    let _guard = GroupGuard(pgid);
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("waiting for health command: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let mut msg = match out.status.code() {
        Some(c) => format!("{prog} exited with code {c}"),
        None => format!("{prog} was killed by a signal"),
    };
    let tail = String::from_utf8_lossy(if out.stderr.is_empty() {
        &out.stdout
    } else {
        &out.stderr
    })
    .trim()
    .to_string();
    if !tail.is_empty() {
        msg.push_str(": ");
        msg.push_str(truncate(tail.lines().last().unwrap_or(""), 200));
    }
    Err(msg)
}

/// A one-line summary of a health check, for the detail view.
pub fn describe(spec: &HealthSpec, port: Option<u16>) -> String {
    let p = port.map(|p| format!(":{p}")).unwrap_or_default();
    let what = match &spec.probe {
        Probe::Http { path } => format!("http {p}{path}"),
        Probe::Tcp => format!("tcp {p}"),
        Probe::Exec { command } => format!("exec {}", command.join(" ")),
    };
    format!(
        "{what} every {} (timeout {}, unhealthy after {} failures)",
        spec.interval, spec.timeout, spec.unhealthy_threshold
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aurelia_spec::GoDuration;

    fn spec(interval: i64, threshold: u32, grace: i64) -> HealthSpec {
        HealthSpec {
            probe: Probe::Tcp,
            port: Some(1),
            interval: GoDuration::from_millis(interval),
            timeout: GoDuration::from_millis(500),
            grace_period: GoDuration::from_millis(grace),
            unhealthy_threshold: threshold,
        }
    }

    fn ok() -> ProbeOutcome {
        ProbeOutcome {
            ok: true,
            latency: Duration::from_millis(1),
            error: None,
        }
    }
    fn fail() -> ProbeOutcome {
        ProbeOutcome {
            ok: false,
            latency: Duration::from_millis(1),
            error: Some("refused".into()),
        }
    }

    #[test]
    fn fast_until_first_healthy_then_interval() {
        let t0 = Instant::now();
        let mut h = HealthTracker::new(&spec(10_000, 3, 0), t0);
        assert_eq!(h.state(), HealthState::Unknown);
        assert_eq!(h.first_probe_at(), t0);
        assert_eq!(h.next_probe_at(t0), t0 + EAGER_INTERVAL);
        let later = t0 + EAGER_FOR + Duration::from_millis(1);
        assert_eq!(h.next_probe_at(later), later + FAST_INTERVAL);
        assert_eq!(
            h.record(&fail(), "t".into(), t0 + Duration::from_millis(100)),
            Transition::None
        );
        assert_eq!(
            h.record(&fail(), "t".into(), t0 + Duration::from_millis(200)),
            Transition::None
        );
        assert_eq!(
            h.record(&fail(), "t".into(), t0 + Duration::from_millis(300)),
            Transition::None
        );
        assert_eq!(
            h.state(),
            HealthState::Unknown,
            "startup misses do not count one by one"
        );
        assert_eq!(
            h.record(&ok(), "t".into(), t0 + Duration::from_millis(400)),
            Transition::BecameHealthy
        );
        let t1 = t0 + Duration::from_millis(400);
        assert_eq!(h.next_probe_at(t1), t1 + Duration::from_secs(10));
    }

    #[test]
    fn threshold_counts_consecutive_failures_after_healthy() {
        let t0 = Instant::now();
        let mut h = HealthTracker::new(&spec(1000, 3, 0), t0);
        h.record(&ok(), "t".into(), t0);
        assert_eq!(h.record(&fail(), "t".into(), t0), Transition::None);
        assert_eq!(h.record(&fail(), "t".into(), t0), Transition::None);
        assert_eq!(
            h.record(&ok(), "t".into(), t0),
            Transition::None,
            "a success resets the count"
        );
        assert_eq!(h.record(&fail(), "t".into(), t0), Transition::None);
        assert_eq!(h.record(&fail(), "t".into(), t0), Transition::None);
        assert_eq!(
            h.record(&fail(), "t".into(), t0),
            Transition::BecameUnhealthy
        );
        assert_eq!(h.record(&fail(), "t".into(), t0), Transition::None);
        assert_eq!(h.record(&ok(), "t".into(), t0), Transition::BecameHealthy);
        assert_eq!(h.history().len(), 9);
    }

    #[test]
    fn never_healthy_fails_at_the_startup_deadline() {
        let t0 = Instant::now();
        let mut h = HealthTracker::new(&spec(1000, 3, 2000), t0);
        assert_eq!(h.first_probe_at(), t0 + Duration::from_secs(2));
        assert_eq!(h.startup_deadline(), t0 + Duration::from_secs(5));
        assert_eq!(
            h.record(&fail(), "t".into(), t0 + Duration::from_millis(4900)),
            Transition::None
        );
        assert_eq!(
            h.record(&fail(), "t".into(), t0 + Duration::from_millis(5000)),
            Transition::BecameUnhealthy
        );
    }

    #[test]
    fn history_is_bounded() {
        let t0 = Instant::now();
        let mut h = HealthTracker::new(&spec(1000, 3, 0), t0);
        for _ in 0..(HISTORY + 5) {
            h.record(&ok(), "t".into(), t0);
        }
        assert_eq!(h.history().len(), HISTORY);
    }
}
