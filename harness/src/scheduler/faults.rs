//! Per-cycle faults other than kills, behind one trait: the event loop asks each fault for its next
//! deadline, tells it when time passes and when a child it paused has stopped, and lets it sum up at the end.
//!
//! Why a trait: the next fault (power loss, I/O errors) is a new type here, not surgery on the event loop.
//! The stale page (a lost write-back of a shared page) and memory pressure (a balloon in the workers'
//! cgroup, its counters) are the two there are.

use super::events::Ctx;
use super::plan::StalePlan;
use crate::fault::crashpoint;
use crate::fault::memory::{MemCgroup, MemEvents};
use crate::scenario::StalePolicy;
use crate::sys::{self, AtomicU64};
use anyhow::{Context, Result};
use dbtorture_reports::FaultKind;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use rand_chacha::ChaCha8Rng;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

/// What a fault may touch while it acts.
pub struct FaultEnv<'a, 'o> {
    pub dir: &'a Path,
    pub rng: &'a mut ChaCha8Rng,
    pub ctx: &'a mut Ctx<'o>,
}

/// What the faults did, for the verdict.
#[derive(Debug, Default, Clone, Copy)]
pub struct FaultSummary {
    /// OOM kills in the workers' cgroup (an unsent SIGKILL is then the OOM killer's).
    pub oom_kills: u64,
    /// A stale page was really written back into a region this cycle.
    pub stale_written: bool,
}

pub trait CycleFault {
    /// When this fault next wants to act (time since the cycle started), if it acts by time.
    fn next_deadline(&self) -> Option<Duration> {
        None
    }
    /// Time passed.
    fn on_time(&mut self, _now: Duration, _env: &mut FaultEnv<'_, '_>) {}
    /// The child whose crash-point stops belong to this fault (it pauses it, acts, and resumes it).
    fn pauses(&self) -> Option<usize> {
        None
    }
    /// Child `pid` (index `index`) stopped at a point this fault armed in `slot`: act, then resume it.
    fn on_stop(&mut self, _index: u32, _pid: Pid, _slot: &[AtomicU64], _env: &mut FaultEnv<'_, '_>) {}
    /// Every child has been reaped: stop what still runs and say what happened.
    fn finish(&mut self, _ctx: &mut Ctx<'_>) -> FaultSummary {
        FaultSummary::default()
    }
}

