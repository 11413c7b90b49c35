//! The worker side of crash points: the hook the backends' `crash::point` calls, writing breadcrumbs into a
//! shared slot the scheduler reads, and stopping the worker at an armed point.
//!
//! Slot layout (64-bit words, one slot per worker): see the `W_*` constants.

use crate::sys::AtomicU64;
use nix::sys::signal::{Signal, raise};
use std::sync::OnceLock;
use std::sync::atomic::Ordering;

/// Eight control words, the region faults' words, one hit counter per crash point, then the schedule.
pub const SLOT_WORDS: usize = SCHED_BASE + crate::fault::schedule::WORDS;
const SCHED_BASE: usize = W_HITS_BASE + HIT_WORDS;
pub const HIT_WORDS: usize = 64;
const W_HITS_BASE: usize = 8 + crate::fault::regions::WORDS;
// Every crash point has a hit counter: adding a 65th point fails the build here, not a worker at run time.
const _: () = assert!(dbtorture_backends::crash::ALL.len() <= HIT_WORDS, "more crash points than hit counters");
const _: () = assert!(crate::fault::regions::W_MLOCK_BYTES >= 8 && crate::fault::regions::W_ERRNO < W_HITS_BASE);
/// Last point passed, as id + 1 (0: none yet).
pub const W_LAST: usize = 0;
/// Points passed in total.
pub const W_PASSED: usize = 1;
/// Armed point id + 1 (0: disarmed). Written by the scheduler before fork.
pub const W_ARMED: usize = 2;
/// Armed hit number (1-based).
pub const W_NTH: usize = 3;
/// Hits of the armed point so far.
pub const W_HITS: usize = 4;
/// 1 once the worker stopped itself at the armed point.
pub const W_STOPPED: usize = 5;
/// Which hit of its point the last point passed was (1-based): with `W_LAST`, a replayable kill point.
pub const W_LAST_HIT: usize = 6;
/// 1: stop at the first point passed *after* the armed hit (replaying a kill that landed between points).
pub const W_AFTER: usize = 7;
/// In `W_ARMED`: stop at whatever point comes next.
const ANY_NEXT: u64 = u64::MAX;

/// Hits of each point in this process (a worker's own count).
static POINT_HITS: [std::sync::atomic::AtomicU32; HIT_WORDS] =
    [const { std::sync::atomic::AtomicU32::new(0) }; HIT_WORDS];

static SLOT: OnceLock<&'static [AtomicU64]> = OnceLock::new();

fn hook(id: u32) {
    let Some(s) = SLOT.get() else { return };
    if crate::fault::schedule::arrive() == crate::fault::schedule::Turn::Stop {
        // A replay of a worker killed right after its last recorded turn.
        stop(s);
    }
    let hit = POINT_HITS.get(id as usize).map(|h| h.fetch_add(1, Ordering::AcqRel) + 1).unwrap_or(0);
    if (id as usize) < HIT_WORDS {
        s[W_HITS_BASE + id as usize].store(u64::from(hit), Ordering::Release);
    }
    s[W_LAST_HIT].store(u64::from(hit), Ordering::Release);
    s[W_LAST].store(u64::from(id) + 1, Ordering::Release);
    s[W_PASSED].fetch_add(1, Ordering::AcqRel);
    crate::fault::regions::tick();
    let armed = s[W_ARMED].load(Ordering::Acquire);
    if armed == ANY_NEXT {
        stop(s);
    } else if armed == u64::from(id) + 1 {
        let n = s[W_HITS].fetch_add(1, Ordering::AcqRel) + 1;
        if n == s[W_NTH].load(Ordering::Acquire) {
            if s[W_AFTER].load(Ordering::Acquire) == 1 {
                s[W_ARMED].store(ANY_NEXT, Ordering::Release);
            } else {
                stop(s);
            }
        }
    }
}

fn stop(s: &[AtomicU64]) {
    s[W_STOPPED].store(1, Ordering::Release);
    // The other workers wait at their next turn until the scheduler has reaped us (`schedule::release`).
    crate::fault::schedule::hold();
    // The scheduler sees the stop (waitpid WUNTRACED) and SIGKILLs us here.
    let _ = raise(Signal::SIGSTOP);
}

/// In a cycle's child: start recording breadcrumbs into `slot` (and stopping at its armed point), and run
/// the region faults of `regions` as crash points are passed.
pub fn install(slot: &'static [AtomicU64], regions: crate::fault::regions::Config, global: &'static [AtomicU64]) {
    assert!(slot.len() >= SLOT_WORDS, "a crash-point slot is {SLOT_WORDS} words");
    assert!(global.len() >= crate::fault::schedule::GLOBAL_WORDS);
    let _ = SLOT.set(slot);
    crate::fault::schedule::install(&slot[SCHED_BASE..SLOT_WORDS], global);
    crate::fault::regions::install(regions, slot);
    dbtorture_backends::crash::set_hook(hook);
    // Turns (the order of region-mutex sections and rpm's fcntl lock, for deterministic replay) are recorded
    // everywhere, the armv5te guest included (64-bit atomics through the kernel's __kuser_cmpxchg64 there).
    // They were off in the guest once, when its scheduler stopped making progress with them on — which was
    // the raspi0 timer missing its compare (qemu/machine.rs), seen with turns on and off. Without them a guest
    // replay enforced the order of crash points only: a worker blocked on a lock another held while that one
    // waited for its next crash-point turn, and every guest replay left its schedule.
    dbtorture_backends::turns::set_hooks(dbtorture_backends::turns::Hooks { wait: turn_wait, took: turn_took });
}

