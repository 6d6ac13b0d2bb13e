//! The service state machine against a fake child: no real processes, tokio's paused clock,
//! so restart delays are checked exactly.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aurelia_api::{ExitInfo, ServiceState};
use aurelia_spec::Spec;
use nix::sys::signal::Signal;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

use super::*;
use crate::driver::{BoxFuture, Driver, Drivers, Process, StartContext, StartError};

/// What the test sees of one fake process.
struct FakeChild {
    pid: u32,
    exit: Option<oneshot::Sender<ExitInfo>>,
    stops: Arc<Mutex<Vec<(Signal, Duration)>>>,
}

impl FakeChild {
    fn exit(&mut self, code: i32) {
        let _ = self.exit.take().expect("exit once").send(ExitInfo {
            note: None,
            code: Some(code),
            signal: None,
            at: String::new(),
        });
    }
}

struct FakeProcess {
    pid: u32,
    exit: Option<oneshot::Receiver<ExitInfo>>,
    done: Option<ExitInfo>,
    stops: Arc<Mutex<Vec<(Signal, Duration)>>>,
}

impl Process for FakeProcess {
    fn pid(&self) -> Option<u32> {
        Some(self.pid)
    }
    fn started_at(&self) -> SystemTime {
        SystemTime::now()
    }
    fn wait(&mut self) -> BoxFuture<'_, ExitInfo> {
        Box::pin(async move {
            if let Some(d) = &self.done {
                return d.clone();
            }
            let e = match self.exit.as_mut() {
                Some(rx) => rx.await.unwrap_or(ExitInfo {
                    note: None,
                    code: None,
                    signal: None,
                    at: String::new(),
                }),
                None => std::future::pending().await,
            };
            self.exit = None;
            self.done = Some(e.clone());
            e
        })
    }
    fn stop(&mut self, signal: Signal, timeout: Duration) -> BoxFuture<'_, ExitInfo> {
        self.stops.lock().unwrap().push((signal, timeout));
        Box::pin(async move {
            ExitInfo {
                note: None,
                code: None,
                signal: Some(signal.as_str().to_string()),
                at: String::new(),
            }
        })
    }
}

/// Hands out fake processes; queued errors make starts fail.
struct FakeDriver {
    next_pid: AtomicU32,
    children: mpsc::UnboundedSender<FakeChild>,
    starts: Arc<Mutex<Vec<Instant>>>,
    failures: Mutex<VecDeque<String>>,
}

impl Driver for FakeDriver {
    fn start<'a>(
        &'a self,
        _ctx: StartContext<'a>,
    ) -> BoxFuture<'a, Result<Box<dyn Process>, StartError>> {
        Box::pin(async move {
            self.starts.lock().unwrap().push(Instant::now());
            if let Some(e) = self.failures.lock().unwrap().pop_front() {
                return Err(StartError::new(e));
            }
            let pid = self.next_pid.fetch_add(1, Ordering::SeqCst);
            let (tx, rx) = oneshot::channel();
            let stops = Arc::new(Mutex::new(Vec::new()));
            let _ = self.children.send(FakeChild {
                pid,
                exit: Some(tx),
                stops: stops.clone(),
            });
            Ok(Box::new(FakeProcess {
                pid,
                exit: Some(rx),
                done: None,
                stops,
            }) as Box<dyn Process>)
        })
    }
}

struct Harness {
    handle: ServiceHandle,
    children: mpsc::UnboundedReceiver<FakeChild>,
    driver: Arc<FakeDriver>,
    _dir: tempfile::TempDir,
}

fn spec(yaml: &str) -> Arc<Spec> {
    let (s, d) = aurelia_spec::load::load_str(yaml, std::path::Path::new("/tmp/svc.yaml"));
    assert!(d.is_empty(), "{d:?}");
    Arc::new(s.expect("spec"))
}

