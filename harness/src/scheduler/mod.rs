//! The scheduler: from a single-threaded process, run cycles — plan → spawn → supervise → judge → record —
//! and stream what happened into the reports.
//!
//! Why this shape: a cycle is drawn as a pure [`plan::CyclePlan`], its children are forked here, one event
//! loop ([`supervise`]) drives kills, crash-point stops, per-cycle faults ([`faults::CycleFault`]),
//! timeouts and Ctrl-C without threads (fork needs a single-threaded parent), and [`verdict`] alone turns
//! how each child ended into kills and findings and the database's state into an outcome. Databases and
//! epochs are [`targets`]; events are built in [`events`].

mod bundling;
pub mod collect;
pub mod coverage;
mod deadline;
pub mod durability;
pub mod events;
pub mod expectations;
pub mod explain;
pub mod faults;
pub mod ioerror;
pub mod plan;
pub mod powercut;
pub mod rpmconvert;
pub mod rpmoracle;
mod spawn;
pub mod supervise;
pub mod targets;
pub mod verdict;

use crate::fault::crashpoint;
use crate::finding::{Finding, HarnessFinding};
use crate::oracle;
use crate::scenario::Scenario;
use crate::sys::{self, SharedWords};
use crate::worker::{self, WorkerSpec};
use crate::workload::{Pool, PoolSpec, ops::in_slice};
use anyhow::{Context, Result};
use collect::Collected;
use dbtorture_backends::BackendKind;
use dbtorture_backends::child::ChildExit;
use dbtorture_reports::{FaultKind, KillRecord, Outcome, Role, RunEvent, WorkerEnd};
use events::Ctx;
use faults::{CycleFault, FaultEnv};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use plan::{CyclePlan, Work};
use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use supervise::Child;
pub use targets::Target;

/// Sinks for what the scheduler does: the CLI connects reports and the progress bar here.
pub trait Observer {
    fn event(&mut self, ev: &RunEvent);
    fn cycle_done(&mut self, _c: &CycleResult) {}
}

