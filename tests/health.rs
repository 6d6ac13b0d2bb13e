//! Health checks end to end with real listeners: each probe type, thresholds and restarts,
//! grace periods, fast readiness, exec timeouts, external services, and misbehaving servers.

mod common;

use std::time::{Duration, Instant};

use aurelia_api::{HealthState, ServiceState};
use common::*;

const T: Duration = Duration::from_secs(20);

fn httpd() -> String {
    format!("{}/tests/fixtures/httpd.pl", env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn each_probe_type_goes_healthy() {
    let mut s = Stack::new();
    s.spec(
        "web",
        &format!(
            "service: {{name: web, type: native, command: {}}}\nnetwork: {{port: 0}}\nhealth: {{type: http, path: /healthz, interval: 10s}}\n",
            httpd()
        ),
    );
    s.spec(
        "tcp",
        &format!(
            "service: {{name: tcp, type: native, command: {}}}\nnetwork: {{port: {}}}\nhealth: {{type: tcp, interval: 10s}}\n",
            httpd(),
            free_port()
        ),
    );
    let marker = s.work.join("ready");
    s.spec(
        "job",
        &format!(
            "service: {{name: job, type: native, command: sh -c 'sleep 0.3; touch {m}; exec sleep 1000'}}\nhealth: {{type: exec, command: test -e {m}, interval: 10s}}\n",
            m = marker.display()
        ),
    );
    s.start_daemon();
    let out = s.cli(&["up"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for n in ["web", "tcp", "job"] {
        let st = s.status(n);
        assert_eq!(st.state, ServiceState::Running, "{n}");
        assert_eq!(st.health, Some(HealthState::Healthy), "{n}");
    }
    let d = s.detail("job");
    assert!(
        d.health_history.iter().any(|r| !r.ok),
        "exec probes failed until the marker existed"
    );
    assert!(d.health_history.last().unwrap().ok);
    let text = stdout(&s.cli(&["status", "web"]));
    assert!(
        text.contains("recent probes:") && text.contains("http :"),
        "{text}"
    );
}

#[test]
fn up_is_fast_for_a_service_that_listens_after_200ms() {
    let mut s = Stack::new();
    s.env("LISTEN_DELAY_MS", "200");
    s.spec(
        "slow",
        &format!(
            "service: {{name: slow, type: native, command: {}}}\nnetwork: {{port: 0}}\nhealth: {{type: http, path: /healthz, interval: 10s}}\n",
            httpd()
        ),
    );
    s.start_daemon();
    let t = Instant::now();
    let out = s.cli(&["up", "slow"]);
    let took = t.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    // With a 10 s interval and no fast readiness this would take 10 s. The benchmark suite
    // measures the real figure; here only the order of magnitude is checked.
    assert!(took < Duration::from_secs(5), "up took {took:?}");
    eprintln!("up took {took:?}");
    assert_eq!(s.status("slow").health, Some(HealthState::Healthy));
}

#[test]
fn unhealthy_after_exactly_the_threshold_then_restarted() {
    let mut s = Stack::new();
    let fail = s.work.join("fail");
    s.env("FAIL_FILE", &fail.display().to_string());
    s.spec(
        "api",
        &format!(
            "service: {{name: api, type: native, command: {}}}\nnetwork: {{port: 0}}\nhealth: {{type: http, path: /healthz, interval: 200ms, timeout: 1s, unhealthy_threshold: 3}}\nrestart: {{policy: on-failure, delay: 100ms}}\n",
            httpd()
        ),
    );
    s.spec("dep", "service: {name: dep, type: native, command: sleep 1000}\ndependencies: {after: [api], requires: [api]}\n");
    s.start_daemon();
    assert!(s.cli(&["up"]).status.success());
    let first = s.status("api").pid;
    let dep_pid = s.status("dep").pid;
    std::fs::write(&fail, "").unwrap();
    wait_for("a restart", T, || {
        s.try_status("api")
            .is_some_and(|st| st.pid.is_some() && st.pid != first)
    });
    std::fs::remove_file(&fail).unwrap();
    let log = s.log("api");
    let restart_at = *note_times(&log, "started (pid").last().unwrap();
    assert!(log.contains("unhealthy: HTTP 500"), "{log}");
    let hist = s.detail("api").health_history;
    let before: Vec<bool> = hist
        .iter()
        .filter(|r| parse_ts_ms(&r.at).unwrap() <= restart_at)
        .map(|r| r.ok)
        .collect();
    let trailing_fails = before.iter().rev().take_while(|ok| !**ok).count();
    assert_eq!(trailing_fails, 3, "exactly the threshold: {before:?}");
    let st = s.wait_state("api", ServiceState::Running, T);
    assert_eq!(st.restarts, 1);
    // its hard dependent was cascade-stopped and came back
    wait_for("dep to return", T, || {
        s.try_status("dep")
            .is_some_and(|d| d.state == ServiceState::Running && d.pid != dep_pid)
    });
}

#[test]
fn grace_period_delays_the_first_probe() {
    let mut s = Stack::new();
    s.spec(
        "g",
        &format!(
            "service: {{name: g, type: native, command: {}}}\nnetwork: {{port: 0}}\nhealth: {{type: tcp, interval: 10s, grace_period: 700ms}}\n",
            httpd()
        ),
    );
    s.start_daemon();
    assert!(s.cli(&["up", "g"]).status.success());
    let started = *note_times(&s.log("g"), "started (pid").first().unwrap();
    let first_probe = parse_ts_ms(&s.detail("g").health_history[0].at).unwrap();
    assert!(
        first_probe - started >= 690,
        "first probe {} ms after start",
        first_probe - started
    );
}

#[test]
fn a_hanging_exec_probe_is_killed_at_its_timeout() {
    let mut s = Stack::new();
    s.spec(
        "h",
        "service: {name: h, type: native, command: sleep 1000}\nhealth: {type: exec, command: sleep 987, timeout: 300ms, interval: 10s}\nrestart: {policy: never}\n",
    );
    s.start_daemon();
    s.post("/v1/services/h/start");
    wait_for("a timed-out probe", T, || {
        !s.detail("h").health_history.is_empty()
    });
    let r = &s.detail("h").health_history[0];
    assert!(!r.ok);
    assert_eq!(r.error.as_deref(), Some("timed out after 300ms"));
    assert!(r.latency_ms < 1000.0, "{}", r.latency_ms);
    let sleepers = || {
        s.tagged_processes()
            .into_iter()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .unwrap_or_default()
                    .contains("987")
            })
            .count()
    };
    wait_for(
        "the hung probe to be killed",
        Duration::from_secs(5),
        || sleepers() == 0,
    );
}

#[test]
fn an_external_service_drives_its_dependents() {
    let mut s = Stack::new();
    let port = free_port();
    s.spec(
        "db",
        &format!("service: {{name: db, type: external}}\nhealth: {{type: tcp, port: {port}, interval: 200ms, unhealthy_threshold: 2}}\n"),
    );
    s.spec("api", "service: {name: api, type: native, command: sleep 1000}\ndependencies: {after: [db], requires: [db]}\n");
    s.start_daemon();
    // db is down: api waits for it
    let out = s.cli(&["up", "--no-wait"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let st = s.wait_state("api", ServiceState::Waiting, T);
    assert_eq!(st.waiting_for, vec!["db".to_string()]);
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    s.wait_state("db", ServiceState::Running, T);
    s.wait_state("api", ServiceState::Running, T);
    // db goes away: api is stopped; back: api returns
    drop(listener);
    let db = s.wait_state("db", ServiceState::Failed, T);
    assert!(
        db.last_error.unwrap().contains("unhealthy"),
        "external unhealthy is explained"
    );
    s.wait_state("api", ServiceState::Waiting, T);
    let _listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    s.wait_state("api", ServiceState::Running, T);
    assert_eq!(s.status("db").health, Some(HealthState::Healthy));
}

#[test]
fn misbehaving_targets_give_clear_failures() {
    let mut s = Stack::new();
    let closed = free_port();
    let spec = |name: &str, mode: &str, health: &str| {
        format!(
            "service: {{name: {name}, type: native, command: env MODE={mode} {}}}\nnetwork: {{port: 0}}\nhealth: {health}\nrestart: {{policy: never}}\n",
            httpd()
        )
    };
    s.spec(
        "refused",
        &spec(
            "refused",
            "ok",
            &format!("{{type: tcp, port: {closed}, interval: 10s, timeout: 500ms}}"),
        ),
    );
    s.spec(
        "hang",
        &spec(
            "hang",
            "hang",
            "{type: http, interval: 10s, timeout: 500ms}",
        ),
    );
    s.spec(
        "huge",
        &spec("huge", "huge", "{type: http, interval: 10s, timeout: 2s}"),
    );
    s.spec(
        "loop",
        &spec(
            "loop",
            "redirect",
            "{type: http, interval: 10s, timeout: 500ms}",
        ),
    );
    s.spec(
        "nobin",
        &spec(
            "nobin",
            "ok",
            "{type: exec, command: no-such-probe-binary, interval: 10s}",
        ),
    );
    s.start_daemon();
    let _ = s.cli(&["up", "--no-wait"]);
    // The servers need a moment to listen; the probe errors that matter come after that.
    let error_like = |n: &str, want: &dyn Fn(&str) -> bool| -> String {
        let mut seen = Vec::new();
        let ok = poll(T, || {
            seen = s
                .try_status(n)
                .map(|_| s.detail(n).health_history)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|r| r.error)
                .collect();
            seen.iter().any(|e| want(e))
        });
        assert!(ok, "{n}: no matching probe error in {seen:?}");
        seen.into_iter().find(|e| want(e)).unwrap()
    };
    let e = error_like("refused", &|e| e.contains(&format!("127.0.0.1:{closed}")));
    assert!(e.to_lowercase().contains("refused"), "{e}");
    error_like("hang", &|e| e == "timed out after 500ms");
    let e = error_like("loop", &|e| e.contains("HTTP 302"));
    assert!(
        e.contains("HTTP 302 redirect to \"/healthz\"") && e.contains("not followed"),
        "{e}"
    );
    error_like("nobin", &|e| {
        e == "health command not found: no-such-probe-binary"
    });
    // a 10 GB body is never read: healthy, quickly
    let huge = s.wait_state("huge", ServiceState::Running, T);
    assert_eq!(huge.health, Some(HealthState::Healthy));
    let ok = s
        .detail("huge")
        .health_history
        .into_iter()
        .find(|r| r.ok)
        .unwrap();
    assert!(ok.latency_ms < 1000.0, "{ok:?}");
    assert!(s.client().get::<serde_json::Value>("/v1/health").is_ok());
}

#[test]
fn up_names_the_service_that_never_became_healthy() {
    let mut s = Stack::new();
    s.spec(
        "never",
        "service: {name: never, type: native, command: sleep 1000}\nnetwork: {port: 0}\nhealth: {type: http, path: /healthz, interval: 100ms, unhealthy_threshold: 2}\nrestart: {policy: never}\n",
    );
    s.start_daemon();
    let out = s.cli(&["up", "never", "--timeout", "20s"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("never is failed")
            && err.contains("never became healthy")
            && err.contains("refused"),
        "{err}"
    );
    assert!(
        s.status("never").pid.is_none(),
        "stopped, not left half-started"
    );
}