fn harness(yaml: &str) -> Harness {
    let dir = tempfile::tempdir().expect("tmp");
    let (ctx, children) = mpsc::unbounded_channel();
    let driver = Arc::new(FakeDriver {
        next_pid: AtomicU32::new(100),
        children: ctx,
        starts: Arc::new(Mutex::new(Vec::new())),
        failures: Mutex::new(VecDeque::new()),
    });
    let (changed, _changed_rx) = mpsc::unbounded_channel();
    // keep the receiver alive by leaking it into the env's lifetime: sends to a closed
    // channel are ignored anyway
    std::mem::forget(_changed_rx);
    let (events, _) = broadcast::channel(64);
    let env = Arc::new(TaskEnv {
        home: crate::home::Home::at(dir.path()),
        drivers: Drivers {
            native: driver.clone(),
            container: driver.clone(),
        },
        relay: None,
        changed,
        events,
    });
    let handle = spawn(spec(yaml), env, 0, None);
    Harness {
        handle,
        children,
        driver,
        _dir: dir,
    }
}

impl Harness {
    async fn state_is(&mut self, want: ServiceState) -> Snapshot {
        let mut rx = self.handle.snapshot.clone();
        tokio::time::timeout(Duration::from_secs(3600), async {
            loop {
                if rx.borrow().status.state == want {
                    return rx.borrow().clone();
                }
                rx.changed().await.expect("task alive");
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "never reached {want:?}; last {:?}",
                self.handle.snapshot.borrow().status
            )
        })
    }

    async fn child(&mut self) -> FakeChild {
        self.children.recv().await.expect("a start")
    }

    fn start(&self) {
        self.handle.send(Control::Start {
            port: None,
            reset: false,
        });
    }
}

const FLAKY: &str = "service: {name: s, type: native, command: x}\nrestart: {policy: on-failure, max_attempts: 3, delay: 1s, backoff: exponential, max_delay: 3s}\n";

