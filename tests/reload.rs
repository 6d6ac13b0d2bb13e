//! Dynamic ports and live reload, end to end.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use aurelia_api::{Event, ReloadResult, ServiceState};
use common::*;

const T: Duration = Duration::from_secs(20);

/// Collects Reload events from the daemon's event stream on a thread.
fn reloads(s: &Stack) -> mpsc::Receiver<ReloadResult> {
    let events = s
        .client()
        .with_timeout(None)
        .stream::<Event>("/v1/events?logs=false")
        .expect("events");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for e in events.flatten() {
            if let Event::Reload(r) = e
                && tx.send(r).is_err()
            {
                return;
            }
        }
    });
    rx
}

fn port_file_service(s: &Stack, name: &str) {
    let out = s.work.join(format!("{name}.port"));
    s.spec(
        name,
        &format!(
            "service: {{name: {name}, type: native, command: sh -c 'echo $$PORT > {}; exec sleep 1000'}}\nnetwork: {{port: 0}}\n",
            out.display()
        ),
    );
}

fn injected_port(s: &Stack, name: &str) -> u16 {
    let p = s.work.join(format!("{name}.port"));
    let mut v = String::new();
    wait_for("the service to write its PORT", T, || {
        v = std::fs::read_to_string(&p).unwrap_or_default();
        v.ends_with('\n')
    });
    v.trim().parse().expect("a port")
}

#[test]
fn dynamic_ports_are_in_range_injected_distinct_and_stable() {
    let mut s = Stack::new();
    std::fs::write(s.home.join("config.yaml"), "port_range: 34000-34099\n").unwrap();
    port_file_service(&s, "a");
    port_file_service(&s, "b");
    s.start_daemon();
    assert!(s.cli(&["up"]).status.success());
    let pa = s.status("a").port.unwrap();
    let pb = s.status("b").port.unwrap();
    assert!((34000..=34099).contains(&pa) && (34000..=34099).contains(&pb));
    assert_ne!(pa, pb);
    assert_eq!(injected_port(&s, "a"), pa);

    // restart of the service
    std::fs::remove_file(s.work.join("a.port")).unwrap();
    assert!(s.cli(&["restart", "a"]).status.success());
    assert_eq!(injected_port(&s, "a"), pa);
    // daemon killed: adopted on the same port
    s.kill_daemon();
    s.start_daemon();
    assert_eq!(s.status("a").port, Some(pa));
    // daemon stopped with SIGINT (services stop), then started again
    s.stop_daemon();
    std::fs::remove_file(s.work.join("a.port")).unwrap();
    s.start_daemon();
    assert!(s.cli(&["up"]).status.success());
    assert_eq!(injected_port(&s, "a"), pa);
    assert_eq!(s.status("b").port, Some(pb));
}

#[test]
fn a_port_held_by_a_stranger_is_named() {
    let mut s = Stack::new();
    let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = l.local_addr().unwrap().port();
    s.spec(
        "web",
        &format!("service: {{name: web, type: native, command: sleep 1000}}\nnetwork: {{port: {port}}}\nrestart: {{policy: never}}\n"),
    );
    s.start_daemon();
    let out = s.cli(&["up", "web"]);
    assert_eq!(out.status.code(), Some(1));
    let e = s
        .wait_state("web", ServiceState::Failed, T)
        .last_error
        .unwrap();
    assert!(
        e.contains(&format!(
            "port {port} is already in use by pid {}",
            std::process::id()
        )),
        "{e}"
    );
    assert!(stderr(&out).contains(&format!("port {port}")));
    drop(l);
}

