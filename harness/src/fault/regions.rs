//! Region faults inside a cycle's children: mlock() and MADV_PAGEOUT of the engine's shared file mappings
//! of the database directory (BDB's `__db.*` regions, sqlite's `-shm`), found in `/proc/self/maps`.
//!
//! Why here and not in a backend: a fault that lives inside one engine reaches only that engine (it once
//! did: libdb never got them, yet a libdb run reported its regions "mlocked"). Driven from the crash-point
//! hook, these reach every engine that runs in our worker processes — ours and real Berkeley DB alike —
//! without the engine's code knowing. What they did is measured here and reported by the scheduler: bytes
//! locked and pageouts done per worker, never what was only asked for. Out of reach: processes that are not
//! ours (the real `rpm` binary a worker execs has no hook).
#![allow(unsafe_code)]

use crate::sys::AtomicU64;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;

/// What to do in a child.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The database directory whose shared mappings are meant.
    pub dir: PathBuf,
    pub mlock: bool,
    pub pageout: bool,
}

/// Slot words (offsets into a crash-point slot) where a child leaves what it did.
pub const W_MLOCK_BYTES: usize = 8;
pub const W_MLOCK_MAPS: usize = 9;
pub const W_PAGEOUTS: usize = 10;
/// The last errno of a failed mlock/madvise (0: none).
pub const W_ERRNO: usize = 11;
/// Control words these take in a slot.
pub const WORDS: usize = 4;

/// Pageout every this many crash points passed.
const PAGEOUT_EVERY: u64 = 16;

struct State {
    cfg: Config,
    slot: &'static [AtomicU64],
    locked: std::sync::Mutex<BTreeSet<(usize, usize)>>,
    ticks: AtomicU64,
}

static STATE: OnceLock<State> = OnceLock::new();

/// In a child, once: remember what to do (nothing happens until crash points are passed).
pub fn install(mut cfg: Config, slot: &'static [AtomicU64]) {
    if !cfg.mlock && !cfg.pageout {
        return;
    }
    // /proc/self/maps names files by their resolved path.
    if let Ok(c) = std::fs::canonicalize(&cfg.dir) {
        cfg.dir = c;
    }
    let _ = STATE.set(State { cfg, slot, locked: std::sync::Mutex::new(BTreeSet::new()), ticks: 0.into() });
}

/// Called at every crash point passed in a child.
pub fn tick() {
    let Some(st) = STATE.get() else { return };
    let n = st.ticks.fetch_add(1, Ordering::Relaxed);
    if st.cfg.mlock && n % 4 == 0 {
        lock_new(st);
    }
    if st.cfg.pageout && n % PAGEOUT_EVERY == PAGEOUT_EVERY - 1 {
        for (start, end) in shared_mappings(&st.cfg.dir) {
            // SAFETY: [start, end) is a mapping of this process (read from /proc/self/maps just now, and this
            // single-threaded child does not unmap between the read and the call); MADV_PAGEOUT only asks the
            // kernel to reclaim its pages — contents stay as they are, dirty shared pages are written back.
            let rc = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT) };
            record(st, rc, W_PAGEOUTS, 1);
        }
    }
}

fn lock_new(st: &State) {
    let Ok(mut locked) = st.locked.lock() else { return };
    for (start, end) in shared_mappings(&st.cfg.dir) {
        if locked.contains(&(start, end)) {
            continue;
        }
        // SAFETY: as above, a mapping of this process; mlock only pins its pages in memory.
        let rc = unsafe { libc::mlock(start as *const libc::c_void, end - start) };
        if rc == 0 {
            locked.insert((start, end));
            st.slot[W_MLOCK_MAPS].fetch_add(1, Ordering::AcqRel);
        }
        record(st, rc, W_MLOCK_BYTES, (end - start) as u64);
    }
}

fn record(st: &State, rc: libc::c_int, word: usize, add: u64) {
    if rc == 0 {
        st.slot[word].fetch_add(add, Ordering::AcqRel);
    } else {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(-1);
        st.slot[W_ERRNO].store(errno as u64, Ordering::Release);
    }
}

/// Shared (`s`) file mappings of files under `dir`, as (start, end) addresses.
fn shared_mappings(dir: &std::path::Path) -> Vec<(usize, usize)> {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else { return Vec::new() };
    parse_maps(&maps, dir)
}

