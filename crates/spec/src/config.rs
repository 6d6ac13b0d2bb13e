//! The daemon's own settings: `$AURELIA_HOME/config.yaml`.
//!
//! ```yaml
//! port_range: 20000-32000     # where dynamic ports (network.port: 0) come from
//! api_addr: 127.0.0.1:9090    # optional TCP listener (bearer token)
//! routing_output: ~/.aurelia/traefik/aurelia.yaml
//! log_max_size: 10MiB         # rotate a service's log file past this size
//! log_max_files: 5            # rotated files kept per service
//! ```
//!
//! Same rules as specs: unknown keys are errors, every problem is located.

use std::path::Path;

use crate::error::Diagnostic;
use crate::load::read_spec_file;
use crate::yaml::{self, Node, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub port_range: (u16, u16),
    pub api_addr: Option<String>,
    pub routing_output: Option<String>,
    pub log_max_size: u64,
    pub log_max_files: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port_range: (20000, 32000),
            api_addr: None,
            routing_output: None,
            log_max_size: 10 * 1024 * 1024,
            log_max_files: 5,
        }
    }
}

const KEYS: &[&str] = &[
    "port_range",
    "api_addr",
    "routing_output",
    "log_max_size",
    "log_max_files",
];

/// Loads `path`; a missing file gives the defaults.
pub fn load_config(path: &Path) -> Result<Config, Vec<Diagnostic>> {
    if !path.exists() {
        return Ok(Config::default());
    }
    let text = read_spec_file(path).map_err(|d| vec![d])?;
    parse_config(&text)
}

/// Parses config text.
pub fn parse_config(text: &str) -> Result<Config, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut cfg = Config::default();
    let root = match yaml::parse(text, &mut diags) {
        Ok(Some(r)) => r,
        Ok(None) => {
            return if diags.is_empty() {
                Ok(cfg)
            } else {
                Err(diags)
            };
        }
        Err(d) => return Err(vec![d]),
    };
    let entries = match &root.value {
        Value::Map(e) => e,
        _ if root.is_null() => return Ok(cfg),
        _ => {
            return Err(vec![Diagnostic::at(
                root.pos,
                "config.yaml must be a mapping of settings".into(),
            )]);
        }
    };
    for (k, v) in entries {
        let Some(key) = k.scalar() else { continue };
        match key {
            "port_range" => match scalar(v).and_then(parse_range) {
                Ok(r) => cfg.port_range = r,
                Err(m) => diags.push(
                    Diagnostic::at(v.pos, m)
                        .key(key)
                        .hint("write it as START-END, e.g. 20000-32000, with START <= END"),
                ),
            },
            "api_addr" => match scalar(v) {
                Ok(s) => cfg.api_addr = Some(s.to_string()),
                Err(m) => diags.push(Diagnostic::at(v.pos, m).key(key)),
            },
            "routing_output" => match scalar(v) {
                Ok(s) => cfg.routing_output = Some(s.to_string()),
                Err(m) => diags.push(Diagnostic::at(v.pos, m).key(key)),
            },
            "log_max_size" => match scalar(v).and_then(parse_size) {
                Ok(n) => cfg.log_max_size = n,
                Err(m) => diags.push(
                    Diagnostic::at(v.pos, m)
                        .key(key)
                        .hint("e.g. 10MiB, 512KiB or a number of bytes (at least 4KiB)"),
                ),
            },
            "log_max_files" => match scalar(v).and_then(|s| {
                s.parse::<u32>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| format!("must be a number from 1 to 1000, found \"{s}\""))
            }) {
                Ok(n) => cfg.log_max_files = n,
                Err(m) => diags.push(Diagnostic::at(v.pos, m).key(key)),
            },
            _ => {
                let mut d = Diagnostic::at(k.pos, format!("unknown setting `{key}`")).key(key);
                if let Some(c) = crate::load::closest(key, KEYS) {
                    d = d.hint(format!("did you mean `{c}`?"));
                } else {
                    d = d.hint(format!("known settings: {}", KEYS.join(", ")));
                }
                diags.push(d);
            }
        }
    }
    if diags.is_empty() {
        Ok(cfg)
    } else {
        Err(diags)
    }
}

fn scalar(n: &Node) -> Result<&str, String> {
    match &n.value {
        Value::Scalar { .. } if n.is_null() => Err("is empty".into()),
        Value::Scalar { text, .. } => Ok(text),
        _ => Err(format!("must be a single value, found {}", n.kind_name())),
    }
}

/// `START-END`, inclusive, both in 1..=65535 and START <= END.
pub fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("invalid port range \"{s}\"");
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let a: u16 = a.trim().parse().map_err(|_| bad())?;
    let b: u16 = b.trim().parse().map_err(|_| bad())?;
    if a == 0 {
        return Err(format!("port range \"{s}\" starts at 0; ports start at 1"));
    }
    if a > b {
        return Err(format!(
            "port range \"{s}\" is inverted (start {a} is above end {b})"
        ));
    }
    Ok((a, b))
}

/// A byte size: `1048576`, `512KiB`, `10MiB`, `1GiB` (KB/MB/GB are read as powers of 1024 too).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("invalid size \"{s}\""))?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" | "KiB" => 1024,
        "M" | "MB" | "MiB" => 1024 * 1024,
        "G" | "GB" | "GiB" => 1024 * 1024 * 1024,
        _ => return Err(format!("invalid size unit in \"{s}\"")),
    };
    let v = n
        .checked_mul(mult)
        .ok_or_else(|| format!("size \"{s}\" is too large"))?;
    if v < 4096 {
        return Err(format!("size \"{s}\" is below the minimum of 4KiB"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_values() {
        assert_eq!(parse_config("").unwrap(), Config::default());
        let c = parse_config("port_range: 30000-30010\nlog_max_size: 1MiB\nlog_max_files: 2\n")
            .unwrap();
        assert_eq!(c.port_range, (30000, 30010));
        assert_eq!(c.log_max_size, 1024 * 1024);
        assert_eq!(c.log_max_files, 2);
    }

    #[test]
    fn bad_ranges() {
        assert!(parse_range("32000-20000").unwrap_err().contains("inverted"));
        assert!(parse_range("0-10").is_err());
        assert!(parse_range("abc").is_err());
        assert!(parse_range("1-70000").is_err());
        assert_eq!(parse_range("5-5"), Ok((5, 5)));
        let e = parse_config("port_range: 9-1\nprot_range: x\n").unwrap_err();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].line, 1);
        assert_eq!(e[1].hint.as_deref(), Some("did you mean `port_range`?"));
    }
}
