//! `aurelia-bench`: Aurelia's benchmark suite (run it with `scripts/bench`).
//!
//! Starts the given `aurelia` binary in temporary homes and measures what a developer feels
//! and what a laptop pays: CLI latency, crash-to-restart time, start/stop of many services,
//! health-gated start of a dependency chain, idle CPU and memory, log throughput (with a
//! check that no line is lost or reordered), and recovery after a daemon SIGKILL. Prints
//! medians with spread, and a Markdown table to paste into docs/benchmarks.md.
//!
//! Timings are measured, never asserted: the machines are noisy. Correctness checks (lines
//! lost, services running) do fail the run.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aurelia_api::{Client, Endpoint, Event, ServiceList, ServiceState, ServicesRequest};

struct Opts {
    aurelia: PathBuf,
    repo: PathBuf,
    quick: bool,
    only: Option<String>,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut opts = Opts {
        aurelia: PathBuf::from("target/release/aurelia"),
        repo: std::env::current_dir().expect("cwd"),
        quick: false,
        only: None,
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--aurelia" => opts.aurelia = PathBuf::from(args.next().expect("--aurelia PATH")),
            "--repo" => opts.repo = PathBuf::from(args.next().expect("--repo DIR")),
            "--quick" => opts.quick = true,
            "--only" => opts.only = args.next(),
            "-h" | "--help" => {
                println!(
                    "usage: aurelia-bench [--aurelia PATH] [--repo DIR] [--quick] [--only NAME]"
                );
                println!("names: latency crash start chain idle logs recovery");
                return;
            }
            other => panic!("unknown argument {other}"),
        }
    }
    opts.aurelia = std::path::absolute(&opts.aurelia).expect("path");
    assert!(
        opts.aurelia.exists(),
        "{} does not exist; build it with cargo build --release",
        opts.aurelia.display()
    );
    println!("# Aurelia benchmarks");
    println!();
    println!("binary: {}", opts.aurelia.display());
    println!("machine: {}", machine());
    println!();
    let mut report = Report::default();
    let run = |name: &str| opts.only.as_deref().is_none_or(|o| o == name);
    if run("latency") {
        latency(&opts, &mut report);
    }
    if run("crash") {
        crash(&opts, &mut report);
    }
    if run("start") {
        start_stop(&opts, &mut report);
    }
    if run("chain") {
        chain(&opts, &mut report);
    }
    if run("idle") {
        idle(&opts, &mut report);
    }
    if run("logs") {
        logs(&opts, &mut report);
    }
    if run("recovery") {
        recovery(&opts, &mut report);
    }
    println!();
    println!("## Summary");
    println!();
    println!("| measurement | median | spread (p10 – p90, n) |");
    println!("|---|---|---|");
    for (k, v) in &report.rows {
        println!("| {k} | {} | {} |", v.0, v.1);
    }
    if !report.failures.is_empty() {
        println!();
        for f in &report.failures {
            println!("FAILED: {f}");
        }
        std::process::exit(1);
    }
}

#[derive(Default)]
struct Report {
    rows: Vec<(String, (String, String))>,
    failures: Vec<String>,
}

impl Report {
    fn ms(&mut self, what: &str, samples: &mut [f64]) {
        let s = stats(samples);
        let row = (
            format!("{:.2} ms", s.median * 1e3),
            format!("{:.2} – {:.2} ms, n={}", s.p10 * 1e3, s.p90 * 1e3, s.n),
        );
        println!("  {what}: median {} ({})", row.0, row.1);
        self.rows.push((what.to_string(), row));
    }

    fn value(&mut self, what: &str, median: String, spread: String) {
        println!("  {what}: {median} ({spread})");
        self.rows.push((what.to_string(), (median, spread)));
    }

    fn check(&mut self, ok: bool, what: String) {
        if !ok {
            println!("  FAILED: {what}");
            self.failures.push(what);
        }
    }
}

struct Stats {
    median: f64,
    p10: f64,
    p90: f64,
    n: usize,
}

