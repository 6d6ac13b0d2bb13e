//! Operating-system process facts and actions, one implementation per OS.
//!
//! - Identity: a process's start time (Linux `/proc/<pid>/stat`, macOS `proc_pidinfo`) and its
//!   environment tags (`AURELIA_SERVICE`, `AURELIA_HOME`), so a reused PID is never mistaken
//!   for a service after a daemon restart.
//! - Signals to whole process groups (`killpg`): services run as group leaders, and a stop
//!   must reach every descendant.
//! - Exit notification for processes that are not our children (adopted after a daemon
//!   restart): a pidfd on Linux, a kqueue `EVFILT_PROC` on macOS. Both are event-driven.
//! - Who holds a TCP port, for the "port in use" error.

use std::io;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// Identity of a live process: its start time in OS-specific units (clock ticks since boot
/// on Linux, microseconds since the epoch on macOS). Equal values mean the same process.
pub fn start_time(pid: u32) -> Option<u64> {
    imp::start_time(pid)
}

/// The value of environment variable `key` in process `pid`'s initial environment.
pub fn env_var(pid: u32, key: &str) -> Option<String> {
    imp::env_var(pid, key)
}

/// The process group of `pid`.
pub fn pgid(pid: u32) -> Option<u32> {
    nix::unistd::getpgid(Some(Pid::from_raw(pid as i32)))
        .ok()
        .map(|p| p.as_raw() as u32)
}

