//! End-to-end lifecycle tests against the real daemon: start order, cascade and return,
//! restart policies and their backoff, stops that leave nothing behind, logs across restarts.

mod common;

use std::time::{Duration, Instant};

use aurelia_api::ServiceState;
use common::*;

const T: Duration = Duration::from_secs(15);

fn native(name: &str, command: &str, extra: &str) -> String {
    format!("service:\n  name: {name}\n  type: native\n  command: {command}\n{extra}")
}

#[test]
fn starts_in_dependency_waves_and_stops_in_reverse() {
    let mut s = Stack::new();
    let order = s.work.join("order");
    let rec = s.script(
        "rec.sh",
        &format!("echo \"start $AURELIA_SERVICE\" >> {o}\ntrap 'echo \"stop $AURELIA_SERVICE\" >> {o}; exit 0' TERM\nwhile :; do sleep 1; done", o = order.display()),
    );
    let cmd = rec.display().to_string();
    // a; b and c after a; d after b and c. Each is healthy once its start line is written,
    // so the order in the file is the order the supervisor started them in.
    let health = |n: &str| {
        format!(
            "health:\n  type: exec\n  command: grep -qx 'start {n}' {}\n",
            order.display()
        )
    };
    s.spec("a", &native("a", &cmd, &health("a")));
    s.spec(
        "b",
        &native(
            "b",
            &cmd,
            &format!("{}dependencies:\n  after: [a]\n", health("b")),
        ),
    );
    s.spec(
        "c",
        &native(
            "c",
            &cmd,
            &format!("{}dependencies:\n  after: [a]\n", health("c")),
        ),
    );
    s.spec("d", &native("d", &cmd, "dependencies:\n  after: [b, c]\n"));
    s.start_daemon();
    let out = s.cli(&["up"]);
    assert!(out.status.success(), "up failed: {}", stderr(&out));
    wait_for("four starts", T, || {
        std::fs::read_to_string(&order)
            .unwrap_or_default()
            .lines()
            .count()
            == 4
    });
    let lines: Vec<String> = std::fs::read_to_string(&order)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines[0], "start a");
    let mid: Vec<&str> = lines[1..3].iter().map(String::as_str).collect();
    assert!(
        mid.contains(&"start b") && mid.contains(&"start c"),
        "{lines:?}"
    );
    assert_eq!(lines[3], "start d");

    let out = s.cli(&["down"]);
    assert!(out.status.success(), "down failed: {}", stderr(&out));
    wait_for("four stops", T, || {
        std::fs::read_to_string(&order)
            .unwrap_or_default()
            .lines()
            .count()
            == 8
    });
    let lines: Vec<String> = std::fs::read_to_string(&order)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines[4], "stop d", "{lines:?}");
    let mid: Vec<&str> = lines[5..7].iter().map(String::as_str).collect();
    assert!(
        mid.contains(&"stop b") && mid.contains(&"stop c"),
        "{lines:?}"
    );
    assert_eq!(lines[7], "stop a");
    for n in ["a", "b", "c", "d"] {
        assert_eq!(s.status(n).state, ServiceState::Stopped);
    }
}

