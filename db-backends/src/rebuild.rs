//! `--rebuilddb`, as rpm does it, for any backend (and across backends: a conversion).
//!
//! Why here and generic: recovery after damage is "read every header from Packages, re-add each into a new
//! database (regenerating all indexes, new header numbers), swap directories". rpm keeps the original in place
//! until the new one is complete, so a rebuild killed at any point leaves a usable database behind.
//!
//! Durability (a power cut, not only a kill): rpm 4.18's `rpmdbMoveDatabase` (lib/rpmdb.c) swaps with two
//! `rename`s (`DB` → old, new → `DB`) and syncs nothing — a power cut between them, or after them before the
//! journal commits, can leave no database at `DB` or bring the old one back after `--rebuilddb` returned.
//! Here: every file of the new database and its directory are fsynced before the swap; the swap is one
//! `renameat2(RENAME_EXCHANGE)` (two renames only where the filesystem refuses it); the parent directory is
//! fsynced after it, before this returns. Planted bug `rebuild-no-dir-fsync` skips the fsyncs.

use crate::backend::{BackendError, BackendKind, OpenMode};
use crate::rpmdb::{Header, tags};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    pub copied: usize,
    /// Header numbers skipped, with the reason (rpm: "header #N in the database is bad -- skipping.").
    pub skipped: Vec<(u32, String)>,
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut s = dir.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Rebuild the database in `dir` (backend `from`) into backend `to`, then swap it into `dir`.
pub fn rebuilddb(from: BackendKind, to: BackendKind, dir: &Path) -> Result<RebuildReport, BackendError> {
    let pid = std::process::id();
    // `DIR.rebuilddb.PID` and `DIR.old.PID` beside `DIR` (rpm's own names are `rebuilddb.PID` inside the
    // parent of the dbpath; a separate dot keeps the names readable).
    let new_dir = sibling(dir, &format!(".rebuilddb.{pid}"));
    let old_dir = sibling(dir, &format!(".old.{pid}"));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackendError::Io { path, source }
    };
    if new_dir.exists() {
        std::fs::remove_dir_all(&new_dir).map_err(io(&new_dir))?;
    }
    let mut report = RebuildReport { copied: 0, skipped: Vec::new() };
    // A failed copy removes its half-built database (a killed one leaves it; the next rebuild or the
    // harness clears it).
    let copied = (|| -> Result<(), BackendError> {
        let mut src = from.open(dir, OpenMode::ReadWrite)?;
        let mut dst = to.open(&new_dir, OpenMode::Create)?;
        let hnums = src.hnums()?;
        dst.begin()?;
        for hnum in hnums {
            let blob = match src.get(hnum) {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(e) => {
                    report.skipped.push((hnum, format!("header #{hnum} cannot be read ({e}) -- skipping.")));
                    continue;
                }
            };
            let ok = match Header::parse(&blob) {
                Ok(h) => [tags::NAME, tags::VERSION, tags::RELEASE, tags::BUILDTIME].iter().all(|t| h.has(*t)),
                Err(_) => false,
            };
            if !ok {
                report.skipped.push((hnum, format!("header #{hnum} in the database is bad -- skipping.")));
                continue;
            }
            dst.install(&blob)?;
            report.copied += 1;
            crate::crash::point("rebuild.copy.after");
        }
        dst.commit()?;
        dst.close()?;
        src.close()?;
        Ok(())
    })();
    if let Err(e) = copied {
        let _ = std::fs::remove_dir_all(&new_dir);
        return Err(e);
    }
    // Swap: the original stays in place until the new one is complete — and on the disk.
    let unsynced = crate::planted::active("rebuild-no-dir-fsync");
    if !unsynced {
        sync_tree(&new_dir)?;
    }
    crate::crash::point("rebuild.swap.before");
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // After the swap `new_dir` names the original.
    let retired = match exchange(dir, &new_dir) {
        Ok(()) => new_dir.clone(),
        Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOSYS | nix::errno::Errno::EOPNOTSUPP) => {
            std::fs::rename(dir, &old_dir).map_err(io(dir))?;
            if let Err(e) = std::fs::rename(&new_dir, dir) {
                let _ = std::fs::rename(&old_dir, dir);
                return Err(BackendError::Io { path: new_dir, source: e });
            }
            old_dir
        }
        Err(e) => return Err(BackendError::Io { path: dir.to_path_buf(), source: e.into() }),
    };
    if !unsynced {
        fsync_path(&parent)?;
    }
    std::fs::remove_dir_all(&retired).map_err(io(&retired))?;
    Ok(report)
}

/// `renameat2(a, b, RENAME_EXCHANGE)`: both names stay bound at every instant, so no power cut can find
/// neither database in place.
fn exchange(a: &Path, b: &Path) -> Result<(), nix::errno::Errno> {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE)
}

fn fsync_path(p: &Path) -> Result<(), BackendError> {
    let io = |source| BackendError::Io { path: p.to_path_buf(), source };
    std::fs::File::open(p).map_err(io)?.sync_all().map_err(io)
}

/// fsync every regular file under `dir`, then each directory (deepest first, `dir` last): the new database's
/// data and its directory entries are on the disk before anything points at it.
fn sync_tree(dir: &Path) -> Result<(), BackendError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| BackendError::Io { path: p, source }
    };
    let mut dirs = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < dirs.len() {
        let d = dirs[i].clone();
        for e in std::fs::read_dir(&d).map_err(io(&d))? {
            let e = e.map_err(io(&d))?;
            let ft = e.file_type().map_err(io(&e.path()))?;
            if ft.is_dir() {
                dirs.push(e.path());
            } else if ft.is_file() {
                fsync_path(&e.path())?;
            }
        }
        i += 1;
    }
    for d in dirs.iter().rev() {
        fsync_path(d)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_swaps_two_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(a.join("f"), "A").unwrap();
        std::fs::write(b.join("f"), "B").unwrap();
        match exchange(&a, &b) {
            Ok(()) => {
                assert_eq!(std::fs::read_to_string(a.join("f")).unwrap(), "B");
                assert_eq!(std::fs::read_to_string(b.join("f")).unwrap(), "A");
            }
            // A filesystem without RENAME_EXCHANGE: rebuilddb falls back to two renames.
            Err(e) => {
                assert!(std::env::var_os("CI").is_none(), "CI's filesystem must support RENAME_EXCHANGE: {e}");
                eprintln!("skipped: RENAME_EXCHANGE refused here ({e})");
            }
        }
        sync_tree(tmp.path()).unwrap();
    }
}
