//! The log relay: `aurelia __log-relay <service> <file> <max-bytes> <max-files>`.
//!
//! Runs as its own small process, started by the daemon for each service: fd 0 is the read end
//! of the service's stdout pipe, fd 1 the read end of its stderr pipe. It reads both with
//! `poll`, splits lines, prefixes each with a timestamp and a stream letter, and appends them
//! to the log file, rotating when it grows past `max-bytes` (keeping `max-files` old files).
//! It exits when both pipes reach end-of-file, i.e. when every process that could write to them
//! is gone. It ignores SIGINT, SIGTERM, SIGHUP and SIGPIPE: Ctrl-C in the daemon's terminal or
//! the daemon's own death must not cost a service its output.
//!
//! Written against std and libc only, with no async runtime: it is one per service and must
//! stay small and fast (the log-throughput benchmark measures it).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::clock::rfc3339_millis;

/// A line longer than this is cut into records of this size.
pub const MAX_RECORD: usize = 64 * 1024;
/// An incomplete line is written out after this long without more data (prompts, progress).
const PARTIAL_FLUSH_MS: i32 = 500;
/// After a read that did not fill much of the buffer, wait this long before the next one.
///
/// A service that writes line by line (unbuffered output, `PYTHONUNBUFFERED=1`) would
/// otherwise wake the relay on every write, and each write would pay for that wake-up. With
/// the pause the writes land in the pipe without waking anyone, and one read takes hundreds
/// of them. Live output is delayed by at most this much; an idle relay still sleeps in
/// `poll` without waking.
const BATCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);
/// Reads smaller than this are followed by [`BATCH_PAUSE`].
const BATCH_BYTES: usize = 64 * 1024;

/// Arguments of the relay, as passed on its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayArgs {
    pub service: String,
    pub file: PathBuf,
    pub max_bytes: u64,
    pub max_files: u32,
}

impl RelayArgs {
    pub fn to_args(&self) -> Vec<String> {
        vec![
            "__log-relay".into(),
            self.service.clone(),
            self.file.display().to_string(),
            self.max_bytes.to_string(),
            self.max_files.to_string(),
        ]
    }

    pub fn parse(args: &[String]) -> Option<RelayArgs> {
        match args {
            [service, file, max_bytes, max_files] => Some(RelayArgs {
                service: service.clone(),
                file: PathBuf::from(file),
                max_bytes: max_bytes.parse().ok()?,
                max_files: max_files.parse().ok()?,
            }),
            _ => None,
        }
    }
}

/// The relay's entry point; returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    let Some(args) = RelayArgs::parse(args) else {
        eprintln!("usage: aurelia __log-relay <service> <file> <max-bytes> <max-files>");
        return 2;
    };
    // SAFETY: setting signal dispositions to SIG_IGN at start-up, before any threads exist.
    unsafe {
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGPIPE] {
            libc::signal(s, libc::SIG_IGN);
        }
    }
    match run(&args, 0, 1) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("aurelia log relay for {}: {e}", args.service);
            1
        }
    }
}

/// An append-only log file with size-based rotation.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    max_files: u32,
}

impl LogWriter {
    pub fn open(path: &Path, max_bytes: u64, max_files: u32) -> io::Result<LogWriter> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            max_bytes,
            max_files,
        })
    }

    /// Appends whole records (one `write` per call, so records never interleave with another
    /// writer's), then rotates if the file grew past the limit.
    pub fn append(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.file.write_all(data)?;
        self.size += data.len() as u64;
        if self.size >= self.max_bytes {
            self.rotate()?;
        }
        Ok(())
    }

    /// Renames `f.log.(k)` to `f.log.(k+1)` down to `f.log` -> `f.log.1` and opens a new file.
    /// Serialised across relays by an advisory lock; a relay that finds the file already
    /// rotated by another one just reopens it.
    fn rotate(&mut self) -> io::Result<()> {
        let lock_path = lock_path(&self.path);
        let lock = open_append(&lock_path)?;
        flock(lock.as_raw_fd(), true)?;
        let ours = self.file.metadata()?.ino();
        let current = std::fs::metadata(&self.path).map(|m| m.ino()).ok();
        if current == Some(ours) {
            let name = |i: u32| PathBuf::from(format!("{}.{i}", self.path.display()));
            let _ = std::fs::remove_file(name(self.max_files));
            for i in (1..self.max_files).rev() {
                let _ = std::fs::rename(name(i), name(i + 1));
            }
            if self.max_files == 0 {
                std::fs::remove_file(&self.path)?;
            } else {
                std::fs::rename(&self.path, name(1))?;
            }
        }
        self.file = open_append(&self.path)?;
        self.size = self.file.metadata()?.len();
        flock(lock.as_raw_fd(), false)?;
        Ok(())
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!(".{name}.lock"))
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

