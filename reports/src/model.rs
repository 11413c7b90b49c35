//! The serializable schema of a run: outcomes, findings, events, summary. Versioned; kebab-case.
//!
//! Why a separate crate: reports are read by CI systems and people long after the run; the schema must not
//! change because the harness's internals did. The harness converts its internal messages into these types
//! at the edge.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::ioerror::{IoErrorEffect, IoErrorKind, IoErrorRecord, IoErrorTally};
pub use crate::kill::{IoOp, KillTrigger};
pub use crate::tally::ImageTally;

/// Version of summary.json and events.jsonl. 2: environment, shards, per-backend totals with failure rates,
/// failures, memory and bundle events, coverage carried by cycle-end events.
pub const SCHEMA_VERSION: u32 = 2;

/// The outcome of one cycle (DESIGN.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Every check passed without any recovery procedure.
    Clean,
    /// Checks failed, a recovery procedure ran, and afterwards every check passed.
    Recovered,
    /// Locks of dead processes remain and block or confuse live ones.
    StaleLocks,
    /// Indexes disagree with Packages, a transaction is applied in part, or storage is damaged.
    Inconsistent,
    /// An acknowledged commit is missing.
    LostCommit,
    /// The shared environment (lock region) is damaged.
    CorruptEnv,
    /// An operation did not finish within its timeout.
    Hang,
    /// The system under test died on its own: a worker died of a signal nobody sent, panicked, or exited
    /// with an error it never reported (a bug in the engine or its caller, not in the harness).
    Crashed,
    /// The harness itself failed (a bug in dbtorture, or the machine).
    HarnessError,
}

impl Outcome {
    pub const ALL: [Outcome; 9] = [
        Outcome::Clean,
        Outcome::Recovered,
        Outcome::StaleLocks,
        Outcome::Inconsistent,
        Outcome::LostCommit,
        Outcome::CorruptEnv,
        Outcome::Hang,
        Outcome::Crashed,
        Outcome::HarnessError,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Clean => "clean",
            Outcome::Recovered => "recovered",
            Outcome::StaleLocks => "stale-locks",
            Outcome::Inconsistent => "inconsistent",
            Outcome::LostCommit => "lost-commit",
            Outcome::CorruptEnv => "corrupt-env",
            Outcome::Hang => "hang",
            Outcome::Crashed => "crashed",
            Outcome::HarnessError => "harness-error",
        }
    }

    pub fn from_name(s: &str) -> Option<Outcome> {
        Outcome::ALL.iter().copied().find(|o| o.name() == s)
    }

    /// Severity for picking a cycle's outcome from several signals (higher wins).
    pub fn severity(self) -> u8 {
        match self {
            Outcome::Clean => 0,
            Outcome::Recovered => 1,
            Outcome::StaleLocks => 2,
            Outcome::Inconsistent => 3,
            Outcome::CorruptEnv => 4,
            Outcome::LostCommit => 5,
            Outcome::Hang => 6,
            Outcome::Crashed => 7,
            Outcome::HarnessError => 8,
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A finding as reports carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FindingRecord {
    /// Kind, e.g. "missing-index-entry".
    pub kind: String,
    /// One line for humans.
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// The full typed finding.
    pub detail: serde_json::Value,
}

/// A kill the scheduler delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct KillRecord {
    pub worker: u32,
    pub role: Role,
    pub signal: String,
    /// Milliseconds after the cycle started.
    pub at_ms: u64,
    /// What made the scheduler send it.
    pub trigger: KillTrigger,
    /// The last crash point the worker passed, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_point: Option<String>,
    /// Which hit of `last_point` that was: the kill can be replayed as a kill at that point and hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_hit: Option<u64>,
    /// Number of crash points the worker passed in total.
    pub points_passed: u64,
}

/// What a child process of a cycle does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Role {
    /// Runs transactions.
    Writer,
    /// Runs queries.
    Reader,
    /// Runs a conversion (`--rebuilddb` from one backend into another, or the real rpm's).
    Rebuilddb,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Writer => "writer",
            Role::Reader => "reader",
            Role::Rebuilddb => "rebuilddb",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An injected fault other than a kill, or what the harness measured of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FaultKind {
    /// A page of a region file snapshotted and written back stale.
    StalePage,
    /// The memory cgroup and balloon around the workers.
    Memory,
    /// Region mappings mlock()ed in the workers (bytes measured per worker).
    Mlock,
    /// MADV_PAGEOUT of the region mappings in the workers (calls measured per worker).
    Pageout,
    /// A recorded cycle's crash images judged (how many, their outcomes, the throughput).
    PowerLoss,
    /// One crash image whose outcome the scenario does not allow: the cut, the model's knobs, the findings.
    PowerLossImage,
    /// A real power cut: the qemu guest killed (SIGKILL) while its writers committed, its SD card then
    /// journal-replayed by e2fsck and judged (`dbtorture qemu --power-cut`).
    PowerCut,
}

/// What a (possibly killed) conversion by the real rpm left in the database directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ConversionState {
    /// The original Berkeley DB database, and rpm (bdb_ro) reads every package of it.
    Original,
    /// The converted sqlite database, holding exactly the original's packages.
    Converted,
    /// No whole database in place: none at all, or one rpm does not read every package of.
    Neither,
    /// Files of both databases in the directory.
    Mix,
}