#[test]
fn port_range_problems_are_clear() {
    // inverted and empty ranges: the daemon refuses to start, naming the setting
    for (cfg, want) in [
        ("port_range: 32000-20000\n", "inverted"),
        ("port_range: ''\n", "port_range"),
    ] {
        let s = Stack::new();
        std::fs::write(s.home.join("config.yaml"), cfg).unwrap();
        let out = run_with_timeout(
            std::process::Command::new(BIN)
                .arg("daemon")
                .env("AURELIA_HOME", &s.home),
            T,
        );
        assert_eq!(out.status.code(), Some(2), "{cfg}");
        let e = stderr(&out);
        assert!(e.contains("config.yaml:1:") && e.contains(want), "{e}");
    }
    // a full range: the service fails with a message that says so
    let mut s = Stack::new();
    let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let only = l.local_addr().unwrap().port();
    std::fs::write(
        s.home.join("config.yaml"),
        format!("port_range: {only}-{only}\n"),
    )
    .unwrap();
    port_file_service(&s, "a");
    s.start_daemon();
    assert_eq!(s.cli(&["up"]).status.code(), Some(1));
    let e = s
        .wait_state("a", ServiceState::Failed, T)
        .last_error
        .unwrap();
    assert!(
        e.contains(&format!("no free port in the range {only}-{only}")) && e.contains("port_range"),
        "{e}"
    );
}

