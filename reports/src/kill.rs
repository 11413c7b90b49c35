//! How a kill came about (`KillTrigger`) and the file operations an I/O kill point counts (`IoOp`): part of
//! the report model (`model.rs` re-exports both), in a file of their own to keep each file short.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Why the scheduler sent a kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum KillTrigger {
    /// The plan's random time came.
    Time,
    /// The worker stopped itself at its armed crash point.
    Point,
    /// The cycle's timeout passed with the worker still running.
    Timeout,
    /// The run was interrupted (SIGINT, SIGTERM, SIGHUP).
    Interrupt,
    /// The kernel's OOM killer, under the scenario's memory pressure (not sent by the scheduler).
    Oom,
    /// The worker was stopped by someone else (SIGSTOP/SIGTSTP not at an armed point) and killed there.
    Stopped,
    /// The power-loss recorder held a process at the cycle's `nth` file operation of kind `op` (before it
    /// took effect) and the scheduler killed it there: an I/O kill point, for any engine.
    IoOp { op: IoOp, nth: u64 },
}

/// A kind of file operation an I/O kill point (or an injected I/O error) counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum IoOp {
    /// A `write(2)` (one FUSE WRITE request).
    Write,
    /// `fsync`/`fdatasync` of a file or a directory.
    Fsync,
    /// `rename(2)`.
    Rename,
}

impl IoOp {
    pub const ALL: [IoOp; 3] = [IoOp::Write, IoOp::Fsync, IoOp::Rename];

    pub fn name(self) -> &'static str {
        match self {
            IoOp::Write => "write",
            IoOp::Fsync => "fsync",
            IoOp::Rename => "rename",
        }
    }

    /// Its row in the sweep's coverage table.
    pub fn point(self) -> &'static str {
        match self {
            IoOp::Write => "io:write",
            IoOp::Fsync => "io:fsync",
            IoOp::Rename => "io:rename",
        }
    }
}

impl std::fmt::Display for IoOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl KillTrigger {
    pub fn name(self) -> &'static str {
        match self {
            KillTrigger::Time => "time",
            KillTrigger::Point => "point",
            KillTrigger::Timeout => "timeout",
            KillTrigger::Interrupt => "interrupt",
            KillTrigger::Oom => "oom",
            KillTrigger::Stopped => "stopped",
            KillTrigger::IoOp { .. } => "io-op",
        }
    }
}

impl std::fmt::Display for KillTrigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KillTrigger::IoOp { op, nth } => write!(f, "io-op {op}#{nth}"),
            t => f.write_str(t.name()),
        }
    }
}
