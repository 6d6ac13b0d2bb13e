//! Hostile or broken input: the daemon keeps running, other services are untouched, and the
//! error says what happened.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use aurelia_api::ServiceState;
use common::*;

const T: Duration = Duration::from_secs(30);

#[test]
fn a_hundred_megabytes_without_a_newline() {
    let mut s = Stack::new();
    std::fs::write(s.home.join("config.yaml"), "log_max_size: 1GiB\n").unwrap();
    let sh = s.script("flood.sh", "head -c 100000000 /dev/zero | tr '\\000' x");
    s.spec(
        "flood",
        &format!(
            "service: {{name: flood, type: native, command: {}}}\nrestart: {{policy: never}}\n",
            sh.display()
        ),
    );
    s.spec(
        "calm",
        "service: {name: calm, type: native, command: sleep 1000}\n",
    );
    s.start_daemon();
    assert!(s.cli(&["up", "calm"]).status.success());
    let calm = s.status("calm").pid;
    s.post("/v1/services/flood/start");
    s.wait_state("flood", ServiceState::Completed, T);
    let path = s.home.join("logs/flood.log");
    // the relay finishes writing after the service exits
    let payload = || -> u64 {
        let Ok(data) = std::fs::read(&path) else {
            return 0;
        };
        data.split(|b| *b == b'\n')
            .filter(|r| r.len() > 27 && r[25] == b'O')
            .map(|r| (r.len() - 27) as u64)
            .sum()
    };
    wait_for("all 100 MB in the log", T, || payload() == 100_000_000);
    let data = std::fs::read(&path).unwrap();
    let longest = data.split(|b| *b == b'\n').map(<[u8]>::len).max().unwrap();
    assert!(
        longest <= 64 * 1024 + 27,
        "records are cut at 64 KiB: {longest}"
    );
    assert_eq!(s.status("calm").pid, calm);
    assert!(s.client().get::<serde_json::Value>("/v1/health").is_ok());
    // reading it back is bounded too
    let out = s.cli(&["logs", "flood", "-n", "3"]);
    assert_eq!(stdout(&out).lines().count(), 3);
}

#[test]
fn a_thousand_parallel_requests() {
    let mut s = Stack::new();
    for i in 0..5 {
        s.spec(
            &format!("s{i}"),
            &format!("service: {{name: s{i}, type: native, command: sleep 1000}}\n"),
        );
    }
    s.start_daemon();
    assert!(s.cli(&["up"]).status.success());
    let sock = s.home.join("aurelia.sock");
    let threads: Vec<_> = (0..1000)
        .map(|i| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                let c = aurelia_api::Client::new(aurelia_api::Endpoint::Unix(sock));
                if i % 2 == 0 {
                    c.get::<aurelia_api::ServiceList>("/v1/services")
                        .map(|l| l.services.len())
                } else {
                    c.get::<aurelia_api::ServiceDetail>("/v1/services/s1")
                        .map(|_| 5)
                }
            })
        })
        .collect();
    let mut ok = 0;
    for t in threads {
        match t.join().unwrap() {
            Ok(5) => ok += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(ok, 1000);
    for i in 0..5 {
        assert_eq!(s.status(&format!("s{i}")).state, ServiceState::Running);
    }
}

/// inotify instances the process holds (the log watcher has one while anyone follows).
fn inotify_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|t| t.to_string_lossy().contains("inotify"))
                })
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn clients_that_disconnect_mid_stream() {
    let mut s = Stack::new();
    let sh = s.script("tick.sh", "while :; do echo tick; sleep 0.02; done");
    s.spec(
        "tick",
        &format!(
            "service: {{name: tick, type: native, command: {}}}\n",
            sh.display()
        ),
    );
    s.start_daemon();
    assert!(s.cli(&["up", "tick"]).status.success());
    let daemon = s.daemon_pid().unwrap();
    let before = inotify_fds(daemon);
    for path in [
        "/v1/services/tick/logs?follow=true&n=5",
        "/v1/events",
        "/v1/logs?follow=true",
    ] {
        for _ in 0..20 {
            let mut c = UnixStream::connect(s.home.join("aurelia.sock")).unwrap();
            write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut buf = [0u8; 512];
            let n = c.read(&mut buf).unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
            drop(c); // gone mid-stream
        }
    }
    // The streams notice on their next write (the service prints every 20 ms); the log
    // watcher goes away with the last follower.
    wait_for("the log watcher to go with the last follower", T, || {
        inotify_fds(daemon) == before
    });
    let out = s.cli(&["logs", "tick", "-n", "2"]);
    assert_eq!(stdout(&out).lines().count(), 2);
    assert_eq!(s.status("tick").state, ServiceState::Running);
}

#[test]
fn a_service_that_exits_at_once_does_not_disturb_others() {
    let mut s = Stack::new();
    s.spec("blip", "service: {name: blip, type: native, command: 'true'}\nrestart: {policy: always, delay: 0s, max_attempts: 50}\n");
    s.spec(
        "steady",
        "service: {name: steady, type: native, command: sleep 1000}\n",
    );
    s.start_daemon();
    assert!(s.cli(&["up", "steady"]).status.success());
    let pid = s.status("steady").pid;
    s.post("/v1/services/blip/start");
    let st = s.wait_state("blip", ServiceState::Failed, T);
    assert_eq!(st.restarts, 50);
    assert!(st.last_error.unwrap().contains("gave up after 50"));
    assert_eq!(s.status("steady").pid, pid);
}
