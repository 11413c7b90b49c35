//! The serializable schema of a run: outcomes, findings, events, summary. Versioned; kebab-case.
//!
//! Why a separate crate: reports are read by CI systems and people long after the run; the schema must not
//! change because the harness's internals did. The harness converts its internal messages into these types
//! at the edge.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    /// The harness itself failed (a bug in dbtorture, or the machine).
    HarnessError,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Clean,
        Outcome::Recovered,
        Outcome::StaleLocks,
        Outcome::Inconsistent,
        Outcome::LostCommit,
        Outcome::CorruptEnv,
        Outcome::Hang,
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
            Outcome::HarnessError => 7,
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
    pub role: String,
    pub signal: String,
    /// Milliseconds after the cycle started.
    pub at_ms: u64,
    /// "time" (random-time) or "point" (stopped at an armed crash point).
    pub trigger: String,
    /// The last crash point the worker passed, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_point: Option<String>,
    /// Which hit of `last_point` that was: the kill can be replayed as a kill at that point and hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_hit: Option<u64>,
    /// Number of crash points the worker passed in total.
    pub points_passed: u64,
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
        status: String,
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
        kind: String,
        detail: String,
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
    },
    /// A cycle that never ended because the machine under it died (a qemu guest's kernel panicked or oopsed,
    /// or the guest was lost): counted as a cycle with that outcome (e.g. "guest-kernel-panic"), unexpected.
    /// `cycle` is None when no cycle was running (then `backend` is the last one seen).
    CycleLost {
        cycle: Option<u64>,
        backend: String,
        outcome: String,
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

/// A slice of a run: shard `index` of `count` (0-based), split by epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Shard {
    pub index: u32,
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
    /// Cycles with unexpected outcomes (the first 200; `failures_omitted` more).
    pub failures: Vec<FailureRecord>,
    #[serde(default)]
    pub failures_omitted: u64,
    pub version: String,
    /// The command that reproduces this run.
    pub replay: String,
}
