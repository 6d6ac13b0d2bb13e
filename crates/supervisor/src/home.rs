//! The Aurelia home directory and the files in it.
//!
//! `~/.aurelia` by default, `$AURELIA_HOME` when set (tests and side-by-side stacks rely on
//! it). The home is created with mode 0700: the socket inside it is the only access control
//! the API has, so no other user may even traverse to it.

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Paths of the runtime files under one home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    pub root: PathBuf,
}

impl Home {
    /// `$AURELIA_HOME`, else `~/.aurelia`.
    pub fn from_env() -> io::Result<Home> {
        if let Some(h) = std::env::var_os("AURELIA_HOME").filter(|h| !h.is_empty()) {
            return Ok(Home::at(std::path::absolute(PathBuf::from(h))?));
        }
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .ok_or_else(|| io::Error::other("neither AURELIA_HOME nor HOME is set"))?;
        Ok(Home::at(PathBuf::from(home).join(".aurelia")))
    }

    pub fn at(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }

    pub fn services_dir(&self) -> PathBuf {
        self.root.join("services")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn socket(&self) -> PathBuf {
        self.root.join("aurelia.sock")
    }
    pub fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }
    pub fn config_file(&self) -> PathBuf {
        self.root.join("config.yaml")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("daemon.lock")
    }
    pub fn token_file(&self) -> PathBuf {
        self.root.join("api.token")
    }
    pub fn log_file(&self, service: &str) -> PathBuf {
        self.logs_dir().join(format!("{service}.log"))
    }

    /// Creates the home (0700) and its `logs/` directory. The services directory is created
    /// too when `services` is true (the daemon's own home; `aurelia run DIR` uses DIR).
    pub fn prepare(&self, services: bool) -> io::Result<()> {
        make_private_dir(&self.root)?;
        make_private_dir(&self.logs_dir())?;
        if services {
            make_private_dir(&self.services_dir())?;
        }
        Ok(())
    }
}

fn make_private_dir(p: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)?;
    let perms = std::fs::metadata(p)?.permissions();
    if perms.mode() & 0o077 != 0 {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes `data` to `path` atomically (temp file in the same directory, fsync-free rename)
/// with mode 0600. A crash leaves the old or the new content, never a mix.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data)?;
    drop(f);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
