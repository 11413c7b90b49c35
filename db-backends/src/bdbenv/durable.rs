//! What survives `rm __db.*`: the data files read alone, without the buffer cache's pages laid over them.
//!
//! Why: the offline check lays the shared cache over the data files, because that is what the next process
//! joining the environment sees. But the cache is not durable — recovery (`rm __db.*` + rebuilddb) or a
//! reboot throws it away — so an acknowledged commit that only the cache holds looks present to that check
//! and is lost to the user. The harness compares the oracle on this read with the oracle on the overlaid one
//! and reports the difference as its own finding (a commit held only in the cache).

use super::check::salvage;
use super::data_files;
use super::datafile::PageImage;
use crate::backend::BackendError;
use crate::rpmdb::{Finding, Snapshot};
use std::path::Path;

/// The data files alone, salvaged into a snapshot (damaged pages become findings, never an error). Only a
/// missing Packages file is an `Err`.
pub fn data_files_alone(dir: &Path) -> Result<(Vec<Finding>, Snapshot), BackendError> {
    let packages = dir.join("Packages");
    if !packages.exists() {
        return Err(BackendError::Io {
            path: packages,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no Packages file in this directory"),
        });
    }
    let mut img =
        PageImage { files: data_files().iter().map(|n| std::fs::read(dir.join(n)).unwrap_or_default()).collect() };
    let mut findings = Vec::new();
    let snap = salvage(&mut img, &mut findings);
    Ok((findings, snap))
}