impl ConversionState {
    pub fn name(self) -> &'static str {
        match self {
            ConversionState::Original => "original",
            ConversionState::Converted => "converted",
            ConversionState::Neither => "neither",
            ConversionState::Mix => "mix",
        }
    }
}

/// Conversion cycles of the real rpm by state, killed or not, and how many reruns did not finish whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConversionTotals {
    /// state → conversions killed before they ended
    pub killed: BTreeMap<String, u64>,
    /// state → conversions that ran to their end
    pub finished: BTreeMap<String, u64>,
    pub rerun_failed: u64,
}

/// How one child process of a cycle ended, decided in one place (the scheduler's verdict module).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum WorkerEnd {
    /// Ran to its end and exited 0.
    Completed,
    /// Was sent SIGINT/SIGTERM by the plan, finished its operation and stopped (a planned kill).
    Interrupted { signal: String },
    /// Died of the signal the scheduler sent (a planned kill, a timeout, an interrupt).
    Killed { signal: String, trigger: KillTrigger },
    /// SIGKILLed by the kernel's OOM killer under the scenario's memory pressure.
    OomKilled,
    /// Exited non-zero: `reported` when it sent its error up the pipe first (then that error is a finding).
    Failed { code: i32, reported: bool },
    /// Its code panicked, with the message.
    Panicked { message: String },
    /// Died of a signal nobody sent (the system under test crashed).
    Crashed { signal: String, core_dumped: bool },
    /// A foreign engine died of a memory fault after an injected stale page of its region: the fault's
    /// effect, not a bug of the engine.
    FaultEffect { signal: String },
    /// The harness lost the child (its report pipe broke, it was orphaned, or it was reaped by someone else).
    Lost { detail: String },
}

/// Why a cycle never ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum LostOutcome {
    GuestKernelPanic,
    GuestKernelOops,
    GuestTimeout,
    GuestLost,
    /// The guest's run ended with an error of its own before finishing.
    GuestError,
}

impl LostOutcome {
    pub fn name(self) -> &'static str {
        match self {
            LostOutcome::GuestKernelPanic => "guest-kernel-panic",
            LostOutcome::GuestKernelOops => "guest-kernel-oops",
            LostOutcome::GuestTimeout => "guest-timeout",
            LostOutcome::GuestLost => "guest-lost",
            LostOutcome::GuestError => "guest-error",
        }
    }
}

