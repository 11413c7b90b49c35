//! A summary is a fold over events: the same code turns a live run's events, one run's `events.jsonl`, or
//! several shards' logs into `summary.json` and the timeline the HTML report draws.
//!
//! Why a fold: `dbtorture merge` must give exactly what one unsharded run gives. If the live summary and the
//! merged one came from different code, they would drift; here both are `Aggregate::push` over the events.

use crate::model::{
    BackendTotals, ConversionTotals, FailureRecord, ImageTally, KillRecord, KillTrigger, Outcome, PointCoverage,
    RunEvent, RunInfo, SCHEMA_VERSION, Summary,
};
use crate::stats::rate;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

/// At most this many failures are listed in a summary (the rest are counted).
pub const MAX_FAILURES: usize = 200;
/// Findings quoted per failure.
const FINDINGS_PER_FAILURE: usize = 3;

/// One verified cycle, for plots.
#[derive(Debug, Clone, PartialEq)]
pub struct CyclePoint {
    pub run: usize,
    pub cycle: u64,
    pub backend: String,
    pub outcome: Outcome,
    pub expected: bool,
    pub kills: u32,
    pub duration_ms: f64,
}

/// One cycle's memory-pressure counters, for plots.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryPoint {
    pub cycle: u64,
    pub backend: String,
    pub limit_hits: u64,
    pub high: u64,
    pub oom_kills: u64,
    pub pageouts: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub cycles: Vec<CyclePoint>,
    pub memory: Vec<MemoryPoint>,
}

#[derive(Default)]
struct Pending {
    kills: Vec<KillRecord>,
    findings: Vec<String>,
    bundle: Option<String>,
}

/// Folds events into a [`Summary`] and a [`Timeline`].
#[derive(Default)]
pub struct Aggregate {
    runs: Vec<RunInfo>,
    backends: Vec<String>,
    version: String,
    outcomes: BTreeMap<String, BTreeMap<String, u64>>,
    per_backend: BTreeMap<String, BackendTotals>,
    kill_points: BTreeMap<String, u64>,
    coverage: BTreeMap<String, PointCoverage>,
    index_rows: BTreeMap<String, u64>,
    failures: Vec<FailureRecord>,
    failures_omitted: u64,
    cycles: u64,
    kills: u64,
    commits: u64,
    unexpected: u64,
    harness_error: Option<String>,
    pending: BTreeMap<(u64, String), Pending>,
    timeline: Timeline,
    conversions: Option<ConversionTotals>,
    crash_images: BTreeMap<String, ImageTally>,
    io_errors: BTreeMap<String, crate::ioerror::IoErrorTally>,
    /// Per run (parallel to `runs`): what its cycles took, and whether its run-end event was seen.
    clocks: Vec<RunClock>,
}

/// A run's own account of time, for runs whose log ends without a run-end event.
#[derive(Default, Clone, Copy)]
struct RunClock {
    cycles: u64,
    cycle_ms: f64,
    ended: bool,
}

impl Aggregate {
    pub fn new() -> Aggregate {
        Aggregate::default()
    }

    /// Mark where the runs folded since the first `from` runs came from (a merged input holds several).
    pub fn set_source(&mut self, from: usize, source: &str) {
        for r in self.runs.iter_mut().skip(from) {
            r.source.get_or_insert_with(|| source.to_string());
        }
    }

    pub fn runs(&self) -> &[RunInfo] {
        &self.runs
    }

    pub fn cycles(&self) -> u64 {
        self.cycles
    }

    pub fn kills(&self) -> u64 {
        self.kills
    }

    pub fn unexpected(&self) -> u64 {
        self.unexpected
    }

