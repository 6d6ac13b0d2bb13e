//! The typed service spec: what one YAML file in the services directory means.
//!
//! Every field of the seed's "Service Spec Format" plus `routing`, `stop_signal`,
//! `stop_timeout` and `pull`, with the defaults from decisions.md already applied. Strings that
//! are expanded at start time (`~`, `$VAR`, `${PORT}`) are kept raw here; `expand.rs` resolves
//! them when the supervisor starts the service, because `${PORT}` is only known then.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::duration::GoDuration;
use crate::yaml::Pos;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    /// A local program, fork/exec'd by the supervisor (no shell).
    Native,
    /// A Docker container driven through the Engine API.
    Container,
    /// Something Aurelia never starts or stops; it is only health-checked.
    External,
}

impl ServiceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Native => "native",
            ServiceKind::Container => "container",
            ServiceKind::External => "external",
        }
    }
}

/// `network.port`: a fixed port, or `0` for one allocated from the port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PortSpec {
    Static(u16),
    Dynamic,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase", tag = "type")]
pub enum Probe {
    /// GET `path` on 127.0.0.1:port; 2xx is healthy.
    Http { path: String },
    /// A TCP connect to 127.0.0.1:port.
    Tcp,
    /// A command (no shell), healthy on exit 0.
    Exec { command: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct HealthSpec {
    #[serde(flatten)]
    pub probe: Probe,
    /// An explicit `health.port`; `None` means the service's own port.
    pub port: Option<u16>,
    pub interval: GoDuration,
    pub timeout: GoDuration,
    pub grace_period: GoDuration,
    pub unhealthy_threshold: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    Fixed,
    Exponential,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RestartSpec {
    pub policy: RestartPolicy,
    /// Restarts allowed before the service is marked failed; 0 means no limit.
    pub max_attempts: u32,
    pub delay: GoDuration,
    pub backoff: Backoff,
    pub max_delay: GoDuration,
}

impl Default for RestartSpec {
    /// decisions.md: no `restart:` block means on-failure, 5 attempts, 1s exponential to 30s.
    fn default() -> Self {
        RestartSpec {
            policy: RestartPolicy::OnFailure,
            max_attempts: 5,
            delay: GoDuration::from_secs(1),
            backoff: Backoff::Exponential,
            max_delay: GoDuration::from_secs(30),
        }
    }
}

impl RestartSpec {
    /// The wait before restart attempt `attempt` (1-based).
    pub fn delay_for(&self, attempt: u32) -> std::time::Duration {
        let base = self.delay.to_std();
        let d = match self.backoff {
            Backoff::Fixed => base,
            Backoff::Exponential => {
                let shift = attempt.saturating_sub(1).min(31);
                base.saturating_mul(1u32 << shift)
            }
        };
        let max = self.max_delay.to_std();
        if self.backoff == Backoff::Exponential && !max.is_zero() {
            d.min(max)
        } else {
            d
        }
    }
}

/// When to pull a container image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PullPolicy {
    /// Never pull: a missing image is an error naming it (the default).
    Never,
    /// Pull when the image is not present locally.
    Missing,
    /// Pull on every start.
    Always,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RoutingSpec {
    pub hostname: String,
    pub tls: bool,
    pub tls_options: Option<String>,
}

/// Where things were written in the file, for cross-file errors. Not part of the spec's
/// identity (moving a line does not change what the service is).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Positions {
    pub name: Pos,
    pub port: Pos,
    pub after: Vec<Pos>,
    pub requires: Vec<Pos>,
}

/// One validated service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Spec {
    pub name: String,
    pub kind: ServiceKind,
    /// The command split into words (shell-style quoting), not yet expanded.
    pub command: Option<Vec<String>>,
    /// Raw `working_dir`, not yet expanded; `None` means the spec file's directory.
    pub working_dir: Option<String>,
    pub image: Option<String>,
    pub network_mode: String,
    pub pull: PullPolicy,
    /// Signal name as written, normalised to `SIGXXX`.
    pub stop_signal: String,
    pub stop_timeout: GoDuration,
    pub port: Option<PortSpec>,
    pub health: Option<HealthSpec>,
    pub restart: RestartSpec,
    pub env: BTreeMap<String, String>,
    /// Environment variable -> secret-store key.
    pub secrets: BTreeMap<String, String>,
    /// Host path -> container path, raw.
    pub volumes: BTreeMap<String, String>,
    pub args: Vec<String>,
    pub after: Vec<String>,
    pub requires: Vec<String>,
    pub routing: Option<RoutingSpec>,
    /// Directory relative paths resolve against: the spec file's directory.
    pub base_dir: PathBuf,
    #[serde(skip)]
    pub source: PathBuf,
    #[serde(skip)]
    pub positions: Positions,
}

impl Spec {
    /// The static port, if the spec fixes one.
    pub fn static_port(&self) -> Option<u16> {
        match self.port {
            Some(PortSpec::Static(p)) => Some(p),
            _ => None,
        }
    }

    /// A hash of the spec's meaning: the same for two files that differ only in comments,
    /// formatting, key order or location of the file. Stable across builds (FNV-1a over the
    /// canonical JSON form), because it is persisted and put on container labels.
    pub fn content_hash(&self) -> String {
        // Serialising plain data to a String cannot fail.
        let canonical = serde_json::to_string(self).unwrap_or_default();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in canonical.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{h:016x}")
    }
}

/// Signals accepted for `service.stop_signal`.
pub const STOP_SIGNALS: &[&str] = &[
    "SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGWINCH",
];