/// The part of each mapping that the file backs: pages past the end of the file cannot be locked or paged
/// out (Berkeley DB maps its regions larger than it has written them).
fn parse_maps(maps: &str, dir: &std::path::Path) -> Vec<(usize, usize)> {
    const PAGE: u64 = 4096;
    maps.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let range = f.next()?;
            let perms = f.next()?;
            let offset = u64::from_str_radix(f.next()?, 16).ok()?;
            let path = f.nth(2)?;
            if perms.as_bytes().get(3) != Some(&b's') || !std::path::Path::new(path).starts_with(dir) {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            let (start, end) = (usize::from_str_radix(a, 16).ok()?, usize::from_str_radix(b, 16).ok()?);
            let backed =
                std::fs::metadata(path).map(|m| m.len().saturating_sub(offset).div_ceil(PAGE) * PAGE).unwrap_or(0);
            let end = end.min(start.saturating_add(backed as usize));
            (end > start).then_some((start, end))
        })
        .collect()
}

/// What one child's slot says it did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Measured {
    pub mlock_bytes: u64,
    pub mlock_maps: u64,
    pub pageouts: u64,
    pub errno: u64,
}

pub fn measured(slot: &[AtomicU64]) -> Measured {
    Measured {
        mlock_bytes: slot[W_MLOCK_BYTES].load(Ordering::Acquire),
        mlock_maps: slot[W_MLOCK_MAPS].load(Ordering::Acquire),
        pageouts: slot[W_PAGEOUTS].load(Ordering::Acquire),
        errno: slot[W_ERRNO].load(Ordering::Acquire),
    }
}

fn errno_note(per: &[Measured]) -> String {
    match per.iter().find(|m| m.errno != 0) {
        Some(m) => format!(" (a call failed: {})", std::io::Error::from_raw_os_error(m.errno as i32)),
        None => String::new(),
    }
}

pub fn describe_mlock(per: &[Measured]) -> String {
    let parts: Vec<String> = per
        .iter()
        .enumerate()
        .filter(|(_, m)| m.mlock_maps > 0)
        .map(|(i, m)| format!("w{i} {} mappings {} KiB", m.mlock_maps, m.mlock_bytes / 1024))
        .collect();
    if parts.is_empty() {
        format!("mlock asked for, but no worker locked a shared mapping of the database directory{}", errno_note(per))
    } else {
        format!("region mappings mlock()ed: {}{}", parts.join(", "), errno_note(per))
    }
}

pub fn describe_pageout(per: &[Measured]) -> String {
    let total: u64 = per.iter().map(|m| m.pageouts).sum();
    format!("MADV_PAGEOUT of region mappings: {total} calls over {} workers{}", per.len(), errno_note(per))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_shared_mappings_under_the_directory_count() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("db");
        std::fs::create_dir(&db).unwrap();
        std::fs::write(db.join("__db.001"), vec![0u8; 5000]).unwrap();
        std::fs::write(db.join("Packages"), vec![0u8; 5000]).unwrap();
        let d = db.display();
        let maps = format!(
            "7f0000000000-7f0000010000 rw-s 00000000 fd:01 123 {d}/__db.001\n\
             7f0000010000-7f0000020000 rw-p 00000000 fd:01 124 {d}/Packages\n\
             7f0000020000-7f0000030000 rw-s 00000000 fd:01 125 /elsewhere/__db.001\n\
             7f0000030000-7f0000031000 rw-s 00000000 00:00 0\n"
        );
        // Only the shared mapping under the directory, and only the two pages its 5,000-byte file backs.
        assert_eq!(parse_maps(&maps, &db), vec![(0x7f00_0000_0000, 0x7f00_0000_2000)]);
    }

    #[test]
    fn a_fault_that_did_nothing_says_so() {
        let none = [Measured::default(); 2];
        assert!(describe_mlock(&none).contains("no worker locked"), "{}", describe_mlock(&none));
        let some = [Measured { mlock_bytes: 2048 * 1024, mlock_maps: 3, ..Measured::default() }, Measured::default()];
        assert!(describe_mlock(&some).contains("w0 3 mappings 2048 KiB"), "{}", describe_mlock(&some));
    }
}