/// Derive independent seeds from the run seed (splitmix64).
pub fn derive_seed(seed: u64, a: u64, b: u64) -> u64 {
    let mut z = seed ^ a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[derive(Debug, Clone)]
pub struct CycleResult {
    pub cycle: u64,
    pub backend: BackendKind,
    pub outcome: Outcome,
    pub expected: bool,
    pub findings: Vec<Finding>,
    pub kills: Vec<KillRecord>,
    pub commits: u64,
    pub duration: Duration,
    /// Time spent by the harness itself: fork, reap, verify, probe, classify (not the workers' run time).
    pub overhead: Duration,
    pub interrupted: bool,
    /// The crash point a worker was armed at this cycle (for the coverage table).
    pub armed: Option<&'static str>,
    /// How often each crash point was passed this cycle, over all workers.
    pub point_hits: Vec<(&'static str, u64)>,
    /// A replay with a recorded schedule: whether it left it (None: not replaying a schedule).
    pub diverged: Option<bool>,
    /// rpm index table → rows the cycle wrote (`coverage.rs`; empty for a conversion or interrupted cycle).
    pub index_rows: BTreeMap<String, u64>,
}

/// The run was asked to stop (Ctrl-C, SIGTERM, SIGHUP) while the scheduler was setting up or preparing a
/// database, outside any cycle: not a harness error — the run ends as interrupted, with its reports.
#[derive(Debug, thiserror::Error)]
#[error("interrupted while preparing")]
pub struct Interrupted;

/// Read the pending signals of the run's signalfd (non-blocking): whether one asks the run to stop. A
/// SIGCHLD read here has no child to go with (none runs outside a cycle).
fn interrupt_pending(signals: &SignalFd) -> bool {
    let mut stop = false;
    while let Ok(Some(si)) = signals.read_signal() {
        let sig = si.ssi_signo as i32;
        stop |= [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP].iter().any(|s| *s as i32 == sig);
    }
    stop
}

pub struct Scheduler<'a> {
    pub scenario: &'a Scenario,
    pub seed: u64,
    pub pool: Pool,
    pub targets: Vec<Target>,
    slots: SharedWords,
    /// The workers' memory cgroup (memory pressure), and what the run says about it.
    memcg: Option<crate::fault::memory::MemCgroup>,
    mem_note: Option<String>,
    signals: SignalFd,
    old_mask: SigSet,
    pub interrupted: bool,
    /// Write bundles here, for the cycles `bundle_policy` keeps.
    pub bundles: Option<PathBuf>,
    /// Which cycles keep a bundle (the scenario's `bundles` key; shrink asks for `Findings`).
    pub bundle_policy: crate::scenario::BundlePolicy,
    workdir: PathBuf,
    /// Replay: kill where these kills landed — at the crash point and hit they passed last, or (`true`) at
    /// the first point after it — instead of at their times.
    pub replay_kills: Option<Vec<(KillRecord, bool)>>,
    /// Replay: each child's recorded schedule (its crash-point tickets), to be followed.
    pub replay_schedule: Option<Vec<Vec<u64>>>,
    /// Children a cycle can have (the breadcrumb page has a slot for each, then the schedule's words).
    max_children: usize,
    /// The workload's `.rpm` files (SHA1HEADER, bytes), for targets driven through the rpm binary.
    rpm_files: Vec<(String, Vec<u8>)>,
}

impl<'a> Scheduler<'a> {
    /// Build the pool and prepare one database per backend under `workdir`.
    pub fn new(scenario: &'a Scenario, seed: u64, workdir: &Path) -> Result<Scheduler<'a>> {
        Self::with_backends(scenario, seed, workdir, None)
    }

    /// [`Scheduler::new`] for only some of the scenario's backends (all with `None`).
    pub fn with_backends(
        scenario: &'a Scenario,
        seed: u64,
        workdir: &Path,
        only: Option<&[BackendKind]>,
    ) -> Result<Scheduler<'a>> {
        let mut s = Self::unprepared(scenario, seed, workdir)?;
        for (slot, kind) in scenario.backend_kinds().into_iter().enumerate() {
            if only.is_some_and(|o| !o.contains(&kind)) {
                continue;
            }
            let dir = targets::target_dir(workdir, kind, scenario);
            let installed = s.prepare(kind, &dir, 0)?;
            s.targets.push(Target::new(kind, dir, installed, 0, slot));
        }
        Ok(s)
    }

    /// Whether Ctrl-C, SIGTERM or SIGHUP arrived while no cycle was supervised (set-up, a new epoch's
    /// database); remembered in `interrupted`.
    pub(super) fn interrupt_requested(&mut self) -> bool {
        self.interrupted |= interrupt_pending(&self.signals);
        self.interrupted
    }

    /// A scheduler whose targets the caller sets up ([`Scheduler::restore_target`], for a replay).
    pub fn unprepared(scenario: &'a Scenario, seed: u64, workdir: &Path) -> Result<Scheduler<'a>> {
        // SIGCHLD, SIGINT, SIGTERM and SIGHUP arrive through a signalfd the event loop polls; children
        // unblock them.
        let mut mask = SigSet::empty();
        for s in [Signal::SIGCHLD, Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            mask.add(s);
        }
        let old_mask = mask.thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK).context("sigprocmask")?;
        let signals =
            SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).context("signalfd")?;
        // Processes a killed worker started (the rpm binary) are re-parented to the scheduler, which waits
        // for them before it judges: nothing may still write while the database is checked.
        sys::become_subreaper().context("PR_SET_CHILD_SUBREAPER")?;
        let w = &scenario.workload;
        let spec = PoolSpec { names: w.packages, versions: w.versions, files_mean: w.files_mean, seed };
        let pool = Pool::build_unless(spec, || interrupt_pending(&signals))
            .context("building the package pool")?
            .ok_or(Interrupted)?;
        let max_children = (w.writers + w.readers).max(1) as usize;
        let slots = SharedWords::new(max_children * crashpoint::SLOT_WORDS + crate::fault::schedule::GLOBAL_WORDS)
            .context("mapping the shared breadcrumb page")?;
        let mut s = Scheduler {
            scenario,
            seed,
            pool,
            targets: Vec::new(),
            slots,
            memcg: None,
            mem_note: None,
            signals,
            old_mask,
            interrupted: false,
            bundles: None,
            bundle_policy: scenario.bundles,
            workdir: workdir.to_path_buf(),
            replay_kills: None,
            replay_schedule: None,
            max_children,
            rpm_files: Vec::new(),
        };
        if let Some(m) = &scenario.memory {
            let name = crate::leftovers::cgroup_name();
            let pageout = if m.pageout { "on" } else { "off" };
            match crate::fault::memory::MemCgroup::create(&name, m.limit_mb << 20, m.high_mb.map(|h| h << 20)) {
                Ok(cg) => {
                    s.mem_note = Some(format!(
                        "memory cgroup {:?} at {}: limit {} MiB{}, balloon {} MiB, MADV_PAGEOUT {pageout}",
                        cg.version,
                        cg.path.display(),
                        m.limit_mb,
                        m.high_mb.map(|h| format!(", high {h} MiB")).unwrap_or_default(),
                        m.balloon_mb,
                    ));
                    s.memcg = Some(cg);
                }
                Err(e) => {
                    s.mem_note =
                        Some(format!("{e}; using the balloon ({} MiB) and MADV_PAGEOUT ({pageout}) only", m.balloon_mb))
                }
            }
        }
        Ok(s)
    }

    /// Run one cycle on target `t`: plan → spawn → supervise → judge → record.
    pub fn cycle(&mut self, t: usize, cycle: u64, obs: &mut dyn Observer) -> Result<CycleResult> {
        self.enter_epoch(t, cycle)?;
        let started = Instant::now();
        let sc = self.scenario;
        let kind = self.targets[t].kind;
        let mut ctx = Ctx::new(cycle, kind, obs);
        let mut plan = CyclePlan::draw(sc, kind, derive_seed(self.seed, self.targets[t].slot as u64 + 1, cycle), cycle);
        if let Some(kills) = &self.replay_kills {
            plan.replaying(kills);
        }
        if self.bundles.is_some() {
            let pre = self.side_dir(kind, "pre");
            let _ = std::fs::remove_dir_all(&pre);
            crate::bundle::copy_dir(&self.targets[t].dir, &pre).context("copying the database for a bundle")?;
        }
        let described = plan.describe();
        ctx.cycle_start(plan.seed, described.clone());
        if let Some(note) = self.mem_note.take() {
            ctx.fault(FaultKind::Memory, note);
        }

        // Spawn, supervise, reap.
        let n = plan.children.len();
        let balloon_mb = sc.memory.as_ref().map(|m| m.balloon_mb).unwrap_or(0);
        let mut faults: Vec<Box<dyn CycleFault + '_>> =
            vec![Box::new(faults::MemoryFault::start(self.memcg.as_ref(), balloon_mb)?)];
        if let Some(st) = plan.stale.clone() {
            faults.push(Box::new(faults::StaleFault::new(st)));
        }
        let words = self.slots.words();
        let global = &words[self.max_children * crashpoint::SLOT_WORDS..];
        crate::fault::schedule::reset(global);
        // Power loss: record the cycle's file operations (mounted before any child exists).
        // I/O kill points: the same recorder counts the cycle's operations and holds the armed one.
        let recording = match sc.power_loss.is_some() || sc.io_kill.is_some() {
            true => Some(crate::scheduler::powercut::Recording::start(
                &crate::scheduler::powercut::mount_point(&self.targets[t].dir, &plan.work),
                &self.side_dir(kind, "power-loss"),
            )?),
            false => None,
        };
        if let (Some(r), Some(a)) = (&recording, plan.io) {
            r.gate().arm(a);
        }
        let f0 = Instant::now();
        let mut children = self.spawn(t, cycle, &plan)?;
        let fork_time = f0.elapsed();
        let mut got = Collected::new(match plan.work {
            Work::Workers { writers, .. } => writers,
            Work::Convert { .. } => 0,
        });
        let watch = supervise::Watch {
            signals: &self.signals,
            words,
            global,
            timeout: Duration::from_millis(sc.timeouts.cycle_ms),
            io: recording.as_ref().map(|r| r.gate()),
        };
        let dir = self.targets[t].dir.clone();
        let mut env = FaultEnv { dir: &dir, rng: &mut plan.rng, ctx: &mut ctx };
        let sup = supervise::run(&mut children, &watch, &mut faults, &mut env, &mut got)?;
        let done = faults::finish_all(&mut faults, &mut ctx);
        drop(faults);
        // I/O operations are kill points only where [io_kill] arms them; a power-loss recording counts them too.
        let io_passed =
            recording.as_ref().filter(|_| sc.io_kill.is_some()).map(|r| r.gate().passed()).unwrap_or_default();
        let injected = recording.as_ref().and_then(|r| r.gate().injected());
        let recorded = recording.map(|r| r.finish()).transpose()?.filter(|_| sc.power_loss.is_some());
        sys::reap_orphans(Duration::from_secs(10)).map_err(anyhow::Error::msg)?;
        self.interrupted |= sup.interrupted;
        let mut point_hits = point_hits(&words[..n * crashpoint::SLOT_WORDS]);
        point_hits.extend(io_passed.into_iter().map(|(op, n)| (op.point(), n)));
        self.report_regions(&words[..n * crashpoint::SLOT_WORDS], &mut ctx);
        let schedule: Vec<Vec<u64>> = words[..n * crashpoint::SLOT_WORDS]
            .chunks(crashpoint::SLOT_WORDS)
            .map(|slot| crate::fault::schedule::recorded(crashpoint::schedule_words(slot)))
            .collect();
        let diverged = self.replay_schedule.as_ref().map(|_| {
            let slots = || words[..n * crashpoint::SLOT_WORDS].chunks(crashpoint::SLOT_WORDS);
            for short in crate::fault::schedule::untaken(slots().map(crashpoint::schedule_words)) {
                eprintln!("replay: {short}");
            }
            !crate::fault::schedule::followed(global, slots().map(crashpoint::schedule_words))
        });

        // How each child ended: kills, findings, hang.
        let mut kills = Vec::new();
        let mut findings = std::mem::take(&mut got.findings);
        let mut hang = false;
        let mut exited_on_error = false;
        for c in &children {
            let slot = &words[c.index as usize * crashpoint::SLOT_WORDS..];
            let facts = verdict::EndFacts {
                status: c.status.expect("supervise reaps every child"),
                sent: c.sent,
                oom_kills: done.oom_kills,
                foreign_region_fault: kind.is_foreign() && done.stale_written,
                reported: got.reported.contains(&c.index),
                panic: got.panics.get(&c.index).map(String::as_str),
            };
            let end = verdict::decide(&facts);
            exited_on_error |= matches!(end, WorkerEnd::Failed { .. });
            ctx.worker_exit(c.index, c.role, &end);
            let who = verdict::Who { index: c.index, role: c.role, killed_at: c.killed_at };
            let e = verdict::effect(&end, who, &crashpoint::read(slot));
            if let Some(k) = e.kill {
                ctx.kill(&k);
                kills.push(k);
            }
            findings.extend(e.finding);
            hang |= e.hang;
        }
        // An injected I/O error: the worker that failed with the engine's error for it is no finding.
        let pids: Vec<(u32, u32)> = children.iter().map(|c| (c.index, c.pid.as_raw() as u32)).collect();
        if let Some(io) = ioerror::judge(kind, plan.io, injected, &pids, &mut findings) {
            ctx.io_error(io);
        }
        if self.interrupted {
            // Cut short by SIGINT/SIGTERM/SIGHUP: not verified, not counted as an outcome.
            return Ok(CycleResult {
                cycle,
                backend: kind,
                outcome: Outcome::Clean,
                expected: true,
                findings: Vec::new(),
                kills,
                commits: got.commits(),
                duration: started.elapsed(),
                overhead: Duration::ZERO,
                interrupted: true,
                armed: None,
                point_hits: Vec::new(),
                diverged,
                index_rows: BTreeMap::new(),
            });
        }

        // Judge.
        let v0 = Instant::now();
        let mut messages = Vec::new();
        for (worker, line) in std::mem::take(&mut got.messages) {
            messages.push(line.clone());
            ctx.engine_message(worker, line);
        }
        let before = self.targets[t].installed.clone();
        let judged = match plan.work {
            Work::Workers { .. } => {
                let promises = kind.promises();
                if promises.isolated {
                    findings.append(&mut got.reader);
                }
                let logs = &got.logs;
                let rpm_oracle = rpmoracle::due(sc, cycle).then(|| (dir.clone(), self.side_dir(kind, "rpm-oracle")));
                // The check runs again after a recovery: each run's note is kept.
                let ran = std::cell::RefCell::new(Vec::new());
                let seen = verdict::Seen { findings, hang, messages: &messages };
                let uncertain = self.targets[t].uncertain.clone();
                let j = self.judge(t, kind, seen, &mut ctx, |pool, after| {
                    let mut f = oracle::check(pool, logs, &before, after, promises, &uncertain);
                    if let Some((dir, scratch)) = &rpm_oracle {
                        let r = rpmoracle::run(kind, dir, scratch);
                        f.extend(r.findings);
                        ran.borrow_mut().push(r.note);
                    }
                    f
                })?;
                for note in ran.into_inner() {
                    ctx.engine_message(events::PROBE_WORKER, note);
                }
                self.targets[t].installed = match &j.installed {
                    Some(s) => s.clone(),
                    None => {
                        let fresh = self.prepare_empty(t)?;
                        ctx.recovery("reset", true, "database recreated empty".into());
                        fresh
                    }
                };
                j
            }
            Work::Convert { from, to, by } => {
                // Which database is in place now: the converted one or the original? Either must hold
                // exactly the packages the original held.
                let now_kind = if to.present(&dir) && !from.present(&dir) { to } else { from };
                if by == crate::scenario::Converter::Rpm {
                    let want = before.iter().map(|&id| self.pool.get(id).sha1.clone()).collect();
                    let scratch = self.side_dir(kind, "rpm-convert");
                    findings.extend(rpmconvert::judge(&dir, &scratch, &want, !kills.is_empty(), &mut ctx).findings);
                }
                let seen = verdict::Seen { findings, hang, messages: &messages };
                let j =
                    self.judge(t, now_kind, seen, &mut ctx, |_, after| whole_conversion(now_kind, &before, after))?;
                // The next cycle starts from the original backend with the same packages.
                let keep = self.targets[t].installed.clone();
                self.recreate(t, &keep)?;
                self.clear_rebuild_leftovers(t)?;
                rpmconvert::clear_leftovers(&dir);
                j
            }
        };
        let mut judged = judged;
        if let Some((pre, log)) = recorded {
            let pl = crate::scheduler::powercut::CycleCtx {
                scenario: sc,
                run_seed: self.seed,
                cycle,
                cycle_seed: plan.seed,
                target: self.targets[t].slot,
                kind,
                pool: &self.pool,
                scratch: self.side_dir(kind, "image"),
                bundles: self.bundles.as_deref(),
                swap: crate::scheduler::powercut::swap_of(&dir, &plan.work, &got.acks),
            };
            let v = crate::scheduler::powercut::after_cycle(pl, pre, log, &got.logs, &got.acks, &before, &mut ctx)?;
            if let Some(o) =
                v.outcome.filter(|o| o.severity() > judged.outcome.severity() || judged.outcome == Outcome::Clean)
            {
                judged.outcome = o;
            }
            judged.findings.extend(v.findings);
        }
        // Every finding explained by a recorded fault (power-loss cycles are judged by their crash images).
        let carried_in = std::mem::take(&mut self.targets[t].carried);
        let uncertain_in = std::mem::take(&mut self.targets[t].uncertain);
        let causes = explain::causes(&kills, exited_on_error, done.stale_written, sc.memory.is_some(), &carried_in);
        let unexplained = match sc.power_loss {
            Some(_) => Vec::new(),
            None => {
                let kinds: Vec<_> = judged.findings.iter().map(|f| (events::record(f).kind, f)).collect();
                explain::unexplained(kind, &causes, &kinds, judged.hang)
            }
        };
        for u in &unexplained {
            ctx.finding("explain", u);
        }
        // The scenario's `[[expect_when]]` rules whose fault shape is this cycle's.
        let faults = crate::scenario::when::CycleFaults {
            kills: &kills,
            causes: &causes,
            carried: &carried_in,
            exited_on_error,
        };
        let unmet = match sc.power_loss {
            Some(_) => Vec::new(),
            None => expectations::unmet(&sc.expect_when, kind, &faults, judged.outcome),
        };
        for u in &unmet {
            ctx.finding("expect", u);
        }
        self.targets[t].carried = if matches!(plan.work, Work::Convert { .. }) {
            Vec::new()
        } else {
            explain::carry(judged.outcome, &causes)
        };
        if !self.targets[t].carried.is_empty() {
            // Adopted without recovery: what the killed writers had in flight stays open (a recovery, or a
            // cycle that ends clean, closes it).
            let mut open = oracle::in_flight(&got.logs);
            open.extend(&uncertain_in);
            self.targets[t].uncertain = open;
        }
        let allowed = sc.expected(kind);
        let expected = allowed.contains(&judged.outcome)
            && durability::losses_allowed(&allowed, &judged.findings)
            && unexplained.is_empty()
            && unmet.is_empty();
        judged.findings.extend(unexplained);
        judged.findings.extend(unmet);
        if self.bundles.is_some() && self.bundle_policy.keeps(expected, !judged.findings.is_empty()) {
            let rec = bundling::BundleRecord {
                before: &before,
                plan: &described,
                kills: &kills,
                schedule,
                carried: &carried_in,
                uncertain: &uncertain_in,
            };
            self.record_bundle(t, cycle, rec, judged.outcome, &judged.findings, &mut ctx);
        }
        let res = CycleResult {
            cycle,
            backend: kind,
            outcome: judged.outcome,
            expected,
            findings: judged.findings,
            kills,
            commits: got.commits(),
            duration: started.elapsed(),
            overhead: fork_time + v0.elapsed(),
            interrupted: false,
            armed: plan.armed(),
            point_hits,
            diverged,
            index_rows: match plan.work {
                Work::Workers { .. } => coverage::rows_written(&self.pool, &before, &self.targets[t].installed),
                Work::Convert { .. } => BTreeMap::new(),
            },
        };
        Ok(finish(res, &mut ctx))
    }
}

