//! The dependency graph over a set of valid specs.
//!
//! Edges run from a service to what it starts `after` (which includes its `requires`). From
//! them: start waves (Kahn's algorithm by levels: everything in one wave can start in
//! parallel), the reverse order for stopping, cycle detection with the cycle's path for the
//! error message, and the transitive hard dependents of a service (who is cascade-stopped
//! when it goes down).

use std::collections::{BTreeMap, BTreeSet};

/// A dependency graph by service name. Unknown names in edges are ignored (validation
/// reports them separately).
#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// service -> services it starts after (a superset of requires)
    after: BTreeMap<String, BTreeSet<String>>,
    /// service -> services it requires
    requires: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    /// Builds a graph from `(name, after, requires)` triples.
    pub fn new<'a, I>(services: I) -> Graph
    where
        I: IntoIterator<Item = (&'a str, &'a [String], &'a [String])>,
    {
        let mut g = Graph::default();
        let items: Vec<_> = services.into_iter().collect();
        let names: BTreeSet<&str> = items.iter().map(|(n, _, _)| *n).collect();
        for (name, after, requires) in items {
            let keep = |v: &[String]| -> BTreeSet<String> {
                v.iter()
                    .filter(|d| names.contains(d.as_str()) && d.as_str() != name)
                    .cloned()
                    .collect()
            };
            let req = keep(requires);
            let mut aft = keep(after);
            aft.extend(req.iter().cloned());
            g.after.insert(name.to_string(), aft);
            g.requires.insert(name.to_string(), req);
        }
        g
    }

    pub fn from_specs(specs: &[crate::Spec]) -> Graph {
        Graph::new(
            specs
                .iter()
                .map(|s| (s.name.as_str(), s.after.as_slice(), s.requires.as_slice())),
        )
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.after.keys().map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.after.contains_key(name)
    }

    /// What `name` starts after.
    pub fn after_of(&self, name: &str) -> impl Iterator<Item = &str> {
        self.after
            .get(name)
            .into_iter()
            .flat_map(|s| s.iter().map(String::as_str))
    }

    /// What `name` requires.
    pub fn requires_of(&self, name: &str) -> impl Iterator<Item = &str> {
        self.requires
            .get(name)
            .into_iter()
            .flat_map(|s| s.iter().map(String::as_str))
    }

    /// Services that list `name` in `after` (directly).
    pub fn direct_dependents(&self, name: &str) -> Vec<&str> {
        self.after
            .iter()
            .filter(|(_, deps)| deps.contains(name))
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// A dependency cycle, as a path that starts and ends at the same service
    /// (`["api", "worker", "api"]`), if there is one.
    pub fn find_cycle(&self) -> Option<Vec<String>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        let mut mark: BTreeMap<&str, Mark> = self.names().map(|n| (n, Mark::New)).collect();
        fn visit<'g>(
            g: &'g Graph,
            n: &'g str,
            mark: &mut BTreeMap<&'g str, Mark>,
            path: &mut Vec<&'g str>,
        ) -> Option<Vec<String>> {
            mark.insert(n, Mark::Active);
            path.push(n);
            for d in g.after_of(n) {
                match mark.get(d).copied() {
                    Some(Mark::Active) => {
                        let start = path.iter().position(|p| *p == d).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            path[start..].iter().map(|s| s.to_string()).collect();
                        cycle.push(d.to_string());
                        return Some(cycle);
                    }
                    Some(Mark::New) => {
                        if let Some(c) = visit(g, d, mark, path) {
                            return Some(c);
                        }
                    }
                    _ => {}
                }
            }
            path.pop();
            mark.insert(n, Mark::Done);
            None
        }
        let names: Vec<&str> = self.names().collect();
        for n in names {
            if mark.get(n) == Some(&Mark::New) {
                let mut path = Vec::new();
                if let Some(c) = visit(self, n, &mut mark, &mut path) {
                    return Some(c);
                }
            }
        }
        None
    }

    /// Start waves: wave 0 has no dependencies, wave k depends only on earlier waves. Services
    /// on a cycle are left out (validation rejects cycles before this matters).
    pub fn waves(&self) -> Vec<Vec<String>> {
        let mut remaining: BTreeMap<&str, usize> = self
            .after
            .iter()
            .map(|(n, deps)| (n.as_str(), deps.len()))
            .collect();
        let mut waves = Vec::new();
        loop {
            let wave: Vec<String> = remaining
                .iter()
                .filter(|(_, c)| **c == 0)
                .map(|(n, _)| n.to_string())
                .collect();
            if wave.is_empty() {
                break;
            }
            for n in &wave {
                remaining.remove(n.as_str());
            }
            for (n, c) in remaining.iter_mut() {
                *c = self
                    .after_of(n)
                    .filter(|d| {
                        !waves
                            .iter()
                            .flatten()
                            .chain(wave.iter())
                            .any(|w: &String| w == d)
                    })
                    .count();
            }
            waves.push(wave);
        }
        waves
    }

    /// Stop order: the start waves reversed.
    pub fn stop_waves(&self) -> Vec<Vec<String>> {
        let mut w = self.waves();
        w.reverse();
        w
    }

    /// Everything that requires `name`, directly or through other services: the set that is
    /// cascade-stopped when `name` stops.
    pub fn hard_dependents(&self, name: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut todo = vec![name.to_string()];
        while let Some(n) = todo.pop() {
            for (svc, reqs) in &self.requires {
                if reqs.contains(&n) && out.insert(svc.clone()) {
                    todo.push(svc.clone());
                }
            }
        }
        out
    }

    /// Everything `name` starts after, directly or transitively (what `up name` brings up).
    pub fn transitive_after(&self, name: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut todo = vec![name.to_string()];
        while let Some(n) = todo.pop() {
            for d in self.after_of(&n) {
                if out.insert(d.to_string()) {
                    todo.push(d.to_string());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(edges: &[(&str, &[&str], &[&str])]) -> Graph {
        let owned: Vec<(String, Vec<String>, Vec<String>)> = edges
            .iter()
            .map(|(n, a, r)| {
                (
                    n.to_string(),
                    a.iter().map(|s| s.to_string()).collect(),
                    r.iter().map(|s| s.to_string()).collect(),
                )
            })
            .collect();
        Graph::new(
            owned
                .iter()
                .map(|(n, a, r)| (n.as_str(), a.as_slice(), r.as_slice())),
        )
    }

    #[test]
    fn waves_of_the_seed_stack() {
        let gr = g(&[
            ("postgres", &[], &[]),
            ("redis", &[], &[]),
            ("api", &["postgres"], &["postgres"]),
            ("worker", &["postgres", "api"], &["postgres"]),
        ]);
        assert_eq!(
            gr.waves(),
            vec![
                vec!["postgres".to_string(), "redis".into()],
                vec!["api".into()],
                vec!["worker".into()]
            ]
        );
        assert_eq!(gr.stop_waves()[0], vec!["worker".to_string()]);
        assert_eq!(
            gr.hard_dependents("postgres")
                .into_iter()
                .collect::<Vec<_>>(),
            vec!["api", "worker"]
        );
        assert!(gr.hard_dependents("api").is_empty());
        assert_eq!(gr.find_cycle(), None);
    }

    #[test]
    fn transitive_hard_dependents() {
        let gr = g(&[
            ("a", &[], &[]),
            ("b", &["a"], &["a"]),
            ("c", &["b"], &["b"]),
            ("d", &["c"], &[]),
        ]);
        assert_eq!(
            gr.hard_dependents("a").into_iter().collect::<Vec<_>>(),
            vec!["b", "c"]
        );
        assert_eq!(
            gr.transitive_after("d").into_iter().collect::<Vec<_>>(),
            vec!["a", "b", "c"]
        );
    }

    #[test]
    fn cycle_path() {
        let gr = g(&[
            ("api", &["worker"], &[]),
            ("worker", &["api"], &[]),
            ("db", &[], &[]),
        ]);
        assert_eq!(
            gr.find_cycle(),
            Some(vec!["api".to_string(), "worker".into(), "api".into()])
        );
        let gr = g(&[("a", &["b"], &[]), ("b", &["c"], &[]), ("c", &["a"], &[])]);
        assert_eq!(
            gr.find_cycle().map(|c| c.join(" -> ")),
            Some("a -> b -> c -> a".into())
        );
    }
}