#[tokio::test(start_paused = true)]
async fn exponential_backoff_then_failed() {
    let mut h = harness(FLAKY);
    h.start();
    for _ in 0..4 {
        h.child().await.exit(1);
    }
    let snap = h.state_is(ServiceState::Failed).await;
    let err = snap.status.last_error.unwrap();
    assert!(
        err.contains("exited with code 1") && err.contains("gave up after 3"),
        "{err}"
    );
    assert_eq!(snap.status.restarts, 3);
    let starts = h.driver.starts.lock().unwrap().clone();
    let gaps: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    // 1s, 2s, then capped by max_delay at 3s
    assert_eq!(
        gaps,
        vec![
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(3)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn backoff_state_explains_the_wait() {
    let mut h = harness(FLAKY);
    h.start();
    h.child().await.exit(7);
    let snap = h.state_is(ServiceState::Backoff).await;
    let err = snap.status.last_error.unwrap();
    assert!(
        err.contains("exited with code 7") && err.contains("restarting in 1s (attempt 1/3)"),
        "{err}"
    );
    assert_eq!(snap.status.last_exit.and_then(|e| e.code), Some(7));
}

#[tokio::test(start_paused = true)]
async fn never_policy_fails_at_once() {
    let mut h = harness("service: {name: s, type: native, command: x}\nrestart: {policy: never}\n");
    h.start();
    h.child().await.exit(2);
    let snap = h.state_is(ServiceState::Failed).await;
    assert_eq!(snap.status.restarts, 0);
    assert_eq!(h.driver.starts.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn on_failure_treats_exit_zero_as_done_and_always_restarts_it() {
    let mut h = harness("service: {name: s, type: native, command: x}\n");
    h.start();
    h.child().await.exit(0);
    let snap = h.state_is(ServiceState::Completed).await;
    assert_eq!(snap.status.last_exit.and_then(|e| e.code), Some(0));
    assert_eq!(snap.status.last_error, None);

    let mut h = harness(
        "service: {name: s, type: native, command: x}\nrestart: {policy: always, delay: 0s}\n",
    );
    h.start();
    h.child().await.exit(0);
    let second = h.child().await;
    assert_eq!(second.pid, 101, "restarted with delay 0, no timer");
    h.state_is(ServiceState::Running).await;
}

#[tokio::test(start_paused = true)]
async fn start_errors_count_as_attempts() {
    let mut h = harness(
        "service: {name: s, type: native, command: x}\nrestart: {max_attempts: 2, delay: 500ms, backoff: fixed}\n",
    );
    h.driver.failures.lock().unwrap().extend([
        "command not found: x".to_string(),
        "command not found: x".into(),
        "command not found: x".into(),
    ]);
    h.start();
    let snap = h.state_is(ServiceState::Failed).await;
    let err = snap.status.last_error.unwrap();
    assert!(
        err.starts_with("command not found: x; gave up after 2"),
        "{err}"
    );
    assert_eq!(h.driver.starts.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn stop_signals_the_process_and_ends_stopped_or_waiting() {
    let mut h = harness(
        "service: {name: s, type: native, command: x, stop_signal: INT, stop_timeout: 7s}\n",
    );
    h.start();
    let child = h.child().await;
    h.state_is(ServiceState::Running).await;
    h.handle.send(Control::Stop {
        waiting_for: vec!["db".into()],
    });
    let snap = h.state_is(ServiceState::Waiting).await;
    assert_eq!(snap.status.waiting_for, vec!["db".to_string()]);
    assert_eq!(snap.status.pid, None);
    assert_eq!(
        *child.stops.lock().unwrap(),
        vec![(Signal::SIGINT, Duration::from_secs(7))]
    );
    // a stopped service does not restart, whatever the policy
    h.start();
    let child = h.child().await;
    h.handle.send(Control::Stop {
        waiting_for: vec![],
    });
    h.state_is(ServiceState::Stopped).await;
    assert_eq!(child.stops.lock().unwrap().len(), 1);
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(h.driver.starts.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn attempts_reset_after_sixty_seconds_up() {
    let mut h = harness(
        "service: {name: s, type: native, command: x}\nrestart: {max_attempts: 1, delay: 1s}\n",
    );
    h.start();
    h.child().await.exit(1); // attempt 1 of 1
    let mut c = h.child().await;
    h.state_is(ServiceState::Running).await;
    tokio::time::sleep(STABLE_AFTER + Duration::from_secs(1)).await;
    c.exit(1); // counter was reset: this is attempt 1 again, not a give-up
    let c = h.child().await;
    assert_eq!(c.pid, 102);
    assert_eq!(h.handle.snapshot.borrow().status.restarts, 2);
}

#[tokio::test(start_paused = true)]
async fn restart_resets_attempts_and_detach_leaves_the_process() {
    let mut h = harness("service: {name: s, type: native, command: x}\n");
    h.start();
    let first = h.child().await;
    h.handle.send(Control::Restart { port: Some(4000) });
    let second = h.child().await;
    assert_eq!(first.stops.lock().unwrap().len(), 1);
    let snap = h.state_is(ServiceState::Running).await;
    assert_eq!(snap.status.port, Some(4000));
    let (tx, rx) = oneshot::channel();
    h.handle.send(Control::Detach(tx));
    rx.await.expect("detached");
    assert!(
        second.stops.lock().unwrap().is_empty(),
        "detach never stops the process"
    );
}

#[tokio::test(start_paused = true)]
async fn refusal_fails_without_starting() {
    let mut h = harness("service: {name: s, type: native, command: x}\n");
    h.handle.send(Control::Refuse {
        reason: "no free port in the range 1-1".into(),
    });
    let snap = h.state_is(ServiceState::Failed).await;
    assert_eq!(
        snap.status.last_error.as_deref(),
        Some("no free port in the range 1-1")
    );
    assert!(h.driver.starts.lock().unwrap().is_empty());
}