#[test]
fn the_watcher_applies_adds_removes_and_changes_quickly() {
    let mut s = Stack::new();
    s.spec(
        "keep",
        "service: {name: keep, type: native, command: sleep 1000}\n",
    );
    s.spec(
        "db",
        "service: {name: db, type: native, command: sleep 1000}\n",
    );
    s.spec("api", "service: {name: api, type: native, command: sleep 1000}\ndependencies: {after: [db], requires: [db]}\n");
    s.spec(
        "gone",
        "service: {name: gone, type: native, command: sleep 1000}\n",
    );
    s.start_daemon();
    assert!(s.cli(&["up"]).status.success());
    let keep = s.status("keep").pid;
    let api = s.status("api").pid;
    let rx = reloads(&s);

    let t = Instant::now();
    s.spec(
        "new",
        "service: {name: new, type: native, command: sleep 1000}\n",
    );
    std::fs::remove_file(s.services.join("gone.yaml")).unwrap();
    s.spec(
        "db",
        "service: {name: db, type: native, command: sleep 1001}\n",
    );
    let r = rx.recv_timeout(T).expect("a reload");
    let took = t.elapsed();
    eprintln!("watcher reload after {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(r.added, vec!["new".to_string()]);
    assert_eq!(r.removed, vec!["gone".to_string()]);
    assert_eq!(r.restarted, vec!["db".to_string()]);
    s.wait_state("new", ServiceState::Running, T);
    wait_for("gone to go", T, || s.try_status("gone").is_none());
    // db restarted; api (requires db) bounced with it; keep untouched
    wait_for("api to come back", T, || {
        s.try_status("api")
            .is_some_and(|a| a.state == ServiceState::Running && a.pid != api)
    });
    assert!(
        std::fs::read_to_string(format!("/proc/{}/cmdline", s.status("db").pid.unwrap()))
            .unwrap()
            .contains("1001")
    );
    assert_eq!(s.status("keep").pid, keep);
}

#[test]
fn comments_formatting_and_editor_saves_restart_nothing() {
    let mut s = Stack::new();
    s.spec(
        "api",
        "service: {name: api, type: native, command: sleep 1000}\nenv: {A: '1', B: '2'}\n",
    );
    s.start_daemon();
    assert!(s.cli(&["up"]).status.success());
    let pid = s.status("api").pid;
    let rx = reloads(&s);
    // same meaning, different text
    s.spec("api", "# the api\nenv:\n  B: \"2\"   # b\n  A: '1'\nservice:\n  command: sleep 1000\n  type: native\n  name: api\n");
    let r = rx.recv_timeout(T).expect("reload");
    assert!(
        r.restarted.is_empty() && r.unchanged == vec!["api".to_string()],
        "{r:?}"
    );
    // an editor's save: write a temp file, rename it over the spec
    let tmp = s.services.join(".api.yaml.swp");
    std::fs::write(
        &tmp,
        "service: {name: api, type: native, command: sleep 1000}\nenv: {A: '1', B: '2'}\n",
    )
    .unwrap();
    std::fs::rename(&tmp, s.services.join("api.yaml")).unwrap();
    let r = rx.recv_timeout(T).expect("reload");
    assert!(
        r.restarted.is_empty() && r.added.is_empty() && r.removed.is_empty(),
        "{r:?}"
    );
    // renaming the file itself is not a remove and an add
    std::fs::rename(
        s.services.join("api.yaml"),
        s.services.join("api-service.yaml"),
    )
    .unwrap();
    let r = rx.recv_timeout(T).expect("reload");
    assert!(
        r.restarted.is_empty() && r.added.is_empty() && r.removed.is_empty(),
        "{r:?}"
    );
    assert_eq!(s.status("api").pid, pid);
}

#[test]
fn a_broken_save_changes_nothing_and_the_fix_applies() {
    let mut s = Stack::new();
    s.spec(
        "api",
        "service: {name: api, type: native, command: sleep 1000}\n",
    );
    s.start_daemon();
    assert!(s.cli(&["up"]).status.success());
    let pid = s.status("api").pid;
    let rx = reloads(&s);
    s.spec(
        "api",
        "service:\n  name: api\n  type: native\n  command: sleep 1000\n  stop_timeout: 5 s\n",
    );
    let out = s.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(
        e.contains("api.yaml:5:17") && e.contains("stop_timeout"),
        "{e}"
    );
    assert!(
        rx.recv_timeout(Duration::from_millis(800)).is_err(),
        "no reload was applied"
    );
    assert_eq!(s.status("api").pid, pid);
    assert_eq!(s.status("api").state, ServiceState::Running);
    let log = std::fs::read_to_string(s.daemon_log()).unwrap();
    assert!(
        log.contains("reload refused") && log.contains("api.yaml:5:17"),
        "the watcher logs it:\n{log}"
    );
    // status shows the problem too
    let list = s.list();
    assert!(
        list.spec_errors.iter().any(|e| e.contains("api.yaml:5:17")),
        "{:?}",
        list.spec_errors
    );
    // the next valid save applies normally
    s.spec(
        "api",
        "service:\n  name: api\n  type: native\n  command: sleep 1000\n  stop_timeout: 5s\n",
    );
    let r = rx.recv_timeout(T).expect("reload");
    assert_eq!(r.restarted, vec!["api".to_string()]);
    wait_for("a new process", T, || {
        s.try_status("api")
            .is_some_and(|a| a.state == ServiceState::Running && a.pid != pid)
    });
    assert!(s.list().spec_errors.is_empty());
}

#[test]
fn a_deleted_spec_directory_changes_nothing_until_it_returns() {
    let mut s = Stack::new();
    s.spec(
        "api",
        "service: {name: api, type: native, command: sleep 1000}\n",
    );
    s.start_daemon();
    assert!(s.cli(&["up"]).status.success());
    let pid = s.status("api").pid;
    let rx = reloads(&s);
    std::fs::remove_dir_all(&s.services).unwrap();
    let out = s.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read the services directory"),
        "{}",
        stderr(&out)
    );
    assert_eq!(s.status("api").pid, pid);
    std::fs::create_dir(&s.services).unwrap();
    s.spec(
        "api",
        "service: {name: api, type: native, command: sleep 1000}\n",
    );
    s.spec(
        "more",
        "service: {name: more, type: native, command: sleep 1000}\n",
    );
    let r = loop {
        let r = rx
            .recv_timeout(T)
            .expect("the watcher sees the directory again");
        if !r.added.is_empty() {
            break r;
        }
    };
    assert_eq!(r.added, vec!["more".to_string()]);
    assert_eq!(s.status("api").pid, pid);
}

#[test]
fn five_hundred_files_at_once() {
    let mut s = Stack::new();
    s.start_daemon();
    let rx = reloads(&s);
    for i in 0..500 {
        s.spec(&format!("s{i:03}"), &format!("service: {{name: s{i:03}, type: native, command: 'true'}}\nrestart: {{policy: never}}\n"));
    }
    let mut added = 0;
    while added < 500 {
        let r = rx.recv_timeout(T).expect("reloads");
        added += r.added.len();
    }
    assert_eq!(added, 500);
    wait_for("every one to complete", Duration::from_secs(60), || {
        s.list()
            .services
            .iter()
            .filter(|st| st.state == ServiceState::Completed)
            .count()
            == 500
    });
    assert!(s.client().get::<serde_json::Value>("/v1/health").is_ok());
}
