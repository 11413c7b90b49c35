//! The environment's region files: their names, creating them (the header last), removing them
//! (`rm __db.*`), db_recover, and rpm's is_alive test of the processes that hold entries in them.

use super::mmap::Region;
use super::{Profile, env, lock, mpool};
use crate::backend::BackendError;
use std::path::Path;

pub const ENV_FILE: &str = "__db.001";
pub const MPOOL_FILE: &str = "__db.002";
pub const LOCK_FILE: &str = "__db.003";
/// rpm 4.4–4.8's transaction lock file (removed by `rm __db*` too).
pub const TXN_LOCK_FILE: &str = "__db.000";
/// rpm ≥ 4.12 serialises environment open/close with an fcntl lock on this file.
pub const ENV_LOCK_FILE: &str = ".dbenv.lock";
pub const MPOOL_FRAMES: usize = 256;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackendError + '_ {
    move |source| BackendError::Io { path: path.to_path_buf(), source }
}

/// rpm's is_alive: the pid is ours, or `kill(pid, 0)` succeeds or fails with EPERM. One addition: a zombie
/// (dead, not yet reaped by its parent) counts as dead — rpm's parent shell reaps at once, our scheduler a few
/// milliseconds later, and that window must not make a dead process's locks look alive.
pub fn is_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    let alive = match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    };
    alive && !is_zombie(pid)
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next()))
        .is_some_and(|state| state == 'Z' || state == 'X')
}

/// Create the three region files, the environment header last (its magic last of all).
pub(super) fn create_env(dir: &Path, profile: Profile) -> Result<(), BackendError> {
    let sizes = lock::Sizes::default();
    let lsize = lock::region_size(&sizes);
    let msize = mpool::region_size(MPOOL_FRAMES);
    let mut m = Region::create(&dir.join(MPOOL_FILE), msize).map_err(io(dir))?;
    mpool::init(&mut m, MPOOL_FRAMES);
    let mut l = Region::create(&dir.join(LOCK_FILE), lsize).map_err(io(dir))?;
    lock::init(&mut l, &sizes).map_err(|e| BackendError::Env(format!("rpmdb: {e}")))?;
    let mut e = Region::create(&dir.join(ENV_FILE), env::SIZE).map_err(io(dir))?;
    env::init(
        &mut e,
        profile.version(),
        &[
            (env::SIZE as u32, 1, env::REGION_ENV),
            (msize as u32, 2, env::REGION_MPOOL),
            (lsize as u32, 3, env::REGION_LOCK),
        ],
    );
    Ok(())
}

/// Remove the region files (`rm __db.*`).
pub fn remove_regions(dir: &Path) -> std::io::Result<()> {
    for f in [ENV_FILE, MPOOL_FILE, LOCK_FILE, TXN_LOCK_FILE] {
        match std::fs::remove_file(dir.join(f)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// db_recover for rpm's environment (no logs): set panic in the old environment so processes still
/// attached stop, then remove the region files. Data files are untouched.
pub fn db_recover(dir: &Path) -> std::io::Result<()> {
    if let Ok(mut e) = Region::map(&dir.join(ENV_FILE))
        && e.len() >= env::SIZE
    {
        env::set_panic(&mut e);
    }
    remove_regions(dir)
}
