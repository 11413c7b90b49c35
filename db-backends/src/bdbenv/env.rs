//! The environment header region `__db.001`: magic, version, panic flag, init flags, reference count,
//! region table and thread table — and joining an environment the way db 4.x does it.
//!
//! Why: rpm's failures around the environment ("unable to join the environment", "run recovery", leaked
//! reference counts, thread slots of dead processes) come from this file, and failchk reads its thread table.

use super::lock::{mutex_lock, mutex_unlock, u32_at};
use super::mmap::Region;
use super::shqueue as sq;
use std::path::Path;

pub const MAGIC: u32 = 0x0012_0897;
pub const E_MAGIC: usize = 0;
pub const E_PANIC: usize = 4;
pub const E_MAJOR: usize = 8;
pub const E_MINOR: usize = 12;
pub const E_PATCH: usize = 16;
pub const E_ENVID: usize = 20;
pub const E_TIMESTAMP: usize = 24;
pub const E_INIT_FLAGS: usize = 32;
pub const E_REFCOUNT: usize = 36;
pub const E_MUTEX: usize = 40;
pub const E_NREGIONS: usize = 48;
pub const E_REGIONS: usize = 52;
pub const REGION_ENTRY: usize = 16;
pub const MAX_REGIONS: usize = 4;
pub const E_NTHREADS: usize = E_REGIONS + MAX_REGIONS * REGION_ENTRY;
pub const E_THREADS: usize = E_NTHREADS + 4;
pub const THREAD_ENTRY: usize = 16;
pub const MAX_THREADS: usize = 64;
pub const SIZE: usize = 4096;

/// Init flags (DB_INIT_*): rpm uses CDB + MPOOL (CDB implies locking).
pub const INIT_CDB: u32 = 0x1;
pub const INIT_LOCK: u32 = 0x4;
pub const INIT_LOG: u32 = 0x8;
pub const INIT_MPOOL: u32 = 0x10;
pub const INIT_TXN: u32 = 0x40;

/// Region types of the region table.
pub const REGION_ENV: u32 = 1;
pub const REGION_LOCK: u32 = 2;
pub const REGION_MPOOL: u32 = 4;

/// Thread slot states (DB_THREAD_INFO).
pub mod thread {
    pub const NOT_IN_USE: u32 = 0;
    pub const OUT: u32 = 1;
    pub const ACTIVE: u32 = 2;
    pub const BLOCKED: u32 = 3;
    pub const BLOCKED_DEAD: u32 = 4;
    pub fn name(s: u32) -> &'static str {
        match s {
            NOT_IN_USE => "NOT_IN_USE",
            OUT => "OUT",
            ACTIVE => "ACTIVE",
            BLOCKED => "BLOCKED",
            BLOCKED_DEAD => "BLOCKED_DEAD",
            _ => "?",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("unable to join the environment")]
    CannotJoin,
    #[error("error(22) from dbenv->open: Invalid argument (environment version is zero)")]
    ZeroVersion,
    #[error("Program version {0}.{1} doesn't match environment version {2}.{3}")]
    VersionMismatch(u32, u32, u32, u32),
    #[error("PANIC: fatal region error detected; run recovery")]
    Panic,
    #[error("no free thread slot in the environment (thread table full)")]
    ThreadTableFull,
    #[error("{0}")]
    Io(String),
}

