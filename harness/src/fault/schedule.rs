//! The interleaving of a cycle's workers, recorded at crash-point granularity and enforced on replay.
//!
//! Why: a bundle's seed, plan and kill points fix *what* each worker does, not *in which order* concurrent
//! workers' steps happened — and for a shared-environment engine that order is the verdict (who held the
//! lock when a writer died, whose list insert a stale page undid). Replays of bdbenv bundles reached a
//! different verdict 3 times in 4. So every crash point passed takes a ticket from one counter shared by the
//! cycle's workers; a worker's tickets are its schedule. A replay hands each worker its schedule back: at
//! every point the worker waits until every earlier ticket has been taken, so crash points are passed in the
//! recorded order (the stretches between them still run concurrently, as they did). If the replayed run
//! leaves the recorded path (a worker waits too long for its turn), every worker runs freely from there on
//! and the replay says it diverged. A worker past the end of its schedule (killed just after its last point
//! in the recorded cycle) runs on without waiting.
//!
//! Layout: per worker, in its crash-point slot, `WORDS` words (mode, count, position, log);
//! for the whole cycle, `GLOBAL_WORDS` words after the slots (the next ticket, the diverged flag).

use crate::sys::AtomicU64;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Tickets kept per worker per cycle (more are counted, not kept: the replay diverges there).
pub const CAP: usize = 8192;
const W_MODE: usize = 0;
const W_COUNT: usize = 1;
const W_POS: usize = 2;
const W_LOG: usize = 3;
pub const WORDS: usize = W_LOG + CAP;

const G_NEXT: usize = 0;
const G_DIVERGED: usize = 1;
pub const GLOBAL_WORDS: usize = 2;

const RECORD: u64 = 1;
const REPLAY: u64 = 2;

/// How long a replaying worker waits for its turn before the replay gives the schedule up.
const TURN_WAIT: Duration = Duration::from_millis(500);

struct Sched {
    slot: &'static [AtomicU64],
    global: &'static [AtomicU64],
}

static SCHED: OnceLock<Sched> = OnceLock::new();

/// In a cycle's child: take part in the schedule (`slot`: this worker's schedule words).
pub fn install(slot: &'static [AtomicU64], global: &'static [AtomicU64]) {
    let _ = SCHED.set(Sched { slot, global });
}

/// At every crash point, before anything else: record a ticket, or wait for the recorded turn.
pub fn arrive() {
    let Some(s) = SCHED.get() else { return };
    match s.slot[W_MODE].load(Ordering::Acquire) {
        RECORD => {
            let t = s.global[G_NEXT].fetch_add(1, Ordering::AcqRel);
            let c = s.slot[W_COUNT].fetch_add(1, Ordering::AcqRel) as usize;
            if c < CAP {
                s.slot[W_LOG + c].store(t, Ordering::Release);
            }
        }
        REPLAY => {
            if s.global[G_DIVERGED].load(Ordering::Acquire) != 0 {
                return;
            }
            let pos = s.slot[W_POS].load(Ordering::Acquire) as usize;
            let recorded = (s.slot[W_COUNT].load(Ordering::Acquire) as usize).min(CAP);
            if pos >= recorded {
                // Past the end of what this worker did in the recorded cycle: it was killed between this
                // point and the last (the replay stops it here), or it runs on as it did not then.
                return;
            }
            let t = s.slot[W_LOG + pos].load(Ordering::Acquire);
            let start = Instant::now();
            while s.global[G_NEXT].load(Ordering::Acquire) != t {
                if s.global[G_DIVERGED].load(Ordering::Acquire) != 0 {
                    return;
                }
                if start.elapsed() > TURN_WAIT {
                    s.global[G_DIVERGED].store(1, Ordering::Release);
                    return;
                }
                std::thread::yield_now();
            }
            s.slot[W_POS].store(pos as u64 + 1, Ordering::Release);
            // Pass the turn on at once: the recorded order is the order of passing crash points, and the
            // stretches between them run concurrently as they did (a worker blocked on a lock between two
            // points must not hold up the one that will release it).
            s.global[G_NEXT].store(t + 1, Ordering::Release);
        }
        _ => {}
    }
}

/// In the scheduler before a cycle: reset the shared counter.
pub fn reset(global: &[AtomicU64]) {
    for w in global.iter().take(GLOBAL_WORDS) {
        w.store(0, Ordering::Release);
    }
}

/// In the scheduler before forking a child: record its schedule, or replay `tickets`.
pub fn arm(slot: &[AtomicU64], tickets: Option<&[u64]>) {
    for w in slot.iter().take(W_LOG) {
        w.store(0, Ordering::Release);
    }
    match tickets {
        None => slot[W_MODE].store(RECORD, Ordering::Release),
        Some(ts) => {
            let n = ts.len().min(CAP);
            for (i, t) in ts.iter().take(n).enumerate() {
                slot[W_LOG + i].store(*t, Ordering::Release);
            }
            slot[W_COUNT].store(n as u64, Ordering::Release);
            slot[W_MODE].store(REPLAY, Ordering::Release);
        }
    }
}

/// The tickets a child took this cycle (recording).
pub fn recorded(slot: &[AtomicU64]) -> Vec<u64> {
    let n = (slot[W_COUNT].load(Ordering::Acquire) as usize).min(CAP);
    (0..n).map(|i| slot[W_LOG + i].load(Ordering::Acquire)).collect()
}

/// Whether a replayed cycle left its recorded schedule.
pub fn diverged(global: &[AtomicU64]) -> bool {
    global[G_DIVERGED].load(Ordering::Acquire) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(n: usize) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }

    #[test]
    fn arm_then_read_back_a_schedule() {
        let slot = words(WORDS);
        arm(&slot, Some(&[3, 5, 9]));
        assert_eq!(recorded(&slot), vec![3, 5, 9]);
        arm(&slot, None);
        assert_eq!(recorded(&slot), Vec::<u64>::new());
    }
}
