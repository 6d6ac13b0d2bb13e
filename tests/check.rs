//! `aurelia check [FILE|DIR] [--json]`: the binary end to end.
//!
//! Exit codes (0 all valid, 2 anything invalid or unusable), the human output (snapshots under
//! `tests/snapshots/`), the JSON output, the default path under `$AURELIA_HOME`, and hostile
//! input: huge, binary, alias bombs, directories and FIFOs named `*.yaml`, unreadable files.
//! Every child runs under a deadline, so a hang fails the test instead of stalling the suite.
//! Self-contained on purpose: no daemon, no shared helpers.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long any `aurelia check` may take, hostile input included.
const DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    /// Exit code, stdout and stderr in one block, for snapshots.
    fn transcript(&self) -> String {
        format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            self.code.map_or("signal".to_string(), |c| c.to_string()),
            self.stdout,
            self.stderr
        )
    }
}

fn aurelia(cwd: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aurelia"));
    cmd.current_dir(cwd)
        .env("AURELIA_HOME", home)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `cmd`, killing it and failing the test if it is not done within [`DEADLINE`].
fn run(mut cmd: Command) -> Out {
    let child = cmd.spawn().expect("spawn aurelia");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(out) => {
            let out = out.expect("wait for aurelia");
            Out {
                code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        }
        Err(_) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            panic!("aurelia check did not finish within {DEADLINE:?}: {cmd:?}");
        }
    }
}

/// `aurelia check ARGS...` run in `cwd`, with a fresh home.
fn check(cwd: &Path, args: &[&str]) -> Out {
    let mut cmd = aurelia(cwd, &cwd.join(".aurelia-home"));
    cmd.arg("check").args(args);
    run(cmd)
}

/// Asserts a clean failure: exit 2, no panic, and `needle` in the output.
fn assert_fails_with(out: &Out, needle: &str) {
    assert_eq!(out.code, Some(2), "{}", out.transcript());
    assert!(
        !out.stderr.contains("panicked"),
        "panic:\n{}",
        out.transcript()
    );
    assert!(
        out.stdout.contains(needle) || out.stderr.contains(needle),
        "expected {needle:?} in\n{}",
        out.transcript()
    );
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(&p, text).expect("write spec");
    p
}

const POSTGRES: &str = "\
service:
  name: postgres
  type: container
  image: postgres:16

network:
  port: 5432

health:
  type: tcp
  interval: 5s
";

const API: &str = "\
service:
  name: api
  type: native
  command: go run ./cmd/api

network:
  port: 0

health:
  type: http
  path: /healthz

dependencies:
  after: [postgres]
  requires: [postgres]
";

/// Two mistakes in one file, so the output shows that every problem is reported.
const WORKER_BAD: &str = "\
service:
  name: worker
  type: native
  comand: go run ./cmd/worker

restart:
  delay: 1d

dependencies:
  after: [postgress]
";

const CACHE_BAD: &str = "\
service:
  name: cache
  type: container

network:
  port: \"6379\"
";

/// A small fixed directory: two valid specs, two invalid ones.
fn mixed_dir(root: &Path) -> PathBuf {
    let dir = root.join("services");
    write(&dir, "postgres.yaml", POSTGRES);
    write(&dir, "api.yaml", API);
    write(&dir, "worker.yaml", WORKER_BAD);
    write(&dir, "cache.yml", CACHE_BAD);
    // Not spec files: skipped.
    write(&dir, "README.md", "# my services\n");
    write(&dir, ".api.yaml.swp", "\0\0garbage");
    dir
}

fn valid_dir(root: &Path) -> PathBuf {
    let dir = root.join("services");
    write(&dir, "postgres.yaml", POSTGRES);
    write(&dir, "api.yaml", API);
    dir
}

#[test]
fn a_valid_directory_exits_0() {
    let tmp = tempfile::tempdir().expect("tempdir");
    valid_dir(tmp.path());
    let out = check(tmp.path(), &["services"]);
    assert_eq!(out.code, Some(0), "{}", out.transcript());
    assert!(
        out.stdout.contains("ok      services/api.yaml (api)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("ok      services/postgres.yaml (postgres)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .ends_with("2 files checked: 2 valid, 0 invalid (0 errors)\n"),
        "{}",
        out.stdout
    );
    assert_eq!(out.stderr, "");
}

#[test]
fn a_single_valid_file_exits_0() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "postgres.yaml", POSTGRES);
    let out = check(tmp.path(), &["postgres.yaml"]);
    assert_eq!(out.code, Some(0), "{}", out.transcript());
    assert!(
        out.stdout
            .ends_with("1 file checked: 1 valid, 0 invalid (0 errors)\n")
    );
}