/// Sends `sig` to every process in group `pgid`. A group that is already gone is not an error.
pub fn signal_group(pgid: u32, sig: Signal) -> io::Result<()> {
    match killpg(Pid::from_raw(pgid as i32), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// True while any process (zombies included) is in group `pgid`.
pub fn group_exists(pgid: u32) -> bool {
    // kill(-pgid, 0) succeeds while at least one member exists.
    matches!(kill(Pid::from_raw(-(pgid as i32)), None), Ok(()))
}

/// True while a group has a member that is not a zombie. Zombies of a group whose leader we
/// reaped belong to no one we can wait for; they do not keep a "stop" waiting.
pub fn group_has_live_member(pgid: u32) -> bool {
    if !group_exists(pgid) {
        return false;
    }
    imp::group_has_live_member(pgid).unwrap_or(true)
}

/// Parses a signal name (`SIGTERM` or `TERM`).
pub fn parse_signal(name: &str) -> Signal {
    let n = if name.starts_with("SIG") {
        name.to_string()
    } else {
        format!("SIG{name}")
    };
    n.parse().unwrap_or(Signal::SIGTERM)
}

/// The command line of a process, for messages.
pub fn cmdline(pid: u32) -> Option<String> {
    imp::cmdline(pid)
}

/// The process listening on TCP `port`, as (pid, command line), where the OS tells.
pub fn port_holder(port: u16) -> Option<(u32, String)> {
    imp::port_holder(port)
}

/// Waits for a process that is not our child to exit.
pub use imp::ExitWatch;

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

    use tokio::io::unix::AsyncFd;

    fn stat_fields(pid: u32) -> Option<Vec<String>> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name is in parentheses and may contain spaces and ')'.
        let close = s.rfind(')')?;
        Some(
            s[close + 2..]
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        )
    }

    pub fn start_time(pid: u32) -> Option<u64> {
        let f = stat_fields(pid)?;
        // f[0] is field 3 (state); starttime is field 22 -> f[19].
        if f.first().map(String::as_str) == Some("Z") || f.first().map(String::as_str) == Some("X")
        {
            return None;
        }
        f.get(19)?.parse().ok()
    }

    pub fn group_has_live_member(pgid: u32) -> Option<bool> {
        for e in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(f) = stat_fields(pid) {
                // f[0] state, f[2] pgrp (field 5)
                if f.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid)
                    && f.first().map(String::as_str) != Some("Z")
                {
                    return Some(true);
                }
            }
        }
        Some(false)
    }

    pub fn env_var(pid: u32, key: &str) -> Option<String> {
        let data = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
        let prefix = format!("{key}=");
        data.split(|b| *b == 0)
            .find_map(|kv| kv.strip_prefix(prefix.as_bytes()))
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    pub fn cmdline(pid: u32) -> Option<String> {
        let data = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let s: Vec<String> = data
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        if s.is_empty() {
            None
        } else {
            Some(s.join(" "))
        }
    }

    pub fn port_holder(port: u16) -> Option<(u32, String)> {
        let mut inodes = Vec::new();
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let Ok(text) = std::fs::read_to_string(table) else {
                continue;
            };
            for line in text.lines().skip(1) {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() < 10 || f[3] != "0A" {
                    continue; // 0A = LISTEN
                }
                let Some(p) = f[1]
                    .rsplit(':')
                    .next()
                    .and_then(|h| u16::from_str_radix(h, 16).ok())
                else {
                    continue;
                };
                if p == port {
                    inodes.push(format!("socket:[{}]", f[9]));
                }
            }
        }
        if inodes.is_empty() {
            return None;
        }
        for e in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                if let Ok(target) = std::fs::read_link(fd.path())
                    && inodes.iter().any(|i| target.as_os_str() == i.as_str())
                {
                    return Some((pid, cmdline(pid).unwrap_or_else(|| "?".into())));
                }
            }
        }
        None
    }

    /// A pidfd (Linux 5.3+), readable once the process exits.
    pub struct ExitWatch {
        fd: AsyncFd<OwnedFd>,
    }

    impl ExitWatch {
        pub fn new(pid: u32) -> io::Result<ExitWatch> {
            // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
            let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
            if raw < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: the syscall returned a fresh fd that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(raw as RawFd) };
            set_nonblocking(fd.as_raw_fd())?;
            // SAFETY: `fd` is an OwnedFd moved into the AsyncFd: it stays open, and refers to the
            // same pidfd, for as long as the AsyncFd lives.
            let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
                .map_err(|e| io::Error::other(e.to_string()))?;
            Ok(ExitWatch { fd })
        }

        /// Resolves when the process has exited.
        pub async fn exited(&self) {
            // A pidfd stays readable once the process has exited; an error (the fd was
            // closed) also means there is nothing left to wait for.
            if let Ok(mut g) = self.fd.readable().await {
                g.retain_ready();
            }
        }
    }

    fn set_nonblocking(fd: RawFd) -> io::Result<()> {
        // SAFETY: fcntl on a valid fd with standard flags.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

#[cfg(target_os = "macos")]
mod imp {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    use tokio::io::unix::AsyncFd;

    fn bsdinfo(pid: u32) -> Option<libc::proc_bsdinfo> {
        // SAFETY: proc_pidinfo writes at most `size` bytes into the zeroed struct.
        unsafe {
            let mut info: libc::proc_bsdinfo = std::mem::zeroed();
            let size = std::mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
            let n = libc::proc_pidinfo(
                pid as libc::c_int,
                libc::PROC_PIDTBSDINFO,
                0,
                (&mut info as *mut libc::proc_bsdinfo).cast(),
                size,
            );
            if n == size { Some(info) } else { None }
        }
    }

    pub fn start_time(pid: u32) -> Option<u64> {
        let info = bsdinfo(pid)?;
        // SZOMB = 5
        if info.pbi_status == 5 {
            return None;
        }
        Some(info.pbi_start_tvsec * 1_000_000 + info.pbi_start_tvusec)
    }

    pub fn group_has_live_member(_pgid: u32) -> Option<bool> {
        None
    }

    fn procargs(pid: u32) -> Option<Vec<u8>> {
        let mut mib = [libc::CTL_KERN, libc::KERN_PROCARGS2, pid as libc::c_int];
        let mut size: libc::size_t = 0;
        // SAFETY: first call asks for the size, second fills a buffer of that size.
        unsafe {
            if libc::sysctl(
                mib.as_mut_ptr(),
                3,
                std::ptr::null_mut(),
                &mut size,
                std::ptr::null_mut(),
                0,
            ) != 0
            {
                return None;
            }
            let mut buf = vec![0u8; size];
            if libc::sysctl(
                mib.as_mut_ptr(),
                3,
                buf.as_mut_ptr().cast(),
                &mut size,
                std::ptr::null_mut(),
                0,
            ) != 0
            {
                return None;
            }
            buf.truncate(size);
            Some(buf)
        }
    }

    /// argc, exec path, argv, then the environment, all NUL-separated.
    fn split_procargs(buf: &[u8]) -> Option<(Vec<String>, Vec<String>)> {
        let argc = i32::from_ne_bytes(buf.get(..4)?.try_into().ok()?) as usize;
        let mut parts = buf[4..].split(|b| *b == 0).filter(|p| !p.is_empty());
        parts.next()?; // exec path
        let args: Vec<String> = parts
            .by_ref()
            .take(argc)
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        let env: Vec<String> = parts
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        Some((args, env))
    }

    pub fn env_var(pid: u32, key: &str) -> Option<String> {
        let (_, env) = split_procargs(&procargs(pid)?)?;
        let prefix = format!("{key}=");
        env.into_iter()
            .find_map(|kv| kv.strip_prefix(&prefix).map(str::to_string))
    }

    pub fn cmdline(pid: u32) -> Option<String> {
        let (args, _) = split_procargs(&procargs(pid)?)?;
        if args.is_empty() {
            None
        } else {
            Some(args.join(" "))
        }
    }

    pub fn port_holder(port: u16) -> Option<(u32, String)> {
        let out = std::process::Command::new("lsof")
            .args(["-nP", &format!("-iTCP:{port}"), "-sTCP:LISTEN", "-Fp"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let pid: u32 = text
            .lines()
            .find_map(|l| l.strip_prefix('p'))?
            .parse()
            .ok()?;
        Some((pid, cmdline(pid).unwrap_or_else(|| "?".into())))
    }

    /// A kqueue watching one process for NOTE_EXIT.
    pub struct ExitWatch {
        kq: AsyncFd<OwnedFd>,
    }

    impl ExitWatch {
        pub fn new(pid: u32) -> io::Result<ExitWatch> {
            // SAFETY: kqueue() returns a new fd; kevent registers one filter on it.
            unsafe {
                let kq = libc::kqueue();
                if kq < 0 {
                    return Err(io::Error::last_os_error());
                }
                let kq = OwnedFd::from_raw_fd(kq);
                let mut ev: libc::kevent = std::mem::zeroed();
                ev.ident = pid as libc::uintptr_t;
                ev.filter = libc::EVFILT_PROC;
                ev.flags = libc::EV_ADD | libc::EV_ONESHOT;
                ev.fflags = libc::NOTE_EXIT;
                if libc::kevent(
                    kq.as_raw_fd(),
                    &ev,
                    1,
                    std::ptr::null_mut(),
                    0,
                    std::ptr::null(),
                ) < 0
                {
                    return Err(io::Error::last_os_error());
                }
                // The OwnedFd moves into the AsyncFd and stays open as long as it lives.
                let kq = AsyncFd::register_with_interest(kq, tokio::io::Interest::READABLE)
                    .map_err(|e| io::Error::other(e.to_string()))?;
                Ok(ExitWatch { kq })
            }
        }

        pub async fn exited(&self) {
            let _ = self.kq.readable().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_identity() {
        let me = std::process::id();
        let t1 = start_time(me).expect("own start time");
        assert_eq!(start_time(me), Some(t1));
        assert_eq!(start_time(u32::MAX / 2), None);
    }

    #[test]
    fn env_of_a_child() {
        let mut c = std::process::Command::new("sleep")
            .arg("5")
            .env("AURELIA_SERVICE", "probe-test")
            .spawn()
            .expect("spawn sleep");
        let pid = c.id();
        // Until the child has exec'd, /proc shows the parent's environment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while env_var(pid, "AURELIA_SERVICE").is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(
            env_var(pid, "AURELIA_SERVICE").as_deref(),
            Some("probe-test")
        );
        assert_eq!(env_var(pid, "NOT_THERE_X"), None);
        let _ = c.kill();
        let _ = c.wait();
    }

    #[test]
    fn port_holder_names_the_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let (pid, _cmd) = port_holder(port).expect("holder found");
        assert_eq!(pid, std::process::id());
    }

    #[tokio::test]
    async fn exit_watch_fires_for_a_non_child_view() {
        let mut c = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .expect("spawn");
        let w = ExitWatch::new(c.id()).expect("watch");
        let t = std::time::Instant::now();
        tokio::time::timeout(std::time::Duration::from_secs(5), w.exited())
            .await
            .expect("exit seen");
        assert!(t.elapsed() >= std::time::Duration::from_millis(150));
        let _ = c.wait();
    }
}
