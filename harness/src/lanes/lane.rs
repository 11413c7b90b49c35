//! One lane: a forked, single-threaded scheduler process with its own databases, taking whole epochs of
//! the run from a counter shared with the other lanes until none is left (or the time is up, or the
//! parent asks it to stop), and sending what happens over its pipe.
//!
//! Why whole epochs: every epoch starts from its own seeded database, so an epoch's cycles are the same
//! whichever lane runs them — cycle numbers and seeds never depend on the number of lanes.

use super::wire::{LaneMsg, PipeObserver};
use crate::scenario::Scenario;
use crate::scheduler::{Interrupted, Scheduler};
use crate::sys::AtomicU64;
use dbtorture_backends::BackendKind;
use dbtorture_reports::Shard;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Word of the shared page: the next epoch slot to hand out (the k-th epoch of the run's shard).
pub const NEXT: usize = 0;
/// Word of the shared page: non-zero when the parent asks every lane to stop before its next cycle.
pub const STOP: usize = 1;
/// Words the shared page holds.
pub const WORDS: usize = 2;

/// What a lane runs.
pub struct LaneSpec<'a> {
    pub scenario: &'a Scenario,
    pub seed: u64,
    /// This lane's own directory for databases and side directories.
    pub workdir: PathBuf,
    pub only: Option<Vec<BackendKind>>,
    /// Where bundles go (shared by the lanes: bundle names hold the cycle and backend).
    pub bundles: Option<PathBuf>,
    pub cycles: Option<u64>,
    /// `--duration`: no epoch is taken after this instant (the one it has begun is finished).
    pub until: Option<Instant>,
    pub shard: Option<Shard>,
}

/// The epoch of the `k`-th slot: all epochs, or the shard's (dealt round-robin, epoch 0 to shard 1).
pub fn epoch_of(shard: Option<Shard>, k: u64) -> u64 {
    shard.map_or(k, |s| u64::from(s.index - 1) + k * u64::from(s.count))
}

/// The lane's cycles: until no epoch is left, time is up, the parent says stop, or the run is interrupted.
/// Returns (interrupted, one past the last cycle index begun).
fn cycles<W: Write>(
    spec: &LaneSpec<'_>,
    words: &[AtomicU64],
    obs: &mut PipeObserver<W>,
) -> anyhow::Result<(bool, u64)> {
    let sc = spec.scenario;
    let mut sched = match Scheduler::with_backends(sc, spec.seed, &spec.workdir, spec.only.as_deref()) {
        Err(e) if e.downcast_ref::<Interrupted>().is_some() => return Ok((true, 0)),
        Err(e) => return Err(e.context("preparing the databases")),
        Ok(s) => s,
    };
    sched.bundles = spec.bundles.clone();
    let stop = || words[STOP].load(Ordering::SeqCst) != 0;
    let mut begun = 0;
    loop {
        // Time up stops taking epochs once one has been taken (by any lane): a duration shorter than preparing
        // the databases must not pass with nothing run.
        let taken = words[NEXT].load(Ordering::SeqCst) > 0;
        if stop() || (taken && spec.until.is_some_and(|u| Instant::now() >= u)) {
            break;
        }
        let epoch = epoch_of(spec.shard, words[NEXT].fetch_add(1, Ordering::SeqCst));
        let first = epoch * sc.epoch;
        let last = first + sc.epoch;
        let last = spec.cycles.map_or(last, |c| last.min(c));
        if first >= last {
            break;
        }
        for cycle in first..last {
            if stop() || obs.broken.is_some() {
                return Ok((sched.interrupted, begun));
            }
            begun = cycle + 1;
            obs.send(&LaneMsg::Begin { cycle });
            for t in 0..sched.targets.len() {
                match sched.cycle(t, cycle, obs) {
                    Err(e) if e.downcast_ref::<Interrupted>().is_some() => return Ok((true, begun)),
                    Err(e) => return Err(e.context(format!("harness error in cycle {cycle}"))),
                    Ok(_) => {}
                }
                if sched.interrupted {
                    return Ok((true, begun));
                }
            }
            obs.send(&LaneMsg::End);
        }
    }
    Ok((sched.interrupted, begun))
}

/// The lane process's body (after fork): run, say how it ended, exit 0 (the parent judges by the message).
pub fn main(spec: &LaneSpec<'_>, words: &[AtomicU64], pipe: std::fs::File) -> i32 {
    let mut obs = PipeObserver::new(pipe);
    let (interrupted, harness_error, cycles_run) = match cycles(spec, words, &mut obs) {
        Ok((i, n)) => (i, None, n),
        Err(e) => (false, Some(format!("{e:#}")), 0),
    };
    obs.send(&LaneMsg::Exit { interrupted, harness_error, cycles_run });
    0
}
