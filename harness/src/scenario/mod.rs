//! Scenarios: what to run, as data (TOML). Validated at load time: unknown keys are errors, every error names
//! the file, the field and what was expected, and limits are range-checked.

use dbtorture_backends::BackendKind;
use dbtorture_reports::Outcome;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: field `{field}`: {message}")]
    Field { path: PathBuf, field: String, message: String },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The scenario's name, in reports.
    pub name: String,
    /// One line for `dbtorture list`.
    #[serde(default)]
    pub description: String,
    /// The run's seed (`--seed` overrides it): packages, transactions and kill plans follow from it.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Cycles per backend (ignored when `duration` is given).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub cycles: Option<u64>,
    /// Run for this long instead, e.g. "60s", "5m".
    #[serde(default)]
    pub duration: Option<String>,
    /// Cycles per epoch: every epoch starts from a freshly prepared database (seeded by seed and epoch), so
    /// epochs are independent. That is what lets `--shard I/N` split a run and `merge` put it back together
    /// exactly, and it bounds how far a long soak drifts from a known state.
    #[serde(default = "default_epoch")]
    #[schemars(range(min = 1))]
    pub epoch: u64,
    /// The backends to run, each cycle in turn: sqlite, bdbenv, libdb, rpm.
    #[schemars(length(min = 1))]
    pub backends: Vec<String>,
    /// `[workload]`: the packages and the processes of each cycle.
    #[serde(default)]
    pub workload: Workload,
    /// `[kill]`: how and when workers are killed.
    #[serde(default)]
    pub kill: Kill,
    /// Lost write-back of a shared page: snapshot a region file, restore one changed page later.
    #[serde(default)]
    pub stale_page: Option<StalePage>,
    /// Memory pressure around the workers.
    #[serde(default)]
    pub memory: Option<Memory>,
    /// `[timeouts]`: when a worker or the probe counts as hung.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Which cycles keep a bundle (pre/, post/, inspect.json, bundle.json) under `run --out`.
    #[serde(default)]
    pub bundles: BundlePolicy,
    /// Record every cycle's file operations and judge the crash images a power cut would leave.
    #[serde(default)]
    pub power_loss: Option<PowerLoss>,
    /// Kill points (or injected errors) at the cycle's N-th write, fsync or rename, through the recorder.
    #[serde(default)]
    pub io_kill: Option<IoKill>,
    /// Real rpm as a second opinion on the indexes after every Nth cycle (`[oracle] rpm_every = N`).
    #[serde(default)]
    pub oracle: Option<OracleKeys>,
    /// backend → outcomes this scenario allows for it.
    pub expect: BTreeMap<String, Vec<String>>,
    /// Outcomes that depend on what happened: per backend and shape of the cycle's faults (`when.rs`).
    #[serde(default)]
    pub expect_when: Vec<when::WhenRule>,
    /// Where the scenario was loaded from (not a TOML key).
    #[serde(skip)]
    pub source: PathBuf,
    /// The TOML text it was parsed from (not a key): what a bundle records, even when no file holds it.
    #[serde(skip)]
    pub text: String,
}

fn default_seed() -> u64 {
    1
}

fn default_epoch() -> u64 {
    50
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Workload {
    /// Distinct package names in the pool.
    #[schemars(range(min = 1, max = 100_000))]
    pub packages: u32,
    /// Versions (EVRs) built per name.
    #[schemars(range(min = 1, max = 50))]
    pub versions: u32,
    /// Mean files per package (heavy-tailed, like a distribution: Fedora ~140).
    #[schemars(range(max = 100_000))]
    pub files_mean: u32,
    /// Packages installed before the first cycle, as a fraction of names (0.0–1.0).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub initial_fraction: f64,
    /// Writer processes per cycle (at least one writer or reader).
    #[schemars(range(max = 64))]
    pub writers: u32,
    /// Reader processes per cycle.
    #[schemars(range(max = 64))]
    pub readers: u32,
    /// Transactions each writer attempts per cycle.
    #[schemars(range(max = 1_000_000))]
    pub txns_per_writer: u32,
    /// Queries each reader runs per cycle.
    pub queries_per_reader: u32,
    /// Instead of writers and readers, each cycle runs `--rebuilddb` from the scenario's backend into this
    /// backend (a conversion) and kills it; the database must be either the whole original or the whole
    /// converted one.
    pub convert_to: Option<String>,
    /// Who converts: dbtorture's own rebuilddb (default), or the real `rpmdb --rebuilddb` (libdb → sqlite).
    pub converter: Converter,
}

/// Who runs a conversion cycle's `--rebuilddb`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Converter {
    /// `dbtorture_backends::rebuild` (any backend into any other).
    #[default]
    Dbtorture,
    /// The real rpm 4.18: `rpmdb --define '_db_backend sqlite' --rebuilddb` of a Berkeley DB rpmdb (libdb).
    Rpm,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            packages: 40,
            versions: 3,
            files_mean: 12,
            initial_fraction: 0.5,
            writers: 2,
            readers: 1,
            txns_per_writer: 8,
            queries_per_reader: 200,
            convert_to: None,
            converter: Converter::Dbtorture,
        }
    }
}

