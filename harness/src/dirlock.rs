//! A run owns its `--workdir` and `--out`: an exclusive flock on each directory for the run's lifetime.
//!
//! Why: two runs on one workdir prepare and kill in each other's databases (false lost-commit and
//! inconsistent cycles); two on one out directory interleave `events.jsonl`. The lock is taken on the
//! directory itself (flock works on a directory's descriptor), so nothing is added to the directory; a
//! refused run names the holder's pid, read from `/proc/locks`. The lock goes when the run's process (and
//! every child that inherited the descriptor) is gone — never a stale lock file to clean up.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DirLockError {
    #[error("{dir} is in use by another dbtorture run{}; use another directory or wait for it", holder_text(*.holder))]
    Busy { dir: PathBuf, holder: Option<u32> },
    #[error("{dir}: {source}")]
    Io { dir: PathBuf, source: std::io::Error },
}

fn holder_text(holder: Option<u32>) -> String {
    holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
}

/// Held for as long as it lives.
#[derive(Debug)]
pub struct DirLock {
    _dir: nix::fcntl::Flock<std::fs::File>,
}

/// Create `dir` if missing and lock it exclusively, without waiting.
pub fn lock(dir: &Path) -> Result<DirLock, DirLockError> {
    let io = |source| DirLockError::Io { dir: dir.to_path_buf(), source };
    std::fs::create_dir_all(dir).map_err(io)?;
    let f = std::fs::File::open(dir).map_err(io)?;
    match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(DirLock { _dir: l }),
        Err((f, nix::errno::Errno::EWOULDBLOCK)) => {
            let m = f.metadata().map_err(io)?;
            Err(DirLockError::Busy { dir: dir.to_path_buf(), holder: holder(m.dev(), m.ino()) })
        }
        Err((_, e)) => Err(io(e.into())),
    }
}

/// Lock every given directory (a run's workdir and out directory; the same one once).
pub fn lock_all(dirs: &[Option<&Path>]) -> Result<Vec<DirLock>, DirLockError> {
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut locks = Vec::new();
    for d in dirs.iter().flatten() {
        let canon = crate::guard::resolve(d).unwrap_or_else(|_| d.to_path_buf());
        if seen.contains(&canon) {
            continue;
        }
        locks.push(lock(d)?);
        seen.push(canon);
    }
    Ok(locks)
}

/// The files a run writes into its `--out`; a reused `--out` loses these (and the earlier bundles) first.
const REPORT_FILES: &[&str] = &["events.jsonl", "summary.json", "junit.xml", "report.html"];

/// Remove an earlier run's reports and bundles from `out` (called with `out` locked, before this run writes
/// anything), so nothing of that run is counted, listed or merged as this one's. Only what a run writes is
/// removed — report files, their temporaries, and `bundles/cycle-*` — never a file of the user's. Returns
/// whether there was anything to remove.
pub fn clear_earlier_reports(out: &Path) -> std::io::Result<bool> {
    let mut cleared = false;
    for name in REPORT_FILES {
        for f in [out.join(name), out.join(format!("{name}.tmp"))] {
            match std::fs::remove_file(&f) {
                Ok(()) => cleared = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    let bundles = out.join("bundles");
    if let Ok(entries) = std::fs::read_dir(&bundles) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !(name.starts_with("cycle-") || name.starts_with(".dbtorture-bundle-")) {
                continue;
            }
            let kind = e.file_type()?;
            if kind.is_dir() {
                std::fs::remove_dir_all(e.path())?
            } else {
                std::fs::remove_file(e.path())?
            }
            cleared = true;
        }
        let _ = std::fs::remove_dir(&bundles); // only when empty
    }
    Ok(cleared)
}

/// The pid holding a FLOCK on (dev, ino), from /proc/locks ("1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF").
fn holder(dev: u64, ino: u64) -> Option<u32> {
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    let want = format!("{:02x}:{:02x}:{ino}", nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1) == Some(&"FLOCK") && f.get(5) == Some(&want.as_str())).then(|| f.get(4)?.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_released_on_drop() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("work");
        let held = lock(&dir).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "nothing is added to the directory");
        match lock(&dir) {
            Err(DirLockError::Busy { holder, .. }) => assert_eq!(holder, Some(std::process::id())),
            other => panic!("{other:?}"),
        }
        drop(held);
        lock(&dir).unwrap();
        // The same directory named twice is locked once.
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert_eq!(lock_all(&[Some(&dir), Some(&link)]).unwrap().len(), 1);
    }
}
