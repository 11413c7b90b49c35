//! `--rebuilddb`, as rpm does it, for any backend (and across backends: a conversion).
//!
//! Why here and generic: recovery after damage is "read every header from Packages, re-add each into a new
//! database (regenerating all indexes, new header numbers), swap directories". rpm keeps the original in place
//! until the new one is complete, so a rebuild killed at any point leaves a usable database behind.

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
    // Swap: the original stays in place until the new one is complete.
    crate::crash::point("rebuild.swap.before");
    std::fs::rename(dir, &old_dir).map_err(io(dir))?;
    if let Err(e) = std::fs::rename(&new_dir, dir) {
        let _ = std::fs::rename(&old_dir, dir);
        return Err(BackendError::Io { path: new_dir, source: e });
    }
    std::fs::remove_dir_all(&old_dir).map_err(io(&old_dir))?;
    Ok(report)
}
