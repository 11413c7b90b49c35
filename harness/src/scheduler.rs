//! The scheduler: from a single-threaded process, run cycles of fork → faults → reap → verify → classify →
//! recover, and stream what happened into the reports.
//!
//! Why one event loop: the scheduler waits on the workers' pipes and a signalfd (SIGCHLD, SIGINT, SIGTERM) with
//! `poll`, so it drains reports, delivers kills on time, notices a worker that stopped at a crash point, and
//! notices Ctrl-C — all without threads (fork needs a single-threaded parent) and without ever blocking on a
//! worker: a worker that overruns the cycle timeout is SIGKILLed and the cycle is a `hang`.

use crate::fault::{crashpoint, plan};
use crate::oracle::{self, TxnState, WriterLog};
use crate::scenario::Scenario;
use crate::sys::{self, SharedWords};
use crate::verify::{self, Probe};
use crate::worker::{self, Role, WorkerSpec, events::WorkerMsg};
use crate::workload::{Pool, PoolSpec, ops::in_slice};
use anyhow::{Context, Result};
use dbtorture_backends::rpmdb::{Finding, FindingClass};
use dbtorture_backends::{BackendKind, OpenMode};
use dbtorture_reports::{FindingRecord, KillRecord, Outcome, RunEvent};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
}

impl CycleResult {
    /// A cycle cut short by SIGINT/SIGTERM: not verified, not counted as an outcome.
    fn interrupted(cycle: u64, backend: BackendKind, kills: Vec<KillRecord>, commits: u64, duration: Duration) -> Self {
        CycleResult {
            cycle,
            backend,
            outcome: Outcome::Clean,
            expected: true,
            findings: Vec::new(),
            kills,
            commits,
            duration,
            overhead: Duration::ZERO,
            interrupted: true,
            armed: None,
            point_hits: Vec::new(),
        }
    }
}

/// One backend's database under torture.
pub struct Target {
    pub kind: BackendKind,
    pub dir: PathBuf,
    /// Pool ids installed now (as last verified).
    pub installed: BTreeSet<u32>,
    /// The epoch the database belongs to (see `Scenario::epoch`).
    pub epoch: u64,
    /// Position of the backend in the scenario's list: cycles are seeded by it, so running one backend alone
    /// (`run --backend`) gives that backend the same cycles as running them all.
    pub slot: usize,
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
    /// Write a bundle for every cycle whose outcome the scenario does not allow, here.
    pub bundles: Option<PathBuf>,
    workdir: PathBuf,
    /// Replay: kill where these kills landed — at the crash point and hit they passed last, or (`true`) at
    /// the first point after it — instead of at their times.
    pub replay_kills: Option<Vec<(KillRecord, bool)>>,
    /// The workload's `.rpm` files (SHA1HEADER, bytes), for targets driven through the rpm binary.
    rpm_files: Vec<(String, Vec<u8>)>,
}

