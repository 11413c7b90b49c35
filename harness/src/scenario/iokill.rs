//! `[io_kill]`: kill points (or injected errors) at the cycle's N-th write, fsync or rename, for any engine.
//!
//! Why a section of its own: crash points exist only where we can place them — in our engines and around
//! libdb's calls; the real `rpm` passes none. File operations, seen through the power-loss recorder, are enumerable kill points for every engine
//! alike. The same counting serves errors in the middle of a transaction (ENOSPC, EIO, a short write).

use dbtorture_reports::IoOp;
use serde::Deserialize;

/// What happens at the armed operation. The error actions reach the engine (its error goes to the worker);
/// `scheduler/ioerror.rs` judges them: a worker that failed with the engine's error for the injection is
/// not a finding, its transaction is judged all-or-nothing like one in flight at a kill, the database must
/// verify clean and open without recovery. Judged only for the backends whose rules say what their engine
/// does (`dbtorture_backends::ioerror`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum IoAction {
    /// Hold the process there (the operation not done) and SIGKILL it.
    Kill,
    /// The operation fails with EIO.
    Eio,
    /// The operation fails with ENOSPC.
    Enospc,
    /// A write writes only its first half, rounded down to a 512-byte sector (other operations: EIO).
    Short,
    /// A seeded one of eio, enospc and short, each cycle.
    Errors,
}

/// How the armed ordinal is chosen each cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum IoMode {
    /// Cycle after cycle: every op kind of `ops` at ordinals 1..=first, in turn.
    Sweep,
    /// A seeded op kind and ordinal in 1..=first.
    Random,
}

/// `[io_kill]`: kill the cycle's processes at their N-th write, fsync or rename (through the power-loss
/// recorder), for any engine.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct IoKill {
    /// The operation kinds to arm: "write", "fsync", "rename".
    #[schemars(with = "Vec<String>", length(min = 1))]
    pub ops: Vec<IoOp>,
    /// Ordinals 1..=first of each op kind.
    #[schemars(range(min = 1, max = 1_000_000))]
    pub first: u64,
    /// "sweep" (every kind at 1..=first, cycle after cycle) or "random" (a seeded kind and ordinal).
    pub mode: IoMode,
    /// What happens at the armed operation: "kill", or an injected error — "eio", "enospc", "short" or
    /// "errors" (a seeded one of the three each cycle); errors only on backends whose engine's reaction is
    /// known (sqlite).
    pub action: IoAction,
}

impl Default for IoKill {
    fn default() -> Self {
        IoKill { ops: vec![IoOp::Write], first: 10, mode: IoMode::Sweep, action: IoAction::Kill }
    }
}
