//! The native driver: runs a local program directly (no shell) as a process-group leader.
//!
//! The child gets the spec's working directory and environment plus `PORT`,
//! `AURELIA_SERVICE` and `AURELIA_HOME` (the last two tag it, so a later daemon can recognise
//! it), stdin from /dev/null, and stdout/stderr into the log relay's pipes. It is its own
//! process group, so a stop reaches every descendant and a Ctrl-C in the daemon's terminal
//! reaches none.

use std::process::Stdio;
use std::time::{Duration, SystemTime};

use aurelia_api::ExitInfo;
use aurelia_spec::PortSpec;
use nix::sys::signal::Signal;

use super::{BoxFuture, Driver, Process, StartContext, StartError, exit_info, resolve, stop_group};

/// Starts native services.
#[derive(Debug, Default)]
pub struct NativeDriver;

/// A child we spawned.
pub struct NativeProcess {
    child: tokio::process::Child,
    pid: u32,
    start_time: Option<u64>,
    started_at: SystemTime,
    exited: Option<ExitInfo>,
}

impl Driver for NativeDriver {
    fn start<'a>(
        &'a self,
        ctx: StartContext<'a>,
    ) -> BoxFuture<'a, Result<Box<dyn Process>, StartError>> {
        Box::pin(async move {
            let r = resolve(ctx.spec, ctx.port, ctx.home)?;
            if let Some(PortSpec::Static(p)) = ctx.spec.port
                && !crate::ports::is_free(p)
            {
                return Err(StartError::new(crate::ports::in_use_message(p)));
            }
            let mut cmd = tokio::process::Command::new(&r.program);
            cmd.args(&r.args)
                .current_dir(&r.cwd)
                .envs(r.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .process_group(0)
                .kill_on_drop(false);
            match ctx.log {
                Some(sink) => {
                    let dup = |fd: &std::os::fd::OwnedFd| {
                        fd.try_clone()
                            .map(Stdio::from)
                            .map_err(|e| StartError::new(format!("log pipe: {e}")))
                    };
                    cmd.stdout(dup(&sink.out)?).stderr(dup(&sink.err)?);
                }
                None => {
                    cmd.stdout(Stdio::null()).stderr(Stdio::null());
                }
            }
            let child = cmd.spawn().map_err(|e| {
                StartError::new(format!("cannot start {}: {e}", r.program.display()))
            })?;
            let pid = child
                .id()
                .ok_or_else(|| StartError::new("the process exited before it could be tracked"))?;
            Ok(Box::new(NativeProcess {
                child,
                pid,
                start_time: crate::proc::start_time(pid),
                started_at: SystemTime::now(),
                exited: None,
            }) as Box<dyn Process>)
        })
    }
}

impl Process for NativeProcess {
    fn pid(&self) -> Option<u32> {
        Some(self.pid)
    }

    fn start_time(&self) -> Option<u64> {
        self.start_time
    }

    fn started_at(&self) -> SystemTime {
        self.started_at
    }

    fn wait(&mut self) -> BoxFuture<'_, ExitInfo> {
        Box::pin(async move {
            if let Some(e) = &self.exited {
                return e.clone();
            }
            let info = match self.child.wait().await {
                Ok(s) => exit_info(s),
                Err(e) => ExitInfo {
                    note: None,
                    code: None,
                    signal: None,
                    at: format!("{} (wait failed: {e})", crate::clock::now()),
                },
            };
            self.exited = Some(info.clone());
            info
        })
    }

    fn stop(&mut self, signal: Signal, timeout: Duration) -> BoxFuture<'_, ExitInfo> {
        Box::pin(async move {
            let pgid = self.pid;
            if let Some(e) = &self.exited {
                // The leader is gone already; the group may not be.
                let e = e.clone();
                stop_group(pgid, signal, timeout, async { e.clone() }).await;
                return e;
            }
            let child = &mut self.child;
            let exit = stop_group(pgid, signal, timeout, async move {
                match child.wait().await {
                    Ok(s) => exit_info(s),
                    Err(_) => ExitInfo {
                        note: None,
                        code: None,
                        signal: None,
                        at: crate::clock::now(),
                    },
                }
            })
            .await;
            let exit = exit.unwrap_or(ExitInfo {
                note: None,
                code: None,
                signal: Some("SIGKILL".into()),
                at: crate::clock::now(),
            });
            self.exited = Some(exit.clone());
            exit
        })
    }

    fn reap_leftovers(&mut self, timeout: Duration) {
        super::clean_group_after_exit(self.pid, timeout.min(Duration::from_secs(5)));
    }
}
