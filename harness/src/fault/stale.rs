//! Stale pages: what a lost write-back of a dirty shared-mmap page looks like to every process.
//!
//! Seed 000's hypothesis: on ARM, a dirty page of the MAP_SHARED lock region was dropped without being
//! written out, and a stale copy was read back later. The injector snapshots a region file, and later
//! writes back one page that changed since — the stale copy — through the file, so every process mapping
//! it sees the stale bytes at once (the page cache is shared). Which page is chosen comes from the cycle's
//! seeded RNG among the pages that changed, so a run is replayable.

use dbtorture_backends::bdbenv::lock::{self, Geometry};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub const PAGE: usize = 4096;

/// A copy of a file taken at some moment.
pub struct Snapshot {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    /// When or where it was taken, for the report.
    pub at: String,
}

/// What was written back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleWrite {
    pub page: usize,
    /// Pages that had changed since the snapshot (the candidates).
    pub changed: usize,
}

pub fn snapshot(dir: &Path, file: &str, at: String) -> std::io::Result<Snapshot> {
    let path = dir.join(file);
    Ok(Snapshot { bytes: std::fs::read(&path)?, path, at })
}

/// Write back the snapshot's copy of one page that has changed since; `None` if nothing changed.
pub fn restore_changed_page(snap: &Snapshot, rng: &mut ChaCha8Rng) -> std::io::Result<Option<StaleWrite>> {
    let now = std::fs::read(&snap.path)?;
    let pages = snap.bytes.len().min(now.len()) / PAGE;
    let changed: Vec<usize> =
        (0..pages).filter(|&p| snap.bytes[p * PAGE..(p + 1) * PAGE] != now[p * PAGE..(p + 1) * PAGE]).collect();
    if changed.is_empty() {
        return Ok(None);
    }
    let page = changed[rng.random_range(0..changed.len())];
    let f = std::fs::OpenOptions::new().write(true).open(&snap.path)?;
    f.write_all_at(&snap.bytes[page * PAGE..(page + 1) * PAGE], (page * PAGE) as u64)?;
    Ok(Some(StaleWrite { page, changed: changed.len() }))
}

/// What lives on a page of a lock region: header, hash tables, which lockers, objects and locks.
pub fn describe_lock_page(region: &[u8], page: usize) -> String {
    let (start, end) = (page * PAGE, (page + 1) * PAGE);
    let Some(g) = Geometry::read(region) else { return "an unreadable lock region".into() };
    let mut parts = Vec::new();
    if start < lock::HEADER_SIZE {
        parts.push("the region header (counters, free-list heads, in-use list)".to_string());
    }
    let tables = [
        ("locker hash table", g.locker_tab, g.locker_t_size as usize * dbtorture_backends::bdbenv::shqueue::HEAD_SIZE),
        ("object hash table", g.object_tab, g.object_t_size as usize * dbtorture_backends::bdbenv::shqueue::HEAD_SIZE),
    ];
    for (name, off, len) in tables {
        if off < end && off + len > start {
            parts.push(name.to_string());
        }
    }
    for (name, base, n, size) in [
        ("lockers", g.lockers, g.maxlockers as usize, lock::LOCKER_SIZE),
        ("objects", g.objects, g.maxobjects as usize, lock::OBJECT_SIZE),
        ("locks", g.locks, g.maxlocks as usize, lock::LOCK_SIZE),
    ] {
        let (lo, hi) = (start.max(base), end.min(base + n * size));
        if lo < hi {
            parts.push(format!("{name} #{}–#{}", (lo - base) / size, (hi - 1 - base) / size));
        }
    }
    format!("page {page} ({start:#x}–{:#x}): {}", end - 1, parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn only_a_changed_page_is_written_back_and_it_is_the_old_copy() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("__db.003");
        std::fs::write(&p, vec![1u8; 4 * PAGE]).unwrap();
        let snap = snapshot(d.path(), "__db.003", "t0".into()).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(restore_changed_page(&snap, &mut rng).unwrap(), None, "nothing changed, nothing to lose");
        let mut now = vec![1u8; 4 * PAGE];
        now[2 * PAGE + 7] = 9;
        std::fs::write(&p, &now).unwrap();
        let w = restore_changed_page(&snap, &mut rng).unwrap().unwrap();
        assert_eq!(w, StaleWrite { page: 2, changed: 1 });
        assert_eq!(std::fs::read(&p).unwrap(), vec![1u8; 4 * PAGE]);
    }
}
