//! Adopted processes: native services left running by a previous daemon.
//!
//! They are not our children, so `wait()` is impossible; exit is detected through a pidfd
//! (Linux) or a kqueue NOTE_EXIT filter (macOS), both event-driven, so a crash of an adopted
//! process is noticed as fast as one of our own children. The exit status is unknown (only
//! the parent may reap it) and is reported as such; restart policies treat it as a failure.
//! Stopping works as for native processes: the whole process group.

use std::time::{Duration, SystemTime};

use aurelia_api::ExitInfo;
use nix::sys::signal::Signal;

use super::{BoxFuture, Process, stop_group};
use crate::proc::ExitWatch;

pub struct AdoptedProcess {
    pid: u32,
    pgid: u32,
    start_time: u64,
    started_at: SystemTime,
    watch: ExitWatch,
    exited: Option<ExitInfo>,
}

impl AdoptedProcess {
    /// Adopts `pid` if it is alive and its start time is `start_time`. Never signals anything.
    pub fn adopt(
        pid: u32,
        pgid: u32,
        start_time: u64,
        started_at: SystemTime,
    ) -> Result<AdoptedProcess, String> {
        match crate::proc::start_time(pid) {
            Some(t) if t == start_time => {}
            Some(_) => return Err(format!("pid {pid} now belongs to another process")),
            None => return Err(format!("pid {pid} is no longer running")),
        }
        let watch = ExitWatch::new(pid).map_err(|e| format!("cannot watch pid {pid}: {e}"))?;
        // Re-check after the watch exists: the process may have died in between (and its pid
        // been reused), in which case the watch would be on the wrong process.
        if crate::proc::start_time(pid) != Some(start_time) {
            return Err(format!("pid {pid} exited during adoption"));
        }
        Ok(AdoptedProcess {
            pid,
            pgid,
            start_time,
            started_at,
            watch,
            exited: None,
        })
    }

    fn unknown_exit() -> ExitInfo {
        ExitInfo {
            note: None,
            code: None,
            signal: None,
            at: crate::clock::now(),
        }
    }
}

impl Process for AdoptedProcess {
    fn pid(&self) -> Option<u32> {
        Some(self.pid)
    }

    fn pgid(&self) -> Option<u32> {
        Some(self.pgid)
    }

    fn start_time(&self) -> Option<u64> {
        Some(self.start_time)
    }

    fn started_at(&self) -> SystemTime {
        self.started_at
    }

    fn wait(&mut self) -> BoxFuture<'_, ExitInfo> {
        Box::pin(async move {
            if let Some(e) = &self.exited {
                return e.clone();
            }
            self.watch.exited().await;
            let e = Self::unknown_exit();
            self.exited = Some(e.clone());
            e
        })
    }

    fn stop(&mut self, signal: Signal, timeout: Duration) -> BoxFuture<'_, ExitInfo> {
        Box::pin(async move {
            let watch = &self.watch;
            let done = self.exited.is_some();
            let exit = stop_group(self.pgid, signal, timeout, async move {
                if !done {
                    watch.exited().await;
                }
                Self::unknown_exit()
            })
            .await
            .unwrap_or_else(Self::unknown_exit);
            self.exited = Some(exit.clone());
            exit
        })
    }

    fn reap_leftovers(&mut self, timeout: Duration) {
        super::clean_group_after_exit(self.pgid, timeout.min(Duration::from_secs(5)));
    }
}