impl std::fmt::Display for LostOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One line of events.jsonl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum RunEvent {
    RunStart {
        schema: u32,
        scenario: String,
        /// sha256 of the scenario file's text.
        scenario_hash: String,
        seed: u64,
        backends: Vec<String>,
        version: String,
        environment: Environment,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shard: Option<Shard>,
        /// The command that reproduces this run.
        replay: String,
        /// Every crash point the run's backends can pass: the coverage table lists each, passed or not.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        points: Vec<String>,
    },
    CycleStart {
        cycle: u64,
        backend: String,
        seed: u64,
        plan: String,
    },
    Kill {
        cycle: u64,
        backend: String,
        kill: KillRecord,
    },
    WorkerExit {
        cycle: u64,
        backend: String,
        worker: u32,
        role: Role,
        end: WorkerEnd,
    },
    Finding {
        cycle: u64,
        backend: String,
        phase: String,
        finding: FindingRecord,
    },
    Recovery {
        cycle: u64,
        backend: String,
        procedure: String,
        ok: bool,
        detail: String,
    },
    /// An injected fault other than a kill (e.g. a stale page written back into a shared region).
    Fault {
        cycle: u64,
        backend: String,
        kind: FaultKind,
        detail: String,
    },
    /// An I/O error injected at the cycle's armed operation (`[io_kill]` eio/enospc/short) and how the
    /// engine took it.
    IoError {
        cycle: u64,
        backend: String,
        io: IoErrorRecord,
    },
    /// A message the database engine printed (e.g. failchk's "Freeing read locks for locker 0x3");
    /// `worker` is u32::MAX for the operability probe.
    EngineMessage {
        cycle: u64,
        backend: String,
        worker: u32,
        message: String,
    },
    /// Memory-pressure counters of the workers' cgroup during one cycle.
    Memory {
        cycle: u64,
        backend: String,
        limit_hits: u64,
        high: u64,
        oom_kills: u64,
        pageouts: u64,
    },
    /// A failing cycle's bundle was written; `path` is relative to the run's output directory.
    Bundle {
        cycle: u64,
        backend: String,
        path: String,
    },
    CycleEnd {
        cycle: u64,
        backend: String,
        outcome: Outcome,
        expected: bool,
        findings: usize,
        commits: u64,
        duration_ms: f64,
        /// The crash point a worker was armed at, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        armed: Option<String>,
        /// Crash point → times passed this cycle, over all workers.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        hits: BTreeMap<String, u64>,
        /// rpm index table → rows the cycle wrote to it (the entries of every package it installed or erased,
        /// net); every index table is listed, 0 included.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        index_rows: BTreeMap<String, u64>,
    },
    /// A cycle that never ended because the machine under it died (a qemu guest's kernel panicked or oopsed,
    /// or the guest was lost): counted as a cycle with that outcome (e.g. "guest-kernel-panic"), unexpected.
    /// `cycle` is None when no cycle was running (then `backend` is the last one seen).
    CycleLost {
        cycle: Option<u64>,
        backend: String,
        outcome: LostOutcome,
        detail: String,
    },
    /// A recorded cycle's crash images, tallied (power loss): the summary adds them up per backend.
    CrashImages {
        cycle: u64,
        backend: String,
        tally: ImageTally,
        elapsed_ms: f64,
        /// CPU time the judging took (this process and the children it reaped): on a shared machine the
        /// steadier figure.
        #[serde(default)]
        cpu_ms: f64,
    },
    /// A conversion cycle run by the real rpm (`[workload] converter = "rpm"`): which database was in place
    /// after it, whether it had been killed, and whether rerunning the conversion finished with every package.
    Conversion {
        cycle: u64,
        backend: String,
        state: ConversionState,
        killed: bool,
        rerun_ok: bool,
        detail: String,
    },
    RunEnd {
        cycles: u64,
        unexpected: u64,
        interrupted: bool,
        duration_s: f64,
        /// The harness itself failed mid-run (counted as one more unexpected outcome).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        harness_error: Option<String>,
    },
}

/// How one crash point was exercised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PointCoverage {
    /// Times a worker passed this point, over the run.
    #[serde(default)]
    pub hits: u64,
    /// Cycles in which a worker was armed at this point.
    pub armed: u64,
    /// Kills delivered with the worker stopped exactly here.
    pub kills: u64,
    /// outcome name → cycles
    pub outcomes: BTreeMap<String, u64>,
}

/// Where and with what a run ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Environment {
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// CPU architecture the harness was built for (x86_64, arm, …).
    pub arch: String,
    /// Memory cgroup mode found: "v2", "hybrid" (v1 with v2 at /sys/fs/cgroup/unified), "v1" or "none".
    pub cgroup: String,
    pub cpus: u32,
    pub mem_total_mb: u64,
    /// dbtorture's version (and git commit when built from a checkout).
    pub version: String,
    /// Set when the run happened inside an emulated guest (e.g. "qemu-system-arm -M raspi0").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<String>,
}