fn flock(fd: RawFd, lock: bool) -> io::Result<()> {
    let op = if lock { libc::LOCK_EX } else { libc::LOCK_UN };
    loop {
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(fd, op) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Turns raw output into records, keeping an incomplete last line for later.
#[derive(Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Appends records for the complete lines in `data` to `out`.
    pub fn feed(&mut self, data: &[u8], ts: &str, tag: u8, out: &mut Vec<u8>) {
        let mut rest = data;
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            let line = &rest[..nl];
            if self.partial.is_empty() {
                emit(out, ts, tag, line);
            } else {
                self.partial.extend_from_slice(line);
                let p = std::mem::take(&mut self.partial);
                emit(out, ts, tag, &p);
            }
            rest = &rest[nl + 1..];
        }
        self.partial.extend_from_slice(rest);
        while self.partial.len() >= MAX_RECORD {
            let tail = self.partial.split_off(MAX_RECORD);
            let head = std::mem::replace(&mut self.partial, tail);
            emit(out, ts, tag, &head);
        }
    }

    /// Writes out an incomplete line, if any.
    pub fn flush(&mut self, ts: &str, tag: u8, out: &mut Vec<u8>) {
        if !self.partial.is_empty() {
            let p = std::mem::take(&mut self.partial);
            emit(out, ts, tag, &p);
        }
    }

    pub fn has_partial(&self) -> bool {
        !self.partial.is_empty()
    }
}

/// Appends one record (`ts tag line\n`, a trailing `\r` dropped) to `out`.
pub fn emit(out: &mut Vec<u8>, ts: &str, tag: u8, line: &[u8]) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    out.reserve(ts.len() + line.len() + 4);
    out.extend_from_slice(ts.as_bytes());
    out.push(b' ');
    out.push(tag);
    out.push(b' ');
    out.extend_from_slice(line);
    out.push(b'\n');
}

/// Relays `out_fd` (stdout) and `err_fd` (stderr) into the log file until both close.
pub fn run(args: &RelayArgs, out_fd: RawFd, err_fd: RawFd) -> io::Result<()> {
    let mut w = LogWriter::open(&args.file, args.max_bytes, args.max_files)?;
    let mut fds = [
        libc::pollfd {
            fd: out_fd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: err_fd,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let tags = [b'O', b'E'];
    let mut splitters = [LineSplitter::default(), LineSplitter::default()];
    let mut buf = vec![0u8; 256 * 1024];
    let mut out = Vec::with_capacity(512 * 1024);
    loop {
        if fds.iter().all(|f| f.fd < 0) {
            break;
        }
        let timeout = if splitters.iter().any(LineSplitter::has_partial) {
            PARTIAL_FLUSH_MS
        } else {
            -1
        };
        // SAFETY: fds is a valid array of pollfd for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let ts = rfc3339_millis(SystemTime::now());
        if n == 0 {
            for (i, s) in splitters.iter_mut().enumerate() {
                s.flush(&ts, tags[i], &mut out);
            }
        }
        let mut got = 0usize;
        for i in 0..fds.len() {
            if fds[i].fd < 0 || fds[i].revents == 0 {
                continue;
            }
            // SAFETY: reading into our own buffer from an fd we were given.
            let r = unsafe { libc::read(fds[i].fd, buf.as_mut_ptr().cast(), buf.len()) };
            if r > 0 {
                got += r as usize;
                splitters[i].feed(&buf[..r as usize], &ts, tags[i], &mut out);
            } else if r == 0 {
                splitters[i].flush(&ts, tags[i], &mut out);
                fds[i].fd = -1;
            } else {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted && e.kind() != io::ErrorKind::WouldBlock {
                    splitters[i].flush(&ts, tags[i], &mut out);
                    fds[i].fd = -1;
                }
            }
        }
        if !out.is_empty() {
            if let Err(e) = w.append(&out) {
                // Disk full or similar: keep draining the pipes so the service never blocks,
                // and try again with the next batch.
                eprintln!("aurelia log relay: writing {}: {e}", args.file.display());
            }
            out.clear();
        }
        if got > 0 && got < BATCH_BYTES && fds.iter().all(|f| f.fd >= 0) {
            std::thread::sleep(BATCH_PAUSE);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_keeps_partials() {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        s.feed(b"one\ntw", "T", b'O', &mut out);
        assert_eq!(out, b"T O one\n");
        s.feed(b"o\r\nthree", "U", b'O', &mut out);
        assert_eq!(out, b"T O one\nU O two\n");
        s.flush("V", b'O', &mut out);
        assert_eq!(out, b"T O one\nU O two\nV O three\n");
    }

    #[test]
    fn cuts_endless_lines() {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        s.feed(&vec![b'x'; MAX_RECORD * 2 + 10], "T", b'E', &mut out);
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 2);
        assert!(s.has_partial());
    }

    #[test]
    fn rotates_by_size() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("svc.log");
        let mut w = LogWriter::open(&p, 100, 2).expect("open");
        for i in 0..10 {
            w.append(format!("{i:040}\n").as_bytes()).expect("append");
        }
        assert!(p.exists());
        assert!(dir.path().join("svc.log.1").exists());
        assert!(dir.path().join("svc.log.2").exists());
        assert!(!dir.path().join("svc.log.3").exists());
        let total: u64 = ["svc.log", "svc.log.1", "svc.log.2"]
            .iter()
            .map(|f| {
                std::fs::metadata(dir.path().join(f))
                    .map(|m| m.len())
                    .unwrap_or(0)
            })
            .sum();
        assert!(total <= 41 * 10);
    }
}
