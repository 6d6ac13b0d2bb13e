//! The spec corpus: realistic mistakes, one per file, each of which must be reported at the
//! right line with a message that names the problem; cross-file mistakes in small directories;
//! and the seed's own examples, which must pass as written.
//!
//! Layout (under `tests/corpus/`):
//! - `bad/*.yaml`: one mistake each (a few carry a second, consequential one). Every file must
//!   have at least one row in [`BAD`], and every row a file.
//! - `multi/`: one file with many mistakes, all of which must be reported.
//! - `sets/<case>/`: directories whose files are fine alone but wrong together.
//! - `seed/`: the quick-start and multi-service specs copied verbatim from aurelia-seed.md.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use aurelia_spec::load::load_file;
use aurelia_spec::{Diagnostic, PortSpec, Probe, ServiceKind, load_path};

fn corpus(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(rel)
}

/// `file:line:col: key: message (hint: ...)` for each diagnostic, for failure output.
fn show(file: &Path, diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| format!("    {}", d.render(file)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// (file in `bad/`, expected line, substring of the message, expected key).
/// Line 0 means a problem with the whole file (empty, unreadable).
type BadCase = (&'static str, usize, &'static str, Option<&'static str>);

#[rustfmt::skip]
const BAD: &[BadCase] = &[
    // Unknown keys at each level, with did-you-mean hints.
    ("top_level_key_typo.yaml", 9, "unknown key `helth` at the top level", Some("helth")),
    ("service_key_typo.yaml", 4, "unknown key `comand` in `service`", Some("service.comand")),
    // ...and the consequence: the command is then missing.
    ("service_key_typo.yaml", 3, "a native service needs `service.command`", Some("service.command")),
    ("health_key_typo.yaml", 12, "unknown key `intreval` in `health`", Some("health.intreval")),
    ("restart_key_typo.yaml", 8, "unknown key `max_atempts` in `restart`", Some("restart.max_atempts")),
    ("network_key_typo.yaml", 7, "unknown key `prot` in `network`", Some("network.prot")),
    ("dependencies_key_typo.yaml", 8, "unknown key `require` in `dependencies`", Some("dependencies.require")),
    ("routing_key_typo.yaml", 11, "unknown key `tsl` in `routing`", Some("routing.tsl")),
    ("secret_key_typo.yaml", 8, "unknown key `keychian` in `secrets.DATABASE_URL`", Some("secrets.DATABASE_URL.keychian")),
    ("secret_key_typo.yaml", 8, "secret `DATABASE_URL` has no `keychain` key", Some("secrets.DATABASE_URL")),
    ("key_in_wrong_section.yaml", 5, "unknown key `port` in `service`", Some("service.port")),
    // Wrong shapes.
    ("service_not_a_mapping.yaml", 1, "service must be a mapping (key: value lines), found a scalar", Some("service")),
    ("file_is_a_list.yaml", 1, "the file must be a mapping (key: value lines), found a list", None),
    ("env_as_list.yaml", 7, "env must be a mapping (key: value lines), found a list", Some("env")),
    ("command_as_list.yaml", 4, "`service.command` must be a single value, found a list", Some("service.command")),
    ("after_not_a_list.yaml", 7, "`dependencies.after` must be a list, found a mapping", Some("dependencies.after")),
    // Durations.
    ("duration_with_space.yaml", 11, "unknown unit \" s\" in duration \"10 s\"", Some("health.interval")),
    ("duration_in_days.yaml", 8, "unknown unit \"d\" in duration \"1d\"", Some("restart.delay")),
    ("duration_negative.yaml", 11, "`health.grace_period` must not be negative, found \"-5s\"", Some("health.grace_period")),
    ("duration_without_unit.yaml", 11, "missing unit in duration \"30\"", Some("health.timeout")),
    ("duration_zero_interval.yaml", 11, "`health.interval` must be greater than 0", Some("health.interval")),
    ("max_delay_below_delay.yaml", 8, "restart.max_delay (5s) is shorter than restart.delay (10s)", Some("restart.max_delay")),
    // Numbers and booleans.
    ("port_out_of_range.yaml", 7, "`network.port` is 70000, above the maximum 65535", Some("network.port")),
    ("port_quoted.yaml", 7, "`network.port` must be a number, found the quoted string \"8080\"", Some("network.port")),
    ("port_negative.yaml", 7, "`network.port` must be a whole number from 0 to 65535, found \"-1\"", Some("network.port")),
    ("health_port_zero.yaml", 11, "`health.port` cannot be 0", Some("health.port")),
    ("unhealthy_threshold_zero.yaml", 11, "`health.unhealthy_threshold` must be at least 1", Some("health.unhealthy_threshold")),
    ("boolean_yes.yaml", 11, "`routing.tls` must be true or false, found \"yes\"", Some("routing.tls")),
    // Required fields and enumerations.
    ("missing_name.yaml", 1, "missing `service.name`", Some("service.name")),
    ("missing_type.yaml", 1, "missing `service.type`", Some("service.type")),
    ("missing_service_block.yaml", 1, "missing the `service` block", Some("service")),
    ("unknown_type.yaml", 3, "unknown service.type \"nativ\"; expected one of native, container, external (did you mean \"native\"?)", Some("service.type")),
    ("unknown_restart_policy.yaml", 7, "unknown restart.policy \"on_failure\"; expected one of always, on-failure, never (did you mean \"on-failure\"?)", Some("restart.policy")),
    ("unknown_health_type.yaml", 10, "unknown health.type \"https\"; expected one of http, tcp, exec (did you mean \"http\"?)", Some("health.type")),
    ("unknown_stop_signal.yaml", 5, "unknown stop signal \"SIGSTOP\"", Some("service.stop_signal")),
    ("invalid_service_name.yaml", 2, "invalid service name \"my api\"", Some("service.name")),
    // Type rules.
    ("native_without_command.yaml", 3, "a native service needs `service.command`", Some("service.command")),
    ("native_with_image.yaml", 5, "`image` is for container services, but this one is native", Some("service.image")),
    ("native_with_volumes.yaml", 7, "`volumes` is for container services, but this one is native", Some("volumes")),
    ("native_with_args.yaml", 7, "`args` is for container services, but this one is native", Some("args")),
    ("container_without_image.yaml", 3, "a container service needs `service.image`", Some("service.image")),
    ("container_with_command.yaml", 5, "`command` is for native services; a container runs its image", Some("service.command")),
    ("container_relative_volume.yaml", 7, "container path \"var/lib/postgresql/data\" must be absolute", Some("volumes.~/pgdata")),
    ("external_without_health.yaml", 3, "an external service needs a health check", Some("health")),
    ("external_with_command.yaml", 4, "`command` cannot be set on an external service", Some("service.command")),
    ("external_with_restart.yaml", 12, "`restart` cannot be set on an external service", Some("restart")),
    // Health probes.
    ("exec_probe_without_command.yaml", 7, "an exec health check needs `health.command`", Some("health.command")),
    ("http_path_without_slash.yaml", 11, "health.path \"healthz\" must start with '/'", Some("health.path")),
    ("tcp_probe_with_path.yaml", 11, "`path` does not apply to tcp health checks", Some("health.path")),
    ("http_check_without_port.yaml", 7, "an http health check needs a port, and this service has none", Some("health.port")),
    // Dependencies.
    ("requires_not_in_after.yaml", 8, "\"postgres\" is in `requires` but not in `after`", Some("dependencies.requires")),
    ("self_dependency.yaml", 9, "service \"worker\" depends on itself", Some("dependencies.after")),
    ("duplicate_list_entry.yaml", 7, "\"postgres\" is listed twice", Some("dependencies.after")),
    // YAML-level problems.
    ("duplicate_key.yaml", 5, "duplicate key `name` (first defined at line 2)", Some("service.name")),
    ("multiple_documents.yaml", 5, "more than one YAML document in this file", None),
    ("empty.yaml", 0, "file is empty", None),
    ("only_comments.yaml", 0, "file is empty", None),
    ("yaml_syntax_error.yaml", 8, "invalid YAML", None),
    ("tab_indentation.yaml", 3, "invalid YAML: while scanning a plain scalar, found a tab", None),
    ("bad_indentation.yaml", 4, "invalid YAML: while parsing a block mapping, did not find expected key", None),
    ("unknown_anchor.yaml", 6, "unknown anchor", None),
    // Commands, expansion, env and secrets.
    ("unterminated_quote.yaml", 4, "`service.command` has an unterminated quote", Some("service.command")),
    ("bad_expansion.yaml", 4, "`${PORT` has no closing `}`", Some("service.command")),
    ("bad_expansion_in_env.yaml", 7, "`${}` is not a valid variable reference", Some("env.DATABASE_URL")),
    ("invalid_env_name.yaml", 7, "invalid environment variable name \"LOG-LEVEL\"", Some("env.LOG-LEVEL")),
    ("env_overrides_port.yaml", 10, "`PORT` is set by Aurelia and cannot be overridden", Some("env.PORT")),
    ("env_and_secret_same_name.yaml", 10, "`DATABASE_URL` is set both in env and in secrets", Some("secrets.DATABASE_URL")),
    ("secret_without_keychain.yaml", 7, "secret `DATABASE_URL` must name its store key under `keychain`", Some("secrets.DATABASE_URL")),
    // Routing.
    ("tls_options_without_tls.yaml", 11, "`tls_options` is set but `tls` is not true", Some("routing.tls_options")),
    ("routing_without_hostname.yaml", 9, "missing `routing.hostname`", Some("routing.hostname")),
    ("routing_without_port.yaml", 7, "a routed service needs a port", Some("routing")),
];

/// Hints worth pinning down: they are what tells the user how to fix the mistake.
const HINTS: &[(&str, &str)] = &[
    ("top_level_key_typo.yaml", "did you mean `health`?"),
    ("service_key_typo.yaml", "did you mean `service.command`?"),
    ("health_key_typo.yaml", "did you mean `health.interval`?"),
    (
        "restart_key_typo.yaml",
        "did you mean `restart.max_attempts`?",
    ),
    (
        "dependencies_key_typo.yaml",
        "did you mean `dependencies.requires`?",
    ),
    (
        "key_in_wrong_section.yaml",
        "`port` belongs under `network`",
    ),
    ("port_quoted.yaml", "remove the quotes"),
    ("port_negative.yaml", "negative values are not allowed"),
    ("boolean_yes.yaml", "YAML 1.2 booleans are true/false"),
    ("duration_in_days.yaml", "use Go duration syntax"),
    ("http_path_without_slash.yaml", "write /healthz"),
    (
        "requires_not_in_after.yaml",
        "add \"postgres\" to dependencies.after",
    ),
    (
        "secret_without_keychain.yaml",
        "write `DATABASE_URL: {keychain: myapp/db-url}`",
    ),
    ("tab_indentation.yaml", "indent with spaces"),
    (
        "multiple_documents.yaml",
        "put each service in its own file",
    ),
];

fn bad(name: &str) -> PathBuf {
    corpus("bad").join(name)
}

#[test]
fn every_bad_file_reports_its_mistake_at_its_line() {
    let mut failures = Vec::new();
    for &(name, line, message, key) in BAD {
        let path = bad(name);
        let (spec, diags) = load_file(&path);
        if spec.is_some() {
            failures.push(format!("{name}: loaded as valid"));
            continue;
        }
        let found = diags
            .iter()
            .find(|d| d.line == line && d.message.contains(message) && d.key.as_deref() == key);
        match found {
            Some(d) => {
                // The rendered form is what `aurelia check` prints.
                let rendered = d.render(&path);
                let prefix = if line == 0 {
                    format!("{}: ", path.display())
                } else {
                    format!("{}:{}:{}: ", path.display(), d.line, d.col)
                };
                if !rendered.starts_with(&prefix) || (d.col == 0 && line > 0) {
                    failures.push(format!("{name}: badly rendered: {rendered}"));
                }
                if rendered.contains(": : ") {
                    failures.push(format!("{name}: empty key rendered: {rendered}"));
                }
            }
            None => failures.push(format!(
                "{name}: expected line {line}, key {key:?}, message containing {message:?}; got\n{}",
                show(&path, &diags)
            )),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn hints_say_what_to_do() {
    let mut failures = Vec::new();
    for &(name, hint) in HINTS {
        let path = bad(name);
        let (_, diags) = load_file(&path);
        if !diags
            .iter()
            .any(|d| d.hint.as_deref().is_some_and(|h| h.contains(hint)))
        {
            failures.push(format!(
                "{name}: no hint containing {hint:?}; got\n{}",
                show(&path, &diags)
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn the_table_covers_the_corpus_exactly() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(corpus("bad"))
        .expect("corpus/bad")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    let in_table: BTreeSet<String> = BAD.iter().map(|c| c.0.to_string()).collect();
    let hinted: BTreeSet<String> = HINTS.iter().map(|c| c.0.to_string()).collect();
    assert_eq!(
        on_disk.difference(&in_table).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "files in corpus/bad without a row in BAD"
    );
    assert_eq!(
        in_table.difference(&on_disk).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "rows in BAD without a file"
    );
    assert!(hinted.is_subset(&on_disk), "HINTS names a missing file");
    assert!(on_disk.len() >= 30, "only {} bad files", on_disk.len());
}

#[test]
fn bad_files_fail_the_same_way_as_a_directory() {
    // load_path on a single file, and on the directory: same diagnostics as load_file, and no
    // cross-file noise from the bad ones (none of them loads).
    let set = load_path(&corpus("bad")).expect("load dir");
    assert!(!set.is_valid());
    assert!(set.specs.is_empty(), "{:?}", set.specs);
    for r in &set.reports {
        let (_, alone) = load_file(&r.file);
        assert_eq!(r.errors, alone, "{}", r.file.display());
        let single = load_path(&r.file).expect("load file");
        assert_eq!(single.reports.len(), 1);
        assert_eq!(single.reports[0].errors, alone, "{}", r.file.display());
    }
}

#[test]
fn a_file_with_several_mistakes_reports_all_of_them() {
    let path = corpus("multi/several_mistakes.yaml");
    let (spec, diags) = load_file(&path);
    assert!(spec.is_none());
    let expected: &[(usize, &str)] = &[
        (4, "unknown service.type \"nativ\""),
        (5, "unknown key `comand` in `service`"),
        (8, "found the quoted string \"8080\""),
        (12, "health.path \"healthz\" must start with '/'"),
        (13, "unknown unit \" s\" in duration \"10 s\""),
        (16, "unknown restart.policy \"sometimes\""),
        (19, "`PORT` is set by Aurelia and cannot be overridden"),
    ];
    for (line, msg) in expected {
        assert!(
            diags
                .iter()
                .any(|d| d.line == *line && d.message.contains(msg)),
            "missing line {line}: {msg}\n{}",
            show(&path, &diags)
        );
    }
    assert_eq!(diags.len(), expected.len(), "\n{}", show(&path, &diags));
    let lines: Vec<usize> = diags.iter().map(|d| d.line).collect();
    assert!(
        lines.is_sorted(),
        "diagnostics are in file order: {lines:?}"
    );
}

/// (set directory, file with the error, line, message substring, key).
type SetCase = (
    &'static str,
    &'static str,
    usize,
    &'static str,
    &'static str,
);

#[rustfmt::skip]
const SETS: &[SetCase] = &[
    ("duplicate_names", "api2.yaml", 3, "duplicate service name \"api\" (also defined in ", "service.name"),
    ("unknown_dependency", "api.yaml", 8, "unknown service \"postgress\"", "dependencies.after"),
    ("unknown_dependency", "api.yaml", 9, "unknown service \"redis\"", "dependencies.after"),
    // Every member of a cycle is reported, at its edge to the next: none of them may load.
    ("cycle_two", "a.yaml", 7, "dependency cycle: a -> b -> a", "dependencies"),
    ("cycle_two", "b.yaml", 7, "dependency cycle: a -> b -> a", "dependencies"),
    // The duplicate must not hide the first definition's edges from the cycle check.
    ("cycle_hidden_by_duplicate", "c.yaml", 3, "duplicate service name \"a\"", "service.name"),
    ("cycle_hidden_by_duplicate", "a.yaml", 7, "dependency cycle: a -> b -> a", "dependencies"),
    ("cycle_hidden_by_duplicate", "b.yaml", 7, "dependency cycle: a -> b -> a", "dependencies"),
    ("cycle_three", "api.yaml", 7, "dependency cycle: api -> worker -> cache -> api", "dependencies"),
    ("cycle_three", "worker.yaml", 7, "dependency cycle: api -> worker -> cache -> api", "dependencies"),
    ("cycle_three", "cache.yaml", 8, "dependency cycle: api -> worker -> cache -> api", "dependencies"),
    ("port_clash", "web.yaml", 7, "port 8080 is also used by service \"api\"", "network.port"),
    // api.yaml's own two errors, and worker's dependency on it.
    ("broken_dependency", "api.yaml", 4, "unknown key `comand`", "service.comand"),
    ("broken_dependency", "api.yaml", 3, "a native service needs `service.command`", "service.command"),
    ("broken_dependency", "worker.yaml", 7, "service \"api\" cannot start: its spec ", "dependencies.after"),
];

#[test]
fn cross_file_mistakes_are_reported_in_the_file_to_fix() {
    let dirs: BTreeSet<&str> = SETS.iter().map(|c| c.0).collect();
    let mut failures = Vec::new();
    for dir in dirs {
        let set = load_path(&corpus(&format!("sets/{dir}"))).expect("load set");
        let cases: Vec<&SetCase> = SETS.iter().filter(|c| c.0 == dir).collect();
        if set.is_valid() {
            failures.push(format!("{dir}: valid"));
        }
        if set.error_count() != cases.len() {
            failures.push(format!(
                "{dir}: {} errors, expected {}:\n{}",
                set.error_count(),
                cases.len(),
                set.render_errors()
            ));
        }
        for &&(_, file, line, message, key) in &cases {
            let report = set
                .reports
                .iter()
                .find(|r| r.file.file_name().and_then(|n| n.to_str()) == Some(file));
            let Some(report) = report else {
                failures.push(format!("{dir}: no report for {file}"));
                continue;
            };
            if !report.errors.iter().any(|d| {
                d.line == line && d.message.contains(message) && d.key.as_deref() == Some(key)
            }) {
                failures.push(format!(
                    "{dir}/{file}: expected line {line}, key {key}, message containing {message:?}; got\n{}",
                    show(&report.file, &report.errors)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn cross_file_details() {
    // The duplicate names the other file, so the user knows which two to compare.
    let set = load_path(&corpus("sets/duplicate_names")).expect("load");
    let dup = &set.reports[1].errors[0];
    assert!(
        dup.message.ends_with("duplicate_names/api.yaml)"),
        "{}",
        dup.message
    );
    assert_eq!(set.specs.len(), 1, "the first definition stays usable");

    // A typo'd dependency gets a did-you-mean; a name nobody defines says so.
    let set = load_path(&corpus("sets/unknown_dependency")).expect("load");
    let api = set.reports.iter().find(|r| !r.ok).expect("api invalid");
    assert_eq!(
        api.errors[0].hint.as_deref(),
        Some("did you mean \"postgres\"?")
    );
    assert_eq!(
        api.errors[1].hint.as_deref(),
        Some("no spec file defines a service by that name")
    );

    // Two services on dynamic ports never clash; only the static clash is reported.
    let set = load_path(&corpus("sets/port_clash")).expect("load");
    let names: Vec<&str> = set.specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["api", "dynamic"]);

    // A dependency on a service whose file has errors names that file, not "unknown".
    let set = load_path(&corpus("sets/broken_dependency")).expect("load");
    let worker = &set.reports[1];
    assert_eq!(worker.service.as_deref(), Some("worker"));
    assert!(
        worker.errors[0]
            .message
            .ends_with("broken_dependency/api.yaml has errors"),
        "{}",
        worker.errors[0].message
    );
    assert_eq!(set.reports[0].service.as_deref(), Some("api"));
    assert!(set.specs.is_empty());
}

#[test]
fn the_seed_quick_start_passes_as_written() {
    let set = load_path(&corpus("seed/quick-start")).expect("load");
    assert!(set.is_valid(), "{}", set.render_errors());
    assert_eq!(set.specs.len(), 1);
    let api = &set.specs[0];
    assert_eq!(api.name, "api");
    assert_eq!(api.kind, ServiceKind::Native);
    assert_eq!(api.command.as_deref(), Some(&["./bin/api".to_string()][..]));
    assert_eq!(api.working_dir.as_deref(), Some("~/myproject"));
    assert_eq!(api.port, Some(PortSpec::Static(8080)));
    let health = api.health.as_ref().expect("health");
    assert_eq!(
        health.probe,
        Probe::Http {
            path: "/healthz".into()
        }
    );
    assert_eq!(health.port, Some(8080));
    assert_eq!(health.interval.to_std().as_secs(), 10);
}

#[test]
fn the_seed_multi_service_stack_passes_as_written() {
    let set = load_path(&corpus("seed/multi-service")).expect("load");
    assert!(set.is_valid(), "{}", set.render_errors());
    let names: Vec<&str> = set.specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["api", "postgres", "worker"]);
    let by = |n: &str| set.specs.iter().find(|s| s.name == n).expect(n);
    assert_eq!(by("postgres").kind, ServiceKind::Container);
    assert_eq!(by("postgres").image.as_deref(), Some("postgres:16"));
    assert_eq!(by("postgres").network_mode, "host");
    assert_eq!(by("api").port, Some(PortSpec::Dynamic));
    assert_eq!(
        by("api").command.as_deref(),
        Some(&["go".to_string(), "run".into(), "./cmd/api".into()][..])
    );
    assert_eq!(by("worker").after, ["postgres", "api"]);
    assert_eq!(by("worker").requires, ["postgres"]);
    // Start order: postgres, then api, then worker.
    assert_eq!(
        set.graph().waves(),
        vec![
            vec!["postgres".to_string()],
            vec!["api".to_string()],
            vec!["worker".to_string()]
        ]
    );
}

#[test]
fn the_seed_specs_are_copied_verbatim() {
    // If the seed's README is around (it is in the shared workspace), the copies must match
    // its code blocks, so "the seed's examples pass" means the real thing.
    let seed = Path::new("/work/shared/spec/aurelia-seed.md");
    let Ok(doc) = std::fs::read_to_string(seed) else {
        return;
    };
    for (copy, first_line) in [
        (
            "seed/quick-start/api.yaml",
            "# ~/.aurelia/services/api.yaml",
        ),
        (
            "seed/multi-service/postgres.yaml",
            "# ~/.aurelia/services/postgres.yaml",
        ),
        (
            "seed/multi-service/api.yaml",
            "# ~/.aurelia/services/api.yaml",
        ),
        (
            "seed/multi-service/worker.yaml",
            "# ~/.aurelia/services/worker.yaml",
        ),
    ] {
        let text = std::fs::read_to_string(corpus(copy)).expect(copy);
        assert!(text.starts_with(first_line), "{copy}");
        assert!(
            doc.contains(&format!("```yaml\n{text}```")),
            "{copy} differs from the seed's block"
        );
    }
}

#[test]
fn the_project_examples_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let set = load_path(&dir).expect("load examples");
    assert!(set.is_valid(), "{}", set.render_errors());
    assert!(!set.specs.is_empty());
    assert_eq!(set.error_count(), 0);
}

/// Files near the 1 MiB limit with tens of thousands of entries. Duplicate checks used to
/// compare every key (and every dependency) with every other one: 45,000 env keys took 4.6 s
/// in a release build, 45,000 `after` entries 2.4 s. Now they take milliseconds; the bound
/// here is loose (debug build, busy machine) but far below the quadratic time.
#[test]
fn big_files_load_in_linear_time() {
    const N: usize = 40_000;
    let head = "service: {name: a, type: native, command: x}\n";
    let cases = [
        (
            "env keys",
            format!(
                "{head}env:\n{}",
                (0..N).map(|i| format!("  K{i}: v\n")).collect::<String>()
            ),
        ),
        (
            "after entries",
            format!(
                "{head}dependencies:\n  after:\n{}",
                (0..N).map(|i| format!("    - s{i}\n")).collect::<String>()
            ),
        ),
        (
            "requires entries",
            format!(
                "{head}dependencies:\n  after: [x]\n  requires:\n{}",
                (0..N).map(|i| format!("    - s{i}\n")).collect::<String>()
            ),
        ),
        (
            "merged keys",
            format!(
                "{head}env:\n  <<: &m {{{}}}\n  <<: *m\n",
                (0..N / 2).map(|i| format!("M{i}: v, ")).collect::<String>()
            ),
        ),
    ];
    for (what, text) in cases {
        assert!(text.len() < 1024 * 1024, "{what}: {} bytes", text.len());
        let start = std::time::Instant::now();
        let (_, diags) = aurelia_spec::load::load_str(&text, Path::new("big.yaml"));
        let took = start.elapsed();
        assert!(
            took < std::time::Duration::from_secs(5),
            "{what}: {took:?} for {N} entries"
        );
        // And the result is still right.
        match what {
            "env keys" | "merged keys" => assert!(diags.is_empty(), "{what}: {:?}", diags.first()),
            "after entries" => assert!(diags.is_empty(), "{what}: {:?}", diags.first()),
            _ => assert_eq!(
                diags.len(),
                N,
                "{what}: every requires entry is missing from after"
            ),
        }
    }
}
