//! Reading log records back: the last N of a service (across rotated files), optionally since
//! a time, and the merge of several services by timestamp.
//!
//! Files are read backwards in blocks, so `logs -n 100` on a 10 MB log reads a few kilobytes.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use aurelia_api::LogLine;

use super::{files_newest_first, parse_record};

const BLOCK: u64 = 64 * 1024;

/// The last `n` records of `file` that end at or before byte `limit` (all of the file when
/// `None`), oldest first, stopping early at the first record older than `since`. The flag
/// says whether such an older record was met (so older files need not be read).
pub fn tail_file(
    file: &Path,
    n: usize,
    limit: Option<u64>,
    since: Option<&str>,
) -> io::Result<(Vec<Vec<u8>>, bool)> {
    let mut f = match File::open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), false)),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let mut end = limit.map_or(len, |l| l.min(len));
    let mut records: Vec<Vec<u8>> = Vec::new();
    let mut carry: Vec<u8> = Vec::new(); // start of a record whose beginning is further back
    // Ignore an incomplete last record (the relay writes whole records; a limit may cut one).
    let mut first_block = true;
    while end > 0 && records.len() < n {
        let start = end.saturating_sub(BLOCK);
        let mut block = vec![0u8; (end - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut block)?;
        block.extend_from_slice(&carry);
        let mut parts: Vec<&[u8]> = block.split(|b| *b == b'\n').collect();
        if first_block {
            // The text after the last '\n' is incomplete (or empty).
            parts.pop();
            first_block = false;
        }
        // parts[0] may be the tail of an earlier record unless we are at the file's start.
        let head = if start > 0 {
            Some(parts.remove(0))
        } else {
            None
        };
        for p in parts.into_iter().rev() {
            if records.len() >= n {
                break;
            }
            if let Some(s) = since
                && p.len() >= crate::clock::TS_LEN
                && &p[..crate::clock::TS_LEN] < s.as_bytes()
            {
                records.reverse();
                return Ok((records, true));
            }
            records.push(p.to_vec());
        }
        carry = head.map(<[u8]>::to_vec).unwrap_or_default();
        end = start;
    }
    records.reverse();
    Ok((records, false))
}

/// The last `n` lines of `service` (all rotated files), oldest first. `limit` bounds the read
/// of the current file (used by followers to meet the live stream without overlap).
pub fn tail_service(
    dir: &Path,
    service: &str,
    n: usize,
    since: Option<&str>,
    limit: Option<u64>,
) -> io::Result<Vec<LogLine>> {
    let mut chunks: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut have = 0;
    for (i, f) in files_newest_first(dir, service).iter().enumerate() {
        if have >= n {
            break;
        }
        let (recs, met_older) = tail_file(f, n - have, if i == 0 { limit } else { None }, since)?;
        have += recs.len();
        chunks.push(recs);
        if met_older {
            break;
        }
    }
    let mut out = Vec::with_capacity(have);
    for c in chunks.into_iter().rev() {
        out.extend(c.iter().map(|r| parse_record(service, r)));
    }
    Ok(out)
}

/// The last `n` lines over several services, merged by timestamp.
pub fn tail_many(
    dir: &Path,
    services: &[String],
    n: usize,
    since: Option<&str>,
) -> io::Result<Vec<LogLine>> {
    let mut all = Vec::new();
    for s in services {
        all.extend(tail_service(dir, s, n, since, None)?);
    }
    all.sort_by(|a, b| a.ts.cmp(&b.ts));
    let skip = all.len().saturating_sub(n);
    Ok(all.split_off(skip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(p: &Path, lines: &[String]) {
        let mut f = File::create(p).expect("create");
        for l in lines {
            writeln!(f, "{l}").expect("write");
        }
    }

    fn rec(i: usize) -> String {
        format!(
            "2026-01-01T00:00:{:02}.{:03}Z O line {i}",
            (i / 1000) % 60,
            i % 1000
        )
    }

    #[test]
    fn tails_across_blocks_and_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let old: Vec<String> = (0..3000).map(rec).collect();
        let new: Vec<String> = (3000..6000).map(rec).collect();
        write(&dir.path().join("s.log.1"), &old);
        write(&dir.path().join("s.log"), &new);
        let got = tail_service(dir.path(), "s", 10, None, None).expect("tail");
        assert_eq!(got.len(), 10);
        assert_eq!(got[0].line, "line 5990");
        assert_eq!(got[9].line, "line 5999");
        let got = tail_service(dir.path(), "s", 3005, None, None).expect("tail");
        assert_eq!(got.len(), 3005);
        assert_eq!(got[0].line, "line 2995");
        assert_eq!(got[3004].line, "line 5999");
        // every line once, in order
        for (k, l) in got.iter().enumerate() {
            assert_eq!(l.line, format!("line {}", 2995 + k));
        }
    }

    #[test]
    fn since_stops_early() {
        let dir = tempfile::tempdir().expect("tmp");
        let lines: Vec<String> = (0..100).map(rec).collect();
        write(&dir.path().join("s.log"), &lines);
        let got = tail_service(
            dir.path(),
            "s",
            1000,
            Some("2026-01-01T00:00:00.090Z"),
            None,
        )
        .expect("tail");
        assert_eq!(got.len(), 10);
        assert_eq!(got[0].line, "line 90");
    }

    #[test]
    fn limit_ignores_later_bytes() {
        let dir = tempfile::tempdir().expect("tmp");
        let lines: Vec<String> = (0..10).map(rec).collect();
        write(&dir.path().join("s.log"), &lines);
        let one = rec(0).len() as u64 + 1;
        let got = tail_service(dir.path(), "s", 100, None, Some(one * 4)).expect("tail");
        assert_eq!(got.len(), 4);
        assert_eq!(got[3].line, "line 3");
    }
}
