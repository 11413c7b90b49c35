//! `dbtorture run`: drive the scheduler for a number of cycles or a duration, and write the reports.

use crate::scenario::{Scenario, parse_duration};
use crate::scheduler::{CycleResult, Observer, Scheduler};
use anyhow::{Context, Result};
use dbtorture_reports::{EventLog, Outcome, RunEvent, SCHEMA_VERSION, Summary, write_json_atomic};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub seed: Option<u64>,
    pub cycles: Option<u64>,
    pub duration: Option<Duration>,
    pub out: Option<PathBuf>,
    /// Where the databases live (default: a temporary directory, removed afterwards).
    pub workdir: Option<PathBuf>,
    pub quiet: bool,
    /// Don't write bundles of failing cycles (saves copying the database at every cycle start).
    pub no_bundles: bool,
}

pub struct RunReport {
    pub summary: Summary,
    pub overhead: Vec<Duration>,
    pub failures: Vec<CycleResult>,
}

struct Sink {
    log: EventLog,
    bar: ProgressBar,
    counts: BTreeMap<String, BTreeMap<String, u64>>,
    kills: u64,
    commits: u64,
    unexpected: u64,
    cycles: u64,
    kill_points: BTreeMap<String, u64>,
    coverage: BTreeMap<String, dbtorture_reports::PointCoverage>,
    overhead: Vec<Duration>,
    failures: Vec<CycleResult>,
    write_error: Option<String>,
}

impl Observer for Sink {
    fn event(&mut self, ev: &RunEvent) {
        if let Err(e) = self.log.emit(ev) {
            self.write_error.get_or_insert(e.to_string());
        }
    }

    fn cycle_done(&mut self, c: &CycleResult) {
        self.cycles += 1;
        self.kills += c.kills.len() as u64;
        self.commits += c.commits;
        *self.counts.entry(c.backend.name().into()).or_default().entry(c.outcome.name().into()).or_default() += 1;
        for k in &c.kills {
            *self
                .kill_points
                .entry(k.last_point.clone().unwrap_or_else(|| "(before any point)".into()))
                .or_default() += 1;
        }
        for (p, h) in &c.point_hits {
            self.coverage.entry(p.to_string()).or_default().hits += h;
        }
        if let Some(p) = c.armed {
            let cov = self.coverage.entry(p.to_string()).or_default();
            cov.armed += 1;
            cov.kills +=
                c.kills.iter().filter(|k| k.trigger == "point" && k.last_point.as_deref() == Some(p)).count() as u64;
            *cov.outcomes.entry(c.outcome.name().into()).or_default() += 1;
        }
        self.overhead.push(c.overhead);
        if !c.expected {
            self.unexpected += 1;
            let first = c.findings.first().map(|f| f.to_string()).unwrap_or_default();
            self.bar.println(format!(
                "cycle {} {}: unexpected outcome {}{}",
                c.cycle,
                c.backend.name(),
                c.outcome,
                if first.is_empty() { String::new() } else { format!(" — {first}") }
            ));
            if self.failures.len() < 100 {
                self.failures.push(c.clone());
            }
        }
        self.bar.inc(1);
        let mut msg = Vec::new();
        for o in Outcome::ALL {
            let n: u64 = self.counts.values().filter_map(|m| m.get(o.name())).sum();
            if n > 0 {
                msg.push(format!("{o} {n}"));
            }
        }
        self.bar.set_message(format!("kills {} · {}", self.kills, msg.join(" · ")));
    }
}

