//! `dbtorture run`: drive the scheduler for a number of cycles or a duration (or one shard of them), stream
//! events.jsonl, and write summary.json, junit.xml and report.html — also when the run is interrupted or
//! the harness fails mid-run, for the cycles done.

use crate::lanes::LaneObserver;
use crate::lanes::wire::CycleNote;
use crate::scenario::{Scenario, parse_duration};
use crate::scheduler::{CycleResult, Observer, Scheduler};
use anyhow::{Context, Result};
use dbtorture_reports::{Aggregate, EventLog, Outcome, RunEvent, SCHEMA_VERSION, Shard, Summary, write_reports};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
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
    /// Run only this shard's epochs.
    pub shard: Option<Shard>,
    /// Run only these of the scenario's backends (empty: all). Each keeps the cycles it has in a full run.
    pub backends: Vec<dbtorture_backends::BackendKind>,
    /// Lanes (`--jobs`): scheduler processes side by side, each taking whole epochs (None: one per CPU; 1:
    /// everything in this process, as before lanes). Never more than the run has epochs.
    pub jobs: Option<usize>,
}

pub struct RunReport {
    pub summary: Summary,
    pub overhead: Vec<Duration>,
    /// Lanes the run used.
    pub jobs: usize,
}

/// Parse "I/N", 1-based (1 ≤ I ≤ N): `--shard 1/4` … `--shard 4/4`, like nextest's `--partition count:1/4`.
pub fn parse_shard(s: &str) -> Result<Shard, String> {
    let (i, n) = s.split_once('/').ok_or_else(|| format!("expected I/N like 1/4, got {s:?}"))?;
    let index: u32 = i.trim().parse().map_err(|_| format!("shard index {i:?} is not a number"))?;
    let count: u32 = n.trim().parse().map_err(|_| format!("shard count {n:?} is not a number"))?;
    if count == 0 || index == 0 || index > count {
        return Err(format!(
            "shard {index}/{count}: shards are numbered 1 to N (--shard 1/{n} … {n}/{n})",
            n = count.max(1)
        ));
    }
    Ok(Shard { index, count })
}

/// Whether `cycle` belongs to `shard`: epochs are dealt round-robin to shards (epoch 0 to shard 1).
pub fn in_shard(shard: Option<Shard>, epoch_len: u64, cycle: u64) -> bool {
    shard.is_none_or(|s| (cycle / epoch_len) % u64::from(s.count) == u64::from(s.index) - 1)
}

struct Sink {
    log: EventLog,
    agg: Aggregate,
    bar: ProgressBar,
    overhead: Vec<Duration>,
    write_error: Option<String>,
    /// A `--duration` run: when it started and for how long (the bar measures time).
    timed: Option<(Instant, Duration)>,
}

impl Observer for Sink {
    fn event(&mut self, ev: &RunEvent) {
        if let Err(e) = self.log.emit(ev) {
            self.write_error.get_or_insert(e.to_string());
        }
        self.agg.push(ev);
    }

    fn cycle_done(&mut self, c: &CycleResult) {
        self.note(&CycleNote::of(c));
    }
}

impl LaneObserver for Sink {
    fn in_order(&mut self, ev: &RunEvent) {
        Observer::event(self, ev);
    }

    fn note(&mut self, c: &CycleNote) {
        self.overhead.push(c.overhead);
        if !c.expected {
            let first = &c.first;
            self.bar.println(format!(
                "cycle {} {}: unexpected outcome {}{}",
                c.cycle,
                c.backend,
                c.outcome,
                if first.is_empty() { String::new() } else { format!(" — {first}") }
            ));
        }
        let mut msg = Vec::new();
        match self.timed {
            Some((started, d)) => {
                let elapsed = started.elapsed();
                self.bar.set_position(elapsed.as_secs().min(d.as_secs()));
                let left = d.saturating_sub(elapsed).as_secs();
                msg.push(format!("{}m{:02}s left · cycle {}", left / 60, left % 60, self.agg.cycles()));
            }
            None => self.bar.inc(1),
        }
        msg.push(format!("kills {}", self.agg.kills()));
        for o in Outcome::ALL {
            let n: u64 = self.agg.outcomes().values().filter_map(|m| m.get(o.name())).sum();
            if n > 0 {
                msg.push(format!("{o} {n}"));
            }
        }
        self.bar.set_message(msg.join(" · "));
    }
}

/// Input that cannot be run (exit 2), found before anything ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{headline}")]
pub struct BadInput {
    pub headline: String,
    pub hint: Option<String>,
}

