//! `$AURELIA_HOME/state.json`: what the next daemon needs to re-adopt running services.
//!
//! Versioned JSON, written atomically (temp file + rename) after every change that matters
//! (a process started or ended, a port was allocated, the user changed what is wanted). A
//! corrupt, truncated or unknown-version file is reported and ignored, never a crash: the
//! daemon then starts with nothing to adopt (and, on Linux, still finds its own orphans by
//! their environment tags, see `adopt.rs`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub const VERSION: u32 = 1;

/// Per service, what adoption needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// The process (native) or none.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pgid: Option<u32>,
    /// Identity check: see `proc::start_time`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub start_time: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub container_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub port: Option<u16>,
    pub spec_hash: String,
    #[serde(default)]
    pub restarts: u32,
    /// When the current process started (RFC 3339), for uptime after adoption.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub started_at: Option<String>,
    /// Whether the user wants it up.
    #[serde(default)]
    pub wanted: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFile {
    pub version: u32,
    #[serde(default)]
    pub services: BTreeMap<String, ServiceRecord>,
    /// Dynamic port allocations, kept while the spec exists.
    #[serde(default)]
    pub ports: BTreeMap<String, u16>,
}

impl StateFile {
    /// Reads the state file. A missing file is an empty state; anything unreadable is an
    /// empty state plus a warning that says why.
    pub fn load(path: &Path) -> (StateFile, Option<String>) {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return (StateFile::empty(), None);
            }
            Err(e) => {
                return (
                    StateFile::empty(),
                    Some(format!(
                        "cannot read {}: {e}; starting without it",
                        path.display()
                    )),
                );
            }
        };
        match serde_json::from_slice::<StateFile>(&data) {
            Ok(s) if s.version == VERSION => (s, None),
            Ok(s) => (
                StateFile::empty(),
                Some(format!(
                    "{} has version {}, this daemon reads version {VERSION}; ignoring it",
                    path.display(),
                    s.version
                )),
            ),
            Err(e) => (
                StateFile::empty(),
                Some(format!(
                    "{} is corrupt ({e}); ignoring it, no service will be re-adopted from it",
                    path.display()
                )),
            ),
        }
    }

    pub fn empty() -> StateFile {
        StateFile {
            version: VERSION,
            ..StateFile::default()
        }
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let data = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::home::write_atomic(path, &data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("state.json");
        assert_eq!(StateFile::load(&p), (StateFile::empty(), None));
        let mut s = StateFile::empty();
        s.services.insert(
            "api".into(),
            ServiceRecord {
                pid: Some(42),
                spec_hash: "h".into(),
                wanted: true,
                ..Default::default()
            },
        );
        s.ports.insert("api".into(), 20001);
        s.save(&p).expect("save");
        assert_eq!(StateFile::load(&p).0, s);
        let full = std::fs::read(&p).expect("read");
        std::fs::write(&p, &full[..full.len() / 2]).expect("truncate");
        let (st, warn) = StateFile::load(&p);
        assert_eq!(st, StateFile::empty());
        assert!(warn.expect("warning").contains("corrupt"));
        std::fs::write(&p, b"{\"version\": 99}").expect("write");
        assert!(
            StateFile::load(&p)
                .1
                .expect("warning")
                .contains("version 99")
        );
        std::fs::write(&p, [0xff, 0x00, 0x13]).expect("write");
        assert!(StateFile::load(&p).1.is_some());
    }
}
