//! The fault model.
//!
//! Injected today:
//! - **SIGKILL at a random time** (uniform or exponential delay after the cycle starts), per worker with a
//!   configurable probability; at least one writer is killed every faulty cycle. The last crash point the
//!   worker passed is recorded from its breadcrumb, so a random kill can be turned into a replayable one.
//! - **SIGKILL at a crash point**: a writer armed for the N-th hit of a named point stops itself there
//!   (SIGSTOP) and the scheduler SIGKILLs it — an exact, replayable kill.
//!
//! What each backend claims to survive (its `Promises`): sqlite is atomic and durable — after any kill, every
//! acknowledged commit is present, the in-flight transaction is all-or-nothing, every index equals the one
//! regenerated from Packages, and a fresh process can open, read and write.
//!
//! - **SIGINT/SIGTERM** (the worker finishes its operation and closes, as rpm does on Ctrl-C).
//! - **Stale pages** in shared region files (`stale.rs`): a page snapshotted and written back later, as a lost
//!   write-back of a dirty shared mmap page looks to every process.
//! - **Memory pressure** (`memory.rs`): a memory cgroup around the workers, a balloon, and — for every engine
//!   that runs in our workers — MADV_PAGEOUT and mlock of the shared region mappings (`regions.rs`), driven
//!   from the crash-point hook and measured, not assumed.
//!
//! Per cycle these sit behind the scheduler's `CycleFault` trait (`scheduler/faults.rs`). Every crash point a
//! worker passes also takes a ticket (`schedule.rs`): the interleaving is recorded, and a replay follows it.
//!
//! - **Power loss** ([`powerloss`]): a process kill never loses what the kernel already has in its page cache,
//!   so fsync bugs only a power cut shows need their own fault: a cycle's file operations are recorded through
//!   a FUSE filesystem and many crash images are judged against each engine's power-loss promise; the model
//!   is in that module.

pub mod crashpoint;
pub mod memory;
pub mod plan;
pub mod powerloss;
pub mod regions;
pub mod schedule;
pub mod stale;