struct Live {
    index: u32,
    role: Role,
    pid: Pid,
    pipe: Option<std::fs::File>,
    buf: Vec<u8>,
    plan: plan::WorkerPlan,
    killed_at: Option<Duration>,
    /// The last signal the scheduler sent.
    sent: Option<Signal>,
    trigger: &'static str,
    timed_out: bool,
    status: Option<WaitStatus>,
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
            let dir = workdir.join(kind.name()).join("db");
            let installed = s.prepare(kind, &dir, 0)?;
            s.targets.push(Target { kind, dir, installed, epoch: 0, slot });
        }
        Ok(s)
    }

    /// A scheduler whose targets the caller sets up (replay).
    pub fn unprepared(scenario: &'a Scenario, seed: u64, workdir: &Path) -> Result<Scheduler<'a>> {
        // SIGCHLD, SIGINT and SIGTERM arrive through a signalfd the event loop polls; children unblock them.
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        mask.add(Signal::SIGINT);
        mask.add(Signal::SIGTERM);
        let old_mask = mask.thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK).context("sigprocmask")?;
        let signals =
            SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).context("signalfd")?;
        // Processes a killed worker started (the rpm binary) are re-parented to the scheduler, which waits
        // for them before it judges: nothing may still write while the database is checked.
        sys::become_subreaper().context("PR_SET_CHILD_SUBREAPER")?;
        let w = &scenario.workload;
        let pool = Pool::build(PoolSpec { names: w.packages, versions: w.versions, files_mean: w.files_mean, seed })
            .context("building the package pool")?;
        let slots = SharedWords::new(((w.writers + w.readers).max(1) as usize) * crashpoint::SLOT_WORDS)
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
            workdir: workdir.to_path_buf(),
            replay_kills: None,
            rpm_files: Vec::new(),
        };
        if let Some(m) = &scenario.memory {
            let name = format!("dbtorture-{}", std::process::id());
            match crate::fault::memory::MemCgroup::create(&name, m.limit_mb << 20, m.high_mb.map(|h| h << 20)) {
                Ok(cg) => {
                    s.mem_note = Some(format!(
                        "memory cgroup {:?} at {}: limit {} MiB{}, balloon {} MiB, MADV_PAGEOUT {}",
                        cg.version,
                        cg.path.display(),
                        m.limit_mb,
                        m.high_mb.map(|h| format!(", high {h} MiB")).unwrap_or_default(),
                        m.balloon_mb,
                        if m.pageout { "on" } else { "off" }
                    ));
                    s.memcg = Some(cg);
                }
                Err(e) => {
                    s.mem_note = Some(format!(
                        "{e}; using the balloon ({} MiB) and MADV_PAGEOUT ({}) only",
                        m.balloon_mb,
                        if m.pageout { "on" } else { "off" }
                    ))
                }
            }
        }
        Ok(s)
    }

    fn side_dir(&self, kind: BackendKind, what: &str) -> PathBuf {
        self.workdir.join(kind.name()).join(what)
    }

    /// Remove `dir` and, for targets that install through the rpm binary, put the workload's package files
    /// back into it (built once per run).
    fn fresh_dir(&mut self, kind: BackendKind, dir: &Path) -> Result<()> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        if kind.needs_package_files() {
            if self.rpm_files.is_empty() {
                self.rpm_files = self.pool.rpm_files().context("writing the workload's .rpm files")?;
            }
            let pkgs = dir.join(dbtorture_backends::rpmcli::PKGS);
            std::fs::create_dir_all(&pkgs)?;
            for (sha1, bytes) in &self.rpm_files {
                std::fs::write(pkgs.join(format!("{sha1}.rpm")), bytes)?;
            }
        }
        Ok(())
    }

    /// Create a fresh database for `epoch` and install its initial packages in one transaction.
    fn prepare(&mut self, kind: BackendKind, dir: &Path, epoch: u64) -> Result<BTreeSet<u32>> {
        self.fresh_dir(kind, dir)?;
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(self.seed, 0xfeed, epoch));
        let w = &self.scenario.workload;
        let mut installed = BTreeSet::new();
        let mut db = kind.open(dir, OpenMode::Create).with_context(|| format!("creating {}", dir.display()))?;
        db.begin()?;
        for n in 0..w.packages {
            if rng.random_range(0.0..1.0) < w.initial_fraction {
                let id = n * w.versions + rng.random_range(0..w.versions);
                db.install(&self.pool.get(id).installed_blob(1_600_000_000))?;
                installed.insert(id);
            }
        }
        db.commit()?;
        db.close()?;
        Ok(installed)
    }

    /// Run one cycle on target `t`.
    pub fn cycle(&mut self, t: usize, cycle: u64, obs: &mut dyn Observer) -> Result<CycleResult> {
        // A new epoch starts from its own fresh database, whatever the cycles before left.
        let epoch = cycle / self.scenario.epoch;
        if self.targets[t].epoch != epoch {
            let (kind, dir) = (self.targets[t].kind, self.targets[t].dir.clone());
            self.targets[t].installed = self.prepare(kind, &dir, epoch)?;
            self.targets[t].epoch = epoch;
        }
        if let Some(to) = self.scenario.convert_to() {
            return self.convert_cycle(t, cycle, to, obs);
        }
        let started = Instant::now();
        let sc = self.scenario;
        let w = &sc.workload;
        let kind = self.targets[t].kind;
        let bname = kind.name().to_string();
        let cseed = derive_seed(self.seed, self.targets[t].slot as u64 + 1, cycle);
        let mut rng = ChaCha8Rng::seed_from_u64(cseed);
        let points: Vec<u32> = dbtorture_backends::crash::points_of(kind.point_prefix())
            .filter_map(dbtorture_backends::crash::id_of)
            .collect();
        let mut plans = plan::draw(&mut rng, &sc.kill, w.writers, w.readers, &points, cycle);
        let mut stale = StaleState::draw(&mut rng, sc, w.writers);
        if let Some(StaleState { worker: Some(sw), .. }) = &stale {
            // The paused writer's breadcrumb slot serves the stale-page points, not a crash-point kill.
            plans[*sw].arm = None;
        }
        if let Some(kills) = &self.replay_kills {
            // Replay: only the recorded kills happen, each at (or just after) the crash point and hit it
            // landed on; every other worker runs to its end.
            for p in plans.iter_mut() {
                p.kill_at = None;
                p.arm = None;
                p.arm_after = false;
            }
            for (k, after) in kills {
                let (Some(p), Some(hit), Some(plan)) = (&k.last_point, k.last_hit, plans.get_mut(k.worker as usize))
                else {
                    continue;
                };
                if let Some(id) = dbtorture_backends::crash::id_of(p) {
                    plan.kill_at = None;
                    plan.arm = Some((id, hit as u32));
                    plan.arm_after = *after && k.trigger != "point";
                }
            }
        }
        if self.bundles.is_some() {
            let pre = self.side_dir(kind, "pre");
            let _ = std::fs::remove_dir_all(&pre);
            crate::bundle::copy_dir(&self.targets[t].dir, &pre).context("copying the database for a bundle")?;
        }
        let mut describe_plan = describe(&plans);
        if let Some(st) = &stale {
            describe_plan.push_str(&format!(" {}", st.describe()));
        }
        let describe_plan_copy = describe_plan.clone();
        obs.event(&RunEvent::CycleStart { cycle, backend: bname.clone(), seed: cseed, plan: describe_plan });

        // Memory pressure: note the cgroup once, take its counters, start the balloon.
        if cycle == 0
            && t == 0
            && let Some(sp) = &sc.stale_page
        {
            obs.event(&RunEvent::Fault {
                cycle,
                backend: bname.clone(),
                kind: "mlock".into(),
                detail: if sp.mlock {
                    "region mappings are mlock()ed in every worker".into()
                } else {
                    "region mappings are not mlock()ed".into()
                },
            });
        }
        if let Some(note) = self.mem_note.take() {
            obs.event(&RunEvent::Fault { cycle, backend: bname.clone(), kind: "memory".into(), detail: note });
        }
        let mem_before = self.memcg.as_ref().map(|c| c.events());
        let balloon = match sc.memory.as_ref().filter(|m| m.balloon_mb > 0) {
            Some(m) => {
                let memcg = self.memcg.as_ref();
                let bytes = (m.balloon_mb << 20) as usize;
                let (rd, wr): (OwnedFd, OwnedFd) = nix::unistd::pipe().context("pipe")?;
                let wr_ref = &wr;
                let pid = sys::fork_child(move || {
                    if let Some(cg) = memcg {
                        let _ = cg.add(std::process::id());
                    }
                    match wr_ref.try_clone() {
                        Ok(fd) => crate::fault::memory::balloon(bytes, std::fs::File::from(fd)),
                        Err(_) => 1,
                    }
                })?;
                drop(wr);
                // Wait (bounded) until the balloon is inflated, so the workers start under pressure.
                let mut fds = [PollFd::new(rd.as_fd(), PollFlags::POLLIN)];
                let _ = poll(&mut fds, PollTimeout::from(2000u16));
                Some(pid)
            }
            None => None,
        };

        // Fork the workers.
        let n = (w.writers + w.readers) as usize;
        let words = self.slots.words();
        let mut live: Vec<Live> = Vec::with_capacity(n);
        let mut fork_time = Duration::ZERO;
        for (i, p) in plans.iter().enumerate() {
            let slot = &words[i * crashpoint::SLOT_WORDS..(i + 1) * crashpoint::SLOT_WORDS];
            let (arm, after) = match &stale {
                Some(st) if st.worker == Some(i) => (Some(st.snapshot_point), false),
                _ => (p.arm, p.arm_after),
            };
            crashpoint::arm_at(slot, arm, after);
            let role = if (i as u32) < w.writers { Role::Writer } else { Role::Reader };
            let installed: BTreeSet<u32> = match role {
                Role::Writer => self.targets[t]
                    .installed
                    .iter()
                    .copied()
                    .filter(|&id| in_slice(&self.pool, id, i as u32, w.writers))
                    .collect(),
                Role::Reader => BTreeSet::new(),
            };
            let spec = WorkerSpec {
                index: i as u32,
                role,
                writers: w.writers,
                backend: kind,
                dir: &self.targets[t].dir,
                seed: rng.random(),
                ops: if role == Role::Writer { w.txns_per_writer } else { w.queries_per_reader },
                txn_base: cycle * 1_000_000 + i as u64 * 10_000,
                installed,
                pageout: sc.memory.as_ref().is_some_and(|m| m.pageout),
                mlock: sc.stale_page.as_ref().is_some_and(|s| s.mlock),
            };
            let (rd, wr): (OwnedFd, OwnedFd) = nix::unistd::pipe().context("pipe")?;
            let pool = &self.pool;
            let shared = &self.slots;
            let f0 = Instant::now();
            let wr_ref = &wr;
            let memcg = self.memcg.as_ref();
            let pid = sys::fork_child(move || {
                if let Some(cg) = memcg {
                    let _ = cg.add(std::process::id());
                }
                let all = shared.child_static();
                crashpoint::install(&all[i * crashpoint::SLOT_WORDS..(i + 1) * crashpoint::SLOT_WORDS]);
                match wr_ref.try_clone() {
                    Ok(fd) => worker::run(spec, pool, std::fs::File::from(fd)),
                    Err(_) => worker::exit::PIPE,
                }
            })?;
            drop(wr);
            fork_time += f0.elapsed();
            nix::fcntl::fcntl(rd.as_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK))?;
            live.push(Live {
                index: i as u32,
                role,
                pid,
                pipe: Some(std::fs::File::from(rd)),
                buf: Vec::new(),
                plan: p.clone(),
                killed_at: None,
                sent: None,
                trigger: "",
                timed_out: false,
                status: None,
            });
        }

        // Event loop: reports, kills, stops, timeouts, Ctrl-C.
        let t0 = Instant::now();
        let timeout = Duration::from_millis(sc.timeouts.cycle_ms);
        let mut logs: Vec<WriterLog> = vec![WriterLog::default(); w.writers as usize];
        let mut got = Collected::default();
        let mut kills: Vec<KillRecord> = Vec::new();
        loop {
            let now = t0.elapsed();
            // Deliver due kills.
            for l in live.iter_mut().filter(|l| l.status.is_none() && l.killed_at.is_none()) {
                if l.plan.kill_at.is_some_and(|k| k <= now) {
                    let _ = kill(l.pid, l.plan.signal);
                    l.killed_at = Some(now);
                    l.sent = Some(l.plan.signal);
                    l.trigger = "time";
                }
            }
            if now >= timeout {
                // Also a worker that was sent SIGINT/SIGTERM and has not finished by now.
                for l in live.iter_mut().filter(|l| l.status.is_none() && l.sent != Some(Signal::SIGKILL)) {
                    let _ = kill(l.pid, Signal::SIGKILL);
                    l.killed_at = Some(now);
                    l.sent = Some(Signal::SIGKILL);
                    l.trigger = "timeout";
                    l.timed_out = true;
                }
            }
            if let Some(st) = &mut stale {
                st.on_time(now, &self.targets[t].dir, &mut rng, cycle, &bname, obs);
            }
            let stopped = reap(&mut live, words, t0, stale.as_ref().and_then(|s| s.worker));
            for i in stopped {
                if let Some(st) = &mut stale {
                    st.on_stop(
                        &live[i],
                        &words[i * crashpoint::SLOT_WORDS..],
                        &self.targets[t].dir,
                        &mut rng,
                        cycle,
                        &bname,
                        obs,
                    );
                }
            }
            for l in live.iter_mut() {
                drain(l, &mut logs, &mut got);
            }
            if live.iter().all(|l| l.status.is_some()) {
                break;
            }
            let next_kill = live
                .iter()
                .filter(|l| l.status.is_none() && l.killed_at.is_none())
                .filter_map(|l| l.plan.kill_at)
                .chain(stale.as_ref().and_then(StaleState::next_deadline))
                .min()
                .unwrap_or(timeout)
                .min(timeout);
            let wait_ms = next_kill.saturating_sub(t0.elapsed()).as_micros().div_ceil(1000).clamp(0, 1000) as u16;
            let mut fds: Vec<PollFd> = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
            for l in &live {
                if let Some(p) = &l.pipe {
                    fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
                }
            }
            match poll(&mut fds, PollTimeout::from(wait_ms)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e).context("poll"),
            }
            drop(fds);
            while let Ok(Some(si)) = self.signals.read_signal() {
                let sig = si.ssi_signo as i32;
                if sig == Signal::SIGINT as i32 || sig == Signal::SIGTERM as i32 {
                    self.interrupted = true;
                    for l in live.iter_mut().filter(|l| l.status.is_none()) {
                        let _ = kill(l.pid, Signal::SIGKILL);
                        l.sent = Some(Signal::SIGKILL);
                        l.killed_at.get_or_insert(t0.elapsed());
                        if l.trigger.is_empty() {
                            l.trigger = "interrupt";
                        }
                    }
                }
            }
        }
        for l in live.iter_mut() {
            drain_to_eof(l, &mut logs, &mut got);
        }
        if let Some(b) = balloon {
            let _ = kill(b, Signal::SIGKILL);
            let _ = waitpid(b, None);
        }
        sys::reap_orphans(Duration::from_secs(10)).map_err(anyhow::Error::msg)?;
        let mem = match (&self.memcg, mem_before) {
            (Some(cg), Some(before)) => {
                let d = cg.events().delta(&before);
                obs.event(&RunEvent::Memory {
                    cycle,
                    backend: bname.clone(),
                    limit_hits: d.limit_hits,
                    high: d.high,
                    oom_kills: d.oom_kills,
                    pageouts: d.pageouts,
                });
                d
            }
            _ => Default::default(),
        };

        let point_hits = point_hits(&words[..n * crashpoint::SLOT_WORDS]);
        // Classify each worker's end.
        let mut hang = false;
        for l in &live {
            let status = l.status.expect("reaped");
            let crumb = crashpoint::read(&words[l.index as usize * crashpoint::SLOT_WORDS..]);
            let status_text = format!("{status:?}");
            obs.event(&RunEvent::WorkerExit { cycle, backend: bname.clone(), worker: l.index, status: status_text });
            match status {
                // Died of the signal we sent, or (SIGINT/SIGTERM) shut down cleanly after it: a planned kill.
                WaitStatus::Signaled(_, sig, _) if l.sent == Some(sig) => {
                    hang |= l.timed_out;
                    let rec = kill_record(l, sig, &crumb);
                    obs.event(&RunEvent::Kill { cycle, backend: bname.clone(), kill: rec.clone() });
                    kills.push(rec);
                }
                WaitStatus::Exited(_, _) if l.sent.is_some_and(|s| s != Signal::SIGKILL) => {
                    let rec = kill_record(l, l.sent.expect("sent"), &crumb);
                    obs.event(&RunEvent::Kill { cycle, backend: bname.clone(), kill: rec.clone() });
                    kills.push(rec);
                }
                // Under memory pressure an OOM kill is a crash like any other.
                WaitStatus::Signaled(_, Signal::SIGKILL, _) if mem.oom_kills > 0 => {
                    let mut rec = kill_record(l, Signal::SIGKILL, &crashpoint::Breadcrumb { stopped: false, ..crumb });
                    rec.trigger = "oom".into();
                    obs.event(&RunEvent::Kill { cycle, backend: bname.clone(), kill: rec.clone() });
                    kills.push(rec);
                }
                WaitStatus::Exited(_, 0) => {}
                WaitStatus::Exited(_, _) => {} // its error message is already a finding
                // A real engine (code not ours) that dies of a memory fault after we wrote a stale page into
                // its shared region: the fault's effect on the engine, not a harness error.
                WaitStatus::Signaled(_, sig @ (Signal::SIGSEGV | Signal::SIGBUS), _)
                    if kind.is_foreign() && stale.as_ref().is_some_and(StaleState::written) =>
                {
                    got.findings.push(Finding::EnvironmentError {
                        by: format!("{} {}", l.role.name(), l.index),
                        message: format!(
                            "died of {sig} inside {} after a stale page of its region (last crash point {:?})",
                            kind.name(),
                            crumb.last
                        ),
                    })
                }
                other => got.findings.push(Finding::WorkerCrashed {
                    worker: l.index,
                    role: l.role.name().into(),
                    detail: format!("{other:?} (not a signal the scheduler sent; last crash point {:?})", crumb.last),
                }),
            }
        }
        if self.interrupted {
            return Ok(CycleResult::interrupted(
                cycle,
                kind,
                kills,
                logs.iter().map(|l| l.committed() as u64).sum(),
                started.elapsed(),
            ));
        }

        // Verify: data + oracle + operability.
        let v0 = Instant::now();
        let before = self.targets[t].installed.clone();
        let promises = kind.promises();
        for (worker, line) in &got.messages {
            obs.event(&RunEvent::EngineMessage {
                cycle,
                backend: bname.clone(),
                worker: *worker,
                message: line.clone(),
            });
        }
        let mut findings = got.findings;
        if promises.isolated {
            findings.extend(got.reader);
        }
        let dir = self.targets[t].dir.clone();
        let (outcome, findings, installed) = self.judge(t, kind, &dir, cycle, findings, hang, obs, |pool, after| {
            oracle::check(pool, &logs, &before, after, promises)
        })?;
        let installed = match installed {
            Some(s) => s,
            None => {
                // Unreadable even after recovery: start over from an empty database.
                let fresh = self.prepare_empty(t)?;
                obs.event(&RunEvent::Recovery {
                    cycle,
                    backend: bname.clone(),
                    procedure: "reset".into(),
                    ok: true,
                    detail: "database recreated empty".into(),
                });
                fresh
            }
        };
        self.targets[t].installed = installed;
        let expected = sc.expected(kind).contains(&outcome);
        let commits = logs.iter().map(|l| l.committed() as u64).sum();
        let duration = started.elapsed();
        let overhead = fork_time + v0.elapsed();
        if !expected && self.bundles.is_some() {
            match self.write_bundle(t, cycle, &before, &describe_plan_copy, &kills, outcome, &findings) {
                // Relative to the run's output directory (the parent of the bundles directory).
                Ok(path) => obs.event(&RunEvent::Bundle {
                    cycle,
                    backend: bname.clone(),
                    path: Path::new(self.bundles.as_ref().and_then(|b| b.file_name()).unwrap_or_default())
                        .join(path.file_name().unwrap_or_default())
                        .display()
                        .to_string(),
                }),
                Err(e) => obs.event(&RunEvent::Fault {
                    cycle,
                    backend: bname.clone(),
                    kind: "bundle".into(),
                    detail: format!("could not write the bundle: {e:#}"),
                }),
            }
        }
        let res = CycleResult {
            cycle,
            backend: kind,
            outcome,
            expected,
            findings,
            kills,
            commits,
            duration,
            overhead,
            interrupted: false,
            armed: plans.iter().find_map(|p| p.arm).map(|(id, _)| dbtorture_backends::crash::ALL[id as usize]),
            point_hits,
        };
        Ok(finish(res, obs))
    }

    /// After a cycle's processes are gone: data checks plus `extra` checks on the installed set, the
    /// operability probe, classification, and recovery when needed (then the database must be clean again).
    /// Stale locks that did not stop a fresh process (failchk freed them, or they block nothing) need no
    /// recovery. Returns the outcome, every finding, and the installed set afterwards.
    #[allow(clippy::too_many_arguments)]
    fn judge(
        &mut self,
        t: usize,
        kind: BackendKind,
        dir: &Path,
        cycle: u64,
        mut findings: Vec<Finding>,
        mut hang: bool,
        obs: &mut dyn Observer,
        extra: impl FnOnce(&Pool, &BTreeSet<u32>) -> Vec<Finding>,
    ) -> Result<(Outcome, Vec<Finding>, Option<BTreeSet<u32>>)> {
        let bname = self.targets[t].kind.name().to_string();
        let data = verify::data(kind, dir, &self.pool);
        findings.extend(data.findings);
        if let Some(after) = &data.installed {
            findings.extend(extra(&self.pool, after));
        }
        let (probe, messages) =
            verify::probe(kind, dir, &self.pool, Duration::from_millis(self.scenario.timeouts.probe_ms))?;
        for message in messages {
            obs.event(&RunEvent::EngineMessage { cycle, backend: bname.clone(), worker: u32::MAX, message });
        }
        let probe_ok = probe == Probe::Ok;
        match probe {
            Probe::Ok => {}
            Probe::TimedOut => hang = true,
            Probe::Failed(e) => {
                findings.push(engine_error("probe".into(), e).unwrap_or_else(|detail| Finding::ProbeFailed { detail }))
            }
        }
        let mut outcome = classify(&findings, hang);
        for f in &findings {
            obs.event(&RunEvent::Finding { cycle, backend: bname.clone(), phase: "verify".into(), finding: record(f) });
        }
        let mut installed = data.installed;
        if self.bundles.is_some() {
            // The state the faults left, before any recovery touches it.
            let post = self.side_dir(self.targets[t].kind, "post");
            let _ = std::fs::remove_dir_all(&post);
            if outcome != Outcome::Clean {
                let _ = crate::bundle::copy_dir(dir, &post);
            }
        }
        if outcome != Outcome::Clean && !(outcome == Outcome::StaleLocks && probe_ok) {
            let (ok, detail, after) = self.recover(kind, dir);
            obs.event(&RunEvent::Recovery {
                cycle,
                backend: bname.clone(),
                procedure: kind.recovery_name().into(),
                ok,
                detail,
            });
            // A recovery cannot bring back a lost commit, undo half a transaction, or explain a crash.
            let recoverable = findings.iter().all(|f| {
                matches!(
                    f.class(),
                    FindingClass::Corrupt
                        | FindingClass::Inconsistent
                        | FindingClass::Environment
                        | FindingClass::StaleLocks
                        | FindingClass::Inoperable
                ) && !matches!(f, Finding::PartialTransaction { .. })
            });
            if ok && recoverable && !hang {
                outcome = Outcome::Recovered;
            }
            installed = after;
        }
        Ok((outcome, findings, installed))
    }

    /// rebuilddb, then verify again. Returns (clean afterwards, detail, installed set).
    fn recover(&mut self, kind: BackendKind, dir: &Path) -> (bool, String, Option<BTreeSet<u32>>) {
        let detail = match kind.recover(dir) {
            Ok(r) => format!("copied {} headers, skipped {}", r.copied, r.skipped.len()),
            Err(e) => return (false, format!("rebuilddb failed: {e}"), None),
        };
        let data = verify::data(kind, dir, &self.pool);
        let probe = verify::probe(kind, dir, &self.pool, Duration::from_millis(self.scenario.timeouts.probe_ms));
        let clean = data.findings.is_empty() && matches!(probe, Ok((Probe::Ok, _)));
        let detail = if clean {
            detail
        } else {
            format!(
                "{detail}; still failing: {}",
                data.findings.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("; ")
            )
        };
        (clean, detail, data.installed)
    }

    /// Write the bundle of a failing cycle: pre/ and post/ copies, inspect.json, bundle.json, README.
    #[allow(clippy::too_many_arguments)]
    fn write_bundle(
        &self,
        t: usize,
        cycle: u64,
        before: &BTreeSet<u32>,
        plan: &str,
        kills: &[KillRecord],
        outcome: Outcome,
        findings: &[Finding],
    ) -> Result<PathBuf> {
        let root = self.bundles.as_ref().expect("bundles enabled");
        let kind = self.targets[t].kind;
        let dir = root.join(format!("cycle-{cycle:05}-{}", kind.name()));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(dir.with_extension("tar.gz"));
        std::fs::create_dir_all(&dir)?;
        std::fs::rename(self.side_dir(kind, "pre"), dir.join("pre")).context("moving pre/")?;
        let post = self.side_dir(kind, "post");
        if post.exists() {
            std::fs::rename(&post, dir.join("post")).context("moving post/")?;
        } else {
            crate::bundle::copy_dir(&self.targets[t].dir, &dir.join("post"))?;
        }
        if let Some(profile) = kind.profile()
            && let Ok(i) = dbtorture_backends::bdbenv::inspect::inspect(&dir.join("post"), profile)
        {
            std::fs::write(dir.join("inspect.json"), serde_json::to_vec_pretty(&i)?)?;
        }
        let sc = self.scenario;
        let info = crate::bundle::BundleInfo {
            schema: crate::bundle::BUNDLE_SCHEMA,
            scenario_path: sc.source.display().to_string(),
            scenario_text: std::fs::read_to_string(&sc.source).unwrap_or_default(),
            seed: self.seed,
            cycle,
            backend: kind.name().into(),
            target: self.targets[t].slot,
            installed_before: before.iter().copied().collect(),
            plan: plan.into(),
            kills: kills.to_vec(),
            outcome,
            findings: findings.iter().map(record).collect(),
            planted: dbtorture_backends::planted::current(),
            replay: format!("dbtorture replay {}.tar.gz", dir.file_name().unwrap_or_default().to_string_lossy()),
        };
        dbtorture_reports::write_json_atomic(&dir.join("bundle.json"), &info)?;
        std::fs::write(dir.join("README.txt"), crate::bundle::README)?;
        Ok(crate::bundle::pack(&dir)?)
    }

    /// A conversion cycle: fork a process that runs rebuilddb from the target's backend into `to`, kill it
    /// at a random time or crash point, then require the whole original or the whole converted database.
    fn convert_cycle(&mut self, t: usize, cycle: u64, to: BackendKind, obs: &mut dyn Observer) -> Result<CycleResult> {
        let started = Instant::now();
        let sc = self.scenario;
        let from = self.targets[t].kind;
        let bname = from.name().to_string();
        let dir = self.targets[t].dir.clone();
        let cseed = derive_seed(self.seed, self.targets[t].slot as u64 + 1, cycle);
        let mut rng = ChaCha8Rng::seed_from_u64(cseed);
        let points: Vec<u32> = dbtorture_backends::crash::points_of("rebuild")
            .chain(dbtorture_backends::crash::points_of(from.point_prefix()))
            .chain(dbtorture_backends::crash::points_of(to.point_prefix()))
            .filter_map(dbtorture_backends::crash::id_of)
            .collect();
        let plan = plan::draw(&mut rng, &sc.kill, 1, 0, &points, cycle).remove(0);
        obs.event(&RunEvent::CycleStart {
            cycle,
            backend: bname.clone(),
            seed: cseed,
            plan: describe(std::slice::from_ref(&plan)),
        });
        let words = self.slots.words();
        crashpoint::arm(&words[..crashpoint::SLOT_WORDS], plan.arm);
        let shared = &self.slots;
        let d = &dir;
        let t_fork = Instant::now();
        let pid = sys::fork_child(move || {
            crashpoint::install(&shared.child_static()[..crashpoint::SLOT_WORDS]);
            // The real rpm rebuilds its own database: this child becomes `rpm --rebuilddb`, so the kill hits rpm.
            if from == BackendKind::Rpm && to == BackendKind::Rpm {
                use std::os::unix::process::CommandExt;
                let err = dbtorture_backends::rpmcli::command("rpm", d, &["--rebuilddb"]).exec();
                eprintln!("exec rpm --rebuilddb: {err}");
                return worker::exit::BACKEND_ERROR;
            }
            match dbtorture_backends::rebuild::rebuilddb(from, to, d) {
                Ok(_) => 0,
                Err(_) => worker::exit::BACKEND_ERROR,
            }
        })?;
        let fork_time = t_fork.elapsed();
        let t0 = Instant::now();
        let timeout = Duration::from_millis(sc.timeouts.cycle_ms);
        let (mut sent, mut trigger, mut killed_at) = (None, "", None);
        let status = loop {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED))? {
                WaitStatus::StillAlive => {}
                WaitStatus::Stopped(..) => {
                    let _ = kill(pid, Signal::SIGKILL);
                    (sent, trigger, killed_at) = (Some(Signal::SIGKILL), "point", Some(t0.elapsed()));
                }
                st => break st,
            }
            let now = t0.elapsed();
            if sent.is_none() && plan.kill_at.is_some_and(|k| k <= now) {
                let _ = kill(pid, Signal::SIGKILL);
                (sent, trigger, killed_at) = (Some(Signal::SIGKILL), "time", Some(now));
            }
            if now >= timeout && sent != Some(Signal::SIGKILL) {
                let _ = kill(pid, Signal::SIGKILL);
                (sent, trigger, killed_at) = (Some(Signal::SIGKILL), "timeout", Some(now));
            }
            while let Ok(Some(si)) = self.signals.read_signal() {
                if si.ssi_signo as i32 == Signal::SIGINT as i32 || si.ssi_signo as i32 == Signal::SIGTERM as i32 {
                    self.interrupted = true;
                    let _ = kill(pid, Signal::SIGKILL);
                    sent = Some(Signal::SIGKILL);
                }
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        sys::reap_orphans(Duration::from_secs(10)).map_err(anyhow::Error::msg)?;
        let crumb = crashpoint::read(&words[..crashpoint::SLOT_WORDS]);
        let point_hits = point_hits(&words[..crashpoint::SLOT_WORDS]);
        obs.event(&RunEvent::WorkerExit { cycle, backend: bname.clone(), worker: 0, status: format!("{status:?}") });
        let mut kills = Vec::new();
        let mut findings = Vec::new();
        let hang = trigger == "timeout";
        match status {
            WaitStatus::Signaled(_, sig, _) if sent == Some(sig) => {
                let rec = KillRecord {
                    worker: 0,
                    role: "rebuilddb".into(),
                    signal: sig.as_str().into(),
                    at_ms: killed_at.unwrap_or_default().as_millis() as u64,
                    trigger: trigger.into(),
                    last_point: crumb.last.map(|(p, _)| p.to_string()),
                    last_hit: crumb.last.map(|(_, h)| h),
                    points_passed: crumb.passed,
                };
                obs.event(&RunEvent::Kill { cycle, backend: bname.clone(), kill: rec.clone() });
                kills.push(rec);
            }
            WaitStatus::Exited(_, 0) => {}
            other => findings.push(Finding::WorkerError {
                worker: 0,
                role: "rebuilddb".into(),
                detail: format!("conversion ended with {other:?}"),
            }),
        }
        if self.interrupted {
            return Ok(CycleResult::interrupted(cycle, from, kills, 0, started.elapsed()));
        }
        // Which database is in place now: the converted one or the original?
        let v0 = Instant::now();
        let now_kind = if to.present(&dir) && !from.present(&dir) { to } else { from };
        let before = self.targets[t].installed.clone();
        let (outcome, findings, _) = self.judge(t, now_kind, &dir, cycle, findings, hang, obs, |_, after| {
            if after == &before {
                return Vec::new();
            }
            vec![Finding::PartialTransaction {
                worker: 0,
                txn: cycle,
                detail: format!(
                    "the {} database in place after the conversion holds {} packages, the original held {}",
                    now_kind.name(),
                    after.len(),
                    before.len()
                ),
            }]
        })?;
        // Start the next cycle from the original backend with the same packages, and clear leftovers of
        // killed rebuilds (`<dir>rebuilddb.<pid>`, `<dir>old.<pid>`).
        let keep = self.targets[t].installed.clone();
        self.recreate(t, &keep)?;
        if let (Some(parent), Some(name)) = (dir.parent(), dir.file_name().and_then(|n| n.to_str())) {
            for e in std::fs::read_dir(parent)?.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.len() > name.len()
                    && n.starts_with(name)
                    && (n[name.len()..].starts_with("rebuilddb.") || n[name.len()..].starts_with("old."))
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let expected = sc.expected(from).contains(&outcome);
        let duration = started.elapsed();
        let res = CycleResult {
            cycle,
            backend: from,
            outcome,
            expected,
            findings,
            kills,
            commits: 0,
            duration,
            overhead: fork_time + v0.elapsed(),
            interrupted: false,
            armed: plan.arm.map(|(id, _)| dbtorture_backends::crash::ALL[id as usize]),
            point_hits,
        };
        Ok(finish(res, obs))
    }

    /// Replace target `t`'s database by a fresh one of its backend holding `installed`.
    fn recreate(&mut self, t: usize, installed: &BTreeSet<u32>) -> Result<()> {
        let kind = self.targets[t].kind;
        let dir = self.targets[t].dir.clone();
        self.fresh_dir(kind, &dir)?;
        let mut db = kind.open(&dir, OpenMode::Create)?;
        db.begin()?;
        for &id in installed {
            db.install(&self.pool.get(id).installed_blob(1_600_000_000))?;
        }
        db.commit()?;
        db.close()?;
        Ok(())
    }

    fn prepare_empty(&mut self, t: usize) -> Result<BTreeSet<u32>> {
        let kind = self.targets[t].kind;
        let dir = self.targets[t].dir.clone();
        self.fresh_dir(kind, &dir)?;
        kind.open(&dir, OpenMode::Create)?.close()?;
        Ok(BTreeSet::new())
    }
}