#[test]
fn cascade_stops_hard_dependents_and_brings_them_back() {
    let mut s = Stack::new();
    s.spec(
        "db",
        &native(
            "db",
            "sleep 1000",
            "restart:\n  policy: on-failure\n  delay: 100ms\n",
        ),
    );
    s.spec(
        "api",
        &native(
            "api",
            "sleep 1000",
            "dependencies:\n  after: [db]\n  requires: [db]\n",
        ),
    );
    s.spec(
        "web",
        &native(
            "web",
            "sleep 1000",
            "dependencies:\n  after: [api]\n  requires: [api]\n",
        ),
    );
    s.spec(
        "report",
        &native("report", "sleep 1000", "dependencies:\n  after: [db]\n"),
    );
    s.start_daemon();
    assert!(s.cli(&["up"]).status.success());
    for n in ["db", "api", "web", "report"] {
        s.wait_state(n, ServiceState::Running, T);
    }
    let report_pid = s.status("report").pid;
    let api_pid = s.status("api").pid;

    // explicit stop: dependents (transitively) first, then db; after-only `report` untouched
    let out = s.cli(&["down", "db"]);
    assert!(out.status.success(), "{}", stderr(&out));
    s.wait_state("db", ServiceState::Stopped, T);
    let api = s.wait_state("api", ServiceState::Waiting, T);
    assert_eq!(api.waiting_for, vec!["db".to_string()]);
    s.wait_state("web", ServiceState::Waiting, T);
    assert_eq!(
        s.status("report").pid,
        report_pid,
        "after-only dependents are not touched"
    );
    let log = s.log("db");
    let db_stop = note_times(&log, "stopped");
    let api_stop = note_times(&s.log("api"), "stopped");
    assert!(api_stop.last() <= db_stop.last(), "api stopped before db");

    // db comes back: so do api and web, on their own
    assert!(s.cli(&["up", "db"]).status.success());
    s.wait_state("api", ServiceState::Running, T);
    s.wait_state("web", ServiceState::Running, T);
    assert_ne!(s.status("api").pid, api_pid);

    // a crash of db cascades too, and the restart brings everyone back
    let api_pid = s.status("api").pid;
    let db_pid = s.status("db").pid.expect("db pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(db_pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("api to be cascade-stopped and come back", T, || {
        s.try_status("api")
            .is_some_and(|st| st.state == ServiceState::Running && st.pid != api_pid)
    });
    assert_ne!(s.status("db").pid, Some(db_pid));
    assert_eq!(s.status("report").pid, report_pid);
    assert!(
        s.status("api").wanted,
        "cascade does not change what the user wants"
    );
}

