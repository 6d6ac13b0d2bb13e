//! Loading a whole services directory, and the checks that span files.
//!
//! Each file is loaded on its own first; then the valid specs are checked together: duplicate
//! names, unknown dependency names, dependency cycles (with the cycle's path), and two services
//! on one static port. Every cross-file problem is reported in the file where it can be fixed,
//! at the line of the offending entry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Diagnostic;
use crate::graph::Graph;
use crate::load::{closest, load_file_named};
use crate::model::Spec;

/// The result of loading one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub file: PathBuf,
    /// The service name, when the file got far enough to have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub ok: bool,
    pub errors: Vec<Diagnostic>,
}

/// A loaded directory (or single file): a report per file and the specs that are valid.
#[derive(Debug, Clone, Default)]
pub struct SpecSet {
    pub reports: Vec<FileReport>,
    /// Valid specs, sorted by name. A spec with a cross-file problem is not in here.
    pub specs: Vec<Spec>,
}

impl SpecSet {
    pub fn is_valid(&self) -> bool {
        self.reports.iter().all(|r| r.ok)
    }

    pub fn error_count(&self) -> usize {
        self.reports.iter().map(|r| r.errors.len()).sum()
    }

    pub fn graph(&self) -> Graph {
        Graph::from_specs(&self.specs)
    }

    /// All errors, rendered one per line as `file:line:col: key: message (hint: ...)`.
    pub fn render_errors(&self) -> String {
        let mut out = Vec::new();
        for r in &self.reports {
            for e in &r.errors {
                out.push(e.render(&r.file));
            }
        }
        out.join("\n")
    }
}

