//! Container services against a real Docker engine (scripts/components.sh starts one and
//! imports the tiny `aurelia-test/busybox` image). Outside CI, without an engine, these tests
//! say so and skip; with CI=true a missing engine fails them.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aurelia_api::{HealthState, ServiceState};
use common::*;

const T: Duration = Duration::from_secs(30);
const IMAGE: &str = "aurelia-test/busybox:latest";

/// Whether an engine and the test image are there; panics in CI when they are not.
fn engine() -> bool {
    let ok = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "CI=true but no Docker engine with {IMAGE}: scripts/components.sh must set it up"
            );
        }
        eprintln!("SKIPPED: no Docker engine with {IMAGE} (run scripts/test, which starts one)");
    }
    ok
}

/// Removes this home's containers when the test ends.
struct Containers(String);
impl Drop for Containers {
    fn drop(&mut self) {
        let out = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=dev.aurelia.home={}", self.0),
            ])
            .output();
        if let Ok(o) = out {
            for id in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = Command::new("docker").args(["rm", "-f", id]).output();
            }
        }
    }
}

fn stack() -> (Stack, Containers) {
    let s = Stack::new();
    let c = Containers(s.home.display().to_string());
    (s, c)
}

/// A service name unique to this test run (container names are global to the engine).
fn uniq(base: &str) -> String {
    format!("{base}-{}-{}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        % 100_000
}

fn docker(args: &[&str]) -> String {
    let o = Command::new("docker").args(args).output().expect("docker");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn httpd_spec(name: &str, extra: &str) -> String {
    format!(
        "service: {{name: {name}, type: container, image: {IMAGE}}}\nnetwork: {{port: 0}}\nargs: [httpd, -f, -p, '127.0.0.1:${{PORT}}', -h, /www]\nhealth: {{type: http, path: /, interval: 1s}}\n{extra}"
    )
}

#[test]
fn a_container_comes_up_healthy_and_native_dependents_follow_it() {
    if !engine() {
        return;
    }
    let (mut s, _c) = stack();
    let web = uniq("web");
    s.spec("web", &httpd_spec(&web, ""));
    s.spec(
        "app",
        &format!("service: {{name: app, type: native, command: sleep 1000}}\ndependencies: {{after: [{web}], requires: [{web}]}}\n"),
    );
    s.start_daemon();
    let out = s.cli(&["up"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let st = s.status(&web);
    assert_eq!(st.state, ServiceState::Running);
    assert_eq!(st.health, Some(HealthState::Healthy));
    let id = st.container_id.clone().expect("container id");
    let port = st.port.unwrap();
    // the real thing answers on the host network
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(c, "GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    c.read_to_string(&mut body).unwrap();
    assert!(body.contains("aurelia-test ok"), "{body}");
    // labelled and named as documented
    let labels = docker(&[
        "inspect",
        "-f",
        "{{index .Config.Labels \"dev.aurelia.service\"}}",
        &id,
    ]);
    assert_eq!(labels, web);
    assert_eq!(
        docker(&["inspect", "-f", "{{.Name}}", &id]),
        format!("/aurelia-{web}")
    );
    assert_eq!(s.status("app").state, ServiceState::Running);

    // stopping the container cascades; down removes it
    let out = s.cli(&["down", &web]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(s.status("app").state, ServiceState::Waiting);
    assert!(
        docker(&["ps", "-aq", "--filter", &format!("id={id}")]).is_empty(),
        "container removed"
    );
    // and back
    assert!(s.cli(&["up", &web]).status.success());
    s.wait_state("app", ServiceState::Running, T);
}

#[test]
fn container_output_lands_in_the_log_store() {
    if !engine() {
        return;
    }
    let (mut s, _c) = stack();
    let talk = uniq("talk");
    s.spec(
        "talk",
        &format!(
            "service: {{name: {talk}, type: container, image: {IMAGE}}}\nargs: [sh, -c, 'echo hello-from-container; echo oops >&2; exec sleep 1000']\nenv: {{GREETING: hi}}\n"
        ),
    );
    s.start_daemon();
    assert!(s.cli(&["up"]).status.success());
    wait_for("container output", T, || {
        s.log(&talk).contains("hello-from-container")
    });
    let log = s.log(&talk);
    assert!(
        log.lines().any(|l| l.ends_with(" O hello-from-container")),
        "{log}"
    );
    assert!(log.lines().any(|l| l.ends_with(" E oops")), "{log}");
    let out = stdout(&s.cli(&["logs", &talk]));
    assert!(out.contains("hello-from-container"), "{out}");
}

#[test]
fn a_killed_daemon_re_adopts_the_container_without_a_restart() {
    if !engine() {
        return;
    }
    let (mut s, _c) = stack();
    let web = uniq("keep");
    s.spec("web", &httpd_spec(&web, ""));
    s.start_daemon();
    assert!(s.cli(&["up"]).status.success());
    let before = s.status(&web);
    s.kill_daemon();
    s.start_daemon();
    let after = s.wait_state(&web, ServiceState::Running, T);
    assert_eq!(after.container_id, before.container_id, "same container");
    assert_eq!(after.port, before.port);
    assert_eq!(after.restarts, 0);
    assert!(after.adopted);
    // fully supervised: a stop works
    assert!(s.cli(&["down", &web]).status.success());
    assert!(docker(&["ps", "-aq", "--filter", &format!("name=aurelia-{web}")]).is_empty());
}

#[test]
fn a_crashing_container_is_restarted_on_failure() {
    if !engine() {
        return;
    }
    let (mut s, _c) = stack();
    let crash = uniq("crash");
    s.spec(
        "crash",
        &format!(
            "service: {{name: {crash}, type: container, image: {IMAGE}}}\nargs: [sh, -c, 'echo boom; exit 3']\nrestart: {{policy: on-failure, max_attempts: 2, delay: 100ms}}\n"
        ),
    );
    s.start_daemon();
    let _ = s.cli(&["up", "--no-wait"]);
    let st = s.wait_state(&crash, ServiceState::Failed, T);
    assert_eq!(st.restarts, 2);
    assert!(st.last_error.unwrap().contains("exited with code 3"));
    assert_eq!(s.log(&crash).matches(" O boom").count(), 3);
}

#[test]
fn missing_image_foreign_name_and_missing_volume_are_clear_errors() {
    if !engine() {
        return;
    }
    let (mut s, _c) = stack();
    let noimg = uniq("noimg");
    let clash = uniq("clash");
    let novol = uniq("novol");
    s.spec(
        "noimg",
        &format!("service: {{name: {noimg}, type: container, image: aurelia-test/not-there:1}}\nrestart: {{policy: never}}\n"),
    );
    s.spec("clash", &format!("service: {{name: {clash}, type: container, image: {IMAGE}}}\nrestart: {{policy: never}}\n"));
    s.spec(
        "novol",
        &format!("service: {{name: {novol}, type: container, image: {IMAGE}}}\nvolumes: {{/nonexistent/aurelia-data: /data}}\nrestart: {{policy: never}}\n"),
    );
    s.spec(
        "fine",
        "service: {name: fine, type: native, command: sleep 1000}\n",
    );
    let foreign = format!("aurelia-{clash}");
    docker(&["run", "-d", "--name", &foreign, IMAGE, "sleep", "1000"]);
    let _cleanup = ForeignContainer(foreign.clone());
    s.start_daemon();
    let _ = s.cli(&["up", "--no-wait"]);
    let e = s
        .wait_state(&noimg, ServiceState::Failed, T)
        .last_error
        .unwrap();
    assert!(
        e.contains("image aurelia-test/not-there:1 is not present") && e.contains("pull: missing"),
        "{e}"
    );
    let e = s
        .wait_state(&clash, ServiceState::Failed, T)
        .last_error
        .unwrap();
    assert!(
        e.contains(&format!("a container named {foreign} already exists"))
            && e.contains("not created by"),
        "{e}"
    );
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Running}}", &foreign]),
        "true",
        "the foreign container is untouched"
    );
    let e = s
        .wait_state(&novol, ServiceState::Failed, T)
        .last_error
        .unwrap();
    assert!(
        e.contains("/nonexistent/aurelia-data does not exist"),
        "{e}"
    );
    s.wait_state("fine", ServiceState::Running, T);
}

struct ForeignContainer(String);
impl Drop for ForeignContainer {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

/// A stand-in for the engine's socket that can be switched off: forwards connections to the
/// real engine while on; switching it off cuts every connection, as a stopped engine does.
struct EngineProxy {
    path: std::path::PathBuf,
    on: Arc<AtomicBool>,
    conns: Arc<std::sync::Mutex<Vec<UnixStream>>>,
}

impl EngineProxy {
    fn start(path: std::path::PathBuf) -> EngineProxy {
        let p = EngineProxy {
            path,
            on: Arc::new(AtomicBool::new(true)),
            conns: Arc::new(std::sync::Mutex::new(Vec::new())),
        };
        p.listen();
        p
    }

    fn listen(&self) {
        let _ = std::fs::remove_file(&self.path);
        let l = UnixListener::bind(&self.path).unwrap();
        let on = self.on.clone();
        let conns = self.conns.clone();
        on.store(true, Ordering::SeqCst);
        std::thread::spawn(move || {
            for c in l.incoming() {
                if !on.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = c else { continue };
                let Ok(engine) = UnixStream::connect("/var/run/docker.sock") else {
                    continue;
                };
                {
                    let mut g = conns.lock().unwrap();
                    g.push(client.try_clone().unwrap());
                    g.push(engine.try_clone().unwrap());
                }
                let pipe = |mut a: UnixStream, mut b: UnixStream| {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut a, &mut b);
                        let _ = b.shutdown(std::net::Shutdown::Write);
                    });
                };
                pipe(client.try_clone().unwrap(), engine.try_clone().unwrap());
                pipe(engine, client);
            }
        });
    }

    /// The engine "stops": no new connections, existing ones are cut.
    fn stop(&self) {
        self.on.store(false, Ordering::SeqCst);
        let _ = UnixStream::connect(&self.path); // wake the accept loop so it exits
        let _ = std::fs::remove_file(&self.path);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[test]
fn an_engine_that_goes_away_affects_container_services_only() {
    if !engine() {
        return;
    }
    let (mut s, _c) = stack();
    let sock = s.dir.path().join("engine.sock");
    let proxy = EngineProxy::start(sock.clone());
    s.env("DOCKER_HOST", &format!("unix://{}", sock.display()));
    let web = uniq("eng");
    s.spec("web", &httpd_spec(&web, ""));
    s.spec(
        "native",
        "service: {name: native, type: native, command: sleep 1000}\n",
    );
    s.start_daemon();
    assert!(s.cli(&["up"]).status.success());
    let id = s.status(&web).container_id;
    let native = s.status("native").pid;

    proxy.stop();
    let st = s.wait_state(&web, ServiceState::Backoff, T);
    let e = st.last_error.unwrap();
    assert!(e.contains("Docker engine"), "{e}");
    assert_eq!(
        s.status("native").pid,
        native,
        "native services are not affected"
    );
    assert_eq!(s.status("native").state, ServiceState::Running);

    proxy.listen();
    let st = s.wait_state(&web, ServiceState::Running, T);
    assert_eq!(
        st.container_id, id,
        "the container kept running and is adopted again"
    );
}

#[test]
fn no_engine_at_all_is_explained_and_retried() {
    let (mut s, _c) = stack();
    s.env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    s.spec(
        "c",
        &format!(
            "service: {{name: c-{}, type: container, image: {IMAGE}}}\n",
            std::process::id()
        ),
    );
    s.spec(
        "native",
        "service: {name: native, type: native, command: sleep 1000}\n",
    );
    s.start_daemon();
    let _ = s.cli(&["up", "--no-wait"]);
    let name = format!("c-{}", std::process::id());
    let st = s.wait_state(&name, ServiceState::Backoff, T);
    let e = st.last_error.unwrap();
    assert!(
        e.contains("Docker engine is not reachable")
            && e.contains("/nonexistent/docker.sock")
            && e.contains("retrying"),
        "{e}"
    );
    assert_eq!(st.restarts, 0, "engine trouble does not use up attempts");
    s.wait_state("native", ServiceState::Running, T);
}

#[test]
fn pull_policies_are_honoured() {
    if !engine() {
        return;
    }
    let (mut s, _c) = stack();
    let present = uniq("pullmissing");
    let always = uniq("pullalways");
    // present locally: `missing` does not pull, it just runs
    s.spec(
        "present",
        &format!("service: {{name: {present}, type: container, image: {IMAGE}, pull: missing}}\nargs: [sleep, '1000']\n"),
    );
    // a local-only image cannot be pulled: `always` tries, and says what went wrong
    s.spec(
        "always",
        &format!("service: {{name: {always}, type: container, image: {IMAGE}, pull: always}}\nargs: [sleep, '1000']\nrestart: {{policy: never}}\n"),
    );
    s.start_daemon();
    let _ = s.cli(&["up", "--no-wait"]);
    s.wait_state(&present, ServiceState::Running, T);
    let e = s
        .wait_state(&always, ServiceState::Failed, T)
        .last_error
        .unwrap();
    assert!(e.starts_with(&format!("pulling image {IMAGE}:")), "{e}");
}
