//! Power loss: record what a cycle did to the disk, then judge the disks a power cut would have left.
//!
//! Why: a process kill never loses what the kernel already holds in its page cache, so a missing fsync,
//! `synchronous=OFF`, a rename before its file is synced or a directory never synced are invisible to it.
//! A power cut loses everything not yet on the disk. Instead of cutting power for real per cycle, the
//! cycle's file operations are recorded once (a FUSE filesystem, so it works for the real `rpm` and libdb as
//! well as our engines) and many crash images are built from the recording under a written-down model —
//! the idea of LazyFS (recording instead of forgetting), ALICE and CrashMonkey (many states per workload).
//!
//! The model, in full in [`model`]'s doc: operations synced before the cut persist; unsynced data persists as
//! a seeded subset, torn at 512-byte sectors, in any order across files and pages; directory entries persist
//! in journal order, durable up to the last directory fsync, then a seeded prefix. Images: at every sync
//! boundary (just before and just after it, nothing volatile kept) plus N seeded random cuts.
//!
//! Judging ([`judge`]): the image is written out, "rebooted" (shared-memory regions of the BDB-style engines
//! removed), then the ordinary verifier and the oracle run against the engine's power-loss promise
//! ([`judge::promise`]): every commit acknowledged before the cut survives; the in-flight one is
//! all-or-nothing where the engine promises atomicity. A failing image is a bundle (pre/, the log up to
//! the cut, the cut with the model's choices, the image) that `dbtorture replay` rebuilds exactly.
//!
//! The same recorder holds a process at its N-th write/fsync/rename for the scheduler to kill, or answers
//! that operation with an injected error — EIO, ENOSPC, a short write ([`iogate`]; judged in
//! `scheduler/ioerror.rs`).
//!
//! What the recorder cannot see is in [`recorder`]'s doc (MAP_SHARED stores before write-back, mainly).

pub mod bench;
pub mod iogate;
pub mod judge;
pub mod model;
pub mod oplog;
mod passthrough;
pub mod recorder;
mod swapdir;
pub mod swapjudge;

pub use recorder::ack_seq;