impl Drop for Scheduler<'_> {
    fn drop(&mut self) {
        let _ = self.old_mask.thread_set_mask();
    }
}

/// End a verified cycle: its `cycle-end` event is derived from the result, then the observer sees it.
fn finish(res: CycleResult, obs: &mut dyn Observer) -> CycleResult {
    obs.event(&RunEvent::CycleEnd {
        cycle: res.cycle,
        backend: res.backend.name().into(),
        outcome: res.outcome,
        expected: res.expected,
        findings: res.findings.len(),
        commits: res.commits,
        duration_ms: res.duration.as_secs_f64() * 1000.0,
        armed: res.armed.map(String::from),
        hits: res.point_hits.iter().filter(|(_, h)| *h > 0).map(|(p, h)| (p.to_string(), *h)).collect(),
    });
    obs.cycle_done(&res);
    res
}

/// Crash point hits of all workers' slots, summed: (point, hits).
fn point_hits(words: &[crate::sys::AtomicU64]) -> Vec<(&'static str, u64)> {
    let mut sum: BTreeMap<u32, u64> = BTreeMap::new();
    for slot in words.chunks(crashpoint::SLOT_WORDS) {
        for (id, h) in crashpoint::hits(slot) {
            *sum.entry(id).or_default() += h;
        }
    }
    sum.into_iter().map(|(id, h)| (dbtorture_backends::crash::ALL[id as usize], h)).collect()
}

