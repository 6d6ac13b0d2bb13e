//! Live log lines for followers (`aurelia logs -f`, the event stream).
//!
//! The log files are the source of truth, so following means tailing them. The hub watches the
//! logs directory (inotify / FSEvents through `notify`) **only while someone follows**: with no
//! follower there is no watcher and no wake-up, whatever the services print. On each change it
//! reads the new bytes of the changed file from a per-service cursor, cuts them into records,
//! and broadcasts them. Rotation is handled by draining the old file before switching to the
//! new one, so no record is lost or repeated.
//!
//! A new follower gets, with its subscription, the byte offset up to which records have been
//! broadcast, per service: reading the backlog (`-n`) up to that offset and then the broadcast
//! gives every line exactly once.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aurelia_api::LogLine;
use notify::{RecursiveMode, Watcher};
use tokio::sync::broadcast;

use super::parse_record;

struct Cursor {
    file: File,
    ino: u64,
    /// Bytes consumed from `file`, including `partial`.
    pos: u64,
    partial: Vec<u8>,
}

#[derive(Default)]
struct Inner {
    subscribers: usize,
    watcher: Option<notify::RecommendedWatcher>,
    cursors: HashMap<String, Cursor>,
}

/// Shared handle to the hub.
#[derive(Clone)]
pub struct LogHub {
    dir: PathBuf,
    tx: broadcast::Sender<LogLine>,
    inner: Arc<Mutex<Inner>>,
}

/// A follower's subscription.
pub struct Subscription {
    pub rx: broadcast::Receiver<LogLine>,
    /// Per service: the offset in its current log file up to which lines were broadcast
    /// before this subscription started.
    pub offsets: HashMap<String, u64>,
    /// Keeps the subscription counted; dropping it unsubscribes (the last one stops the
    /// watcher).
    pub guard: SubscriptionGuard,
}

/// See [`Subscription::guard`].
pub struct SubscriptionGuard {
    hub: LogHub,
}

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        self.hub.unsubscribe();
    }
}

fn service_of(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    if name.starts_with('.') {
        return None;
    }
    let stem = name.strip_suffix(".log").or_else(|| {
        // svc.log.N (a rotation renamed the file we were reading)
        let (base, n) = name.rsplit_once('.')?;
        n.parse::<u32>().ok()?;
        base.strip_suffix(".log")
    })?;
    Some(stem.to_string())
}

impl LogHub {
    pub fn new(dir: PathBuf) -> LogHub {
        let (tx, _) = broadcast::channel(8192);
        LogHub {
            dir,
            tx,
            inner: Arc::new(Mutex::new(Inner::default())),
        }
    }

