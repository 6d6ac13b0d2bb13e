//! Service logs: where a service's output goes and how it is read back.
//!
//! A service's stdout and stderr are pipes whose read ends belong to a **log relay**: a tiny
//! process (`aurelia __log-relay`, see [`relay`]) that timestamps each line and appends it to
//! `$AURELIA_HOME/logs/<service>.log`, rotating by size. The relay is not the daemon, so a
//! daemon that is slow, stopped in a debugger or killed with SIGKILL never blocks a service's
//! writes or gets it killed by SIGPIPE, and nothing written meanwhile is lost: the file is the
//! source of truth, and the next daemon reads it. See docs/architecture.md, "Logs".
//!
//! The daemon holds its own copy of the pipes' write ends while it runs, so one relay serves a
//! service across restarts; the relay exits when every writer is gone (the service stopped and
//! the daemon let go).
//!
//! File format, one record per line: `2026-11-27T10:00:00.123Z O text` where the letter is
//! `O` (stdout), `E` (stderr) or `A` (Aurelia's own note). Timestamps are fixed-width UTC, so
//! records sort as strings.

pub mod hub;
pub mod reader;
pub mod relay;

use aurelia_api::{LogLine, LogStream};

use crate::clock::TS_LEN;

/// The one-letter stream tag in the file.
pub fn tag(stream: LogStream) -> u8 {
    match stream {
        LogStream::Stdout => b'O',
        LogStream::Stderr => b'E',
        LogStream::Aurelia => b'A',
    }
}

/// Parses one record (without its newline). Lines not in the record format (a file edited by
/// hand) come back whole, as stdout, with an empty timestamp.
pub fn parse_record(service: &str, rec: &[u8]) -> LogLine {
    let text = String::from_utf8_lossy(rec);
    let b = text.as_bytes();
    if b.len() >= TS_LEN + 2
        && b[TS_LEN] == b' '
        && b[TS_LEN - 1] == b'Z'
        && (b.len() == TS_LEN + 2 || b[TS_LEN + 2] == b' ')
    {
        let stream = match b[TS_LEN + 1] {
            b'O' => Some(LogStream::Stdout),
            b'E' => Some(LogStream::Stderr),
            b'A' => Some(LogStream::Aurelia),
            _ => None,
        };
        if let Some(stream) = stream {
            return LogLine {
                service: service.to_string(),
                ts: text[..TS_LEN].to_string(),
                stream,
                line: text.get(TS_LEN + 3..).unwrap_or("").to_string(),
            };
        }
    }
    LogLine {
        service: service.to_string(),
        ts: String::new(),
        stream: LogStream::Stdout,
        line: text.into_owned(),
    }
}

/// Appends a line from Aurelia itself (`A` record) to a service's log: why it restarted, that
/// it was stopped. One `write` of a whole record, so it never tears a relay's records.
pub fn note(home: &crate::home::Home, service: &str, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let rec = format!("{} A {}\n", crate::clock::now(), text.replace('\n', " "));
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(home.log_file(service))
    {
        let _ = f.write_all(rec.as_bytes());
    }
}

/// The rotated files of a service, newest first: `svc.log`, `svc.log.1`, `svc.log.2`, ...
pub fn files_newest_first(dir: &std::path::Path, service: &str) -> Vec<std::path::PathBuf> {
    let base = dir.join(format!("{service}.log"));
    let mut out = vec![base.clone()];
    for i in 1.. {
        let p = dir.join(format!("{service}.log.{i}"));
        if !p.exists() {
            break;
        }
        out.push(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records() {
        let l = parse_record("api", b"2026-11-27T10:00:00.123Z E boom: x y");
        assert_eq!(l.ts, "2026-11-27T10:00:00.123Z");
        assert_eq!(l.stream, LogStream::Stderr);
        assert_eq!(l.line, "boom: x y");
        let empty = parse_record("api", b"2026-11-27T10:00:00.123Z O");
        assert_eq!(empty.line, "");
        let odd = parse_record("api", b"hand written");
        assert_eq!(odd.ts, "");
        assert_eq!(odd.line, "hand written");
    }
}
