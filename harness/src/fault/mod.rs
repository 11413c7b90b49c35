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
//! Out of scope here (later issues): stale pages in shared regions, memory pressure, SIGINT/SIGTERM, power
//! loss (a process kill never loses what the kernel already has in its page cache, so fsync bugs that only a
//! power cut shows are not found by this fault model).

pub mod crashpoint;
pub mod memory;
pub mod plan;
pub mod stale;