#[test]
fn stop_kills_every_descendant() {
    let mut s = Stack::new();
    s.spec(
        "fork",
        &native("fork", "sh -c 'sleep 1000 & sleep 1000'", ""),
    );
    // ignores SIGTERM, and so does its child: only SIGKILL after stop_timeout ends it
    s.spec(
        "stubborn",
        &native(
            "stubborn",
            "sh -c 'trap \"\" TERM; sleep 1000 & wait; sleep 1000'",
            "  stop_timeout: 1s\n",
        ),
    );
    s.start_daemon();
    assert!(s.cli(&["up"]).status.success());
    let fork = s.wait_state("fork", ServiceState::Running, T).pid.unwrap();
    let stubborn = s
        .wait_state("stubborn", ServiceState::Running, T)
        .pid
        .unwrap();
    wait_for("both sleeps of fork", T, || group_members(fork).len() == 3);
    wait_for("the stubborn child", T, || {
        group_members(stubborn).len() >= 2
    });

    let out = s.cli(&["down", "fork"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        group_members(fork).is_empty(),
        "left alive: {:?}",
        group_members(fork)
    );

    let t = Instant::now();
    let out = s.cli(&["down", "stubborn"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let took = t.elapsed();
    assert!(
        group_members(stubborn).is_empty(),
        "left alive: {:?}",
        group_members(stubborn)
    );
    assert!(
        took >= Duration::from_millis(900),
        "SIGKILL came before stop_timeout: {took:?}"
    );
    assert!(took < Duration::from_secs(6), "stop took {took:?}");
    let st = s.status("stubborn");
    assert_eq!(
        st.last_exit.and_then(|e| e.signal).as_deref(),
        Some("SIGKILL")
    );
}

#[test]
fn restart_policy_on_failure_backs_off_exponentially_then_gives_up() {
    let mut s = Stack::new();
    s.spec(
        "flaky",
        &native(
            "flaky",
            "sh -c 'echo boom; exit 3'",
            "restart:\n  policy: on-failure\n  max_attempts: 3\n  delay: 200ms\n  backoff: exponential\n  max_delay: 10s\n",
        ),
    );
    s.start_daemon();
    assert!(
        !s.cli(&["up", "flaky", "--timeout", "10s"]).status.success(),
        "up reports the failure"
    );
    let st = s.wait_state("flaky", ServiceState::Failed, T);
    let err = st.last_error.unwrap_or_default();
    assert!(
        err.contains("exited with code 3") && err.contains("gave up after 3"),
        "{err}"
    );
    assert_eq!(st.restarts, 3);
    let starts = note_times(&s.log("flaky"), "started (pid");
    assert_eq!(starts.len(), 4, "one start and three restarts");
    let gaps: Vec<i64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    for (gap, want) in gaps.iter().zip([200, 400, 800]) {
        assert!(
            *gap >= want - 5 && *gap < want + 400,
            "gaps {gaps:?}, expected about 200/400/800 ms"
        );
    }
}

#[test]
fn restart_policy_fixed_always_and_never() {
    let mut s = Stack::new();
    s.spec(
        "fixed",
        &native(
            "fixed",
            "false",
            "restart:\n  policy: always\n  max_attempts: 3\n  delay: 300ms\n  backoff: fixed\n",
        ),
    );
    s.spec(
        "done",
        &native(
            "done",
            "true",
            "restart:\n  policy: always\n  max_attempts: 2\n  delay: 10ms\n",
        ),
    );
    s.spec(
        "once",
        &native("once", "false", "restart:\n  policy: never\n"),
    );
    s.spec(
        "clean",
        &native("clean", "true", "restart:\n  policy: on-failure\n"),
    );
    s.start_daemon();
    let _ = s.cli(&["up", "--no-wait"]);
    s.wait_state("fixed", ServiceState::Failed, T);
    let starts = note_times(&s.log("fixed"), "started (pid");
    let gaps: Vec<i64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps.len(), 3, "{gaps:?}");
    for g in &gaps {
        assert!((295..700).contains(g), "fixed backoff gaps {gaps:?}");
    }
    // always: even a clean exit restarts
    let st = s.wait_state("done", ServiceState::Failed, T);
    assert_eq!(st.restarts, 2);
    // never: no restart at all
    let st = s.wait_state("once", ServiceState::Failed, T);
    assert_eq!(st.restarts, 0);
    assert_eq!(note_times(&s.log("once"), "started (pid").len(), 1);
    assert!(
        st.last_error
            .unwrap_or_default()
            .contains("exited with code 1")
    );
    // on-failure: a clean exit is a completed run, not a failure
    let st = s.wait_state("clean", ServiceState::Completed, T);
    assert_eq!(st.restarts, 0);
    assert_eq!(st.last_exit.and_then(|e| e.code), Some(0));
}

#[test]
fn start_failures_count_as_attempts_and_explain_themselves() {
    let mut s = Stack::new();
    s.spec(
        "nobin",
        &native(
            "nobin",
            "./does-not-exist --flag",
            "restart:\n  max_attempts: 2\n  delay: 50ms\n",
        ),
    );
    s.spec(
        "nodir",
        &native(
            "nodir",
            "sleep 1000",
            "  working_dir: /nonexistent/dir\nrestart:\n  max_attempts: 1\n  delay: 50ms\n",
        ),
    );
    s.spec(
        "notonpath",
        &native(
            "notonpath",
            "surely-not-a-command-xyz",
            "restart:\n  policy: never\n",
        ),
    );
    s.spec("fine", &native("fine", "sleep 1000", ""));
    s.start_daemon();
    let out = s.cli(&["up", "--timeout", "10s"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "up fails when a service cannot start"
    );
    let err = stderr(&out);
    assert!(
        err.contains("nobin") || err.contains("nodir") || err.contains("notonpath"),
        "{err}"
    );
    let st = s.wait_state("nobin", ServiceState::Failed, T);
    let e = st.last_error.unwrap();
    assert!(
        e.contains("does-not-exist")
            && e.contains("does not exist")
            && e.contains("gave up after 2"),
        "{e}"
    );
    assert_eq!(st.restarts, 2);
    let e = s
        .wait_state("nodir", ServiceState::Failed, T)
        .last_error
        .unwrap();
    assert!(
        e.contains("/nonexistent/dir") && e.contains("does not exist"),
        "{e}"
    );
    let e = s
        .wait_state("notonpath", ServiceState::Failed, T)
        .last_error
        .unwrap();
    assert!(
        e.contains("command not found: surely-not-a-command-xyz"),
        "{e}"
    );
    // asking again reports the same failure again, promptly
    let t = Instant::now();
    let out = s.cli(&["up", "notonpath", "--timeout", "30s"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("command not found"),
        "{}",
        stderr(&out)
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // the others are unaffected, the daemon is fine
    s.wait_state("fine", ServiceState::Running, T);
    let table = stdout(&s.cli(&["status"]));
    assert!(
        table.contains("command not found: surely-not-a-command-xyz"),
        "status shows the error:\n{table}"
    );
}

#[test]
fn logs_survive_restarts_and_carry_both_streams() {
    let mut s = Stack::new();
    let counter = s.work.join("runs");
    let sh = s.script(
        "talk.sh",
        &format!("n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}\necho \"run $n out\"\necho \"run $n err\" >&2\nexec sleep 1000", c = counter.display()),
    );
    s.spec("talk", &native("talk", &sh.display().to_string(), ""));
    s.start_daemon();
    assert!(s.cli(&["up", "talk"]).status.success());
    wait_for("run 1", T, || s.log("talk").contains("run 1 err"));
    let out = s.cli(&["restart", "talk"]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for("run 2", T, || s.log("talk").contains("run 2 err"));
    let out = s.cli(&["logs", "talk", "-n", "50"]);
    let text = stdout(&out);
    for l in ["run 1 out", "run 1 err", "run 2 out", "run 2 err"] {
        assert!(text.contains(l), "missing {l:?} in:\n{text}");
    }
    assert!(text.find("run 1 out") < text.find("run 2 out"));
    let log = s.log("talk");
    assert!(
        log.lines().any(|l| l.ends_with(" E run 1 err")),
        "stderr is tagged:\n{log}"
    );
    // -n limits, all-services view prefixes
    let out = s.cli(&["logs", "talk", "-n", "1"]);
    assert_eq!(stdout(&out).lines().count(), 1);
    let all = stdout(&s.cli(&["logs"]));
    assert!(
        all.lines().any(|l| l.starts_with("talk | run 2 out")),
        "{all}"
    );
}

#[test]
fn sigint_stops_everything_sigterm_leaves_it_running() {
    let mut s = Stack::new();
    s.spec("one", &native("one", "sleep 1000", ""));
    s.start_daemon();
    assert!(s.cli(&["up"]).status.success());
    let pid = s.wait_state("one", ServiceState::Running, T).pid.unwrap();
    s.signal_daemon(nix::sys::signal::Signal::SIGTERM);
    assert!(alive(pid), "SIGTERM leaves services running");
    assert!(
        !s.home.join("aurelia.sock").exists(),
        "socket removed on clean exit"
    );
    s.start_daemon();
    let st = s.wait_state("one", ServiceState::Running, T);
    assert_eq!(st.pid, Some(pid), "the next daemon adopts it");
    s.stop_daemon();
    assert!(!alive(pid), "SIGINT stops services");
    assert!(
        s.tagged_processes().is_empty(),
        "nothing left: {:?}",
        s.tagged_processes()
    );
}

#[test]
fn up_restarts_a_failed_service_after_its_dependencies() {
    let mut s = Stack::new();
    let marker = s.work.join("ok");
    let x = s.script(
        "x.sh",
        &format!(
            "[ -e {} ] || {{ echo not yet; exit 1; }}\nexec sleep 1000",
            marker.display()
        ),
    );
    s.spec("dep", &native("dep", "sleep 1000", ""));
    s.spec(
        "x",
        &native(
            "x",
            &x.display().to_string(),
            "restart:\n  policy: never\ndependencies:\n  after: [dep]\n  requires: [dep]\n",
        ),
    );
    s.start_daemon();
    let _ = s.cli(&["up"]);
    s.wait_state("x", ServiceState::Failed, T);
    assert!(s.cli(&["down", "dep"]).status.success());
    s.wait_state("dep", ServiceState::Stopped, T);
    std::fs::write(&marker, "").unwrap();
    let out = s.cli(&["up", "x"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(s.status("dep").state, ServiceState::Running);
    assert_eq!(s.status("x").state, ServiceState::Running);
}
