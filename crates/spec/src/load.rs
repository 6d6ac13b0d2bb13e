//! Turning one spec file into a [`Spec`], collecting every problem on the way.
//!
//! The walker visits each section of the located YAML tree, checks keys against the known
//! ones (unknown keys are errors, with a "did you mean" hint), converts values to their types,
//! applies the defaults of decisions.md, and then checks the rules that span fields (native
//! needs `command`, external needs `health`, `requires` within `after`, ...). Problems go into
//! a list; loading goes on after each one, so a file with five mistakes shows five errors.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::duration::{self, GoDuration};
use crate::error::Diagnostic;
use crate::expand;
use crate::model::*;
use crate::yaml::{self, Node, Pos, Value};

/// Spec files larger than this are refused before parsing.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

const TOP_KEYS: &[&str] = &[
    "service",
    "network",
    "health",
    "restart",
    "env",
    "secrets",
    "volumes",
    "args",
    "dependencies",
    "routing",
];
const SERVICE_KEYS: &[&str] = &[
    "name",
    "type",
    "command",
    "working_dir",
    "image",
    "network_mode",
    "pull",
    "stop_signal",
    "stop_timeout",
];
const NETWORK_KEYS: &[&str] = &["port"];
const HEALTH_KEYS: &[&str] = &[
    "type",
    "path",
    "port",
    "command",
    "interval",
    "timeout",
    "grace_period",
    "unhealthy_threshold",
];
const RESTART_KEYS: &[&str] = &["policy", "max_attempts", "delay", "backoff", "max_delay"];
const DEPENDENCY_KEYS: &[&str] = &["after", "requires"];
const ROUTING_KEYS: &[&str] = &["hostname", "tls", "tls_options"];
const SECRET_KEYS: &[&str] = &["keychain"];

/// Where each key may live, for hints on keys written in the wrong section.
const SECTIONS: &[(&str, &[&str])] = &[
    ("", TOP_KEYS),
    ("service", SERVICE_KEYS),
    ("network", NETWORK_KEYS),
    ("health", HEALTH_KEYS),
    ("restart", RESTART_KEYS),
    ("dependencies", DEPENDENCY_KEYS),
    ("routing", ROUTING_KEYS),
];

/// Reads and loads one spec file. All problems, including I/O ones, come back as diagnostics.
pub fn load_file(path: &Path) -> (Option<Spec>, Vec<Diagnostic>) {
    let (spec, diags, _) = load_file_named(path);
    (spec, diags)
}

/// [`load_file`], plus the service name the file declares (when `service.name` is a valid
/// name), even if the file has errors: cross-file checks need to know that a dependency is
/// defined, just not valid.
pub(crate) fn load_file_named(path: &Path) -> (Option<Spec>, Vec<Diagnostic>, Option<String>) {
    match read_spec_file(path) {
        Ok(text) => load_str_named(&text, path),
        Err(d) => (None, vec![d], None),
    }
}