/// A backend's step on shared state (`dbtorture_backends::turns`) is a turn of the schedule.
fn turn_wait() {
    if crate::fault::schedule::gate() == crate::fault::schedule::Turn::Stop
        && let Some(s) = SLOT.get()
    {
        stop(s);
    }
}

fn turn_took() {
    if crate::fault::schedule::take() == crate::fault::schedule::Turn::Stop
        && let Some(s) = SLOT.get()
    {
        stop(s);
    }
}

/// A worker's breadcrumb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breadcrumb {
    /// The last crash point passed, and which hit of it that was.
    pub last: Option<(&'static str, u64)>,
    /// Points passed in total.
    pub passed: u64,
    /// Stopped itself at its armed point.
    pub stopped: bool,
}

/// A worker's schedule words (see `schedule.rs`).
pub fn schedule_words(slot: &[AtomicU64]) -> &[AtomicU64] {
    &slot[SCHED_BASE..SLOT_WORDS]
}

/// The scheduler reaped (or resumed) the worker of `slot`: release the hold its stop put on the others.
pub fn release(slot: &[AtomicU64], global: &[AtomicU64]) {
    crate::fault::schedule::release(schedule_words(slot), global);
}

/// Read a worker's breadcrumb.
pub fn read(slot: &[AtomicU64]) -> Breadcrumb {
    let last = slot[W_LAST].load(Ordering::Acquire);
    let name = last.checked_sub(1).and_then(|i| dbtorture_backends::crash::ALL.get(i as usize).copied());
    Breadcrumb {
        last: name.map(|n| (n, slot[W_LAST_HIT].load(Ordering::Acquire))),
        passed: slot[W_PASSED].load(Ordering::Acquire),
        stopped: slot[W_STOPPED].load(Ordering::Acquire) == 1,
    }
}

/// How often the worker passed each crash point: (point id, hits), for points passed at least once.
pub fn hits(slot: &[AtomicU64]) -> Vec<(u32, u64)> {
    (0..HIT_WORDS.min(dbtorture_backends::crash::ALL.len()))
        .filter_map(|i| {
            let n = slot[W_HITS_BASE + i].load(Ordering::Acquire);
            (n > 0).then_some((i as u32, n))
        })
        .collect()
}

/// Re-arm a paused worker's slot for another point (or disarm it), keeping its breadcrumbs.
pub fn rearm(slot: &[AtomicU64], point: Option<(u32, u32)>) {
    let (id, nth) = point.map(|(i, n)| (u64::from(i) + 1, u64::from(n))).unwrap_or((0, 0));
    slot[W_HITS].store(0, Ordering::Release);
    slot[W_STOPPED].store(0, Ordering::Release);
    slot[W_NTH].store(nth, Ordering::Release);
    slot[W_ARMED].store(id, Ordering::Release);
}

/// Reset a slot and arm it (or not) before forking its worker.
pub fn arm(slot: &[AtomicU64], point: Option<(u32, u32)>) {
    arm_at(slot, point, false);
}

/// Reset a slot and arm it; with `after`, the worker stops at the first point after the armed hit.
pub fn arm_at(slot: &[AtomicU64], point: Option<(u32, u32)>, after: bool) {
    for w in slot.iter().take(SLOT_WORDS) {
        w.store(0, Ordering::Release);
    }
    if let Some((id, nth)) = point {
        slot[W_ARMED].store(u64::from(id) + 1, Ordering::Release);
        slot[W_NTH].store(u64::from(nth), Ordering::Release);
        slot[W_AFTER].store(u64::from(after), Ordering::Release);
    }
}

static TARGET: AtomicU64 = AtomicU64::new(0);
static NTH: AtomicU64 = AtomicU64::new(0);
static HITS: AtomicU64 = AtomicU64::new(0);

fn env_hook(id: u32) {
    if TARGET.load(Ordering::Acquire) == u64::from(id) + 1 {
        let n = HITS.fetch_add(1, Ordering::AcqRel) + 1;
        if n == NTH.load(Ordering::Acquire) {
            eprintln!("dbtorture: stopped at crash point {} (hit {n})", dbtorture_backends::crash::ALL[id as usize]);
            let _ = raise(Signal::SIGSTOP);
        }
    }
}

/// For standalone commands (`recover`, `convert`): `DBTORTURE_CRASH_AT=point[:n]` stops the process at the
/// n-th hit (default 1) of that crash point, so a test or a user can SIGKILL it exactly there.
pub fn install_from_env() {
    let Ok(spec) = std::env::var("DBTORTURE_CRASH_AT") else { return };
    let (name, nth) = spec.split_once(':').map(|(p, n)| (p, n.parse().unwrap_or(1))).unwrap_or((spec.as_str(), 1));
    let Some(id) = dbtorture_backends::crash::id_of(name) else {
        eprintln!("dbtorture: DBTORTURE_CRASH_AT names no crash point: {name}");
        return;
    };
    TARGET.store(u64::from(id) + 1, Ordering::Release);
    NTH.store(nth, Ordering::Release);
    dbtorture_backends::crash::set_hook(env_hook);
}
