//! The API and the CLI as clients: routes, error bodies, the event stream, the socket's
//! protection, single-instance rules and exit codes.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use aurelia_api::{ClientError, ErrorCode, Event, ServiceState};
use common::*;

const T: Duration = Duration::from_secs(15);

/// A raw HTTP request over the socket: (status, body).
fn raw(s: &Stack, method: &str, path: &str) -> (u16, String) {
    let mut c = UnixStream::connect(s.home.join("aurelia.sock")).expect("connect");
    write!(
        c,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn openapi_document_lists_every_route() {
    let mut s = Stack::new();
    s.start_daemon();
    let doc: serde_json::Value = s.client().get("/v1/openapi.json").expect("openapi");
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with("3."),
        "{doc}"
    );
    let paths = doc["paths"].as_object().expect("paths");
    for p in [
        "/v1/health",
        "/v1/services",
        "/v1/services/{name}",
        "/v1/services/{name}/start",
        "/v1/services/{name}/stop",
        "/v1/services/{name}/restart",
        "/v1/services/{name}/logs",
        "/v1/logs",
        "/v1/up",
        "/v1/down",
        "/v1/reload",
        "/v1/events",
    ] {
        assert!(
            paths.contains_key(p),
            "missing {p} in {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
    assert!(doc["components"]["schemas"]["ServiceStatus"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}

#[test]
fn errors_have_stable_bodies_and_status_codes() {
    let mut s = Stack::new();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    s.spec(
        "ext",
        &format!("service: {{name: ext, type: external}}\nhealth: {{type: tcp, port: {port}}}\n"),
    );
    s.spec(
        "app",
        "service: {name: app, type: native, command: sleep 1000}\n",
    );
    s.start_daemon();

    let (code, body) = raw(&s, "GET", "/v1/services/nope");
    assert_eq!(code, 404);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "not_found");
    assert!(v["error"]["message"].as_str().unwrap().contains("nope"));

    let (code, body) = raw(&s, "GET", "/v1/no/such/route");
    assert_eq!(code, 404);
    assert!(body.contains("\"not_found\""));

    let (code, body) = raw(&s, "POST", "/v1/services/ext/stop");
    assert_eq!(code, 409, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "conflict");
    assert!(v["error"]["message"].as_str().unwrap().contains("external"));

    match s
        .client()
        .post::<(), serde_json::Value>("/v1/services/ext/start", None)
    {
        Err(ClientError::Api {
            status: 409,
            code: ErrorCode::Conflict,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let (code, _) = raw(&s, "GET", "/v1/logs?since=yesterday");
    assert_eq!(code, 400);
    // the daemon is fine after all that
    s.wait_state("ext", ServiceState::Running, T);
}

#[test]
fn event_stream_carries_states_and_log_lines() {
    let mut s = Stack::new();
    s.spec("chatty", "service: {name: chatty, type: native, command: sh -c 'echo hello-events; exec sleep 1000'}\n");
    s.start_daemon();
    let c = s.client().with_timeout(Some(Duration::from_secs(10)));
    let events = c.stream::<Event>("/v1/events").expect("events");
    s.post("/v1/services/chatty/start");
    let mut saw_running = false;
    let mut saw_line = false;
    for ev in events {
        match ev.expect("event") {
            Event::State(st) if st.name == "chatty" && st.state == ServiceState::Running => {
                saw_running = true
            }
            Event::Log(l) if l.service == "chatty" && l.line == "hello-events" => saw_line = true,
            _ => {}
        }
        if saw_running && saw_line {
            break;
        }
    }
    assert!(saw_running && saw_line);
}

#[test]
fn socket_and_home_are_private() {
    let mut s = Stack::new();
    s.start_daemon();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&s.home.join("aurelia.sock")), 0o600);
    assert_eq!(mode(&s.home), 0o700);
    assert_eq!(mode(&s.home.join("logs")), 0o700);
}

#[test]
fn a_second_daemon_refuses_before_touching_anything() {
    let mut s = Stack::new();
    s.spec(
        "one",
        "service: {name: one, type: native, command: sleep 1000}\n",
    );
    s.start_daemon();
    assert!(s.cli(&["up"]).status.success());
    let pid = s.wait_state("one", ServiceState::Running, T).pid;
    let out = run_with_timeout(
        std::process::Command::new(BIN)
            .arg("daemon")
            .env("AURELIA_HOME", &s.home)
            .env("NO_COLOR", "1"),
        T,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("already running"), "{err}");
    assert_eq!(
        s.status("one").pid,
        pid,
        "the first daemon's service is untouched"
    );
    assert!(s.client().get::<serde_json::Value>("/v1/health").is_ok());
}

#[test]
fn a_stale_socket_is_removed_only_after_a_failed_connect() {
    let mut s = Stack::new();
    std::fs::create_dir_all(&s.home).unwrap();
    // a socket file nobody listens on, as a crashed daemon leaves it
    drop(std::os::unix::net::UnixListener::bind(s.home.join("aurelia.sock")).unwrap());
    assert!(s.home.join("aurelia.sock").exists());
    s.start_daemon();
    assert!(s.client().get::<serde_json::Value>("/v1/health").is_ok());
    s.stop_daemon();

    // a socket somebody answers on (without holding the lock) is not taken over
    let l = std::os::unix::net::UnixListener::bind(s.home.join("aurelia.sock")).unwrap();
    let out = run_with_timeout(
        std::process::Command::new(BIN)
            .arg("daemon")
            .env("AURELIA_HOME", &s.home),
        T,
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("already running"));
    drop(l);
}

#[test]
fn cli_exit_codes() {
    let mut s = Stack::new();
    // 3: no daemon, with a hint
    let out = s.cli(&["status"]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.contains("not running") && err.contains("aurelia daemon"),
        "{err}"
    );
    assert_eq!(s.cli(&["up"]).status.code(), Some(3));
    assert_eq!(s.cli(&["logs", "-f", "x"]).status.code(), Some(3));

    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    s.spec(
        "ext",
        &format!("service: {{name: ext, type: external}}\nhealth: {{type: tcp, port: {port}}}\n"),
    );
    s.spec(
        "ok",
        "service: {name: ok, type: native, command: sleep 1000}\n",
    );
    s.start_daemon();
    // 2: usage (unknown service, bad flag), invalid spec
    let out = s.cli(&["up", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no service named \"nope\""));
    assert_eq!(s.cli(&["status", "--bogus"]).status.code(), Some(2));
    std::fs::write(
        s.services.join("bad.yaml"),
        "service: {name: bad, type: nativ}\n",
    )
    .unwrap();
    let out = s.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("bad.yaml:1:"), "{}", stderr(&out));
    std::fs::remove_file(s.services.join("bad.yaml")).unwrap();
    // 1: an operation that fails
    let out = s.cli(&["down", "ext"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("external"));
    // 0
    assert_eq!(s.cli(&["up", "ok"]).status.code(), Some(0));
    assert_eq!(s.cli(&["status"]).status.code(), Some(0));
    let json: serde_json::Value =
        serde_json::from_slice(&s.cli(&["status", "--json"]).stdout).unwrap();
    let names: Vec<&str> = json["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["ext", "ok"]);
    // a closed stdout (`| head`) is not an error
    let mut child = std::process::Command::new(BIN)
        .args(["logs", "ok"])
        .env("AURELIA_HOME", &s.home)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    assert!(child.wait().unwrap().code().is_some_and(|c| c == 0));
}

#[test]
fn status_table_shows_the_seed_columns_and_errors() {
    let mut s = Stack::new();
    s.spec(
        "web",
        "service: {name: web, type: native, command: sleep 1000}\nnetwork: {port: 0}\n",
    );
    s.spec(
        "broken",
        "service: {name: broken, type: native, command: ./nope}\nrestart: {policy: never}\n",
    );
    s.start_daemon();
    let _ = s.cli(&["up"]);
    s.wait_state("broken", ServiceState::Failed, T);
    let out = stdout(&s.cli(&["status"]));
    let header = out.lines().next().unwrap();
    for col in [
        "NAME", "TYPE", "STATE", "HEALTH", "PID", "PORT", "UPTIME", "RESTARTS",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("web") && l.contains("running")),
        "{out}"
    );
    assert!(
        out.contains("└ command not found"),
        "failed services show their error:\n{out}"
    );
    let detail = stdout(&s.cli(&["status", "web"]));
    assert!(
        detail.contains("command") && detail.contains("sleep 1000"),
        "{detail}"
    );
}

#[test]
fn follow_streams_new_lines() {
    let mut s = Stack::new();
    let sh = s.script(
        "tick.sh",
        "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.05; done",
    );
    s.spec(
        "tick",
        &format!(
            "service: {{name: tick, type: native, command: {}}}\n",
            sh.display()
        ),
    );
    s.start_daemon();
    assert!(s.cli(&["up", "tick"]).status.success());
    let mut child = std::process::Command::new(BIN)
        .args(["logs", "-f", "-n", "0", "tick"])
        .env("AURELIA_HOME", &s.home)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut r = BufReader::new(child.stdout.take().unwrap());
    let mut nums = Vec::new();
    while nums.len() < 5 {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        nums.push(
            l.trim()
                .strip_prefix("tick ")
                .unwrap()
                .parse::<u64>()
                .unwrap(),
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        nums.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive, no gap or repeat: {nums:?}"
    );
}