#[test]
fn an_invalid_directory_exits_2_and_reports_every_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    mixed_dir(tmp.path());
    let out = check(tmp.path(), &["services"]);
    assert_eq!(out.code, Some(2), "{}", out.transcript());
    for line in [
        "services/worker.yaml:4:3: service.comand: unknown key `comand` in `service` (hint: did you mean `service.command`?)",
        "services/worker.yaml:7:10: restart.delay: unknown unit \"d\" in duration \"1d\"",
        "services/cache.yml:3:9: service.image: a container service needs `service.image`",
        "services/cache.yml:6:9: network.port: `network.port` must be a number, found the quoted string \"6379\" (hint: remove the quotes)",
    ] {
        assert!(
            out.stdout.contains(line),
            "missing {line:?} in\n{}",
            out.stdout
        );
    }
    assert!(
        out.stdout
            .ends_with("4 files checked: 2 valid, 2 invalid (5 errors)\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn human_output_snapshot() {
    let tmp = tempfile::tempdir().expect("tempdir");
    mixed_dir(tmp.path());
    let out = check(tmp.path(), &["services"]);
    insta::assert_snapshot!("check_mixed_dir", out.transcript());
}

#[test]
fn cross_file_output_snapshot() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("services");
    write(
        &dir,
        "a.yaml",
        "service: {name: a, type: native, command: ./a}\nnetwork: {port: 8080}\ndependencies: {after: [b]}\n",
    );
    write(
        &dir,
        "b.yaml",
        "service: {name: b, type: native, command: ./b}\nnetwork: {port: 8080}\ndependencies: {after: [a]}\n",
    );
    write(
        &dir,
        "c.yaml",
        "service: {name: a, type: native, command: ./c}\n",
    );
    let out = check(tmp.path(), &["services"]);
    assert_eq!(out.code, Some(2));
    insta::assert_snapshot!("check_cross_file", out.transcript());
}

#[test]
fn json_output_lists_files_with_their_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    mixed_dir(tmp.path());
    let out = check(tmp.path(), &["services", "--json"]);
    assert_eq!(out.code, Some(2), "{}", out.transcript());
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("stdout is JSON");
    let files = v.as_array().expect("a list of files");
    assert_eq!(files.len(), 4);
    let file = |name: &str| {
        files
            .iter()
            .find(|f| f["file"].as_str().is_some_and(|p| p.ends_with(name)))
            .unwrap_or_else(|| panic!("{name} in {v:#}"))
    };
    assert_eq!(file("api.yaml")["ok"], true);
    assert_eq!(file("api.yaml")["service"], "api");
    assert_eq!(file("api.yaml")["errors"], serde_json::json!([]));
    let worker = file("worker.yaml");
    assert_eq!(worker["ok"], false);
    let errors = worker["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 3, "{worker:#}");
    let lines: Vec<_> = errors.iter().map(|e| e["line"].as_u64()).collect();
    assert_eq!(
        lines,
        [Some(3), Some(4), Some(7)],
        "in file order: {worker:#}"
    );
    assert_eq!(
        errors[1],
        serde_json::json!({
            "line": 4,
            "col": 3,
            "key": "service.comand",
            "message": "unknown key `comand` in `service`",
            "hint": "did you mean `service.command`?",
        })
    );
    let cache = file("cache.yml");
    assert_eq!(cache["errors"][1]["line"], 6);
    assert_eq!(cache["errors"][1]["col"], 9);
    assert_eq!(cache["errors"][1]["key"], "network.port");
    assert!(
        cache["errors"][1]["message"]
            .as_str()
            .is_some_and(|m| m.contains("quoted string")),
        "{cache:#}"
    );
    // The JSON is the whole of stdout: no summary line mixed in.
    assert!(!out.stdout.contains("files checked"));
}

#[test]
fn json_output_snapshot() {
    let tmp = tempfile::tempdir().expect("tempdir");
    mixed_dir(tmp.path());
    let out = check(tmp.path(), &["services", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("stdout is JSON");
    insta::assert_json_snapshot!("check_mixed_dir_json", v);
}

#[test]
fn the_default_path_is_the_homes_services_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    write(&home.join("services"), "api.yaml", API);
    write(&home.join("services"), "postgres.yaml", POSTGRES);
    let mut cmd = aurelia(tmp.path(), &home);
    cmd.arg("check");
    let out = run(cmd);
    assert_eq!(out.code, Some(0), "{}", out.transcript());
    let shown = home.join("services/api.yaml");
    assert!(
        out.stdout
            .contains(&format!("ok      {} (api)", shown.display())),
        "{}",
        out.stdout
    );

    // And an invalid spec there makes it fail.
    write(&home.join("services"), "worker.yaml", WORKER_BAD);
    let mut cmd = aurelia(tmp.path(), &home);
    cmd.arg("check");
    let out = run(cmd);
    assert_fails_with(
        &out,
        &format!("{}:4:3:", home.join("services/worker.yaml").display()),
    );
}

#[test]
fn a_home_without_services_directory_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("empty-home");
    std::fs::create_dir(&home).expect("mkdir");
    let mut cmd = aurelia(tmp.path(), &home);
    cmd.arg("check");
    let out = run(cmd);
    assert_fails_with(
        &out,
        &format!("{} does not exist", home.join("services").display()),
    );
}

#[test]
fn a_nonexistent_path_exits_2_with_a_clear_message() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = check(tmp.path(), &["no-such-dir/api.yaml"]);
    assert_fails_with(&out, "no-such-dir/api.yaml does not exist");
    assert_eq!(
        out.stderr,
        "error: no-such-dir/api.yaml does not exist (give a spec file or a directory of them)\n"
    );
    assert_eq!(out.stdout, "");
}