impl Drop for Scheduler<'_> {
    fn drop(&mut self) {
        let _ = self.old_mask.thread_set_mask();
    }
}

/// A conversion killed anywhere leaves the whole original or the whole converted database: the one in
/// place must hold exactly the packages the original held.
fn whole_conversion(now: BackendKind, before: &BTreeSet<u32>, after: &BTreeSet<u32>) -> Vec<Finding> {
    if after == before {
        return Vec::new();
    }
    vec![Finding::from(HarnessFinding::PartialTransaction {
        worker: 0,
        txn: 0,
        detail: format!(
            "the {} database in place after the conversion holds {} packages, the original held {}",
            now.name(),
            after.len(),
            before.len()
        ),
    })]
}

/// End a verified cycle: its `cycle-end` event is derived from the result, then the observer sees it.
fn finish(res: CycleResult, ctx: &mut Ctx<'_>) -> CycleResult {
    ctx.emit(&RunEvent::CycleEnd {
        cycle: res.cycle,
        backend: res.backend.name().into(),
        outcome: res.outcome,
        expected: res.expected,
        findings: res.findings.len(),
        commits: res.commits,
        duration_ms: res.duration.as_secs_f64() * 1000.0,
        armed: res.armed.map(String::from),
        hits: res.point_hits.iter().filter(|(_, h)| *h > 0).map(|(p, h)| (p.to_string(), *h)).collect(),
        index_rows: res.index_rows.clone(),
    });
    ctx.observer().cycle_done(&res);
    res
}

/// Crash point hits of all children's slots, summed: (point, hits).
fn point_hits(words: &[crate::sys::AtomicU64]) -> Vec<(&'static str, u64)> {
    let mut sum: BTreeMap<u32, u64> = BTreeMap::new();
    for slot in words.chunks(crashpoint::SLOT_WORDS) {
        for (id, h) in crashpoint::hits(slot) {
            *sum.entry(id).or_default() += h;
        }
    }
    sum.into_iter().map(|(id, h)| (dbtorture_backends::crash::ALL[id as usize], h)).collect()
}