/// Write a fresh environment header. The magic goes last, so a joiner never sees a half-made header.
pub fn init(region: &mut Region, version: (u32, u32, u32), regions: &[(u32, u32, u32)]) {
    let r = region.bytes_mut();
    r.fill(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let set = |r: &mut [u8], at, v| {
        sq::set_u32(r, at, v);
    };
    set(r, E_MAJOR, version.0);
    set(r, E_MINOR, version.1);
    set(r, E_PATCH, version.2);
    set(r, E_ENVID, (now as u32) ^ std::process::id());
    r[E_TIMESTAMP..E_TIMESTAMP + 8].copy_from_slice(&now.to_ne_bytes());
    set(r, E_INIT_FLAGS, INIT_CDB | INIT_LOCK | INIT_MPOOL);
    set(r, E_NREGIONS, regions.len() as u32);
    for (i, (size, id, ty)) in regions.iter().enumerate().take(MAX_REGIONS) {
        let at = E_REGIONS + i * REGION_ENTRY;
        set(r, at, *size);
        set(r, at + 4, *id);
        set(r, at + 8, *ty);
        set(r, at + 12, 0);
    }
    set(r, E_NTHREADS, MAX_THREADS as u32);
    set(r, E_MAGIC, MAGIC);
}

/// Check a header before joining, as `__env_attach` does.
pub fn check(r: &[u8], version: (u32, u32)) -> Result<(), EnvError> {
    if r.len() < SIZE || u32_at(r, E_MAGIC) != MAGIC {
        return Err(EnvError::CannotJoin);
    }
    let (maj, min) = (u32_at(r, E_MAJOR), u32_at(r, E_MINOR));
    if maj == 0 && min == 0 {
        return Err(EnvError::ZeroVersion);
    }
    if (maj, min) != version {
        return Err(EnvError::VersionMismatch(version.0, version.1, maj, min));
    }
    if u32_at(r, E_PANIC) != 0 {
        return Err(EnvError::Panic);
    }
    Ok(())
}

/// Map `__db.001`, retrying briefly while a creator is still writing it (short file, no magic).
pub fn attach(path: &Path, version: (u32, u32)) -> Result<Region, EnvError> {
    let mut last = EnvError::CannotJoin;
    for attempt in 0..20 {
        match Region::map(path) {
            Ok(r) => match check(r.bytes(), version) {
                Ok(()) => return Ok(r),
                Err(e @ (EnvError::CannotJoin | EnvError::ZeroVersion)) => last = e,
                Err(e) => return Err(e),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(EnvError::Io(e.to_string())),
            Err(_) => last = EnvError::CannotJoin,
        }
        std::thread::sleep(std::time::Duration::from_millis(1 + attempt));
    }
    Err(last)
}

/// Take a thread slot for `pid` (state OUT) and bump the reference count. Returns the slot index.
pub fn register(region: &mut Region, pid: u32) -> Result<usize, EnvError> {
    mutex_lock(region, E_MUTEX, pid);
    let r = region.bytes_mut();
    let mut slot = None;
    for i in 0..MAX_THREADS {
        let at = E_THREADS + i * THREAD_ENTRY;
        if u32_at(r, at + 8) == thread::NOT_IN_USE {
            sq::set_u32(r, at, pid);
            sq::set_u32(r, at + 4, 0);
            sq::set_u32(r, at + 8, thread::OUT);
            slot = Some(i);
            break;
        }
    }
    if slot.is_some() {
        let rc = u32_at(r, E_REFCOUNT).wrapping_add(1);
        sq::set_u32(r, E_REFCOUNT, rc);
    }
    mutex_unlock(region, E_MUTEX);
    slot.ok_or(EnvError::ThreadTableFull)
}

/// Release a thread slot and drop the reference count (a clean close; a killed process leaks both).
pub fn unregister(region: &mut Region, slot: usize, pid: u32) {
    mutex_lock(region, E_MUTEX, pid);
    let r = region.bytes_mut();
    let at = E_THREADS + slot * THREAD_ENTRY;
    if u32_at(r, at) == pid {
        sq::set_u32(r, at + 8, thread::NOT_IN_USE);
        sq::set_u32(r, at, 0);
    }
    let rc = u32_at(r, E_REFCOUNT).wrapping_sub(1);
    sq::set_u32(r, E_REFCOUNT, rc);
    mutex_unlock(region, E_MUTEX);
}

/// Mark this process's slot ACTIVE (inside the library) or OUT.
pub fn set_state(region: &mut Region, slot: usize, state: u32) {
    sq::set_u32(region.bytes_mut(), E_THREADS + slot * THREAD_ENTRY + 8, state);
}

pub fn set_panic(region: &mut Region) {
    sq::set_u32(region.bytes_mut(), E_PANIC, 1);
}

/// Thread slots in use: (slot, pid, state).
pub fn threads(r: &[u8]) -> Vec<(usize, u32, u32)> {
    (0..MAX_THREADS)
        .filter_map(|i| {
            let at = E_THREADS + i * THREAD_ENTRY;
            let st = u32_at(r, at + 8);
            (st != thread::NOT_IN_USE).then(|| (i, u32_at(r, at), st))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(version: (u32, u32, u32)) -> (tempfile::TempDir, Region) {
        let d = tempfile::tempdir().unwrap();
        let mut r = Region::create(&d.path().join("__db.001"), SIZE).unwrap();
        init(&mut r, version, &[(SIZE as u32, 1, REGION_ENV)]);
        (d, r)
    }

    #[test]
    fn joining_checks_magic_version_and_panic_like_db4() {
        let (_d, mut r) = header((4, 4, 20));
        assert_eq!(check(r.bytes(), (4, 4)), Ok(()));
        assert_eq!(check(r.bytes(), (4, 3)), Err(EnvError::VersionMismatch(4, 3, 4, 4)));
        set_panic(&mut r);
        assert_eq!(
            check(r.bytes(), (4, 4)).unwrap_err().to_string(),
            "PANIC: fatal region error detected; run recovery"
        );
        let (_d, r) = header((0, 0, 0));
        assert_eq!(check(r.bytes(), (4, 4)), Err(EnvError::ZeroVersion));
        assert_eq!(check(&r.bytes()[..100], (4, 4)), Err(EnvError::CannotJoin), "short file");
        let zero = vec![0u8; SIZE];
        assert_eq!(check(&zero, (4, 4)), Err(EnvError::CannotJoin), "no magic yet");
    }

    #[test]
    fn attach_gives_up_on_a_header_that_never_appears() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("__db.001");
        std::fs::write(&p, vec![0u8; SIZE]).unwrap();
        assert_eq!(attach(&p, (4, 4)).err(), Some(EnvError::CannotJoin));
        std::fs::write(&p, b"").unwrap();
        assert_eq!(attach(&p, (4, 4)).err(), Some(EnvError::CannotJoin), "an empty file is never mapped");
    }

    #[test]
    fn thread_slots_register_and_leak_like_killed_processes() {
        let (_d, mut r) = header((4, 4, 20));
        let a = register(&mut r, 111).unwrap();
        let b = register(&mut r, 222).unwrap();
        assert_ne!(a, b);
        set_state(&mut r, a, thread::ACTIVE);
        unregister(&mut r, b, 222);
        assert_eq!(threads(r.bytes()), vec![(a, 111, thread::ACTIVE)]);
        assert_eq!(u32_at(r.bytes(), E_REFCOUNT), 1, "the unregistered process dropped its reference");
    }
}