fn stats(v: &mut [f64]) -> Stats {
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Stats {
        median: at(0.5),
        p10: at(0.1),
        p90: at(0.9),
        n: v.len(),
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map(|kb| format!("{} GiB", kb / 1024 / 1024))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores, {mem}, Linux {}", kernel.trim())
}

/// A daemon in a temporary home.
struct Daemon {
    root: PathBuf,
    home: PathBuf,
    aurelia: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    fn new(opts: &Opts, tag: &str) -> Daemon {
        let root = std::env::temp_dir().join(format!("aurelia-bench-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let home = root.join("h");
        std::fs::create_dir_all(home.join("services")).expect("home");
        Daemon {
            root,
            home,
            aurelia: opts.aurelia.clone(),
            child: None,
        }
    }

    fn spec(&self, name: &str, yaml: &str) {
        std::fs::write(
            self.home.join("services").join(format!("{name}.yaml")),
            yaml,
        )
        .expect("spec");
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("daemon.log"))
            .expect("log");
        let child = Command::new(&self.aurelia)
            .arg("daemon")
            .env("AURELIA_HOME", &self.home)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("spawn daemon");
        self.child = Some(child);
        let c = self.client();
        wait("the daemon to answer", Duration::from_secs(30), || {
            c.get::<serde_json::Value>("/v1/health").is_ok()
        });
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("daemon running")
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGINT,
            );
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn client(&self) -> Client {
        Client::new(Endpoint::Unix(self.home.join("aurelia.sock")))
    }

    fn list(&self) -> ServiceList {
        self.client().get("/v1/services").expect("list")
    }

    fn all_in(&self, n: usize, state: ServiceState) -> bool {
        self.list()
            .services
            .iter()
            .filter(|s| s.state == state)
            .count()
            == n
    }

    fn up(&self) {
        let _: serde_json::Value = self
            .client()
            .post("/v1/up", Some(&ServicesRequest::default()))
            .expect("up");
    }

    fn cli(&self, args: &[&str]) -> Duration {
        let t = Instant::now();
        let st = Command::new(&self.aurelia)
            .args(args)
            .env("AURELIA_HOME", &self.home)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("cli");
        let d = t.elapsed();
        assert!(st.success(), "aurelia {args:?} failed");
        d
    }

    fn events(&self) -> mpsc::Receiver<Event> {
        let s = self
            .client()
            .with_timeout(None)
            .stream::<Event>("/v1/events?logs=false")
            .expect("events");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for e in s.flatten() {
                if tx.send(e).is_err() {
                    return;
                }
            }
        });
        rx
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn wait(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn sleep_spec(name: &str, extra: &str) -> String {
    format!("service: {{name: {name}, type: native, command: sleep 100000}}\n{extra}")
}

/// CPU time of every thread of a process, in seconds, from schedstat (nanoseconds), and the
/// number of times its threads were switched in (wake-ups).
fn cpu_precise(pid: u32) -> (f64, u64) {
    let mut ns = 0u64;
    let mut switches = 0u64;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = t.path();
        if let Ok(s) = std::fs::read_to_string(p.join("schedstat")) {
            ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
        if let Ok(st) = std::fs::read_to_string(p.join("status")) {
            for l in st.lines() {
                if l.starts_with("voluntary_ctxt_switches:")
                    || l.starts_with("nonvoluntary_ctxt_switches:")
                {
                    switches += l
                        .split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0);
                }
            }
        }
    }
    (ns as f64 / 1e9, switches)
}

fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn pss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Pss:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// PIDs of the log relays of a home.
fn relays(home: &Path) -> Vec<u32> {
    let needle = home.join("logs").display().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmd.contains("__log-relay") && cmd.contains(&needle) {
            out.push(pid);
        }
    }
    out
}

fn latency(opts: &Opts, r: &mut Report) {
    println!("## control latency");
    for n in [10usize, 100] {
        let mut d = Daemon::new(opts, &format!("lat{n}"));
        for i in 0..n {
            d.spec(&format!("s{i:03}"), &sleep_spec(&format!("s{i:03}"), ""));
        }
        d.start();
        d.up();
        wait("all running", Duration::from_secs(60), || {
            d.all_in(n, ServiceState::Running)
        });
        let runs = if opts.quick { 30 } else { 200 };
        for _ in 0..5 {
            d.cli(&["status"]);
        }
        let mut v: Vec<f64> = (0..runs)
            .map(|_| d.cli(&["status"]).as_secs_f64())
            .collect();
        r.ms(
            &format!("`aurelia status`, {n} services (CLI wall time)"),
            &mut v,
        );
        let mut v: Vec<f64> = (0..runs)
            .map(|_| d.cli(&["status", "--json"]).as_secs_f64())
            .collect();
        r.ms(&format!("`aurelia status --json`, {n} services"), &mut v);
        let sock = d.home.join("aurelia.sock");
        let mut v: Vec<f64> = (0..runs * 5)
            .map(|_| {
                let t = Instant::now();
                let mut c = UnixStream::connect(&sock).expect("connect");
                c.write_all(b"GET /v1/services HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .expect("write");
                let mut b = Vec::new();
                c.read_to_end(&mut b).expect("read");
                t.elapsed().as_secs_f64()
            })
            .collect();
        r.ms(
            &format!("`GET /v1/services`, {n} services (one request)"),
            &mut v,
        );
    }
}

fn crash(opts: &Opts, r: &mut Report) {
    println!("## crash to restart");
    let mut d = Daemon::new(opts, "crash");
    d.spec(
        "victim",
        &sleep_spec(
            "victim",
            "restart: {policy: always, delay: 0s, max_attempts: 0}\n",
        ),
    );
    d.start();
    d.up();
    wait("running", Duration::from_secs(10), || {
        d.all_in(1, ServiceState::Running)
    });
    let events = d.events();
    let mut v = Vec::new();
    for _ in 0..20 {
        let old = d.list().services[0].pid.expect("pid");
        while events.try_recv().is_ok() {}
        let t = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(old as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill");
        loop {
            match events
                .recv_timeout(Duration::from_secs(10))
                .expect("an event")
            {
                Event::State(s)
                    if s.state == ServiceState::Running && s.pid.is_some_and(|p| p != old) =>
                {
                    break;
                }
                _ => {}
            }
        }
        v.push(t.elapsed().as_secs_f64());
        std::thread::sleep(Duration::from_millis(50));
    }
    r.ms("crash (kill -9) → replacement running, delay 0", &mut v);
}

fn start_stop(opts: &Opts, r: &mut Report) {
    println!("## start all / stop all");
    for n in [50usize, 100] {
        let mut d = Daemon::new(opts, &format!("start{n}"));
        for i in 0..n {
            d.spec(&format!("s{i:03}"), &sleep_spec(&format!("s{i:03}"), ""));
        }
        d.start();
        let rounds = if opts.quick { 3 } else { 7 };
        let mut ups = Vec::new();
        let mut downs = Vec::new();
        let mut clis = Vec::new();
        for round in 0..rounds {
            let events = d.events();
            // the stream starts with one state per service
            for _ in 0..n {
                events
                    .recv_timeout(Duration::from_secs(10))
                    .expect("initial state");
            }
            let t = Instant::now();
            d.up();
            let mut running = std::collections::BTreeSet::new();
            while running.len() < n {
                if let Event::State(s) =
                    events.recv_timeout(Duration::from_secs(30)).expect("event")
                    && s.state == ServiceState::Running
                {
                    running.insert(s.name);
                }
            }
            ups.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let _: serde_json::Value = d
                .client()
                .post("/v1/down", Some(&ServicesRequest::default()))
                .expect("down");
            let mut stopped = std::collections::BTreeSet::new();
            while stopped.len() < n {
                if let Event::State(s) =
                    events.recv_timeout(Duration::from_secs(30)).expect("event")
                    && s.state == ServiceState::Stopped
                {
                    stopped.insert(s.name);
                }
            }
            downs.push(t.elapsed().as_secs_f64());
            if round < 3 {
                clis.push(d.cli(&["up"]).as_secs_f64());
                d.cli(&["down"]);
            }
        }
        r.ms(
            &format!("{n} independent services: up → all running (exec'd)"),
            &mut ups,
        );
        r.ms(
            &format!("{n} independent services: down → all stopped"),
            &mut downs,
        );
        r.ms(
            &format!("{n} independent services: `aurelia up` CLI wall time (incl. 250 ms settle)"),
            &mut clis,
        );
    }
}

fn chain(opts: &Opts, r: &mut Report) {
    println!("## health-gated chain");
    let httpd = opts.repo.join("tests/fixtures/httpd.pl");
    // own start-up time of one link: spawn to first HTTP 200
    let mut own = Vec::new();
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let t = Instant::now();
        let mut c = Command::new(&httpd)
            .env("PORT", port.to_string())
            .env("LISTEN_DELAY_MS", "200")
            .stdout(Stdio::null())
            .spawn()
            .expect("httpd");
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let _ = s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n");
                let mut b = String::new();
                let _ = s.read_to_string(&mut b);
                if b.starts_with("HTTP/1.1 200") {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        own.push(t.elapsed().as_secs_f64());
        let _ = c.kill();
        let _ = c.wait();
    }
    let own_med = stats(&mut own).median;
    let mut d = Daemon::new(opts, "chain");
    for i in 1..=5 {
        let deps = if i == 1 {
            String::new()
        } else {
            format!(
                "dependencies: {{after: [c{}], requires: [c{}]}}\n",
                i - 1,
                i - 1
            )
        };
        d.spec(
            &format!("c{i}"),
            &format!(
                "service: {{name: c{i}, type: native, command: {}}}\nnetwork: {{port: 0}}\nhealth: {{type: http, path: /healthz, interval: 10s}}\nenv: {{LISTEN_DELAY_MS: '200'}}\n{deps}",
                httpd.display()
            ),
        );
    }
    d.start();
    let mut v = Vec::new();
    for _ in 0..(if opts.quick { 3 } else { 5 }) {
        let t = Instant::now();
        d.up();
        wait("chain healthy", Duration::from_secs(60), || {
            d.all_in(5, ServiceState::Running)
        });
        v.push(t.elapsed().as_secs_f64());
        let _: serde_json::Value = d
            .client()
            .post("/v1/down", Some(&ServicesRequest::default()))
            .expect("down");
        wait("chain down", Duration::from_secs(60), || {
            d.all_in(5, ServiceState::Stopped)
        });
    }
    r.value(
        "5-level chain of HTTP services (listen after 200 ms, 10 s interval): up → all healthy",
        format!("{:.0} ms", stats(&mut v).median * 1e3),
        format!(
            "sum of their own start-up times {:.0} ms (5 × {:.0} ms)",
            own_med * 5e3,
            own_med * 1e3
        ),
    );
}

fn idle(opts: &Opts, r: &mut Report) {
    println!("## idle footprint");
    let secs = if opts.quick { 10 } else { 60 };
    let tcp = opts.repo.join("examples/bin/tcp-server.pl");
    for (n, health) in [(10usize, false), (100, false), (10, true), (100, true)] {
        let mut d = Daemon::new(opts, &format!("idle{n}{health}"));
        for i in 0..n {
            let name = format!("s{i:03}");
            if health {
                d.spec(
                    &name,
                    &format!(
                        "service: {{name: {name}, type: native, command: {}}}\nnetwork: {{port: 0}}\nhealth: {{type: tcp, interval: 10s}}\n",
                        tcp.display()
                    ),
                );
            } else {
                d.spec(&name, &sleep_spec(&name, ""));
            }
        }
        d.start();
        d.up();
        wait("all running", Duration::from_secs(120), || {
            d.all_in(n, ServiceState::Running)
        });
        std::thread::sleep(Duration::from_secs(2));
        let pid = d.pid();
        let relay_pids = relays(&d.home);
        let (c0, w0) = cpu_precise(pid);
        let r0: f64 = relay_pids.iter().map(|p| cpu_precise(*p).0).sum();
        std::thread::sleep(Duration::from_secs(secs));
        let (c1, w1) = cpu_precise(pid);
        let r1: f64 = relay_pids.iter().map(|p| cpu_precise(*p).0).sum();
        let rss = status_kb(pid, "VmRSS:");
        let anon = status_kb(pid, "RssAnon:");
        let relay_pss: u64 = relay_pids.iter().map(|p| pss_kb(*p)).sum();
        let what = if health {
            "tcp health checks every 10 s"
        } else {
            "no health checks"
        };
        r.value(
            &format!("idle daemon, {n} services, {what}: CPU over {secs} s"),
            format!("{:.4} %", (c1 - c0) / secs as f64 * 100.0),
            format!(
                "{:.1} ms CPU, {:.1} wake-ups/s; relays {:.1} ms",
                (c1 - c0) * 1e3,
                (w1 - w0) as f64 / secs as f64,
                (r1 - r0) * 1e3
            ),
        );
        r.value(
            &format!("idle daemon, {n} services, {what}: RSS"),
            format!("{:.1} MB", rss as f64 / 1024.0),
            format!(
                "anonymous {:.1} MB; {} relays, PSS {:.1} MB total",
                anon as f64 / 1024.0,
                relay_pids.len(),
                relay_pss as f64 / 1024.0
            ),
        );
    }
}

fn count_lines(home: &Path, name: &str) -> (u64, bool) {
    let mut files: Vec<PathBuf> = (1..20)
        .map(|i| home.join(format!("logs/{name}.log.{i}")))
        .filter(|p| p.exists())
        .collect();
    files.reverse();
    files.push(home.join(format!("logs/{name}.log")));
    let mut expect = 1u64;
    let mut in_order = true;
    for f in files {
        let data = std::fs::read(f).unwrap_or_default();
        for rec in data.split(|b| *b == b'\n') {
            if rec.len() > 27 && rec[25] == b'O' {
                let n: u64 = std::str::from_utf8(&rec[27..])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                if n != expect {
                    in_order = false;
                }
                expect = n + 1;
            }
        }
    }
    (expect - 1, in_order)
}

fn logs(opts: &Opts, r: &mut Report) {
    println!("## log throughput");
    let lines = 2_000_000u64;
    let linegen = opts.aurelia.with_file_name("linegen");
    assert!(
        linegen.exists(),
        "{} missing (scripts/bench builds it)",
        linegen.display()
    );
    let rounds = if opts.quick { 3 } else { 5 };
    let tmp = std::env::temp_dir().join(format!("aurelia-bench-elapsed-{}", std::process::id()));
    let py = |unbuffered: bool| -> Vec<String> {
        let mut v = vec!["python3".to_string()];
        if unbuffered {
            v.push("-u".into());
        }
        v.push("-c".into());
        v.push(format!(
            "import time,sys\nt=time.perf_counter()\nfor i in range(1,{lines}+1): print(i)\nsys.stdout.flush()\nopen('{}','w').write(str(int((time.perf_counter()-t)*1e9)))",
            tmp.display()
        ));
        v
    };
    let writers: [(&str, Vec<String>); 3] = [
        (
            "native writer, 64 KiB writes",
            vec![
                linegen.display().to_string(),
                lines.to_string(),
                tmp.display().to_string(),
            ],
        ),
        ("python3 print loop, block-buffered", py(false)),
        ("python3 -u print loop, one write per print", py(true)),
    ];
    for (label, argv) in writers {
        if argv[0] == "python3" && Command::new("python3").arg("-V").output().is_err() {
            println!("  (python3 not found; skipping the python writer)");
            continue;
        }
        let run_direct = || -> f64 {
            Command::new(&argv[0])
                .args(&argv[1..])
                .env("PYTHONUNBUFFERED", "")
                .stdout(Stdio::null())
                .status()
                .expect("run");
            std::fs::read_to_string(&tmp)
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(0.0)
                / 1e9
        };
        let mut base: Vec<f64> = (0..rounds).map(|_| run_direct()).collect();
        let base_med = stats(&mut base).median;
        let mut d = Daemon::new(opts, "logs");
        std::fs::write(d.home.join("config.yaml"), "log_max_size: 4GiB\n").expect("config");
        d.start();
        let mut under = Vec::new();
        for i in 0..rounds {
            let name = format!("gen{i}");
            let cmd = argv
                .iter()
                .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
                .collect::<Vec<_>>()
                .join(" ");
            d.spec(
                &name,
                &format!("service:\n  name: {name}\n  type: native\n  command: {}\nrestart: {{policy: never}}\nenv: {{PYTHONUNBUFFERED: ''}}\n", serde_json::to_string(&cmd).expect("json")),
            );
            let _: serde_json::Value = d.client().post("/v1/reload", None::<&()>).expect("reload");
            let _ = std::fs::remove_file(&tmp);
            wait("completed", Duration::from_secs(120), || {
                d.list()
                    .services
                    .iter()
                    .any(|s| s.name == name && s.state == ServiceState::Completed)
            });
            let t = std::fs::read_to_string(&tmp)
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(0.0)
                / 1e9;
            under.push(t);
            let deadline = Instant::now() + Duration::from_secs(60);
            let (mut got, mut ordered) = (0, true);
            while Instant::now() < deadline {
                (got, ordered) = count_lines(&d.home, &name);
                if got >= lines {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            r.check(
                got == lines && ordered,
                format!("{label}: {got} of {lines} lines, in order: {ordered}"),
            );
        }
        let under_med = stats(&mut under).median;
        r.value(
            &format!("2 M lines, {label}: run time under Aurelia ÷ to /dev/null"),
            format!("{:.3}", under_med / base_med),
            format!(
                "{:.0} ms vs {:.0} ms; 0 lost, 0 reordered (checked)",
                under_med * 1e3,
                base_med * 1e3
            ),
        );
    }
    let _ = std::fs::remove_file(&tmp);
}

fn recovery(opts: &Opts, r: &mut Report) {
    println!("## recovery after SIGKILL");
    let mut d = Daemon::new(opts, "recovery");
    let counter = d.root.join("count.sh");
    std::fs::write(
        &counter,
        "#!/bin/sh\ni=0\nwhile :; do i=$((i+1)); echo $i; sleep 0.01; done\n",
    )
    .expect("script");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&counter, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    for i in 0..100 {
        let name = format!("s{i:03}");
        if i < 10 {
            d.spec(
                &name,
                &format!(
                    "service: {{name: {name}, type: native, command: {}}}\n",
                    counter.display()
                ),
            );
        } else {
            d.spec(&name, &sleep_spec(&name, ""));
        }
    }
    d.start();
    d.up();
    wait("all running", Duration::from_secs(60), || {
        d.all_in(100, ServiceState::Running)
    });
    let pids: BTreeMap<String, Option<u32>> = d
        .list()
        .services
        .into_iter()
        .map(|s| (s.name, s.pid))
        .collect();
    let rounds = if opts.quick { 10 } else { 50 };
    let mut v = Vec::new();
    for _ in 0..rounds {
        std::thread::sleep(Duration::from_millis(100));
        d.kill();
        let t = Instant::now();
        d.start();
        wait("all adopted", Duration::from_secs(60), || {
            let l = d.list();
            l.services
                .iter()
                .filter(|s| s.state == ServiceState::Running && s.adopted)
                .count()
                == 100
        });
        v.push(t.elapsed().as_secs_f64());
    }
    r.ms(
        "daemon SIGKILL + restart, 100 services: start → all re-adopted",
        &mut v,
    );
    let now: BTreeMap<String, Option<u32>> = d
        .list()
        .services
        .into_iter()
        .map(|s| (s.name, s.pid))
        .collect();
    r.check(now == pids, "every service kept its PID".into());
    std::thread::sleep(Duration::from_millis(100));
    let mut lost = 0;
    for i in 0..10 {
        let (_, ordered) = count_lines(&d.home, &format!("s{i:03}"));
        if !ordered {
            lost += 1;
        }
    }
    r.check(
        lost == 0,
        format!("{lost} counter logs with missing or repeated lines"),
    );
    r.value(
        &format!(
            "log lines lost or repeated over {rounds} SIGKILLs (10 services writing every 10 ms)"
        ),
        "0".into(),
        "checked line by line".into(),
    );
}