#[test]
fn an_empty_directory_says_so() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(tmp.path().join("services")).expect("mkdir");
    let out = check(tmp.path(), &["services"]);
    assert_eq!(out.code, Some(0), "{}", out.transcript());
    assert_eq!(out.stdout, "no spec files (*.yaml, *.yml) in services\n");
}

// Hostile input. Each must end quickly with a clear error and exit 2.

#[test]
fn a_10_mb_file_is_refused_without_reading_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let line = "# padding padding padding padding padding padding padding padding\n";
    let big = line.repeat(10 * 1024 * 1024 / line.len() + 1);
    write(
        tmp.path(),
        "services/big.yaml",
        &format!("service: {{name: big, type: native, command: x}}\n{big}"),
    );
    let out = check(tmp.path(), &["services"]);
    assert_fails_with(
        &out,
        "services/big.yaml: file is 10.0 MiB; spec files are limited to 1 MiB",
    );
    // The file given directly behaves the same.
    let out = check(tmp.path(), &["services/big.yaml"]);
    assert_fails_with(&out, "spec files are limited to 1 MiB");
}

#[test]
fn a_binary_file_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Deterministic "random" bytes (xorshift), with NULs in them.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    assert!(bytes.contains(&0));
    std::fs::create_dir(tmp.path().join("services")).expect("mkdir");
    std::fs::write(tmp.path().join("services/blob.yaml"), &bytes).expect("write");
    let out = check(tmp.path(), &["services"]);
    assert_fails_with(
        &out,
        "services/blob.yaml: is a binary file (contains NUL bytes), not YAML text",
    );
}

#[test]
fn a_file_that_is_not_utf8_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(tmp.path().join("services")).expect("mkdir");
    // Latin-1 "é" in a comment.
    std::fs::write(
        tmp.path().join("services/latin1.yaml"),
        b"# caf\xe9\nservice: {name: a, type: native, command: x}\n",
    )
    .expect("write");
    let out = check(tmp.path(), &["services"]);
    assert_fails_with(
        &out,
        "services/latin1.yaml: is not UTF-8 text (invalid byte at offset 5)",
    );
}

#[test]
fn a_yaml_alias_bomb_is_stopped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Billion laughs: 9 levels of 9 aliases each, 9^9 (387 million) nodes if expanded.
    let mut bomb = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let p = format!("*a{}", i - 1);
        bomb.push_str(&format!("a{i}: &a{i} [{}]\n", [p.as_str(); 9].join(", ")));
    }
    bomb.push_str("service: {name: bomb, type: native, command: x}\n");
    write(tmp.path(), "services/bomb.yaml", &bomb);
    let out = check(tmp.path(), &["services"]);
    assert_fails_with(
        &out,
        "YAML expands to more than 100000 nodes (an alias bomb?)",
    );
}

#[test]
fn a_directory_named_like_a_spec_is_reported() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = valid_dir(tmp.path());
    std::fs::create_dir(dir.join("x.yaml")).expect("mkdir x.yaml");
    write(&dir, "x.yaml/inner.yaml", API);
    let out = check(tmp.path(), &["services"]);
    assert_fails_with(&out, "services/x.yaml: is a directory, not a spec file");
    // The valid files around it are still checked.
    assert!(
        out.stdout.contains("ok      services/api.yaml (api)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .ends_with("3 files checked: 2 valid, 1 invalid (1 error)\n")
    );
}

#[test]
fn a_fifo_does_not_hang_the_check() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = valid_dir(tmp.path());
    let fifo = dir.join("fifo.yaml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo");
    // Nobody ever writes to the FIFO: opening it for reading would block forever.
    let out = check(tmp.path(), &["services"]);
    assert_fails_with(
        &out,
        "services/fifo.yaml: is not a regular file (a FIFO, socket or device)",
    );
    let out = check(tmp.path(), &["services/fifo.yaml"]);
    assert_fails_with(&out, "is not a regular file");
}

#[test]
fn an_unreadable_file_is_reported() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = valid_dir(tmp.path());
    let secret = write(&dir, "secret.yaml", API);
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    // Root (or anything with CAP_DAC_OVERRIDE) reads the file regardless of its mode.
    let privileged = std::fs::read(&secret).is_ok();
    let mut cmd = aurelia(tmp.path(), &tmp.path().join(".aurelia-home"));
    cmd.args(["check", "services"]);
    if privileged {
        // Run the check as nobody, who can traverse the directory but not read the file.
        for d in [tmp.path(), &dir] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        use std::os::unix::process::CommandExt;
        cmd.uid(65534).gid(65534);
    }
    let out = run(cmd);
    assert_fails_with(
        &out,
        "services/secret.yaml: cannot read: Permission denied (os error 13) (hint: check the file's permissions (chmod u+r services/secret.yaml))",
    );
    assert!(
        out.stdout.contains("ok      services/api.yaml (api)"),
        "{}",
        out.stdout
    );
}
