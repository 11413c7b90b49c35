//! `libdb`: the real Berkeley DB 5.3 (Debian's libdb-5.3), configured as rpm 4.16 used it — a shared
//! environment with Concurrent Data Store locking and a buffer cache (`DB_CREATE | DB_INIT_CDB |
//! DB_INIT_MPOOL`), a thread count and rpm's is_alive callback, failchk after opening and before every write
//! cursor, Packages as a hash database keyed by header number and every index as a btree holding rpm's
//! packed (header number, tag index) sets.
//!
//! Why: our `bdbenv` re-creates db4's environment so that we can say how it fails; this target runs the real
//! library under the same faults (SIGKILL, stale pages of the real `__db.00N` files) so the two can be
//! compared cycle by cycle with the same seeds.
//!
//! Modules: `ffi` (the only unsafe: our C shim `shim.c` and safe handles), `engine` (the backend: the
//! rpmdb layer's `Store` over BDB cursors, crash points, recovery), `offline` (judging a directory without
//! joining its environment: data-file copies read in a child under a deadline, `db5.3_verify`,
//! `db5.3_stat -N -CA` under `timeout -s KILL`).
//!
//! Built only with the `libdb` cargo feature (on by default) where libdb5.3-dev is installed (see build.rs).
//! Without it the backend exists by name and every operation says it was not built in, and how to fix that.

#[cfg(libdb_shim)]
mod engine;
#[cfg(libdb_shim)]
pub mod ffi;
#[cfg(libdb_shim)]
pub mod offline;

#[cfg(libdb_shim)]
pub use engine::*;
#[cfg(libdb_shim)]
pub use offline::check;

use std::path::Path;

/// rpm 4.16's transaction lock, held for a whole transaction (not removed by `rm __db.*`).
pub const TXN_LOCK_FILE: &str = crate::sqlite::LOCK_FILE;
/// rpm ≥ 4.12 serialises environment open/close with an fcntl lock on this file.
pub const ENV_LOCK_FILE: &str = ".dbenv.lock";
/// The external tools the forensics use (Debian package db5.3-util).
pub const DB_STAT: &str = "db5.3_stat";
pub const DB_VERIFY: &str = "db5.3_verify";

/// Whether this build has the real library.
pub const BUILT: bool = cfg!(libdb_shim);

/// The region files of an environment in `dir` (`__db.001`, `__db.002`, …), sorted.
pub fn region_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                        n.strip_prefix("__db.").is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// rpm's recovery for its environment (no logs): `rm __db.*`. Data files are untouched.
pub fn remove_regions(dir: &Path) -> std::io::Result<()> {
    for p in region_files(dir) {
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Whether an external tool is on PATH (the forensics skip, with a reason, when it is not).
pub fn tool_available(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
}

#[cfg(not(libdb_shim))]
mod disabled {
    use crate::backend::{Backend, BackendError, OpenMode};
    use crate::rpmdb::{Finding, Snapshot};
    use std::path::Path;

    fn not_built() -> BackendError {
        BackendError::Other(
            "this dbtorture was built without the libdb backend: install Berkeley DB 5.3's headers \
             (apt-get install libdb5.3-dev, or ci/deps.sh) and rebuild"
                .into(),
        )
    }

    pub fn open(_dir: &Path, _mode: OpenMode) -> Result<Box<dyn Backend>, BackendError> {
        Err(not_built())
    }

    pub fn check(_dir: &Path) -> Result<(Vec<Finding>, Option<Snapshot>), BackendError> {
        Err(not_built())
    }

    pub fn remove_index_key(_dir: &Path, _index: crate::rpmdb::IndexTag, _key: &[u8]) -> Result<bool, BackendError> {
        Err(not_built())
    }

    pub fn hold(_dir: &Path, _write: bool) -> Result<std::convert::Infallible, BackendError> {
        Err(not_built())
    }
}
#[cfg(not(libdb_shim))]
pub use disabled::*;