/// Sum up every fault of a cycle.
pub fn finish_all(faults: &mut [Box<dyn CycleFault + '_>], ctx: &mut Ctx<'_>) -> FaultSummary {
    let mut s = FaultSummary::default();
    for f in faults {
        let one = f.finish(ctx);
        s.oom_kills += one.oom_kills;
        s.stale_written |= one.stale_written;
    }
    s
}

/// A lost write-back of a shared page: snapshot a page of a region file, write it back later.
pub struct StaleFault {
    plan: StalePlan,
    snap: Option<crate::fault::stale::Snapshot>,
    done: bool,
    wrote: bool,
}

impl StaleFault {
    pub fn new(plan: StalePlan) -> StaleFault {
        StaleFault { plan, snap: None, done: false, wrote: false }
    }

    fn take(&mut self, at: String, env: &mut FaultEnv<'_, '_>) {
        match crate::fault::stale::snapshot(env.dir, &self.plan.file, at) {
            Ok(s) => self.snap = Some(s),
            Err(e) => {
                self.done = true;
                env.ctx.fault(FaultKind::StalePage, format!("no snapshot of {}: {e}", self.plan.file));
            }
        }
    }

    fn write_back(&mut self, at: String, env: &mut FaultEnv<'_, '_>) {
        self.done = true;
        let Some(snap) = &self.snap else { return };
        let file = &self.plan.file;
        let detail = match crate::fault::stale::restore_changed_page(snap, env.rng) {
            Ok(Some(w)) => {
                self.wrote = true;
                let what = if *file == dbtorture_backends::bdbenv::LOCK_FILE {
                    crate::fault::stale::describe_lock_page(&snap.bytes, w.page)
                } else {
                    format!("page {}", w.page)
                };
                format!(
                    "{file}: {what} written back stale (copy taken {}, restored {at}; {} pages had changed)",
                    snap.at, w.changed
                )
            }
            Ok(None) => format!("{file}: no page changed between {} and {at}; nothing lost", snap.at),
            Err(e) => format!("{file}: stale write failed: {e}"),
        };
        env.ctx.fault(FaultKind::StalePage, detail);
    }
}

impl CycleFault for StaleFault {
    fn next_deadline(&self) -> Option<Duration> {
        if self.done || self.plan.worker.is_some() {
            return None;
        }
        Some(if self.snap.is_none() { self.plan.snapshot_ms } else { self.plan.restore_ms })
    }

    fn on_time(&mut self, now: Duration, env: &mut FaultEnv<'_, '_>) {
        if self.done || self.plan.worker.is_some() || self.plan.policy != StalePolicy::Random {
            return;
        }
        if self.snap.is_none() && now >= self.plan.snapshot_ms {
            self.take(format!("@{}ms", now.as_millis()), env);
        }
        if self.snap.is_some() && !self.done && now >= self.plan.restore_ms {
            self.write_back(format!("@{}ms", now.as_millis()), env);
        }
    }

    fn pauses(&self) -> Option<usize> {
        self.plan.worker
    }

    fn on_stop(&mut self, index: u32, pid: Pid, slot: &[AtomicU64], env: &mut FaultEnv<'_, '_>) {
        let name = |(id, nth): (u32, u32)| format!("w{index}:{}#{nth}", dbtorture_backends::crash::ALL[id as usize]);
        if self.snap.is_none() && !self.done {
            self.take(name(self.plan.snapshot_point), env);
            crashpoint::rearm(&slot[..crashpoint::SLOT_WORDS], Some(self.plan.restore_point));
        } else if !self.done {
            self.write_back(name(self.plan.restore_point), env);
            crashpoint::rearm(&slot[..crashpoint::SLOT_WORDS], None);
        }
        let _ = kill(pid, Signal::SIGCONT);
    }

    fn finish(&mut self, _ctx: &mut Ctx<'_>) -> FaultSummary {
        FaultSummary { oom_kills: 0, stale_written: self.wrote }
    }
}

/// Memory pressure for one cycle: the cgroup's counters before, and a balloon process inside it.
pub struct MemoryFault<'a> {
    memcg: Option<&'a MemCgroup>,
    before: Option<MemEvents>,
    balloon: Option<Pid>,
}

impl<'a> MemoryFault<'a> {
    /// Take the counters and start the balloon (`balloon_mb` > 0), waiting (bounded) until it is inflated so
    /// the workers start under pressure.
    pub fn start(memcg: Option<&'a MemCgroup>, balloon_mb: u64) -> Result<MemoryFault<'a>> {
        let before = memcg.map(MemCgroup::events);
        let balloon = if balloon_mb > 0 {
            let bytes = (balloon_mb << 20) as usize;
            let (rd, wr): (OwnedFd, OwnedFd) = nix::unistd::pipe().context("pipe")?;
            let wr_ref = &wr;
            let pid = sys::fork_child(move || {
                if let Some(cg) = memcg
                    && cg.add(std::process::id()).is_err()
                {
                    return dbtorture_backends::child::ChildExit::SetupFailed.code();
                }
                match wr_ref.try_clone() {
                    Ok(fd) => crate::fault::memory::balloon(bytes, std::fs::File::from(fd)),
                    Err(_) => dbtorture_backends::child::ChildExit::SetupFailed.code(),
                }
            })?;
            drop(wr);
            let mut fds = [PollFd::new(rd.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::from(2000u16));
            Some(pid)
        } else {
            None
        };
        Ok(MemoryFault { memcg, before, balloon })
    }
}

impl CycleFault for MemoryFault<'_> {
    fn finish(&mut self, ctx: &mut Ctx<'_>) -> FaultSummary {
        if let Some(b) = self.balloon.take() {
            let _ = kill(b, Signal::SIGKILL);
            let _ = waitpid(b, None);
        }
        match (self.memcg, &self.before) {
            (Some(cg), Some(before)) => {
                let d = cg.events().delta(before);
                ctx.memory(&d);
                FaultSummary { oom_kills: d.oom_kills, stale_written: false }
            }
            _ => FaultSummary::default(),
        }
    }
}
