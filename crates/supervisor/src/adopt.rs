//! Finding the processes a previous daemon left running, and proving they are ours.
//!
//! The state file names a PID, its process group and its start time per service. A process is
//! adopted only if that PID is alive with the same start time **and** carries the service's
//! tags in its environment (`AURELIA_SERVICE`, `AURELIA_HOME`). Anything else (the PID was
//! reused, the process is someone else's) is left alone: never adopted, never signalled.
//!
//! On Linux a second pass covers the moment between a spawn and the state-file write: every
//! process-group leader whose environment carries this home's tags is a service of ours, so
//! a service with no valid record is adopted from there.

use std::collections::BTreeMap;
use std::time::SystemTime;

use aurelia_spec::{ServiceKind, Spec};

use crate::driver::adopted::AdoptedProcess;
use crate::home::Home;
use crate::service::Adoption;
use crate::state::StateFile;

/// Whether `pid` carries the tags of `service` under `home`.
pub fn tagged(pid: u32, service: &str, home: &Home) -> bool {
    crate::proc::env_var(pid, "AURELIA_SERVICE").as_deref() == Some(service)
        && crate::proc::env_var(pid, "AURELIA_HOME").as_deref()
            == Some(&*home.root.to_string_lossy())
}

/// The processes to adopt, by service name.
pub fn find(home: &Home, specs: &[Spec], state: &StateFile) -> BTreeMap<String, Adoption> {
    let mut out = BTreeMap::new();
    for spec in specs.iter().filter(|s| s.kind == ServiceKind::Native) {
        let Some(rec) = state.services.get(&spec.name) else {
            continue;
        };
        let (Some(pid), Some(start)) = (rec.pid, rec.start_time) else {
            continue;
        };
        let pgid = rec.pgid.unwrap_or(pid);
        if crate::proc::start_time(pid) != Some(start) {
            tracing::info!(service = %spec.name, pid, "the recorded process is gone; it will be started fresh");
            continue;
        }
        if !tagged(pid, &spec.name, home) {
            tracing::warn!(service = %spec.name, pid, "pid {pid} now belongs to another process; leaving it alone");
            continue;
        }
        let started_at = rec
            .started_at
            .as_deref()
            .and_then(crate::clock::parse_rfc3339)
            .unwrap_or_else(SystemTime::now);
        match AdoptedProcess::adopt(pid, pgid, start, started_at) {
            Ok(p) => {
                tracing::info!(service = %spec.name, pid, "re-adopted");
                out.insert(
                    spec.name.clone(),
                    Adoption {
                        process: Box::new(p),
                        port: rec.port,
                        restarts: rec.restarts,
                    },
                );
            }
            Err(e) => tracing::warn!(service = %spec.name, "not adopted: {e}"),
        }
    }
    #[cfg(target_os = "linux")]
    scan_orphans(home, specs, state, &mut out);
    out
}

#[cfg(target_os = "linux")]
fn scan_orphans(
    home: &Home,
    specs: &[Spec],
    state: &StateFile,
    out: &mut BTreeMap<String, Adoption>,
) {
    let missing: Vec<&Spec> = specs
        .iter()
        .filter(|s| s.kind == ServiceKind::Native && !out.contains_key(&s.name))
        .collect();
    if missing.is_empty() {
        return;
    }
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return;
    };
    let home_str = home.root.to_string_lossy().into_owned();
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if crate::proc::pgid(pid) != Some(pid) {
            continue;
        }
        if crate::proc::env_var(pid, "AURELIA_HOME").as_deref() != Some(home_str.as_str()) {
            continue;
        }
        let Some(name) = crate::proc::env_var(pid, "AURELIA_SERVICE") else {
            continue;
        };
        let Some(spec) = missing.iter().find(|s| s.name == name) else {
            continue;
        };
        if out.contains_key(&spec.name) {
            continue;
        }
        let Some(start) = crate::proc::start_time(pid) else {
            continue;
        };
        let port = crate::proc::env_var(pid, "PORT").and_then(|p| p.parse().ok());
        let started_at = boot_relative(start).unwrap_or_else(SystemTime::now);
        if let Ok(p) = AdoptedProcess::adopt(pid, pid, start, started_at) {
            tracing::info!(service = %spec.name, pid, "re-adopted a service process the state file did not record");
            out.insert(
                spec.name.clone(),
                Adoption {
                    process: Box::new(p),
                    port,
                    restarts: state.services.get(&spec.name).map_or(0, |r| r.restarts),
                },
            );
        }
    }
}

/// Wall-clock time of a Linux start time (clock ticks after boot).
#[cfg(target_os = "linux")]
fn boot_relative(ticks: u64) -> Option<SystemTime> {
    use std::time::Duration;
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    Some(
        SystemTime::UNIX_EPOCH
            + Duration::from_secs(btime)
            + Duration::from_millis(ticks * 1000 / hz),
    )
}
