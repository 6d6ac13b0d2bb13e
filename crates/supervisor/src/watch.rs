//! Live reload: watching the services directory.
//!
//! A plain `notify` watcher (inotify, FSEvents) feeds a tokio task that debounces: after the
//! first event it waits until 200 ms pass without another, then asks the supervisor for one
//! reload. Editors' write storms, temp-file-and-rename saves and 500 files written at once all
//! become one reload; any event counts as "rescan", because event kinds differ across OSes and
//! editors. The reload compares parsed specs by content, so what the events were does not
//! matter. Nothing here wakes up while nothing happens (no polling, no ticking debouncer).
//!
//! The parent directory is watched too, so a services directory that is deleted and created
//! again is picked up.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::supervisor::{Command, Supervisor};

/// Quiet time that ends a burst of events.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

fn relevant(dir: &Path, p: &Path) -> bool {
    if p == dir {
        return true;
    }
    p.parent() == Some(dir)
        && p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(aurelia_spec::set::is_spec_file_name)
}

/// Starts watching `dir`; reloads go to `sup`. The watcher lives as long as the task.
pub fn spawn(dir: PathBuf, sup: Supervisor) -> notify::Result<tokio::task::JoinHandle<()>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<PathBuf>>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            let _ = tx.send(ev.paths);
        }
    })?;
    let parent = dir.parent().map(Path::to_path_buf);
    if let Some(p) = &parent
        && p.exists()
    {
        watcher.watch(p, RecursiveMode::NonRecursive)?;
    }
    let mut watching_dir = watcher.watch(&dir, RecursiveMode::NonRecursive).is_ok();
    Ok(tokio::spawn(async move {
        let watcher = &mut watcher;
        while let Some(paths) = rx.recv().await {
            let mut hit = paths.iter().any(|p| relevant(&dir, p));
            // debounce: swallow events until a quiet period
            loop {
                match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                    Ok(Some(more)) => hit |= more.iter().any(|p| relevant(&dir, p)),
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            if !hit {
                continue;
            }
            if dir.is_dir() {
                if !watching_dir {
                    watching_dir = watcher.watch(&dir, RecursiveMode::NonRecursive).is_ok();
                }
            } else {
                watching_dir = false;
            }
            if sup.cmd.send(Command::Reload { reply: None }).is_err() {
                return;
            }
        }
    }))
}