/// Is this directory entry a spec file? YAML extension, not hidden (editors' swap and backup
/// files start with a dot or end with `~`, and are skipped).
pub fn is_spec_file_name(name: &str) -> bool {
    !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

/// The spec files directly inside `dir`, sorted.
pub fn spec_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if is_spec_file_name(name) {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Loads `path`: a directory of spec files, or one file.
pub fn load_path(path: &Path) -> std::io::Result<SpecSet> {
    let meta = std::fs::metadata(path)?;
    let files = if meta.is_dir() {
        spec_files(path)?
    } else {
        vec![path.to_path_buf()]
    };
    Ok(load_files(&files))
}

/// Loads the given files and checks them together.
pub fn load_files(files: &[PathBuf]) -> SpecSet {
    let mut reports = Vec::new();
    let mut loaded: Vec<(usize, Spec)> = Vec::new();
    // Services declared by files that did not load: a dependency on one of them is not an
    // unknown name, it is a broken dependency.
    let mut broken: Vec<(String, PathBuf)> = Vec::new();
    for f in files {
        let (spec, errors, declared) = load_file_named(f);
        let idx = reports.len();
        reports.push(FileReport {
            file: f.clone(),
            service: declared.clone(),
            ok: errors.is_empty(),
            errors,
        });
        match spec {
            Some(s) => loaded.push((idx, s)),
            None => broken.extend(declared.map(|n| (n, f.clone()))),
        }
    }
    let problems =
        cross_check_with_broken(&loaded.iter().map(|(_, s)| s).collect::<Vec<_>>(), &broken);
    let mut bad = vec![false; loaded.len()];
    for (i, d) in problems {
        bad[i] = true;
        let r = &mut reports[loaded[i].0];
        r.ok = false;
        r.errors.push(d);
    }
    for r in &mut reports {
        r.errors.sort_by_key(|d| (d.line, d.col));
    }
    let mut specs: Vec<Spec> = loaded
        .into_iter()
        .zip(bad)
        .filter(|(_, b)| !b)
        .map(|((_, s), _)| s)
        .collect();
    // A spec that depends on one that did not load cannot run either: cross_check reports
    // that in its own file (as an unknown service, or as one whose file has errors), so it is
    // left out above.
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    SpecSet { reports, specs }
}

/// Cross-file problems, as (index into `specs`, diagnostic).
pub fn cross_check(specs: &[&Spec]) -> Vec<(usize, Diagnostic)> {
    cross_check_with_broken(specs, &[])
}

/// [`cross_check`], knowing the services declared by files with errors (name, file), so a
/// dependency on one of them says which file to fix instead of calling the name unknown.
pub fn cross_check_with_broken(
    specs: &[&Spec],
    broken: &[(String, PathBuf)],
) -> Vec<(usize, Diagnostic)> {
    let mut out = Vec::new();
    let mut first_by_name: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, s) in specs.iter().enumerate() {
        match first_by_name.get(s.name.as_str()) {
            Some(&j) => out.push((
                i,
                Diagnostic::at(
                    s.positions.name,
                    format!(
                        "duplicate service name \"{}\" (also defined in {})",
                        s.name,
                        specs[j].source.display()
                    ),
                )
                .key("service.name")
                .hint("service names must be unique; rename one of them"),
            )),
            None => {
                first_by_name.insert(&s.name, i);
            }
        }
    }
    let names: Vec<&str> = first_by_name
        .keys()
        .copied()
        .chain(broken.iter().map(|(n, _)| n.as_str()))
        .collect();
    for (i, s) in specs.iter().enumerate() {
        for (list, poss, key) in [
            (&s.after, &s.positions.after, "dependencies.after"),
            (&s.requires, &s.positions.requires, "dependencies.requires"),
        ] {
            for (dep, pos) in list.iter().zip(poss) {
                if first_by_name.contains_key(dep.as_str()) {
                    continue;
                }
                if let Some((_, file)) = broken.iter().find(|(n, _)| n == dep) {
                    out.push((
                        i,
                        Diagnostic::at(
                            *pos,
                            format!(
                                "service \"{dep}\" cannot start: its spec {} has errors",
                                file.display()
                            ),
                        )
                        .key(key)
                        .hint("fix that file first"),
                    ));
                    continue;
                }
                let mut d = Diagnostic::at(*pos, format!("unknown service \"{dep}\"")).key(key);
                d = match closest(dep, &names) {
                    Some(c) => d.hint(format!("did you mean \"{c}\"?")),
                    None => d.hint("no spec file defines a service by that name"),
                };
                out.push((i, d));
            }
        }
    }
    let mut port_owner: BTreeMap<u16, usize> = BTreeMap::new();
    for (i, s) in specs.iter().enumerate() {
        if let Some(p) = s.static_port() {
            match port_owner.get(&p) {
                Some(&j) => out.push((
                    i,
                    Diagnostic::at(
                        s.positions.port,
                        format!("port {p} is also used by service \"{}\"", specs[j].name),
                    )
                    .key("network.port")
                    .hint("give each service its own port, or use port: 0 for a dynamic one"),
                )),
                None => {
                    port_owner.insert(p, i);
                }
            }
        }
    }
    // Report every distinct cycle once: after reporting a cycle, drop its first edge and look
    // again (bounded by the number of services).
    let mut excluded: Vec<(String, String)> = Vec::new();
    for _ in 0..=specs.len() {
        // Only the first definition of each name: a duplicate (reported above) would
        // otherwise replace it in the graph and hide its edges.
        let lists: Vec<(String, Vec<String>, Vec<String>)> = specs
            .iter()
            .enumerate()
            .filter(|(i, s)| first_by_name.get(s.name.as_str()) == Some(i))
            .map(|(_, s)| {
                let keep = |v: &[String]| -> Vec<String> {
                    v.iter()
                        .filter(|d| !excluded.iter().any(|(a, b)| *a == s.name && b == *d))
                        .cloned()
                        .collect()
                };
                (s.name.clone(), keep(&s.after), keep(&s.requires))
            })
            .collect();
        let g = Graph::new(
            lists
                .iter()
                .map(|(n, a, r)| (n.as_str(), a.as_slice(), r.as_slice())),
        );
        let Some(cycle) = g.find_cycle() else { break };
        let (first, next) = (&cycle[0], &cycle[1]);
        // Every service on the cycle gets the error, at its edge to the next one: none of
        // them can start, so none may load as if it were fine.
        for pair in cycle.windows(2) {
            let (from, to) = (&pair[0], &pair[1]);
            let Some(i) = specs.iter().enumerate().position(|(k, s)| {
                &s.name == from && first_by_name.get(s.name.as_str()) == Some(&k)
            }) else {
                continue;
            };
            let s = specs[i];
            let pos = s
                .after
                .iter()
                .position(|d| d == to)
                .map(|k| s.positions.after[k])
                .or_else(|| {
                    s.requires
                        .iter()
                        .position(|d| d == to)
                        .map(|k| s.positions.requires[k])
                })
                .unwrap_or(s.positions.name);
            out.push((
                i,
                Diagnostic::at(pos, format!("dependency cycle: {}", cycle.join(" -> ")))
                    .key("dependencies")
                    .hint("services in a cycle can never start; remove one of these dependencies"),
            ));
        }
        excluded.push((first.clone(), next.clone()));
    }
    out
}
