//! rpm's lock files: an fcntl write lock on a file (`.rpm.lock`, the environment's `__db.000`), taken with
//! F_SETLKW and held as long as the file stays open — so it dies with its process, as rpm's does.
//!
//! Why one module: every backend takes rpm's transaction lock the same way, and the same guards say
//! whether a transaction is open.

use crate::backend::BackendError;
use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::path::Path;

/// Take an fcntl write lock on `path` (blocking; created if missing).
pub fn lock_file(path: &Path) -> Result<File, BackendError> {
    let io = |source| BackendError::Io { path: path.to_path_buf(), source };
    let f = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
    let fl = libc::flock { l_type: libc::F_WRLCK as _, l_whence: libc::SEEK_SET as _, l_start: 0, l_len: 0, l_pid: 0 };
    // Taking the lock is a turn (`crate::turns`): which of two processes gets it first is the order.
    crate::turns::wait();
    loop {
        match nix::fcntl::fcntl(f.as_fd(), nix::fcntl::FcntlArg::F_SETLKW(&fl)) {
            Ok(_) => {
                crate::turns::took();
                return Ok(f);
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(io(e.into())),
        }
    }
}

/// Begin a transaction: refuse on a read-only handle or inside one, else take the lock at `path`.
pub fn begin_txn(writable: bool, held: &mut Option<File>, path: &Path) -> Result<(), BackendError> {
    if !writable {
        return Err(BackendError::ReadOnly);
    }
    if held.is_some() {
        return Err(BackendError::TransactionActive);
    }
    *held = Some(lock_file(path)?);
    Ok(())
}

/// A write needs an open transaction.
pub fn in_txn(held: &Option<File>) -> Result<(), BackendError> {
    if held.is_some() { Ok(()) } else { Err(BackendError::NoTransaction) }
}