/// Which cycles keep a forensic bundle. A reproduction scenario (seed 000's lost write) allows every outcome
/// it produces, so "only unexpected outcomes" would leave the developer no evidence; it asks for `findings`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BundlePolicy {
    /// Cycles whose outcome the scenario does not allow.
    #[default]
    Unexpected,
    /// Every cycle with a finding (or an unexpected outcome).
    Findings,
    /// No bundles.
    None,
}

impl BundlePolicy {
    /// Whether a cycle with this verdict keeps its bundle.
    pub fn keeps(self, expected: bool, has_findings: bool) -> bool {
        match self {
            BundlePolicy::Unexpected => !expected,
            BundlePolicy::Findings => !expected || has_findings,
            BundlePolicy::None => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum KillMode {
    /// No faults: a baseline.
    None,
    /// SIGKILL at a random time after the cycle starts.
    RandomTime,
    /// Stop a writer exactly at the N-th hit of a crash point, then SIGKILL it.
    CrashPoint,
    /// Each cycle picks random-time or crash-point.
    Mixed,
    /// Systematic: cycle after cycle, arm every crash point of the backend for its 1st, 2nd, … hit (up to
    /// `hit_max`), so every point is visited; the summary has the coverage table.
    Sweep,
}

/// Which signal a random-time kill sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum KillSignal {
    /// SIGKILL: the worker dies at once.
    Sigkill,
    /// Ctrl-C: the worker finishes its current operation, closes cleanly and exits.
    Sigint,
    /// SIGTERM: like SIGINT, the worker finishes its operation and exits.
    Sigterm,
    /// Each kill picks one of the three.
    Mixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Distribution {
    /// Uniform in delay_ms_min..delay_ms_max.
    Uniform,
    /// delay_ms_min plus an exponential delay of mean delay_ms_max - delay_ms_min.
    Exponential,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Memory {
    /// Memory cgroup limit for the workers (v1 memory.limit_in_bytes, v2 memory.max), in MiB.
    #[schemars(range(min = 8, max = 1_048_576))]
    pub limit_mb: u64,
    /// v2 only: memory.high, in MiB (reclaim starts here).
    pub high_mb: Option<u64>,
    /// A balloon process in the same cgroup, holding this many MiB during each cycle.
    pub balloon_mb: u64,
    /// Workers MADV_PAGEOUT their shared region mappings every 16 lock-table calls.
    pub pageout: bool,
}

impl Default for Memory {
    fn default() -> Self {
        Memory { limit_mb: 96, high_mb: None, balloon_mb: 0, pageout: true }
    }
}

/// When the stale-page injector takes its snapshot and when it writes a stale page back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StalePolicy {
    /// At random times (snapshot_ms_max, restore_after_ms_max).
    Random,
    /// When a writer reaches crash point `snapshot_at`, then `restore_at` (the writer is paused at both).
    Points,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StalePage {
    /// The file whose page goes stale, in the database directory (e.g. "__db.003", the lock region).
    pub file: String,
    /// When the snapshot is taken and the stale page written back.
    pub policy: StalePolicy,
    /// Chance per cycle.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub probability: f64,
    /// Random policy: the snapshot is taken within this many ms of the cycle's start.
    pub snapshot_ms_max: u64,
    /// Random policy: the stale page is written back within this many ms after the snapshot.
    pub restore_after_ms_max: u64,
    /// Points policy: the crash point where the snapshot is taken.
    pub snapshot_at: String,
    /// Points policy: the crash point where the stale page is written back.
    pub restore_at: String,
    /// The hit of each point is chosen in 1..=hit_max.
    #[schemars(range(min = 1, max = 1_000_000))]
    pub hit_max: u32,
    /// mlock() the BDB-style region mappings in every worker (seed 000's experiment); recorded in the report.
    pub mlock: bool,
}

impl Default for StalePage {
    fn default() -> Self {
        StalePage {
            file: "__db.003".into(),
            policy: StalePolicy::Random,
            probability: 1.0,
            snapshot_ms_max: 10,
            restore_after_ms_max: 10,
            snapshot_at: "bdbenv.lock.get.after".into(),
            restore_at: "bdbenv.lock.put.after".into(),
            hit_max: 5,
            mlock: false,
        }
    }
}

/// `[oracle]`: see `scheduler::rpmoracle`.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OracleKeys {
    /// After every Nth cycle (1: every cycle), rpm regenerates the indexes from the same Packages and every
    /// index table is compared row by row with what is stored. Costs one `rpmdb --rebuilddb` of a copy.
    #[schemars(range(min = 1, max = 1_000_000))]
    pub rpm_every: u64,
}

/// `[power_loss]`: see `fault::powerloss`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PowerLoss {
    /// Seeded random cuts per recorded cycle, besides one at every sync boundary.
    pub images_random: u32,
    /// At most this many images per recorded cycle (sync boundaries thinned evenly beyond it).
    #[schemars(range(min = 1, max = 1_000_000))]
    pub images_max: u32,
}

impl Default for PowerLoss {
    fn default() -> Self {
        PowerLoss { images_random: 20, images_max: 100 }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Kill {
    /// How workers are killed.
    pub mode: KillMode,
    /// Chance that a given worker gets a random-time kill in a cycle (at least one writer always does).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub probability: f64,
    /// How random-time kill delays are drawn.
    pub distribution: Distribution,
    /// Uniform: the range; exponential: min is an offset and (max - min) the mean, capped at 10× the mean.
    pub delay_ms_min: u64,
    /// Uniform: the end of the range; exponential: min + the mean delay (ms).
    pub delay_ms_max: u64,
    /// Crash-point mode: the point (default: random among the backend's points).
    pub point: Option<String>,
    /// Crash-point mode: the hit is chosen in 1..=hit_max.
    #[schemars(range(min = 1, max = 1_000_000))]
    pub hit_max: u32,
    /// Kill readers too.
    pub readers: bool,
    /// The signal of random-time kills (crash-point and timeout kills are always SIGKILL).
    pub signal: KillSignal,
}

impl Default for Kill {
    fn default() -> Self {
        Kill {
            mode: KillMode::RandomTime,
            probability: 0.7,
            distribution: Distribution::Uniform,
            delay_ms_min: 0,
            delay_ms_max: 40,
            point: None,
            hit_max: 20,
            readers: true,
            signal: KillSignal::Sigkill,
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Workers still running after this long are killed (a hang) once they go a quarter of it without
    /// progress — no crash point passed, nothing said on their pipes — and at 3× it regardless.
    #[schemars(range(min = 100, max = 86_400_000))]
    pub cycle_ms: u64,
    /// The operability probe must open, read and write within this.
    #[schemars(range(min = 100, max = 86_400_000))]
    pub probe_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { cycle_ms: 30_000, probe_ms: 15_000 }
    }
}

/// Parse "500ms", "60s", "5m", "1h", or plain seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, mul_ms) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3_600_000)
    } else {
        (s, 1000)
    };
    let v: f64 = num.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| Duration::from_millis((v * mul_ms as f64) as u64))
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read { path: path.into(), source })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        let de = toml::Deserializer::parse(text)
            .map_err(|e| ScenarioError::Syntax { path: path.into(), message: e.to_string() })?;
        let mut sc: Scenario = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            let at = inner.span().map(|sp| line_col(text, sp.start)).map(|(l, c)| format!(" (line {l}, column {c})"));
            ScenarioError::Field {
                path: path.into(),
                field: if field == "." { "(top level)".into() } else { field },
                message: format!("{}{}", inner.message(), at.unwrap_or_default()),
            }
        })?;
        sc.source = path.into();
        sc.text = text.to_string();
        sc.validate()?;
        Ok(sc)
    }

    fn field_err(&self, field: &str, message: impl Into<String>) -> ScenarioError {
        ScenarioError::Field { path: self.source.clone(), field: field.into(), message: message.into() }
    }

    pub fn backend_kinds(&self) -> Vec<BackendKind> {
        self.backends.iter().filter_map(|b| BackendKind::from_name(b)).collect()
    }

    pub fn convert_to(&self) -> Option<BackendKind> {
        self.workload.convert_to.as_deref().and_then(BackendKind::from_name)
    }

    pub fn expected(&self, b: BackendKind) -> Vec<Outcome> {
        self.expect.get(b.name()).map(|v| v.iter().filter_map(|o| Outcome::from_name(o)).collect()).unwrap_or_default()
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

fn backend_names() -> String {
    BackendKind::ALL.iter().map(|b| b.name()).collect::<Vec<_>>().join(", ")
}

mod iokill;
pub mod reference;
mod validate;
pub mod when;
pub use iokill::{IoAction, IoKill, IoMode};
pub use validate::{MAX_POOL_FILES, MAX_POOL_PACKAGES};

#[cfg(test)]
mod tests;