fn kill_record(l: &Live, sig: Signal, crumb: &crashpoint::Breadcrumb) -> KillRecord {
    KillRecord {
        worker: l.index,
        role: l.role.name().into(),
        signal: sig.as_str().into(),
        at_ms: l.killed_at.unwrap_or_default().as_millis() as u64,
        trigger: if crumb.stopped { "point".into() } else { l.trigger.into() },
        last_point: crumb.last.map(|(p, _)| p.to_string()),
        last_hit: crumb.last.map(|(_, h)| h),
        points_passed: crumb.passed,
    }
}

fn describe(plans: &[plan::WorkerPlan]) -> String {
    let mut parts = Vec::new();
    for (i, p) in plans.iter().enumerate() {
        if let Some(k) = p.kill_at {
            let sig = if p.signal == Signal::SIGKILL { "kill".to_string() } else { p.signal.as_str().to_lowercase() };
            parts.push(format!("w{i}:{sig}@{:.1}ms", k.as_secs_f64() * 1000.0));
        }
        if let Some((id, nth)) = p.arm {
            parts.push(format!("w{i}:{}#{nth}", dbtorture_backends::crash::ALL[id as usize]));
        }
    }
    if parts.is_empty() { "no faults".into() } else { parts.join(" ") }
}

/// Reap what changed. A worker stopped at its armed crash point is SIGKILLed right there — unless it is the
/// stale-page injector's paused writer, whose index is returned for the injector to handle.
fn reap(live: &mut [Live], words: &[crate::sys::AtomicU64], t0: Instant, stale_worker: Option<usize>) -> Vec<usize> {
    let mut paused = Vec::new();
    for (i, l) in live.iter_mut().enumerate().filter(|(_, l)| l.status.is_none()) {
        match waitpid(l.pid, Some(WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(WaitStatus::Stopped(_, _)) if stale_worker == Some(i) && l.sent.is_none() => paused.push(i),
            Ok(WaitStatus::Stopped(_, _)) => {
                // Stopped at its armed crash point (or by someone else): kill it right there.
                let at_point = crashpoint::read(&words[l.index as usize * crashpoint::SLOT_WORDS..]).stopped;
                let _ = kill(l.pid, Signal::SIGKILL);
                l.sent = Some(Signal::SIGKILL);
                l.killed_at.get_or_insert(t0.elapsed());
                l.trigger = if at_point { "point" } else { "stopped" };
            }
            Ok(st @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => l.status = Some(st),
            Ok(_) => {}
            Err(nix::errno::Errno::ECHILD) => l.status = Some(WaitStatus::Exited(l.pid, 255)),
            Err(_) => {}
        }
    }
    paused
}

/// The stale-page injector's state within one cycle.
struct StaleState {
    file: String,
    policy: crate::scenario::StalePolicy,
    /// Random policy: when to snapshot and when to write the stale page back.
    snapshot_ms: Duration,
    restore_ms: Duration,
    /// Points policy: the paused writer and its two points (id, nth).
    worker: Option<usize>,
    snapshot_point: (u32, u32),
    restore_point: (u32, u32),
    snap: Option<crate::fault::stale::Snapshot>,
    done: bool,
    /// A changed page was actually written back stale.
    wrote: bool,
}

impl StaleState {
    fn draw(rng: &mut ChaCha8Rng, sc: &Scenario, writers: u32) -> Option<StaleState> {
        let sp = sc.stale_page.as_ref()?;
        if rng.random_range(0.0..1.0) >= sp.probability {
            return None;
        }
        let snapshot_ms = Duration::from_millis(rng.random_range(0..=sp.snapshot_ms_max));
        let restore_ms = snapshot_ms + Duration::from_millis(rng.random_range(0..=sp.restore_after_ms_max));
        let id = |p: &str| dbtorture_backends::crash::id_of(p).expect("validated");
        let snapshot_point = (id(&sp.snapshot_at), rng.random_range(1..=sp.hit_max));
        let restore_point = (id(&sp.restore_at), rng.random_range(1..=sp.hit_max));
        let worker = match sp.policy {
            crate::scenario::StalePolicy::Points if writers > 0 => Some(rng.random_range(0..writers) as usize),
            _ => None,
        };
        Some(StaleState {
            file: sp.file.clone(),
            policy: sp.policy,
            snapshot_ms,
            restore_ms,
            worker,
            snapshot_point,
            restore_point,
            snap: None,
            done: false,
            wrote: false,
        })
    }

    fn describe(&self) -> String {
        let name = |(id, nth): (u32, u32)| format!("{}#{nth}", dbtorture_backends::crash::ALL[id as usize]);
        match self.worker {
            Some(w) => format!(
                "stale {}: snapshot at w{w}:{}, restore at w{w}:{}",
                self.file,
                name(self.snapshot_point),
                name(self.restore_point)
            ),
            None => format!(
                "stale {}: snapshot @{}ms, restore @{}ms",
                self.file,
                self.snapshot_ms.as_millis(),
                self.restore_ms.as_millis()
            ),
        }
    }

    /// Whether a stale page was written back this cycle.
    fn written(&self) -> bool {
        self.wrote
    }

    fn next_deadline(&self) -> Option<Duration> {
        if self.done || self.worker.is_some() {
            return None;
        }
        Some(if self.snap.is_none() { self.snapshot_ms } else { self.restore_ms })
    }

    fn take(&mut self, dir: &Path, at: String, cycle: u64, backend: &str, obs: &mut dyn Observer) {
        match crate::fault::stale::snapshot(dir, &self.file, at) {
            Ok(s) => self.snap = Some(s),
            Err(e) => {
                self.done = true;
                obs.event(&RunEvent::Fault {
                    cycle,
                    backend: backend.into(),
                    kind: "stale-page".into(),
                    detail: format!("no snapshot of {}: {e}", self.file),
                });
            }
        }
    }

    fn write_back(&mut self, at: String, rng: &mut ChaCha8Rng, cycle: u64, backend: &str, obs: &mut dyn Observer) {
        self.done = true;
        let Some(snap) = &self.snap else { return };
        let detail = match crate::fault::stale::restore_changed_page(snap, rng) {
            Ok(Some(w)) => {
                self.wrote = true;
                let what = if self.file == dbtorture_backends::bdbenv::LOCK_FILE {
                    crate::fault::stale::describe_lock_page(&snap.bytes, w.page)
                } else {
                    format!("page {}", w.page)
                };
                format!(
                    "{}: {what} written back stale (copy taken {}, restored {at}; {} pages had changed)",
                    self.file, snap.at, w.changed
                )
            }
            Ok(None) => format!("{}: no page changed between {} and {at}; nothing lost", self.file, snap.at),
            Err(e) => format!("{}: stale write failed: {e}", self.file),
        };
        obs.event(&RunEvent::Fault { cycle, backend: backend.into(), kind: "stale-page".into(), detail });
    }

    /// Random policy: act when the time comes.
    fn on_time(
        &mut self,
        now: Duration,
        dir: &Path,
        rng: &mut ChaCha8Rng,
        cycle: u64,
        backend: &str,
        obs: &mut dyn Observer,
    ) {
        if self.done || self.worker.is_some() || self.policy != crate::scenario::StalePolicy::Random {
            return;
        }
        if self.snap.is_none() && now >= self.snapshot_ms {
            self.take(dir, format!("@{}ms", now.as_millis()), cycle, backend, obs);
        }
        if self.snap.is_some() && !self.done && now >= self.restore_ms {
            self.write_back(format!("@{}ms", now.as_millis()), rng, cycle, backend, obs);
        }
    }

    /// Points policy: the paused writer reached the snapshot point or the restore point; act, re-arm, resume.
    #[allow(clippy::too_many_arguments)]
    fn on_stop(
        &mut self,
        l: &Live,
        slot: &[crate::sys::AtomicU64],
        dir: &Path,
        rng: &mut ChaCha8Rng,
        cycle: u64,
        backend: &str,
        obs: &mut dyn Observer,
    ) {
        let name =
            |(id, nth): (u32, u32)| format!("w{}:{}#{nth}", l.index, dbtorture_backends::crash::ALL[id as usize]);
        if self.snap.is_none() && !self.done {
            self.take(dir, name(self.snapshot_point), cycle, backend, obs);
            crashpoint::rearm(&slot[..crashpoint::SLOT_WORDS], Some(self.restore_point));
        } else if !self.done {
            self.write_back(name(self.restore_point), rng, cycle, backend, obs);
            crashpoint::rearm(&slot[..crashpoint::SLOT_WORDS], None);
        }
        let _ = kill(l.pid, Signal::SIGCONT);
    }
}

fn drain(l: &mut Live, logs: &mut [WriterLog], got: &mut Collected) {
    let Some(p) = &mut l.pipe else { return };
    let mut buf = [0u8; 8192];
    loop {
        match p.read(&mut buf) {
            Ok(0) => {
                l.pipe = None;
                break;
            }
            Ok(n) => l.buf.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break, // WouldBlock
        }
    }
    while let Some(pos) = l.buf.iter().position(|&c| c == b'\n') {
        let line: Vec<u8> = l.buf.drain(..=pos).collect();
        let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
        apply_msg(l.index, l.role, &line, logs, got);
    }
}

fn drain_to_eof(l: &mut Live, logs: &mut [WriterLog], got: &mut Collected) {
    // All workers are reaped, so every write end is closed and reads end at EOF without blocking.
    while l.pipe.is_some() {
        drain(l, logs, got);
        if l.pipe.is_some() {
            // WouldBlock with the writer gone cannot happen for a pipe; guard anyway.
            l.pipe = None;
        }
    }
    // A torn last line (killed mid-write cannot happen below PIPE_BUF, but be safe) is ignored.
    l.buf.clear();
}

/// What the workers reported besides their transactions.
#[derive(Default)]
struct Collected {
    findings: Vec<Finding>,
    /// Reader inconsistencies: findings only for backends that promise isolation.
    reader: Vec<Finding>,
    /// Engine messages (worker, line).
    messages: Vec<(u32, String)>,
}

/// A worker's error as a finding, by what the engine said: db4's "run recovery" (and running out of lock
/// table entries, which stale lockers cause) is stale-locks; any other "rpmdb:" message is the environment.
pub fn worker_error(worker: u32, role: &str, text: String) -> Finding {
    engine_error(format!("{role} {worker}"), text).unwrap_or_else(|text| Finding::WorkerError {
        worker,
        role: role.into(),
        detail: text,
    })
}

/// An engine error in Berkeley DB's words, or the text back if it is not one.
pub fn engine_error(by: String, text: String) -> Result<Finding, String> {
    if text.contains("run recovery") || text.contains("RUNRECOVERY") || text.contains("out of available") {
        Ok(Finding::RunRecovery { by, message: text })
    } else if text.contains("rpmdb:") || text.contains("db4 error") {
        Ok(Finding::EnvironmentError { by, message: text })
    } else {
        Err(text)
    }
}

fn apply_msg(index: u32, role: Role, line: &str, logs: &mut [WriterLog], got: &mut Collected) {
    let Some(msg) = WorkerMsg::decode(line) else {
        got.findings.push(Finding::WorkerError {
            worker: index,
            role: role.name().into(),
            detail: format!("unparseable report line {line:?}"),
        });
        return;
    };
    let log = logs.get_mut(index as usize);
    match (msg, log) {
        (WorkerMsg::Begin { txn, body }, Some(log)) => log.begin(txn, body),
        (WorkerMsg::Commit { txn }, Some(log)) => log.set(txn, TxnState::Committed),
        (WorkerMsg::Abort { txn, error }, Some(log)) => log.set(txn, TxnState::Aborted(error)),
        (WorkerMsg::Error { error }, _) => got.findings.push(worker_error(index, role.name(), error)),
        (WorkerMsg::Inconsistent { detail }, _) => {
            got.reader.push(Finding::ReaderSawInconsistency { worker: index, detail })
        }
        (WorkerMsg::Log { line }, _) => got.messages.push((index, line)),
        _ => {}
    }
}

/// A cycle's outcome from its findings (the most severe wins).
pub fn classify(findings: &[Finding], hang: bool) -> Outcome {
    let mut out = if hang { Outcome::Hang } else { Outcome::Clean };
    for f in findings {
        let o = match f.class() {
            FindingClass::Corrupt | FindingClass::Inconsistent | FindingClass::Inoperable => Outcome::Inconsistent,
            FindingClass::LostCommit => Outcome::LostCommit,
            FindingClass::Environment => Outcome::CorruptEnv,
            FindingClass::Crash => Outcome::HarnessError,
            FindingClass::StaleLocks => Outcome::StaleLocks,
        };
        if o.severity() > out.severity() {
            out = o;
        }
    }
    out
}

/// A finding as reports carry it.
pub fn record(f: &Finding) -> FindingRecord {
    let detail = serde_json::to_value(f).unwrap_or(serde_json::Value::Null);
    let kind = detail.get("kind").and_then(|k| k.as_str()).unwrap_or("unknown").to_string();
    FindingRecord { kind, message: f.to_string(), package: f.package().map(str::to_string), detail }
}