pub fn run(sc: &Scenario, opts: &RunOptions) -> Result<RunReport> {
    let seed = opts.seed.unwrap_or(sc.seed);
    let duration = opts
        .duration
        .or_else(|| if opts.cycles.is_some() { None } else { sc.duration.as_deref().and_then(parse_duration) });
    let cycles = if duration.is_some() { None } else { Some(opts.cycles.or(sc.cycles).unwrap_or(20)) };
    let tmp;
    let workdir = match &opts.workdir {
        Some(w) => {
            std::fs::create_dir_all(w).with_context(|| format!("creating {}", w.display()))?;
            w.clone()
        }
        None => {
            tmp = tempfile::Builder::new().prefix("dbtorture-").tempdir().context("creating a work directory")?;
            tmp.path().to_path_buf()
        }
    };
    let log = match &opts.out {
        Some(out) => {
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            EventLog::create(&out.join("events.jsonl"))?
        }
        None => EventLog::disabled(),
    };
    let total = cycles.map(|c| c * sc.backends.len() as u64);
    let bar = if opts.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template("{spinner} {elapsed_precise} [{wide_bar}] {pos}/{len} ETA {eta} {msg}")
                .expect("template")
                .progress_chars("=> "),
        );
        b
    };
    let mut sink = Sink {
        log,
        bar,
        counts: BTreeMap::new(),
        kills: 0,
        commits: 0,
        unexpected: 0,
        cycles: 0,
        kill_points: BTreeMap::new(),
        coverage: BTreeMap::new(),
        overhead: Vec::new(),
        failures: Vec::new(),
        write_error: None,
    };
    let version = env!("CARGO_PKG_VERSION").to_string();
    sink.event(&RunEvent::RunStart {
        schema: SCHEMA_VERSION,
        scenario: sc.name.clone(),
        seed,
        backends: sc.backends.clone(),
        version: version.clone(),
    });
    let mut sched = Scheduler::new(sc, seed, &workdir)?;
    // Every cycle whose outcome the scenario does not allow leaves a bundle beside the reports.
    sched.bundles = opts.out.as_ref().filter(|_| !opts.no_bundles).map(|o| o.join("bundles"));
    let started = Instant::now();
    let mut cycle = 0u64;
    let mut harness_error = None;
    'outer: loop {
        if let Some(c) = cycles
            && cycle >= c
        {
            break;
        }
        if let Some(d) = duration
            && started.elapsed() >= d
        {
            break;
        }
        for t in 0..sched.targets.len() {
            match sched.cycle(t, cycle, &mut sink) {
                Ok(_) => {}
                Err(e) => {
                    harness_error = Some(e);
                    break 'outer;
                }
            }
            if sched.interrupted {
                break 'outer;
            }
        }
        cycle += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let interrupted = sched.interrupted;
    drop(sched);
    sink.bar.finish_and_clear();
    sink.event(&RunEvent::RunEnd {
        cycles: sink.cycles,
        unexpected: sink.unexpected,
        interrupted,
        duration_s: elapsed,
    });
    let replay = format!(
        "dbtorture run {} --seed {seed} {}",
        sc.source.display(),
        match (cycles, duration) {
            (Some(c), _) => format!("--cycles {c}"),
            (None, Some(d)) => format!("--duration {}s", d.as_secs()),
            _ => String::new(),
        }
    );
    let summary = Summary {
        schema: SCHEMA_VERSION,
        scenario: sc.name.clone(),
        seed,
        backends: sc.backends.clone(),
        cycles: sink.cycles,
        kills: sink.kills,
        commits: sink.commits,
        outcomes: sink.counts.clone(),
        unexpected: sink.unexpected + u64::from(harness_error.is_some()),
        cycles_per_sec: sink.cycles as f64 / elapsed.max(1e-9),
        kills_per_sec: sink.kills as f64 / elapsed.max(1e-9),
        duration_s: elapsed,
        interrupted,
        kill_points: sink.kill_points.clone(),
        coverage: sink.coverage.clone(),
        version,
        replay: replay.trim().to_string(),
    };
    if let Some(out) = &opts.out {
        write_json_atomic(&out.join("summary.json"), &summary)?;
    }
    if let Some(e) = sink.write_error {
        anyhow::bail!("writing events: {e}");
    }
    if let Some(e) = harness_error {
        return Err(e.context(format!("harness error in cycle {cycle} (reports written for the cycles done)")));
    }
    Ok(RunReport { summary, overhead: sink.overhead, failures: sink.failures })
}

/// The final table: outcome counts per backend.
pub fn summary_table(s: &Summary) -> String {
    let mut out = String::new();
    let used: Vec<Outcome> =
        Outcome::ALL.into_iter().filter(|o| s.outcomes.values().any(|m| m.contains_key(o.name()))).collect();
    out.push_str(&format!("{:<10}", "backend"));
    for o in &used {
        out.push_str(&format!(" {:>13}", o.name()));
    }
    out.push('\n');
    for (b, m) in &s.outcomes {
        out.push_str(&format!("{b:<10}"));
        for o in &used {
            out.push_str(&format!(" {:>13}", m.get(o.name()).copied().unwrap_or(0)));
        }
        out.push('\n');
    }
    if !s.coverage.is_empty() {
        let killed = s.coverage.values().filter(|c| c.kills > 0).count();
        let armed = s.coverage.values().filter(|c| c.armed > 0).count();
        let passed = s.coverage.values().filter(|c| c.hits > 0).count();
        out.push_str(&format!(
            "kill-point coverage: {killed} of {armed} armed points killed at; {passed} of {} crash points passed\n",
            dbtorture_backends::crash::ALL.len()
        ));
    }
    out.push_str(&format!(
        "{} cycles, {} kills, {} commits in {:.1}s ({:.1} cycles/s, {:.1} kills/s); unexpected: {}{}\n",
        s.cycles,
        s.kills,
        s.commits,
        s.duration_s,
        s.cycles_per_sec,
        s.kills_per_sec,
        s.unexpected,
        if s.interrupted { " (interrupted)" } else { "" }
    ));
    out
}
