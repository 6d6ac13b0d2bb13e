//! Request and response bodies of the v1 API.
//!
//! Times are RFC 3339 strings in UTC; durations are seconds as floats. Optional fields are left
//! out when empty, so adding a field is backwards-compatible for old clients.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A service's lifecycle state. See docs/architecture.md for the diagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    /// Not running, and not wanted (or never started).
    Stopped,
    /// Wanted up, but held back by a dependency that is not ready (or was cascade-stopped).
    Waiting,
    /// Process started; waiting for its first healthy probe (services with a health check).
    Starting,
    /// Up (and healthy, where a health check exists).
    Running,
    /// Being stopped: stop signal sent, waiting for the process group to exit.
    Stopping,
    /// Exited or unhealthy; waiting out the restart delay before the next attempt.
    Backoff,
    /// Gave up: start error, `never` policy, or `max_attempts` used. `last_error` says why.
    Failed,
    /// Exited with code 0 on its own, and its restart policy does not restart it (a one-shot
    /// job). Counts as ready for dependents; `up` starts it again.
    Completed,
}

impl ServiceState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Stopped => "stopped",
            ServiceState::Waiting => "waiting",
            ServiceState::Starting => "starting",
            ServiceState::Running => "running",
            ServiceState::Stopping => "stopping",
            ServiceState::Backoff => "backoff",
            ServiceState::Failed => "failed",
            ServiceState::Completed => "completed",
        }
    }
}

/// Health as seen by the probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// No result yet (or inside the grace period).
    Unknown,
    Healthy,
    /// `unhealthy_threshold` consecutive failures.
    Unhealthy,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Unknown => "unknown",
            HealthState::Healthy => "healthy",
            HealthState::Unhealthy => "unhealthy",
        }
    }
}

/// How a process ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExitInfo {
    /// Exit code, when it exited normally.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code: Option<i32>,
    /// Signal name, when it was killed by a signal.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub signal: Option<String>,
    /// When it ended (RFC 3339).
    pub at: String,
    /// What is known when the status is not (the Docker engine went away).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub note: Option<String>,
}

impl std::fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.code, &self.signal, &self.note) {
            (Some(c), _, _) => write!(f, "exit code {c}"),
            (None, Some(s), _) => write!(f, "killed by {s}"),
            (None, None, Some(n)) => f.write_str(n),
            (None, None, None) => write!(f, "exited (status unknown)"),
        }
    }
}

/// One service's status: the seed's `status` columns and what explains them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ServiceStatus {
    pub name: String,
    /// `native`, `container` or `external`.
    #[serde(rename = "type")]
    pub kind: String,
    pub state: ServiceState,
    /// Absent for services without a health check.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub health: Option<HealthState>,
    /// Whether the user wants it up (`up`) or down (`down`).
    pub wanted: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub container_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub port: Option<u16>,
    /// When the current process started (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub started_at: Option<String>,
    /// Seconds since `started_at`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub uptime_secs: Option<f64>,
    /// Restarts since the user last started it.
    pub restarts: u32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_exit: Option<ExitInfo>,
    /// Why it failed, is waiting, or is backing off.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_error: Option<String>,
    /// Dependencies it is waiting for (state `waiting`).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub waiting_for: Vec<String>,
    /// Whether the daemon re-adopted this process after a restart of the daemon.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub adopted: bool,
    pub spec_hash: String,
}

/// One health probe result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProbeResult {
    pub at: String,
    pub ok: bool,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

/// `GET /v1/services/{name}`: status plus what a detail view needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ServiceDetail {
    #[serde(flatten)]
    pub status: ServiceStatus,
    /// The spec file this service comes from.
    pub spec_file: String,
    /// The command (native) or image (container), for display.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub after: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub requires: Vec<String>,
    /// Health check summary, e.g. `http :8080/healthz every 10s`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub health_check: Option<String>,
    /// Recent probe results, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub health_history: Vec<ProbeResult>,
    /// The log file being written.
    pub log_file: String,
}

/// `GET /v1/services`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ServiceList {
    pub services: Vec<ServiceStatus>,
    /// Problems in spec files the daemon could not load (rendered `file:line:col: message`).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub spec_errors: Vec<String>,
}

/// Body of `POST /v1/up` and `POST /v1/down`: the services to act on (empty: all).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ServicesRequest {
    #[serde(default)]
    pub services: Vec<String>,
}

/// Result of start/stop/restart/up/down: which services the operation set in motion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ActionResult {
    /// Services the request named, plus those it brought along (dependencies for `up`).
    pub services: Vec<String>,
}

/// `POST /v1/reload`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReloadResult {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub restarted: Vec<String>,
    pub unchanged: Vec<String>,
}

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    Stdout,
    Stderr,
    /// A line written by Aurelia itself (e.g. the log relay noting a problem).
    Aurelia,
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogLine {
    pub service: String,
    /// When the relay read it (RFC 3339, milliseconds).
    pub ts: String,
    pub stream: LogStream,
    pub line: String,
}

/// `GET /v1/services/{name}/logs` and `GET /v1/logs` without `follow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogsResponse {
    pub lines: Vec<LogLine>,
}

/// An item of the event stream (`GET /v1/events`, newline-delimited JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A service's status changed.
    State(ServiceStatus),
    /// A service printed a line.
    Log(LogLine),
    /// Specs were reloaded.
    Reload(ReloadResult),
    /// A service was removed (its spec is gone).
    Removed { service: String },
}

/// `GET /v1/health`: the daemon's own health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DaemonHealth {
    pub status: String,
    pub version: String,
    pub pid: u32,
    pub uptime_secs: f64,
    pub home: String,
    pub services: usize,
    /// Spec files with errors (not loaded).
    pub spec_errors: usize,
}

/// Machine-readable error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No such service or route.
    NotFound,
    /// The operation conflicts with the service's kind or current state.
    Conflict,
    /// The request is malformed.
    BadRequest,
    /// Spec files are invalid (reload).
    InvalidSpec,
    /// Missing or wrong bearer token (TCP listener).
    Unauthorized,
    /// Something went wrong inside the daemon; details are in its log.
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidSpec => "invalid_spec",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Internal => "internal",
        }
    }
}

/// The `error` member of an error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
}

/// Every non-2xx response: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}