/// A slice of a run: shard `index` of `count`, split by epochs. 1-based (1 ≤ index ≤ count), as users write it
/// (`--shard 1/4` … `4/4`, the convention of nextest, Jest and Playwright), everywhere it is shown or stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Shard {
    #[schemars(range(min = 1))]
    pub index: u32,
    #[schemars(range(min = 1))]
    pub count: u32,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// One run (or shard) that went into a summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunInfo {
    pub scenario: String,
    pub scenario_hash: String,
    pub seed: u64,
    /// The backends this run ran (a subset of the scenario's with `run --backend`).
    pub backends: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    pub environment: Environment,
    pub cycles: u64,
    pub duration_s: f64,
    pub interrupted: bool,
    /// Where this run's reports came from (merge), relative to the merged output or absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub replay: String,
}

/// A failure rate: kills whose cycle ended in an outcome the scenario does not allow, per 10,000 kills, with
/// a 95% Wilson score interval (None without kills).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Rate {
    pub kills: u64,
    pub failing_kills: u64,
    pub per_10k: Option<f64>,
    pub low_per_10k: Option<f64>,
    pub high_per_10k: Option<f64>,
}

/// Totals of one backend.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BackendTotals {
    pub cycles: u64,
    pub kills: u64,
    pub commits: u64,
    pub unexpected: u64,
    /// outcome name → cycles with that outcome that the scenario does not allow
    pub unexpected_outcomes: BTreeMap<String, u64>,
    pub failure_rate: Rate,
    /// Seconds this backend's cycles took (each cycle's `duration_ms`, summed): a JUnit case's `time`.
    #[serde(default)]
    pub duration_s: f64,
}

/// One cycle whose outcome the scenario does not allow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FailureRecord {
    pub cycle: u64,
    pub backend: String,
    pub outcome: Outcome,
    /// The first findings, one line each.
    pub findings: Vec<String>,
    pub finding_count: u64,
    pub kills: Vec<KillRecord>,
    /// The bundle (relative to the report's directory), if one was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<String>,
}

/// summary.json
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    pub schema: u32,
    pub scenario: String,
    pub scenario_hash: String,
    pub seed: u64,
    pub backends: Vec<String>,
    /// The first run's environment (every run's is in `runs`).
    pub environment: Environment,
    /// The runs (shards) summarised here: one for a plain run, several after `dbtorture merge`.
    pub runs: Vec<RunInfo>,
    pub cycles: u64,
    pub kills: u64,
    pub commits: u64,
    /// backend → outcome name → count
    pub outcomes: BTreeMap<String, BTreeMap<String, u64>>,
    pub per_backend: BTreeMap<String, BackendTotals>,
    pub unexpected: u64,
    pub failure_rate: Rate,
    pub cycles_per_sec: f64,
    pub kills_per_sec: f64,
    /// Seconds of running, summed over runs.
    pub duration_s: f64,
    pub interrupted: bool,
    /// crash point → number of kills that landed at it (last point passed)
    pub kill_points: BTreeMap<String, u64>,
    /// Crash points of this run: point → times passed, cycles armed there, kills there, outcomes of those cycles.
    #[serde(default)]
    pub coverage: BTreeMap<String, PointCoverage>,
    /// rpm index table → rows the workload wrote to it over the run; 0: a table no cycle wrote.
    #[serde(default)]
    pub index_rows: BTreeMap<String, u64>,
    /// Conversion cycles of the real rpm (`[workload] converter = "rpm"`), by what they left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversions: Option<ConversionTotals>,
    /// Power loss: backend → its crash images tallied over the run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub crash_images: BTreeMap<String, ImageTally>,
    /// Injected I/O errors: backend → how the engine took them over the run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub io_errors: BTreeMap<String, IoErrorTally>,
    /// Cycles with unexpected outcomes (the first 200; `failures_omitted` more).
    pub failures: Vec<FailureRecord>,
    #[serde(default)]
    pub failures_omitted: u64,
    pub version: String,
    /// The command that reproduces this run.
    pub replay: String,
    /// The harness itself failed mid-run (the first run's error, with the run's other errors counted in
    /// `unexpected`): the run cannot be green whatever its cycles said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harness_error: Option<String>,
}
