//! `[io_kill]`: kill points (or injected errors) at the cycle's N-th write, fsync or rename, for any engine.
//!
//! Why a section of its own: crash points exist only where we can place them — in our engines and around
//! libdb's calls; the real `rpm` passes none. File operations, seen through the power-loss recorder, are enumerable kill points for every engine
//! alike. The same counting serves errors in the middle of a transaction (ENOSPC, EIO, a short write).

use dbtorture_reports::IoOp;
use serde::Deserialize;

/// What happens at the armed operation. The error actions reach the engine (its error goes to the worker,
/// which reports it as `worker-error`/`environment-error`); judging them as an expected fault — the failed
/// transaction all-or-nothing, earlier acknowledged ones kept (issue 12 item 4) — is not built yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum IoAction {
    /// Hold the process there (the operation not done) and SIGKILL it.
    Kill,
    /// The operation fails with EIO.
    Eio,
    /// The operation fails with ENOSPC.
    Enospc,
    /// A write writes only its first half (other operations: EIO).
    Short,
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
    /// What happens at the armed operation: only "kill" is accepted so far (the error actions are not judged).
    pub action: IoAction,
}

impl Default for IoKill {
    fn default() -> Self {
        IoKill { ops: vec![IoOp::Write], first: 10, mode: IoMode::Sweep, action: IoAction::Kill }
    }
}