    /// Starts following. Errors when the directory cannot be watched.
    pub fn subscribe(&self) -> notify::Result<Subscription> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.watcher.is_none() {
            inner.cursors.clear();
            if let Ok(rd) = std::fs::read_dir(&self.dir) {
                for e in rd.flatten() {
                    let p = e.path();
                    if p.extension().is_some_and(|x| x == "log")
                        && let Some(svc) = service_of(&p)
                        && let Ok(f) = File::open(&p)
                        && let Ok(m) = f.metadata()
                    {
                        inner.cursors.insert(
                            svc,
                            Cursor {
                                file: f,
                                ino: m.ino(),
                                pos: m.len(),
                                partial: Vec::new(),
                            },
                        );
                    }
                }
            }
            let hub = self.clone();
            let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                if let Ok(ev) = res {
                    let mut seen: Vec<String> = Vec::new();
                    for p in &ev.paths {
                        if let Some(s) = service_of(p)
                            && !seen.contains(&s)
                        {
                            seen.push(s);
                        }
                    }
                    for s in seen {
                        hub.pump(&s);
                    }
                }
            })?;
            w.watch(&self.dir, RecursiveMode::NonRecursive)?;
            inner.watcher = Some(w);
        }
        inner.subscribers += 1;
        let offsets = inner
            .cursors
            .iter()
            .map(|(k, c)| (k.clone(), c.pos - c.partial.len() as u64))
            .collect();
        Ok(Subscription {
            rx: self.tx.subscribe(),
            offsets,
            guard: SubscriptionGuard { hub: self.clone() },
        })
    }

    fn unsubscribe(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.subscribers = inner.subscribers.saturating_sub(1);
        if inner.subscribers == 0 {
            inner.watcher = None;
            inner.cursors.clear();
        }
    }

    /// Reads what is new in `service`'s log and broadcasts it.
    fn pump(&self, service: &str) {
        let path = self.dir.join(format!("{service}.log"));
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.watcher.is_none() {
            return;
        }
        let mut lines = Vec::new();
        loop {
            let cur_ino = std::fs::metadata(&path).map(|m| m.ino()).ok();
            let cursor = match inner.cursors.get_mut(service) {
                Some(c) => c,
                None => {
                    let Ok(f) = File::open(&path) else { return };
                    let Ok(m) = f.metadata() else { return };
                    inner.cursors.entry(service.to_string()).or_insert(Cursor {
                        file: f,
                        ino: m.ino(),
                        pos: 0,
                        partial: Vec::new(),
                    })
                }
            };
            read_new(cursor, service, &mut lines);
            if cur_ino.is_some() && cur_ino != Some(cursor.ino) {
                // rotated: the old file is drained; continue with the new one from its start
                match File::open(&path) {
                    Ok(f) => {
                        let ino = f.metadata().map(|m| m.ino()).unwrap_or(0);
                        *cursor = Cursor {
                            file: f,
                            ino,
                            pos: 0,
                            partial: Vec::new(),
                        };
                        continue;
                    }
                    Err(_) => break,
                }
            }
            break;
        }
        drop(inner);
        for l in lines {
            // No receivers is fine (everyone left between the event and now).
            let _ = self.tx.send(l);
        }
    }
}

fn read_new(c: &mut Cursor, service: &str, out: &mut Vec<LogLine>) {
    if c.file.seek(SeekFrom::Start(c.pos)).is_err() {
        return;
    }
    let mut buf = Vec::new();
    if c.file.read_to_end(&mut buf).is_err() || buf.is_empty() {
        return;
    }
    c.pos += buf.len() as u64;
    let mut data = std::mem::take(&mut c.partial);
    data.extend_from_slice(&buf);
    let mut rest: &[u8] = &data;
    while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
        out.push(parse_record(service, &rest[..nl]));
        rest = &rest[nl + 1..];
    }
    c.partial = rest.to_vec();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    #[tokio::test]
    async fn follows_appends_and_rotation_without_loss() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("svc.log");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .expect("open");
        writeln!(f, "2026-01-01T00:00:00.000Z O before").expect("w");
        let hub = LogHub::new(dir.path().to_path_buf());
        let mut sub = hub.subscribe().expect("subscribe");
        assert_eq!(sub.offsets.get("svc").copied(), Some(34));
        writeln!(f, "2026-01-01T00:00:00.001Z O one").expect("w");
        writeln!(f, "2026-01-01T00:00:00.002Z O two (old file)").expect("w");
        // rotate like the relay does: rename, then write only to a new file
        std::fs::rename(&p, dir.path().join("svc.log.1")).expect("rename");
        let mut g = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .expect("open");
        writeln!(g, "2026-01-01T00:00:00.003Z E three").expect("w");
        let mut got = Vec::new();
        while got.len() < 3 {
            let l = tokio::time::timeout(Duration::from_secs(5), sub.rx.recv())
                .await
                .expect("line in time")
                .expect("recv");
            got.push(l.line);
        }
        assert_eq!(got, vec!["one", "two (old file)", "three"]);
        drop(sub);
        assert!(hub.inner.lock().expect("lock").watcher.is_none());
    }
}