/// Reads a spec file with the guards every caller needs: regular file, size limit, UTF-8 text.
pub fn read_spec_file(path: &Path) -> Result<String, Diagnostic> {
    let meta = std::fs::metadata(path).map_err(|e| io_diag(path, &e))?;
    if meta.is_dir() {
        return Err(Diagnostic::file("is a directory, not a spec file".into())
            .hint("spec files are YAML files directly inside the services directory"));
    }
    if !meta.is_file() {
        return Err(Diagnostic::file(
            "is not a regular file (a FIFO, socket or device)".into(),
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(Diagnostic::file(format!(
            "file is {:.1} MiB; spec files are limited to 1 MiB",
            meta.len() as f64 / (1024.0 * 1024.0)
        ))
        .hint("a service spec is a few dozen lines; is this the right file?"));
    }
    let bytes = std::fs::read(path).map_err(|e| io_diag(path, &e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Diagnostic::file(
            "file grew past 1 MiB while being read".into(),
        ));
    }
    if bytes.contains(&0) {
        return Err(Diagnostic::file(
            "is a binary file (contains NUL bytes), not YAML text".into(),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        Diagnostic::file(format!(
            "is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

fn io_diag(path: &Path, e: &std::io::Error) -> Diagnostic {
    let d = Diagnostic::file(format!("cannot read: {e}"));
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => d.hint(format!(
            "check the file's permissions (chmod u+r {})",
            path.display()
        )),
        std::io::ErrorKind::NotFound => d.hint("check the path"),
        _ => d,
    }
}

/// Loads a spec from YAML text. `path` is used for relative-path resolution and messages.
pub fn load_str(text: &str, path: &Path) -> (Option<Spec>, Vec<Diagnostic>) {
    let (spec, diags, _) = load_str_named(text, path);
    (spec, diags)
}

fn load_str_named(text: &str, path: &Path) -> (Option<Spec>, Vec<Diagnostic>, Option<String>) {
    let mut diags = Vec::new();
    let root = match yaml::parse(text, &mut diags) {
        Ok(Some(root)) => root,
        Ok(None) => {
            diags.push(
                Diagnostic::file("file is empty".into())
                    .hint("a spec needs at least `service: {name: ..., type: ...}`"),
            );
            return (None, diags, None);
        }
        Err(d) => {
            diags.push(d);
            return (None, diags, None);
        }
    };
    let base_dir = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_path_buf()
            }
        })
        .unwrap_or_else(|| PathBuf::from("."));
    let base_dir = std::path::absolute(&base_dir).unwrap_or(base_dir);
    let mut w = Walker {
        diags: &mut diags,
        name: None,
    };
    let spec = w.spec(&root, base_dir, path.to_path_buf());
    let name = w.name;
    if !diags.is_empty() {
        diags.sort_by_key(|d| (d.line, d.col));
        return (None, diags, name);
    }
    (spec, diags, name)
}

struct Walker<'d> {
    diags: &'d mut Vec<Diagnostic>,
    /// The valid `service.name`, once seen.
    name: Option<String>,
}

type Entries<'n> = &'n [(Node, Node)];

impl Walker<'_> {
    fn err(&mut self, pos: Pos, key: &str, msg: String) {
        self.diags.push(Diagnostic::at(pos, msg).key(key));
    }

    fn err_hint(&mut self, pos: Pos, key: &str, msg: String, hint: impl Into<String>) {
        self.diags
            .push(Diagnostic::at(pos, msg).key(key).hint(hint));
    }

    /// The node as a mapping, or an error naming what was expected.
    fn map<'n>(&mut self, node: &'n Node, key: &str) -> Option<Entries<'n>> {
        match &node.value {
            Value::Map(e) => Some(e),
            _ => {
                let what = if key.is_empty() { "the file" } else { key };
                self.err(
                    node.pos,
                    key,
                    format!(
                        "{what} must be a mapping (key: value lines), found {}",
                        node.kind_name()
                    ),
                );
                None
            }
        }
    }

    /// Reports keys not in `allowed`; returns nothing (lookups are by name afterwards).
    fn check_keys(&mut self, entries: Entries<'_>, allowed: &[&str], section: &str) {
        for (k, _) in entries {
            let Some(name) = k.scalar() else { continue };
            if allowed.contains(&name) {
                continue;
            }
            let full = join(section, name);
            let where_ = if section.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in `{section}`")
            };
            let mut d = Diagnostic::at(k.pos, format!("unknown key `{name}` {where_}")).key(&full);
            if let Some(s) = closest(name, allowed) {
                d = d.hint(format!("did you mean `{}`?", join(section, s)));
            } else if let Some((sec, _)) = SECTIONS
                .iter()
                .find(|(sec, keys)| *sec != section && keys.contains(&name))
            {
                d = d.hint(format!(
                    "`{name}` belongs under `{}`",
                    if sec.is_empty() { "the top level" } else { sec }
                ));
            } else {
                d = d.hint(format!("known keys here: {}", allowed.join(", ")));
            }
            self.diags.push(d);
        }
    }

    fn string(&mut self, node: &Node, key: &str) -> Option<String> {
        match &node.value {
            Value::Scalar { .. } if node.is_null() => {
                self.err(node.pos, key, format!("`{key}` is empty"));
                None
            }
            Value::Scalar { text, .. } => Some(text.clone()),
            _ => {
                self.err(
                    node.pos,
                    key,
                    format!("`{key}` must be a single value, found {}", node.kind_name()),
                );
                None
            }
        }
    }

    fn uint(&mut self, node: &Node, key: &str, max: u64) -> Option<u64> {
        let text = self.string(node, key)?;
        let plain = matches!(node.value, Value::Scalar { plain: true, .. });
        match text.parse::<u64>() {
            Ok(v) if v <= max => {
                if !plain {
                    self.err_hint(
                        node.pos,
                        key,
                        format!("`{key}` must be a number, found the quoted string \"{text}\""),
                        "remove the quotes",
                    );
                    return None;
                }
                Some(v)
            }
            Ok(v) => {
                self.err(
                    node.pos,
                    key,
                    format!("`{key}` is {v}, above the maximum {max}"),
                );
                None
            }
            Err(_) => {
                let hint = if text.starts_with('-') {
                    "negative values are not allowed"
                } else {
                    "write a whole number, e.g. 8080"
                };
                self.err_hint(
                    node.pos,
                    key,
                    format!("`{key}` must be a whole number from 0 to {max}, found \"{text}\""),
                    hint,
                );
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, key: &str) -> Option<bool> {
        let text = self.string(node, key)?;
        match text.as_str() {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            _ => {
                self.err_hint(
                    node.pos,
                    key,
                    format!("`{key}` must be true or false, found \"{text}\""),
                    "YAML 1.2 booleans are true/false (not yes/no/on/off)",
                );
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, key: &str) -> Option<GoDuration> {
        let text = self.string(node, key)?;
        match duration::parse(&text) {
            Ok(d) if d.nanos() < 0 => {
                self.err(
                    node.pos,
                    key,
                    format!("`{key}` must not be negative, found \"{text}\""),
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.err_hint(
                    node.pos,
                    key,
                    e.0,
                    "use Go duration syntax: 500ms, 10s, 1m30s, 1.5h (units ns, us, ms, s, m, h)",
                );
                None
            }
        }
    }

    fn string_list(&mut self, node: &Node, key: &str) -> Option<Vec<(String, Pos)>> {
        match &node.value {
            Value::Seq(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let k = format!("{key}[{i}]");
                    if let Some(s) = self.string(item, &k) {
                        out.push((s, item.pos));
                    }
                }
                Some(out)
            }
            _ if node.is_null() => Some(Vec::new()),
            _ => {
                self.err_hint(
                    node.pos,
                    key,
                    format!("`{key}` must be a list, found {}", node.kind_name()),
                    format!("write `{key}: [a, b]` or one `- item` per line"),
                );
                None
            }
        }
    }

    fn string_map(&mut self, node: &Node, key: &str) -> Option<Vec<(String, String, Pos)>> {
        if node.is_null() {
            return Some(Vec::new());
        }
        let entries = self.map(node, key)?;
        let mut out = Vec::new();
        for (k, v) in entries {
            let Some(name) = k.scalar() else { continue };
            let full = format!("{key}.{name}");
            if let Some(val) = self.string(v, &full) {
                out.push((name.to_string(), val, k.pos));
            }
        }
        Some(out)
    }

    fn one_of<T: Copy>(&mut self, node: &Node, key: &str, options: &[(&str, T)]) -> Option<T> {
        let text = self.string(node, key)?;
        if let Some((_, v)) = options.iter().find(|(n, _)| *n == text) {
            return Some(*v);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let mut msg = format!(
            "unknown {key} \"{text}\"; expected one of {}",
            names.join(", ")
        );
        if let Some(c) = closest(&text, &names) {
            msg.push_str(&format!(" (did you mean \"{c}\"?)"));
        }
        self.err(node.pos, key, msg);
        None
    }

    fn spec(&mut self, root: &Node, base_dir: PathBuf, source: PathBuf) -> Option<Spec> {
        let top = self.map(root, "")?;
        self.check_keys(top, TOP_KEYS, "");
        let get = |k: &str| lookup(top, k);

        // service
        let mut positions = Positions::default();
        let Some(service_node) = get("service") else {
            self.diags.push(
                Diagnostic::at(root.pos, "missing the `service` block".into())
                    .key("service")
                    .hint("every spec starts with `service:` holding at least `name` and `type`"),
            );
            return None;
        };
        let svc = self.map(service_node, "service")?;
        self.check_keys(svc, SERVICE_KEYS, "service");
        let sget = |k: &str| lookup(svc, k);
        // "missing X" errors point at the block's own key line (`service:`).
        let service_key = key_pos(top, "service").unwrap_or(service_node.pos);

        let name = match sget("name") {
            Some(n) => {
                positions.name = n.pos;
                self.string(n, "service.name").and_then(|s| {
                    if valid_name(&s) {
                        self.name = Some(s.clone());
                        Some(s)
                    } else {
                        self.err_hint(
                            n.pos,
                            "service.name",
                            format!("invalid service name \"{s}\""),
                            "use 1-63 letters, digits, '-', '_' or '.', starting with a letter or digit",
                        );
                        None
                    }
                })
            }
            None => {
                self.err(service_key, "service.name", "missing `service.name`".into());
                None
            }
        };
        let kind = match sget("type") {
            Some(n) => self.one_of(
                n,
                "service.type",
                &[
                    ("native", ServiceKind::Native),
                    ("container", ServiceKind::Container),
                    ("external", ServiceKind::External),
                ],
            ),
            None => {
                self.err_hint(
                    service_key,
                    "service.type",
                    "missing `service.type`".into(),
                    "one of native, container, external",
                );
                None
            }
        };

        let command = sget("command").and_then(|n| {
            let raw = self.string(n, "service.command")?;
            self.words(&raw, n.pos, "service.command")
        });
        let working_dir = sget("working_dir").and_then(|n| {
            let s = self.string(n, "service.working_dir")?;
            self.syntax(&s, n.pos, "service.working_dir");
            Some(s)
        });
        let image = sget("image").and_then(|n| self.string(n, "service.image"));
        let network_mode =
            sget("network_mode").and_then(|n| self.string(n, "service.network_mode"));
        let pull = sget("pull").and_then(|n| {
            self.one_of(
                n,
                "service.pull",
                &[
                    ("never", PullPolicy::Never),
                    ("missing", PullPolicy::Missing),
                    ("always", PullPolicy::Always),
                ],
            )
        });
        let stop_signal = match sget("stop_signal") {
            Some(n) => self.string(n, "service.stop_signal").and_then(|s| {
                let upper = s.to_ascii_uppercase();
                let norm = if upper.starts_with("SIG") {
                    upper
                } else {
                    format!("SIG{upper}")
                };
                if STOP_SIGNALS.contains(&norm.as_str()) {
                    Some(norm)
                } else {
                    self.err_hint(
                        n.pos,
                        "service.stop_signal",
                        format!("unknown stop signal \"{s}\""),
                        format!("one of {}", STOP_SIGNALS.join(", ")),
                    );
                    None
                }
            }),
            None => Some("SIGTERM".to_string()),
        };
        let stop_timeout = match sget("stop_timeout") {
            Some(n) => self.duration(n, "service.stop_timeout"),
            None => Some(GoDuration::from_secs(10)),
        };

        // network
        let mut port = None;
        if let Some(net) = get("network")
            && let Some(e) = self.map(net, "network")
        {
            self.check_keys(e, NETWORK_KEYS, "network");
            if let Some(p) = lookup(e, "port") {
                positions.port = p.pos;
                port = self.uint(p, "network.port", 65535).map(|v| {
                    if v == 0 {
                        PortSpec::Dynamic
                    } else {
                        PortSpec::Static(v as u16)
                    }
                });
            }
        }

        // health
        let health = get("health").and_then(|h| self.health(h, port));

        // restart
        let restart = match get("restart") {
            Some(r) => self.restart(r),
            None => Some(RestartSpec::default()),
        };

        // env, secrets, volumes, args
        let mut env = BTreeMap::new();
        if let Some(n) = get("env") {
            for (k, v, pos) in self.string_map(n, "env").unwrap_or_default() {
                let key = format!("env.{k}");
                if !valid_env_name(&k) {
                    self.err_hint(
                        pos,
                        &key,
                        format!("invalid environment variable name \"{k}\""),
                        "use letters, digits and '_', not starting with a digit",
                    );
                    continue;
                }
                if k == "PORT" || k == "AURELIA_SERVICE" {
                    self.err_hint(
                        pos,
                        &key,
                        format!("`{k}` is set by Aurelia and cannot be overridden"),
                        if k == "PORT" {
                            "set network.port instead"
                        } else {
                            "remove it"
                        },
                    );
                    continue;
                }
                self.syntax(&v, pos, &key);
                env.insert(k, v);
            }
        }
        let mut secrets = BTreeMap::new();
        if let Some(n) = get("secrets")
            && let Some(e) = self.map(n, "secrets")
        {
            for (k, v) in e {
                let Some(var) = k.scalar() else { continue };
                let key = format!("secrets.{var}");
                if !valid_env_name(var) {
                    self.err(
                        k.pos,
                        &key,
                        format!("invalid environment variable name \"{var}\""),
                    );
                    continue;
                }
                if env.contains_key(var) {
                    self.err_hint(
                        k.pos,
                        &key,
                        format!("`{var}` is set both in env and in secrets"),
                        "keep one of them",
                    );
                    continue;
                }
                if let Some(text) = v.scalar().filter(|_| !v.is_null()) {
                    self.err_hint(
                        v.pos,
                        &key,
                        format!("secret `{var}` must name its store key under `keychain`"),
                        format!("write `{var}: {{keychain: {text}}}`"),
                    );
                    continue;
                }
                let Some(se) = self.map(v, &key) else {
                    continue;
                };
                self.check_keys(se, SECRET_KEYS, &key);
                match lookup(se, "keychain") {
                    Some(kn) => {
                        if let Some(s) = self.string(kn, &format!("{key}.keychain")) {
                            secrets.insert(var.to_string(), s);
                        }
                    }
                    None => self.err_hint(
                        v.pos,
                        &key,
                        format!("secret `{var}` has no `keychain` key"),
                        format!(
                            "write `{var}: {{keychain: myapp/{}}}`",
                            var.to_ascii_lowercase()
                        ),
                    ),
                }
            }
        }
        let mut volumes = BTreeMap::new();
        let mut volumes_pos = None;
        if let Some(n) = get("volumes") {
            volumes_pos = Some(n.pos);
            for (host, cont, pos) in self.string_map(n, "volumes").unwrap_or_default() {
                let key = format!("volumes.{host}");
                self.syntax(&host, pos, &key);
                if !cont.starts_with('/') {
                    self.err(
                        pos,
                        &key,
                        format!("container path \"{cont}\" must be absolute"),
                    );
                    continue;
                }
                volumes.insert(host, cont);
            }
        }
        let mut args = Vec::new();
        let mut args_pos = None;
        if let Some(n) = get("args") {
            args_pos = Some(n.pos);
            for (a, pos) in self.string_list(n, "args").unwrap_or_default() {
                self.syntax(&a, pos, "args");
                args.push(a);
            }
        }

        // dependencies
        let mut after = Vec::new();
        let mut requires = Vec::new();
        // Membership sets, so a long list is not checked in quadratic time.
        let mut after_set = HashSet::new();
        let mut requires_set = HashSet::new();
        if let Some(d) = get("dependencies")
            && !d.is_null()
            && let Some(e) = self.map(d, "dependencies")
        {
            self.check_keys(e, DEPENDENCY_KEYS, "dependencies");
            if let Some(n) = lookup(e, "after") {
                for (s, pos) in self
                    .string_list(n, "dependencies.after")
                    .unwrap_or_default()
                {
                    if !after_set.insert(s.clone()) {
                        self.err(
                            pos,
                            "dependencies.after",
                            format!("\"{s}\" is listed twice"),
                        );
                        continue;
                    }
                    after.push(s);
                    positions.after.push(pos);
                }
            }
            if let Some(n) = lookup(e, "requires") {
                for (s, pos) in self
                    .string_list(n, "dependencies.requires")
                    .unwrap_or_default()
                {
                    if !requires_set.insert(s.clone()) {
                        self.err(
                            pos,
                            "dependencies.requires",
                            format!("\"{s}\" is listed twice"),
                        );
                        continue;
                    }
                    if !after_set.contains(&s) {
                        self.err_hint(
                            pos,
                            "dependencies.requires",
                            format!("\"{s}\" is in `requires` but not in `after`"),
                            format!("add \"{s}\" to dependencies.after: a hard dependency must also start first"),
                        );
                    }
                    requires.push(s);
                    positions.requires.push(pos);
                }
            }
        }
        if let Some(n) = &name {
            for (list, poss, key) in [
                (&after, &positions.after, "dependencies.after"),
                (&requires, &positions.requires, "dependencies.requires"),
            ] {
                if let Some(i) = list.iter().position(|d| d == n) {
                    let pos = poss[i];
                    self.err(pos, key, format!("service \"{n}\" depends on itself"));
                }
            }
        }

        // routing
        let routing = get("routing").and_then(|r| {
            let e = self.map(r, "routing")?;
            self.check_keys(e, ROUTING_KEYS, "routing");
            let hostname = match lookup(e, "hostname") {
                Some(h) => self.string(h, "routing.hostname"),
                None => {
                    self.err_hint(
                        key_pos(top, "routing").unwrap_or(r.pos),
                        "routing.hostname",
                        "missing `routing.hostname`".into(),
                        "e.g. hostname: api.localhost",
                    );
                    None
                }
            };
            let tls = match lookup(e, "tls") {
                Some(t) => self.boolean(t, "routing.tls")?,
                None => false,
            };
            let tls_options_node = lookup(e, "tls_options");
            let tls_options = tls_options_node.and_then(|t| self.string(t, "routing.tls_options"));
            if let (Some(_), Some(t)) = (&tls_options, tls_options_node)
                && !tls
            {
                self.err_hint(
                    t.pos,
                    "routing.tls_options",
                    "`tls_options` is set but `tls` is not true".into(),
                    "add `tls: true`",
                );
            }
            if port.is_none() {
                self.err_hint(
                    r.pos,
                    "routing",
                    "a routed service needs a port".into(),
                    "set network.port (0 for a dynamic one)",
                );
            }
            Some(RoutingSpec {
                hostname: hostname?,
                tls,
                tls_options,
            })
        });

        // type-specific rules
        if let Some(kind) = kind {
            let tpos = sget("type").map(|n| n.pos).unwrap_or(service_node.pos);
            let field_pos = |k: &str| sget(k).map(|n| n.pos);
            match kind {
                ServiceKind::Native => {
                    if sget("command").is_none() {
                        self.err_hint(
                            tpos,
                            "service.command",
                            "a native service needs `service.command`".into(),
                            "e.g. command: ./bin/api --verbose",
                        );
                    }
                    for k in ["image", "network_mode", "pull"] {
                        if let Some(p) = field_pos(k) {
                            self.err_hint(
                                p,
                                &format!("service.{k}"),
                                format!("`{k}` is for container services, but this one is native"),
                                "remove it, or set type: container",
                            );
                        }
                    }
                    if let Some(p) = volumes_pos {
                        self.err(
                            p,
                            "volumes",
                            "`volumes` is for container services, but this one is native".into(),
                        );
                    }
                    if let Some(p) = args_pos {
                        self.err_hint(
                            p,
                            "args",
                            "`args` is for container services, but this one is native".into(),
                            "put the arguments in service.command",
                        );
                    }
                }
                ServiceKind::Container => {
                    if sget("image").is_none() {
                        self.err_hint(
                            tpos,
                            "service.image",
                            "a container service needs `service.image`".into(),
                            "e.g. image: postgres:16",
                        );
                    }
                    if let Some(p) = field_pos("command") {
                        self.err_hint(
                            p,
                            "service.command",
                            "`command` is for native services; a container runs its image".into(),
                            "pass arguments to the container with `args:`",
                        );
                    }
                    if let Some(p) = field_pos("working_dir") {
                        self.err(
                            p,
                            "service.working_dir",
                            "`working_dir` is for native services".into(),
                        );
                    }
                }
                ServiceKind::External => {
                    if health.is_none() && get("health").is_none() {
                        self.err_hint(
                            tpos,
                            "health",
                            "an external service needs a health check".into(),
                            "Aurelia never starts an external service; it only watches its health",
                        );
                    }
                    for k in [
                        "command",
                        "working_dir",
                        "image",
                        "network_mode",
                        "pull",
                        "stop_signal",
                        "stop_timeout",
                    ] {
                        if let Some(p) = field_pos(k) {
                            self.err_hint(
                                p,
                                &format!("service.{k}"),
                                format!("`{k}` cannot be set on an external service"),
                                "Aurelia never starts or stops external services",
                            );
                        }
                    }
                    for (k, p) in [("volumes", volumes_pos), ("args", args_pos)] {
                        if let Some(p) = p {
                            self.err(p, k, format!("`{k}` cannot be set on an external service"));
                        }
                    }
                    if let Some(r) = get("restart") {
                        self.err_hint(
                            r.pos,
                            "restart",
                            "`restart` cannot be set on an external service".into(),
                            "Aurelia never restarts external services",
                        );
                    }
                    if !env.is_empty() || !secrets.is_empty() {
                        let p = get("env")
                            .or_else(|| get("secrets"))
                            .map(|n| n.pos)
                            .unwrap_or(tpos);
                        self.err(
                            p,
                            "env",
                            "an external service has no process to pass `env` or `secrets` to"
                                .into(),
                        );
                    }
                }
            }
        }

        Some(Spec {
            name: name?,
            kind: kind?,
            command,
            working_dir,
            image,
            network_mode: network_mode.unwrap_or_else(|| "host".to_string()),
            pull: pull.unwrap_or(PullPolicy::Never),
            stop_signal: stop_signal?,
            stop_timeout: stop_timeout?,
            port,
            health,
            restart: restart?,
            env,
            secrets,
            volumes,
            args,
            after,
            requires,
            routing,
            base_dir,
            source,
            positions,
        })
    }

    fn words(&mut self, raw: &str, pos: Pos, key: &str) -> Option<Vec<String>> {
        match shell_words::split(raw) {
            Ok(w) if w.is_empty() => {
                self.err(pos, key, format!("`{key}` is empty"));
                None
            }
            Ok(w) => {
                for word in &w {
                    self.syntax(word, pos, key);
                }
                Some(w)
            }
            Err(_) => {
                self.err_hint(
                    pos,
                    key,
                    format!("`{key}` has an unterminated quote: {raw}"),
                    "close the quote; the command is split like shell words, but no shell runs it",
                );
                None
            }
        }
    }

    fn syntax(&mut self, s: &str, pos: Pos, key: &str) {
        if let Err(e) = expand::check(s) {
            self.err_hint(pos, key, e.to_string(), "write $$ for a literal $");
        }
    }

    fn health(&mut self, node: &Node, port: Option<PortSpec>) -> Option<HealthSpec> {
        let e = self.map(node, "health")?;
        self.check_keys(e, HEALTH_KEYS, "health");
        let g = |k: &str| lookup(e, k);
        let kind = match g("type") {
            Some(n) => self.one_of(n, "health.type", &[("http", 0u8), ("tcp", 1), ("exec", 2)]),
            None => {
                self.err_hint(
                    node.pos,
                    "health.type",
                    "missing `health.type`".into(),
                    "one of http, tcp, exec",
                );
                None
            }
        };
        let hport = g("port").and_then(|n| {
            let v = self.uint(n, "health.port", 65535)?;
            if v == 0 {
                self.err_hint(
                    n.pos,
                    "health.port",
                    "`health.port` cannot be 0".into(),
                    "leave it out to probe the service's own port",
                );
                return None;
            }
            Some(v as u16)
        });
        let interval = match g("interval") {
            Some(n) => self.positive(n, "health.interval"),
            None => Some(GoDuration::from_secs(10)),
        };
        let timeout = match g("timeout") {
            Some(n) => self.positive(n, "health.timeout"),
            None => Some(GoDuration::from_secs(2)),
        };
        let grace_period = match g("grace_period") {
            Some(n) => self.duration(n, "health.grace_period"),
            None => Some(GoDuration::ZERO),
        };
        let unhealthy_threshold = match g("unhealthy_threshold") {
            Some(n) => self
                .uint(n, "health.unhealthy_threshold", 1000)
                .and_then(|v| {
                    if v == 0 {
                        self.err(
                            n.pos,
                            "health.unhealthy_threshold",
                            "`health.unhealthy_threshold` must be at least 1".into(),
                        );
                        None
                    } else {
                        Some(v as u32)
                    }
                }),
            None => Some(3),
        };
        let probe = match kind? {
            0 => {
                if let Some(c) = g("command") {
                    self.err(
                        c.pos,
                        "health.command",
                        "`command` is for exec health checks, not http".into(),
                    );
                }
                let path = match g("path") {
                    Some(n) => self.string(n, "health.path").and_then(|p| {
                        if p.starts_with('/') {
                            Some(p)
                        } else {
                            self.err_hint(
                                n.pos,
                                "health.path",
                                format!("health.path \"{p}\" must start with '/'"),
                                format!("write /{p}"),
                            );
                            None
                        }
                    })?,
                    None => "/".to_string(),
                };
                Probe::Http { path }
            }
            1 => {
                for k in ["path", "command"] {
                    if let Some(n) = g(k) {
                        self.err(
                            n.pos,
                            &format!("health.{k}"),
                            format!("`{k}` does not apply to tcp health checks"),
                        );
                    }
                }
                Probe::Tcp
            }
            _ => {
                if let Some(n) = g("path") {
                    self.err(
                        n.pos,
                        "health.path",
                        "`path` is for http health checks, not exec".into(),
                    );
                }
                let command = match g("command") {
                    Some(n) => {
                        let raw = self.string(n, "health.command")?;
                        self.words(&raw, n.pos, "health.command")?
                    }
                    None => {
                        self.err_hint(
                            node.pos,
                            "health.command",
                            "an exec health check needs `health.command`".into(),
                            "e.g. command: pg_isready -h 127.0.0.1",
                        );
                        return None;
                    }
                };
                Probe::Exec { command }
            }
        };
        if !matches!(probe, Probe::Exec { .. }) && hport.is_none() && port.is_none() {
            self.err_hint(
                node.pos,
                "health.port",
                format!(
                    "{} health check needs a port, and this service has none",
                    if matches!(probe, Probe::Http { .. }) {
                        "an http"
                    } else {
                        "a tcp"
                    }
                ),
                "set health.port or network.port",
            );
            return None;
        }
        Some(HealthSpec {
            probe,
            port: hport,
            interval: interval?,
            timeout: timeout?,
            grace_period: grace_period?,
            unhealthy_threshold: unhealthy_threshold?,
        })
    }

    fn positive(&mut self, node: &Node, key: &str) -> Option<GoDuration> {
        let d = self.duration(node, key)?;
        if d.nanos() == 0 {
            self.err(node.pos, key, format!("`{key}` must be greater than 0"));
            return None;
        }
        Some(d)
    }

    fn restart(&mut self, node: &Node) -> Option<RestartSpec> {
        let e = self.map(node, "restart")?;
        self.check_keys(e, RESTART_KEYS, "restart");
        let d = RestartSpec::default();
        let g = |k: &str| lookup(e, k);
        let policy = match g("policy") {
            Some(n) => self.one_of(
                n,
                "restart.policy",
                &[
                    ("always", RestartPolicy::Always),
                    ("on-failure", RestartPolicy::OnFailure),
                    ("never", RestartPolicy::Never),
                ],
            ),
            None => Some(d.policy),
        };
        let max_attempts = match g("max_attempts") {
            Some(n) => self
                .uint(n, "restart.max_attempts", u64::from(u32::MAX))
                .map(|v| v as u32),
            None => Some(d.max_attempts),
        };
        let delay = match g("delay") {
            Some(n) => self.duration(n, "restart.delay"),
            None => Some(d.delay),
        };
        let backoff = match g("backoff") {
            Some(n) => self.one_of(
                n,
                "restart.backoff",
                &[
                    ("fixed", Backoff::Fixed),
                    ("exponential", Backoff::Exponential),
                ],
            ),
            None => Some(d.backoff),
        };
        let max_delay = match g("max_delay") {
            Some(n) => self.duration(n, "restart.max_delay"),
            None => Some(d.max_delay),
        };
        if let (Some(dl), Some(md), Some(n)) = (delay, max_delay, g("max_delay"))
            && md < dl
        {
            self.err_hint(
                n.pos,
                "restart.max_delay",
                format!("restart.max_delay ({md}) is shorter than restart.delay ({dl})"),
                "max_delay caps the growing delay, so it must be at least delay",
            );
        }
        Some(RestartSpec {
            policy: policy?,
            max_attempts: max_attempts?,
            delay: delay?,
            backoff: backoff?,
            max_delay: max_delay?,
        })
    }
}

fn lookup<'n>(entries: Entries<'n>, key: &str) -> Option<&'n Node> {
    entries
        .iter()
        .find(|(k, _)| k.scalar() == Some(key))
        .map(|(_, v)| v)
}

/// Where `key` itself is written in a mapping (the key, not its value).
fn key_pos(entries: Entries<'_>, key: &str) -> Option<Pos> {
    entries
        .iter()
        .find(|(k, _)| k.scalar() == Some(key))
        .map(|(k, _)| k.pos)
}

fn join(section: &str, key: &str) -> String {
    if section.is_empty() {
        key.to_string()
    } else {
        format!("{section}.{key}")
    }
}

/// Service names end up in container names, log file names and URLs.
pub fn valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn valid_env_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// The candidate within edit distance 2 (or a case-insensitive match), for "did you mean".
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lw = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (levenshtein(&lw, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| *d <= 2.min(c.len().saturating_sub(1)).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(s: &str) -> (Option<Spec>, Vec<Diagnostic>) {
        load_str(s, Path::new("/tmp/x/api.yaml"))
    }

    #[test]
    fn minimal_native() {
        let (spec, d) = load(
            "service:\n  name: api\n  type: native\n  command: ./bin/api --flag 'two words'\n",
        );
        assert!(d.is_empty(), "{d:?}");
        let spec = spec.expect("spec");
        assert_eq!(
            spec.command.as_deref(),
            Some(&["./bin/api".to_string(), "--flag".into(), "two words".into()][..])
        );
        assert_eq!(spec.restart, RestartSpec::default());
        assert_eq!(spec.stop_signal, "SIGTERM");
        assert_eq!(spec.stop_timeout, GoDuration::from_secs(10));
        assert_eq!(spec.base_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn health_defaults() {
        let (spec, d) = load(
            "service: {name: a, type: native, command: x}\nnetwork: {port: 0}\nhealth: {type: http}\n",
        );
        assert!(d.is_empty(), "{d:?}");
        let h = spec.expect("spec").health.expect("health");
        assert_eq!(h.interval, GoDuration::from_secs(10));
        assert_eq!(h.timeout, GoDuration::from_secs(2));
        assert_eq!(h.grace_period, GoDuration::ZERO);
        assert_eq!(h.unhealthy_threshold, 3);
        assert_eq!(h.probe, Probe::Http { path: "/".into() });
    }

    #[test]
    fn several_errors_at_once() {
        let (spec, d) = load(
            "service:\n  name: api\n  type: nativ\n  comand: x\nhealth:\n  type: http\n  interval: 10 s\n",
        );
        assert!(spec.is_none());
        assert!(d.len() >= 3, "{d:#?}");
        assert!(
            d.iter()
                .any(|d| d.message.contains("unknown service.type \"nativ\"") && d.line == 3)
        );
        assert!(d.iter().any(|d| d.message.contains("unknown key `comand`")
            && d.line == 4
            && d.hint.as_deref() == Some("did you mean `service.command`?")));
        assert!(
            d.iter()
                .any(|d| d.key.as_deref() == Some("health.interval") && d.line == 7)
        );
    }

    #[test]
    fn backoff_delays() {
        let r = RestartSpec::default();
        let s = |n| r.delay_for(n).as_secs();
        assert_eq!((s(1), s(2), s(3), s(5), s(6), s(40)), (1, 2, 4, 16, 30, 30));
        let f = RestartSpec {
            backoff: Backoff::Fixed,
            ..RestartSpec::default()
        };
        assert_eq!(f.delay_for(7).as_secs(), 1);
    }

    #[test]
    fn hash_ignores_comments_and_order() {
        let a = load("service: {name: a, type: native, command: x}\nenv: {A: '1', B: '2'}\n")
            .0
            .unwrap();
        let b = load("# comment\nenv:\n  B: '2'\n  A: \"1\"\nservice:\n  type: native\n  command: x\n  name: a\n").0.unwrap();
        assert_eq!(a.content_hash(), b.content_hash());
        let c = load("service: {name: a, type: native, command: y}\nenv: {A: '1', B: '2'}\n")
            .0
            .unwrap();
        assert_ne!(a.content_hash(), c.content_hash());
    }
}