fn bad(headline: String, hint: &str) -> BadInput {
    BadInput { headline, hint: (!hint.is_empty()).then(|| hint.to_string()) }
}

/// What a run will do: its seed, cycles or duration, shard and backends, decided from the scenario and the
/// options. Refuses what would run nothing — a run that runs nothing must not pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub seed: u64,
    pub cycles: Option<u64>,
    pub duration: Option<Duration>,
    pub shard: Option<Shard>,
    pub backends: Vec<String>,
    /// Cycles this run will do, over its backends (None: as many as the duration allows).
    pub total: Option<u64>,
    /// Lanes: `--jobs` (default one per CPU), at most the run's epochs.
    pub jobs: usize,
}

pub fn check(sc: &Scenario, opts: &RunOptions) -> Result<Resolved, BadInput> {
    let seed = opts.seed.unwrap_or(sc.seed);
    let duration = opts
        .duration
        .or_else(|| if opts.cycles.is_some() { None } else { sc.duration.as_deref().and_then(parse_duration) });
    let cycles = if duration.is_some() { None } else { Some(opts.cycles.or(sc.cycles).unwrap_or(20)) };
    if cycles == Some(0) {
        return Err(bad("--cycles 0: nothing to run".into(), "ask for at least one cycle"));
    }
    if duration.is_some_and(|d| d.is_zero()) {
        return Err(bad("--duration 0s: nothing to run".into(), "give a duration like 60s or 5m"));
    }
    let shard = opts.shard.filter(|s| s.count > 1);
    for b in &opts.backends {
        if !sc.backend_kinds().contains(b) {
            return Err(bad(
                format!("--backend {}: scenario {} runs only {}", b.name(), sc.name, sc.backends.join(", ")),
                "pick one of the scenario's backends",
            ));
        }
    }
    let backends: Vec<String> = sc
        .backend_kinds()
        .into_iter()
        .filter(|k| opts.backends.is_empty() || opts.backends.contains(k))
        .map(|k| k.name().to_string())
        .collect();
    let total = cycles.map(|c| (0..c).filter(|&i| in_shard(shard, sc.epoch, i)).count() as u64 * backends.len() as u64);
    if let (Some(s), Some(0)) = (shard, total) {
        return Err(bad(
            format!(
                "shard {s} has no cycles: {} cycles are {} epoch(s) of {} (the scenario's `epoch`)",
                cycles.unwrap_or(0),
                cycles.unwrap_or(0).div_ceil(sc.epoch),
                sc.epoch
            ),
            "run more cycles, fewer shards, or lower `epoch`",
        ));
    }
    if let Some(m) = &sc.memory {
        let have = crate::environment::mem_total_mb();
        if have > 0 && m.balloon_mb >= have {
            return Err(bad(
                format!(
                    "memory.balloon_mb = {}: this machine has {have} MiB of memory; the balloon could never inflate",
                    m.balloon_mb
                ),
                "size the balloon just above the cgroup's limit, well under the machine's memory",
            ));
        }
    }
    for (flag, dir) in [("--out", &opts.out), ("--workdir", &opts.workdir)] {
        if let Some(d) = dir
            && d.exists()
            && !d.is_dir()
        {
            return Err(bad(format!("{flag} {}: exists and is not a directory", d.display()), ""));
        }
    }
    let epochs = cycles.map(|c| (0..c.div_ceil(sc.epoch)).filter(|e| in_shard(shard, sc.epoch, e * sc.epoch)).count());
    // A --duration run keeps one lane unless --jobs asks for more: a lane finishes the epoch it has begun
    // when time is up, which would stretch a short run (a nightly's 60 s, selftest's 3 s cases) by up to a
    // whole epoch of cycles.
    let default_jobs = if duration.is_some() { 1 } else { crate::lanes::default_jobs() };
    let jobs = crate::lanes::effective(opts.jobs.unwrap_or(default_jobs), epochs.map(|e| e as u64));
    if let Some(m) = sc.memory.as_ref().filter(|_| jobs > 1) {
        // One memory cgroup and one balloon per lane.
        let have = crate::environment::mem_total_mb();
        if have > 0 && m.balloon_mb * jobs as u64 >= have {
            return Err(bad(
                format!(
                    "--jobs {jobs} with memory.balloon_mb = {}: every lane inflates its own balloon ({} MiB in all); this machine has {have} MiB",
                    m.balloon_mb,
                    m.balloon_mb * jobs as u64
                ),
                "run fewer --jobs",
            ));
        }
    }
    Ok(Resolved { seed, cycles, duration, shard, backends, total, jobs })
}