    /// backend → outcome → cycles so far.
    pub fn outcomes(&self) -> &BTreeMap<String, BTreeMap<String, u64>> {
        &self.outcomes
    }

    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    pub fn push(&mut self, ev: &RunEvent) {
        match ev {
            RunEvent::RunStart {
                scenario,
                scenario_hash,
                seed,
                backends,
                version,
                environment,
                shard,
                replay,
                points,
                ..
            } => {
                // A point with no row would hide a gap: each starts at zero.
                for p in points {
                    self.coverage.entry(p.clone()).or_default();
                }
                for b in backends {
                    if !self.backends.contains(b) {
                        self.backends.push(b.clone());
                    }
                }
                if self.version.is_empty() {
                    self.version = version.clone();
                }
                self.runs.push(RunInfo {
                    scenario: scenario.clone(),
                    scenario_hash: scenario_hash.clone(),
                    seed: *seed,
                    backends: backends.clone(),
                    shard: *shard,
                    environment: environment.clone(),
                    cycles: 0,
                    duration_s: 0.0,
                    interrupted: false,
                    source: None,
                    replay: replay.clone(),
                });
                self.clocks.push(RunClock::default());
                self.pending.clear();
            }
            RunEvent::CycleStart { cycle, backend, .. } => {
                self.pending.insert((*cycle, backend.clone()), Pending::default());
            }
            RunEvent::Kill { cycle, backend, kill } => {
                self.pending.entry((*cycle, backend.clone())).or_default().kills.push(kill.clone());
            }
            RunEvent::Finding { cycle, backend, finding, .. } => {
                let p = self.pending.entry((*cycle, backend.clone())).or_default();
                if p.findings.len() < FINDINGS_PER_FAILURE {
                    p.findings.push(finding.message.clone());
                }
            }
            RunEvent::Bundle { cycle, backend, path } => {
                let p = self.pending.entry((*cycle, backend.clone())).or_default();
                p.bundle = Some(path.clone());
            }
            RunEvent::Memory { cycle, backend, limit_hits, high, oom_kills, pageouts } => {
                self.timeline.memory.push(MemoryPoint {
                    cycle: *cycle,
                    backend: backend.clone(),
                    limit_hits: *limit_hits,
                    high: *high,
                    oom_kills: *oom_kills,
                    pageouts: *pageouts,
                });
            }
            RunEvent::CycleEnd {
                cycle,
                backend,
                outcome,
                expected,
                findings,
                commits,
                duration_ms,
                armed,
                hits,
                index_rows,
            } => {
                for (table, n) in index_rows {
                    *self.index_rows.entry(table.clone()).or_default() += n;
                }
                let p = self.pending.remove(&(*cycle, backend.clone())).unwrap_or_default();
                if let Some(c) = self.clocks.last_mut() {
                    c.cycles += 1;
                    c.cycle_ms += duration_ms;
                }
                for (point, h) in hits {
                    self.coverage.entry(point.clone()).or_default().hits += h;
                }
                if let Some(a) = armed {
                    let cov = self.coverage.entry(a.clone()).or_default();
                    cov.armed += 1;
                    cov.kills += p
                        .kills
                        .iter()
                        .filter(|k| match k.trigger {
                            KillTrigger::Point => k.last_point.as_deref() == Some(a),
                            KillTrigger::IoOp { op, .. } => op.point() == a,
                            _ => false,
                        })
                        .count() as u64;
                    *cov.outcomes.entry(outcome.name().into()).or_default() += 1;
                }
                self.end_cycle(*cycle, backend, *outcome, *expected, *findings as u64, *commits, *duration_ms, p);
            }
            RunEvent::CycleLost { cycle, backend, outcome, .. } => {
                if let Some(c) = cycle {
                    self.pending.remove(&(*c, backend.clone()));
                }
                let running = u64::from(cycle.is_some());
                self.cycles += running;
                if let Some(c) = self.clocks.last_mut() {
                    c.cycles += running;
                }
                *self.outcomes.entry(backend.clone()).or_default().entry(outcome.name().into()).or_default() += 1;
                let t = self.per_backend.entry(backend.clone()).or_default();
                t.cycles += running;
                t.unexpected += 1;
                *t.unexpected_outcomes.entry(outcome.name().into()).or_default() += 1;
                self.unexpected += 1;
            }
            RunEvent::RunEnd { cycles, interrupted, duration_s, harness_error, .. } => {
                // A run the harness could not finish failed, whatever its cycles said.
                self.unexpected += u64::from(harness_error.is_some());
                if self.harness_error.is_none() {
                    self.harness_error.clone_from(harness_error);
                }
                if let Some(r) = self.runs.last_mut() {
                    r.cycles = *cycles;
                    r.interrupted = *interrupted;
                    r.duration_s = *duration_s;
                }
                if let Some(c) = self.clocks.last_mut() {
                    c.ended = true;
                }
            }
            RunEvent::CrashImages { backend, tally, .. } => {
                self.crash_images.entry(backend.clone()).or_default().add(tally);
            }
            RunEvent::IoError { backend, io, .. } => {
                self.io_errors.entry(backend.clone()).or_default().count(io);
            }
            RunEvent::Conversion { state, killed, rerun_ok, .. } => {
                let c = self.conversions.get_or_insert_with(ConversionTotals::default);
                let by = if *killed { &mut c.killed } else { &mut c.finished };
                *by.entry(state.name().into()).or_default() += 1;
                c.rerun_failed += u64::from(!rerun_ok);
            }
            RunEvent::WorkerExit { .. }
            | RunEvent::Recovery { .. }
            | RunEvent::Fault { .. }
            | RunEvent::EngineMessage { .. } => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn end_cycle(
        &mut self,
        cycle: u64,
        backend: &str,
        outcome: Outcome,
        expected: bool,
        findings: u64,
        commits: u64,
        duration_ms: f64,
        p: Pending,
    ) {
        let kills = p.kills.len() as u64;
        self.cycles += 1;
        self.kills += kills;
        self.commits += commits;
        *self.outcomes.entry(backend.into()).or_default().entry(outcome.name().into()).or_default() += 1;
        let t = self.per_backend.entry(backend.into()).or_default();
        t.cycles += 1;
        t.kills += kills;
        t.commits += commits;
        t.duration_s += duration_ms / 1000.0;
        if !expected {
            t.unexpected += 1;
            t.failure_rate.failing_kills += kills;
            *t.unexpected_outcomes.entry(outcome.name().into()).or_default() += 1;
            self.unexpected += 1;
        }
        t.failure_rate.kills += kills;
        for k in &p.kills {
            *self
                .kill_points
                .entry(k.last_point.clone().unwrap_or_else(|| "(before any point)".into()))
                .or_default() += 1;
        }
        self.timeline.cycles.push(CyclePoint {
            run: self.runs.len().saturating_sub(1),
            cycle,
            backend: backend.into(),
            outcome,
            expected,
            kills: kills as u32,
            duration_ms,
        });
        if !expected {
            if self.failures.len() < MAX_FAILURES {
                self.failures.push(FailureRecord {
                    cycle,
                    backend: backend.into(),
                    outcome,
                    findings: p.findings,
                    finding_count: findings,
                    replay: p.bundle.as_ref().map(|b| format!("dbtorture replay {b}")),
                    bundle: p.bundle,
                    kills: p.kills,
                });
            } else {
                self.failures_omitted += 1;
            }
        }
    }

    /// The runs as they ended; a run whose log stops without its run-end event (its harness or guest died,
    /// its upload was cut) is interrupted, holds the cycles its log holds, and lasted its cycles' own time.
    fn finished_runs(&self) -> Vec<RunInfo> {
        let mut runs = self.runs.clone();
        for (r, c) in runs.iter_mut().zip(&self.clocks) {
            if !c.ended {
                r.interrupted = true;
                r.cycles = c.cycles;
                r.duration_s = c.cycle_ms / 1000.0;
            }
        }
        runs
    }

    pub fn summary(&self) -> Summary {
        let runs = self.finished_runs();
        let first = runs.first();
        let duration_s: f64 = runs.iter().map(|r| r.duration_s).sum();
        // No time measured, no rate (a count over 1e-9 s would print two billion cycles per second).
        let per_sec = |n: u64| if duration_s > 0.0 { n as f64 / duration_s } else { 0.0 };
        let mut per_backend = self.per_backend.clone();
        for t in per_backend.values_mut() {
            t.failure_rate = rate(t.failure_rate.failing_kills, t.failure_rate.kills);
        }
        let failing: u64 = per_backend.values().map(|t| t.failure_rate.failing_kills).sum();
        Summary {
            schema: SCHEMA_VERSION,
            scenario: first.map(|r| r.scenario.clone()).unwrap_or_default(),
            scenario_hash: first.map(|r| r.scenario_hash.clone()).unwrap_or_default(),
            seed: first.map(|r| r.seed).unwrap_or_default(),
            backends: self.backends.clone(),
            environment: first.map(|r| r.environment.clone()).unwrap_or_default(),
            runs: runs.clone(),
            cycles: self.cycles,
            kills: self.kills,
            commits: self.commits,
            outcomes: self.outcomes.clone(),
            per_backend,
            unexpected: self.unexpected,
            failure_rate: rate(failing, self.kills),
            cycles_per_sec: per_sec(self.cycles),
            kills_per_sec: per_sec(self.kills),
            duration_s,
            interrupted: runs.iter().any(|r| r.interrupted),
            kill_points: self.kill_points.clone(),
            coverage: self.coverage.clone(),
            index_rows: self.index_rows.clone(),
            conversions: self.conversions.clone(),
            crash_images: self.crash_images.clone(),
            io_errors: self.io_errors.clone(),
            failures: self.failures.clone(),
            failures_omitted: self.failures_omitted,
            version: self.version.clone(),
            replay: first.map(|r| r.replay.clone()).unwrap_or_default(),
            harness_error: self.harness_error.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}:{line}: not an event of schema {SCHEMA_VERSION}: {source}")]
    Parse { path: String, line: usize, source: serde_json::Error },
}

/// Read every event of an `events.jsonl` in order. A last line cut short (the run was killed while writing
/// it) is skipped; any other bad line is an error naming the file and line. Returns the number of events.
pub fn read_events(path: &Path, mut each: impl FnMut(RunEvent)) -> Result<usize, ReadError> {
    let p = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|source| ReadError::Io { path: p.clone(), source })?;
    let mut lines = std::io::BufReader::new(f).lines().enumerate().peekable();
    let mut count = 0;
    while let Some((i, line)) = lines.next() {
        let line = line.map_err(|source| ReadError::Io { path: p.clone(), source })?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<RunEvent>(&line) {
            Ok(ev) => {
                each(ev);
                count += 1;
            }
            Err(e) if lines.peek().is_none() && e.is_eof() => {}
            Err(source) => return Err(ReadError::Parse { path: p, line: i + 1, source }),
        }
    }
    Ok(count)
}