pub fn run(sc: &Scenario, opts: &RunOptions) -> Result<RunReport> {
    let Resolved { seed, cycles, duration, shard, backends, total, jobs } = check(sc, opts)?;
    let tmp;
    let workdir = match &opts.workdir {
        Some(w) => {
            std::fs::create_dir_all(w).with_context(|| format!("creating {}", w.display()))?;
            w.clone()
        }
        None => {
            tmp = crate::leftovers::scratch("run").context("creating a work directory")?;
            tmp.path().to_path_buf()
        }
    };
    let log = match &opts.out {
        Some(out) => {
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            if crate::dirlock::clear_earlier_reports(out).with_context(|| format!("clearing {}", out.display()))? {
                eprintln!("dbtorture: replacing the reports of an earlier run in {}", out.display());
            }
            EventLog::create(&out.join("events.jsonl"))?
        }
        None => EventLog::disabled(),
    };
    let bar = if opts.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        // A fixed-width bar: the status text after it is cut to the terminal (`wide_msg`), never the bar. A
        // `--duration` run's bar measures time (seconds of the duration) and its text says what is left.
        let len = total.or(duration.map(|d| d.as_secs().max(1)));
        let b = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
        let template = if total.is_some() {
            "{spinner} {elapsed_precise} [{bar:20}] {pos}/{len} ETA {eta} {wide_msg}"
        } else {
            "{spinner} {elapsed_precise} [{bar:20}] {wide_msg}"
        };
        b.set_style(ProgressStyle::with_template(template).expect("template").progress_chars("=> "));
        b
    };
    let scenario_text = sc.text.as_bytes();
    let replay = crate::run_text::run_command(sc, seed, cycles, duration, shard, &opts.backends);
    let mut sink = Sink {
        log,
        agg: Aggregate::new(),
        bar,
        overhead: Vec::new(),
        write_error: None,
        timed: duration.map(|d| (Instant::now(), d)),
    };
    let kinds: Vec<_> = backends.iter().filter_map(|b| dbtorture_backends::BackendKind::from_name(b)).collect();
    let points = crate::scheduler::plan::run_points(sc, &kinds);
    sink.event(&RunEvent::RunStart {
        schema: SCHEMA_VERSION,
        scenario: sc.name.clone(),
        scenario_hash: crate::environment::sha256_hex(scenario_text),
        seed,
        backends,
        version: crate::environment::binary_version(),
        environment: crate::environment::detect(),
        shard,
        replay,
        points,
    });
    let started = Instant::now();
    let mut harness_error = None;
    let mut interrupted = false;
    // The cycle indices run (or begun): what a replay of a `--duration` run pins.
    let mut cycles_run = 0u64;
    let only = (!opts.backends.is_empty()).then_some(opts.backends.as_slice());
    let stopped = |e: &anyhow::Error| e.downcast_ref::<crate::scheduler::Interrupted>().is_some();
    // The cycles the scenario's bundle policy keeps leave a bundle beside the reports.
    let bundles = !opts.no_bundles && sc.bundles != crate::scenario::BundlePolicy::None;
    let bundles = opts.out.as_ref().filter(|_| bundles).map(|o| o.join("bundles"));
    if jobs > 1 {
        let spec = |i: usize| crate::lanes::lane::LaneSpec {
            scenario: sc,
            seed,
            workdir: workdir.join(format!("lane-{}", i + 1)),
            only: only.map(<[_]>::to_vec),
            bundles: bundles.clone(),
            cycles,
            until: duration.map(|d| started + d),
            shard,
        };
        match crate::lanes::drive(jobs, shard, sc.epoch, spec, &mut sink) {
            Ok(e) => {
                interrupted = e.interrupted;
                cycles_run = e.cycles_run;
                harness_error = e.harness_error;
            }
            Err(e) => harness_error = Some(e.context("running the lanes")),
        }
    } else {
        match Scheduler::with_backends(sc, seed, &workdir, only) {
            Err(e) if stopped(&e) => interrupted = true,
            Err(e) => harness_error = Some(e.context("preparing the databases")),
            Ok(mut sched) => {
                sched.bundles = bundles;
                let mut cycle = 0u64;
                'outer: loop {
                    if let Some(c) = cycles
                        && cycle >= c
                    {
                        break;
                    }
                    // Time up ends the run only once it has run a cycle: a duration shorter than preparing
                    // the databases must not pass with nothing run.
                    if let Some(d) = duration
                        && cycles_run > 0
                        && started.elapsed() >= d
                    {
                        break;
                    }
                    if !in_shard(shard, sc.epoch, cycle) {
                        cycle += 1;
                        continue;
                    }
                    cycles_run = cycle + 1;
                    for t in 0..sched.targets.len() {
                        match sched.cycle(t, cycle, &mut sink) {
                            Err(e) if stopped(&e) => break 'outer,
                            Err(e) => {
                                harness_error = Some(e.context(format!("harness error in cycle {cycle}")));
                                break 'outer;
                            }
                            Ok(_) => {}
                        }
                        if sched.interrupted {
                            break 'outer;
                        }
                    }
                    cycle += 1;
                }
                interrupted = sched.interrupted;
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    sink.bar.finish_and_clear();
    let cycles_done = sink.agg.cycles();
    let harness_text = harness_error.as_ref().map(|e| format!("{e:#}"));
    let unexpected = sink.agg.unexpected() + u64::from(harness_text.is_some());
    sink.event(&RunEvent::RunEnd {
        cycles: cycles_done,
        unexpected,
        interrupted,
        duration_s: elapsed,
        harness_error: harness_text,
    });
    let mut summary = sink.agg.summary();
    if duration.is_some() {
        // Pin what the duration turned out to be: the cycles this run actually ran.
        summary.replay = crate::run_text::run_command(sc, seed, Some(cycles_run), None, shard, &opts.backends);
        for r in &mut summary.runs {
            r.replay = summary.replay.clone();
        }
    }
    if let Some(out) = &opts.out {
        crate::run_text::anchor_replays(&mut summary, out);
        write_reports(out, &summary, sink.agg.timeline())?;
    }
    if let Some(e) = sink.write_error {
        anyhow::bail!("writing events: {e}");
    }
    if let Some(e) = harness_error {
        return Err(e.context("reports written for the cycles done"));
    }
    Ok(RunReport { summary, overhead: sink.overhead, jobs })
}

/// The final table: outcome counts per backend.
pub fn summary_table(s: &Summary, colour: bool) -> String {
    let paint = |style: anstyle::Style, text: String| {
        if colour { format!("{style}{text}{style:#}") } else { text }
    };
    let red = anstyle::AnsiColor::Red.on_default().bold();
    let green = anstyle::AnsiColor::Green.on_default();
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
        let bad = s.per_backend.get(b).map(|t| &t.unexpected_outcomes);
        for o in &used {
            let cell = format!(" {:>13}", m.get(o.name()).copied().unwrap_or(0));
            // Red: cycles that ended in an outcome the scenario does not allow for this backend.
            let unexpected = bad.is_some_and(|u| u.contains_key(o.name()));
            out.push_str(&match (unexpected, *o == Outcome::Clean) {
                (true, _) => paint(red, cell),
                (false, true) => paint(green, cell),
                _ => cell,
            });
        }
        out.push('\n');
    }
    if !s.coverage.is_empty() {
        let g = dbtorture_reports::coverage_table::gaps(s);
        // I/O kill points (io:write, …): the operations the recorder counted, not crash points.
        let io: Vec<String> = s
            .coverage
            .iter()
            .filter(|(p, c)| p.starts_with("io:") && c.hits > 0)
            .map(|(p, c)| format!("{p} {}", c.hits))
            .collect();
        let io = if io.is_empty() { String::new() } else { format!("; I/O operations passed: {}", io.join(", ")) };
        out.push_str(&format!(
            "kill-point coverage: {} of {} armed points killed at; {} of {} crash points of these backends passed{}{io}\n",
            g.killed,
            g.armed,
            g.passed,
            g.points,
            if g.never_passed.is_empty() { String::new() } else { format!(" ({} never passed)", g.never_passed.len()) }
        ));
    }
    let r = &s.failure_rate;
    if let (Some(p), Some(lo), Some(hi)) = (r.per_10k, r.low_per_10k, r.high_per_10k) {
        out.push_str(&format!("failure rate: {p:.1} per 10,000 kills (95% interval {lo:.1}–{hi:.1})\n"));
    }
    let unexpected = format!("unexpected: {}", s.unexpected);
    out.push_str(&format!(
        "{} cycles, {} kills, {} commits in {:.1}s ({:.1} cycles/s, {:.1} kills/s); {}{}\n",
        s.cycles,
        s.kills,
        s.commits,
        s.duration_s,
        s.cycles_per_sec,
        s.kills_per_sec,
        if s.unexpected > 0 { paint(red, unexpected) } else { paint(green, unexpected) },
        if s.interrupted { " (interrupted)" } else { "" }
    ));
    out
}
