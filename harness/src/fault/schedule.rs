//! The interleaving of a cycle's workers, recorded at the granularity of turns and enforced on replay.
//!
//! Why: a bundle's seed, plan and kill points fix *what* each worker does, not *in which order* concurrent
//! workers' steps happened — and for a shared-environment engine that order is the verdict (who held the
//! lock when a writer died, whose list insert a stale page undid). A *turn* is a crash point passed, or a
//! step on shared state a backend announces (`dbtorture_backends::turns`: a region mutex's critical
//! section, rpm's fcntl lock). Every turn takes a ticket from one counter shared by the cycle's workers,
//! inside the step; a worker's tickets are its schedule. A replay hands each worker its schedule back:
//! before every step the worker waits until every earlier ticket has been taken, so critical sections and
//! crash points come in the recorded order (the stretches between them still run concurrently). A poll
//! that changed nothing (a lock still taken) is no turn: how often a worker polls is timing.
//!
//! Kills are turns too: a worker stopping at its armed point *holds* every other worker at its next turn
//! until the scheduler has killed and reaped it (`release`), so whether another worker's failchk finds it
//! alive or dead is decided by the order, not by how fast the scheduler reacted.
//!
//! A worker at the end of its recorded schedule does what it did in the recorded cycle ([`End`]): runs on
//! (it finished), stops there to be killed (a kill), or waits there to be killed by the cycle's timeout.
//! If the replay leaves the recorded path (a worker waits too long for its turn), every worker runs freely
//! from there on and the replay says it diverged; [`followed`] also says whether every worker took every
//! recorded ticket.
//!
//! Layout: per worker, in its crash-point slot, `WORDS` words (mode, count, position, end, holding, log);
//! for the whole cycle, `GLOBAL_WORDS` words after the slots (the next ticket, the diverged flag, holds).

use crate::sys::AtomicU64;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Tickets kept per worker per cycle (more are counted, not kept: the replay diverges there).
pub const CAP: usize = 8192;
const W_MODE: usize = 0;
const W_COUNT: usize = 1;
const W_POS: usize = 2;
const W_END: usize = 3;
const W_HOLDING: usize = 4;
const W_LOG: usize = 5;
pub const WORDS: usize = W_LOG + CAP;

const G_NEXT: usize = 0;
const G_DIVERGED: usize = 1;
const G_HOLDS: usize = 2;
pub const GLOBAL_WORDS: usize = 3;

const RECORD: u64 = 1;
const REPLAY: u64 = 2;

/// How long a replaying worker waits for its turn *while no worker takes a turn* before the replay gives
/// the schedule up. It bounds a stall, not the wait: a worker whose next ticket is a thousand turns away
/// waits for all of them, which takes ~0.1 s on x86 but seconds in the emulated ARM guest (a guest bundle's
/// writer waited over 1,037 tickets, ~4 s of its cycle, and a 2 s limit on the whole wait made that guest
/// replay leave its schedule).
const TURN_WAIT: Duration = Duration::from_millis(2000);
/// How long a worker waits for the scheduler to kill a stopped worker before it goes on regardless.
const HOLD_WAIT: Duration = Duration::from_millis(5000);

/// What a replaying worker does once it has taken every ticket of its recorded schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// It finished in the recorded cycle: run on.
    RunOn = 0,
    /// It was killed there: stop at the next turn (the scheduler SIGKILLs a stopped worker).
    Stop = 1,
    /// The cycle's timeout killed it there: wait for the replay's timeout.
    Wait = 2,
}

/// What the caller of [`gate`] / [`arrive`] must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    Go,
    /// Stop here, to be killed (past the end of a schedule that ended in a kill).
    Stop,
}

struct Sched {
    slot: &'static [AtomicU64],
    global: &'static [AtomicU64],
}

static SCHED: OnceLock<Sched> = OnceLock::new();

/// In a cycle's child: take part in the schedule (`slot`: this worker's schedule words).
pub fn install(slot: &'static [AtomicU64], global: &'static [AtomicU64]) {
    let _ = SCHED.set(Sched { slot, global });
}

/// At every crash point, before anything else: a turn that is waited for and taken at once.
pub fn arrive() -> Turn {
    SCHED.get().map_or(Turn::Go, arrive_in)
}

fn arrive_in(s: &Sched) -> Turn {
    match gate_in(s) {
        Turn::Go => take_in(s),
        Turn::Stop => Turn::Stop,
    }
}

/// Before a step on shared state: wait while a stopped worker is being killed; on replay, wait for this
/// worker's next recorded turn (its next ticket may be a crash point inside the step).
pub fn gate() -> Turn {
    SCHED.get().map_or(Turn::Go, gate_in)
}

fn gate_in(s: &Sched) -> Turn {
    wait_for_holds(s);
    match next_ticket(s) {
        Next::Free => Turn::Go,
        Next::End => end_of_schedule(s),
        Next::Ticket(t) => {
            wait_turn(s, t);
            Turn::Go
        }
    }
}

/// The step [`gate`] let through took effect (inside it): record its ticket, or wait for its turn and pass
/// the turn on. `Stop`: the recorded worker was killed inside this step, before its ticket.
pub fn take() -> Turn {
    SCHED.get().map_or(Turn::Go, take_in)
}

fn take_in(s: &Sched) -> Turn {
    match s.slot[W_MODE].load(Ordering::Acquire) {
        RECORD => {
            let t = s.global[G_NEXT].fetch_add(1, Ordering::AcqRel);
            let c = s.slot[W_COUNT].fetch_add(1, Ordering::AcqRel) as usize;
            if c < CAP {
                s.slot[W_LOG + c].store(t, Ordering::Release);
            }
            Turn::Go
        }
        _ => match next_ticket(s) {
            Next::Free => Turn::Go,
            Next::End => end_of_schedule(s),
            Next::Ticket(t) => {
                if wait_turn(s, t) {
                    let pos = s.slot[W_POS].load(Ordering::Acquire);
                    s.slot[W_POS].store(pos + 1, Ordering::Release);
                    s.global[G_NEXT].store(t + 1, Ordering::Release);
                }
                Turn::Go
            }
        },
    }
}

enum Next {
    /// Not replaying, or the replay left its schedule.
    Free,
    /// Every recorded ticket is taken.
    End,
    Ticket(u64),
}

fn next_ticket(s: &Sched) -> Next {
    if s.slot[W_MODE].load(Ordering::Acquire) != REPLAY || s.global[G_DIVERGED].load(Ordering::Acquire) != 0 {
        return Next::Free;
    }
    let pos = s.slot[W_POS].load(Ordering::Acquire) as usize;
    let recorded = (s.slot[W_COUNT].load(Ordering::Acquire) as usize).min(CAP);
    if pos >= recorded { Next::End } else { Next::Ticket(s.slot[W_LOG + pos].load(Ordering::Acquire)) }
}

/// Whether the turns stopped: how long the shared counter has stood still, as a waiter sees it.
#[derive(Debug, Clone, Copy)]
struct Progress {
    seen: u64,
    since: Instant,
}

impl Progress {
    fn new(seen: u64, now: Instant) -> Progress {
        Progress { seen, since: now }
    }

    /// The counter reads `next` at `now`: true once it has not moved for longer than `limit`.
    fn stalled(&mut self, next: u64, now: Instant, limit: Duration) -> bool {
        if next != self.seen {
            *self = Progress::new(next, now);
            return false;
        }
        now.duration_since(self.since) > limit
    }
}

/// Wait until ticket `t` is next; false if the replay left its schedule meanwhile (or now, because no
/// worker took a turn for [`TURN_WAIT`]).
fn wait_turn(s: &Sched, t: u64) -> bool {
    let mut progress = Progress::new(s.global[G_NEXT].load(Ordering::Acquire), Instant::now());
    let mut spins = 0u32;
    loop {
        let next = s.global[G_NEXT].load(Ordering::Acquire);
        if next == t {
            break;
        }
        if s.global[G_DIVERGED].load(Ordering::Acquire) != 0 {
            return false;
        }
        if progress.stalled(next, Instant::now(), TURN_WAIT) {
            if s.global[G_DIVERGED].swap(1, Ordering::AcqRel) == 0 {
                left(&format!(
                    "waited for ticket {t}, but no worker took a turn for {TURN_WAIT:?} (the next is {next})"
                ));
            }
            return false;
        }
        // Spin briefly (a turn usually passes within microseconds), then sleep: waiters that only yield
        // starve the worker whose turn it is on a loaded machine (2 cores, several waiting workers), and
        // the replay leaves its schedule for want of CPU, not of order.
        spins += 1;
        if spins < 200 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    true
}

/// Says on stderr (the replay's words) why this worker left the recorded schedule: the replay only knows
/// that it did.
fn left(why: &str) {
    eprintln!("replay: worker pid {} left the recorded schedule: it {why}", std::process::id());
}

fn end_of_schedule(s: &Sched) -> Turn {
    match s.slot[W_END].load(Ordering::Acquire) {
        x if x == End::Stop as u64 => Turn::Stop,
        x if x == End::Wait as u64 => loop {
            // The recorded cycle's timeout killed this worker here; the replay's will.
            if s.global[G_DIVERGED].load(Ordering::Acquire) != 0 {
                return Turn::Go;
            }
            std::thread::sleep(Duration::from_millis(5));
        },
        _ => Turn::Go,
    }
}

/// In a worker about to stop itself to be killed: hold every other worker at its next turn until the
/// scheduler has reaped this one ([`release`]).
pub fn hold() {
    if let Some(s) = SCHED.get() {
        hold_in(s);
    }
}

fn hold_in(s: &Sched) {
    if s.slot[W_HOLDING].swap(1, Ordering::AcqRel) == 0 {
        s.global[G_HOLDS].fetch_add(1, Ordering::AcqRel);
    }
}

fn wait_for_holds(s: &Sched) {
    if s.global[G_HOLDS].load(Ordering::Acquire) == 0 {
        return;
    }
    let start = Instant::now();
    while s.global[G_HOLDS].load(Ordering::Acquire) != 0 {
        if start.elapsed() > HOLD_WAIT {
            if s.slot[W_MODE].load(Ordering::Acquire) == REPLAY && s.global[G_DIVERGED].swap(1, Ordering::AcqRel) == 0 {
                left(&format!("waited {HOLD_WAIT:?} for a stopped worker to be killed"));
            }
            return;
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// In the scheduler, once a worker that stopped itself is dead and reaped (or resumed): let the others on.
pub fn release(slot: &[AtomicU64], global: &[AtomicU64]) {
    if slot[W_HOLDING].swap(0, Ordering::AcqRel) == 1 {
        global[G_HOLDS].fetch_sub(1, Ordering::AcqRel);
    }
}

/// What worker `index` did at the end of its recorded schedule, from the recorded cycle's kills.
pub fn end_of(kills: Option<&[(dbtorture_reports::KillRecord, bool)]>, index: usize) -> End {
    use dbtorture_reports::KillTrigger;
    let kill = kills.unwrap_or_default().iter().find(|(k, _)| k.worker as usize == index);
    match kill.map(|(k, _)| k.trigger) {
        None => End::RunOn,
        Some(KillTrigger::Timeout | KillTrigger::Interrupt) => End::Wait,
        Some(_) => End::Stop,
    }
}

/// In the scheduler before a cycle: reset the shared counter.
pub fn reset(global: &[AtomicU64]) {
    for w in global.iter().take(GLOBAL_WORDS) {
        w.store(0, Ordering::Release);
    }
}

/// In the scheduler before forking a child: record its schedule, or replay `tickets` and then do `end`.
pub fn arm(slot: &[AtomicU64], tickets: Option<(&[u64], End)>) {
    for w in slot.iter().take(W_LOG) {
        w.store(0, Ordering::Release);
    }
    match tickets {
        None => slot[W_MODE].store(RECORD, Ordering::Release),
        Some((ts, end)) => {
            slot[W_END].store(end as u64, Ordering::Release);
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

/// Whether a replayed cycle followed its schedule to the end: it never left it, and every child took every
/// ticket it had (`slots`: the children's schedule words).
pub fn followed<'a>(global: &[AtomicU64], slots: impl IntoIterator<Item = &'a [AtomicU64]>) -> bool {
    !diverged(global)
        && slots.into_iter().all(|s| {
            s[W_MODE].load(Ordering::Acquire) != REPLAY
                || s[W_POS].load(Ordering::Acquire) >= (s[W_COUNT].load(Ordering::Acquire)).min(CAP as u64)
        })
}

/// The workers of a replayed cycle that did not take every recorded ticket: "worker I took P of N".
pub fn untaken<'a>(slots: impl IntoIterator<Item = &'a [AtomicU64]>) -> Vec<String> {
    slots
        .into_iter()
        .enumerate()
        .filter(|(_, s)| s[W_MODE].load(Ordering::Acquire) == REPLAY)
        .filter_map(|(i, s)| {
            let (pos, n) = (s[W_POS].load(Ordering::Acquire), s[W_COUNT].load(Ordering::Acquire).min(CAP as u64));
            (pos < n).then(|| {
                let next = s[W_LOG + pos as usize].load(Ordering::Acquire);
                format!("worker {i} took {pos} of its {n} recorded turns (its next was ticket {next})")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};

    fn words(n: usize) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }

    fn leak(n: usize) -> &'static [AtomicU64] {
        Box::leak(words(n).into_boxed_slice())
    }

    /// A waiter gives the schedule up only when no turn was taken for the limit, however long it has
    /// waited in all: the emulated guest's workers wait seconds for a turn a thousand tickets away.
    #[test]
    fn a_long_wait_with_turns_passing_is_no_stall() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let limit = ms(2000);
        let mut p = Progress::new(5, t0);
        // The counter moves every 1.5 s for a minute: never stalled against a 2 s limit.
        for i in 1..=40u64 {
            assert!(!p.stalled(5 + i, t0 + ms(1500 * i), limit), "turn {i}");
            assert!(!p.stalled(5 + i, t0 + ms(1500 * i + 1999), limit), "turn {i}, just before the limit");
        }
        // Then it stands still: stalled once the limit has passed since the last turn, not before.
        let last = t0 + ms(1500 * 40);
        assert!(!p.stalled(45, last + limit, limit));
        assert!(p.stalled(45, last + limit + ms(1), limit));
    }

    #[test]
    fn arm_then_read_back_a_schedule() {
        let slot = words(WORDS);
        arm(&slot, Some((&[3, 5, 9], End::RunOn)));
        assert_eq!(recorded(&slot), vec![3, 5, 9]);
        arm(&slot, None);
        assert_eq!(recorded(&slot), Vec::<u64>::new());
    }

    /// Two workers record tickets from one counter; replayed, they pass their turns in exactly that order
    /// whatever the threads' timing, and the replay followed its schedule to its end.
    #[test]
    fn a_replay_passes_turns_in_the_recorded_order() {
        let global = leak(GLOBAL_WORDS);
        let (a, b) = (leak(WORDS), leak(WORDS));
        arm(a, None);
        arm(b, None);
        let (sa, sb) = (Sched { slot: a, global }, Sched { slot: b, global });
        for s in [&sa, &sb, &sb, &sa, &sb] {
            assert_eq!(arrive_in(s), Turn::Go);
        }
        let (ta, tb) = (recorded(a), recorded(b));
        assert_eq!((ta.clone(), tb.clone()), (vec![0, 3], vec![1, 2, 4]));
        for _ in 0..20 {
            reset(global);
            arm(a, Some((&ta, End::RunOn)));
            arm(b, Some((&tb, End::RunOn)));
            let order = Arc::new(Mutex::new(Vec::new()));
            let run = |slot: &'static [AtomicU64], name: char, n: usize| {
                let order = Arc::clone(&order);
                std::thread::spawn(move || {
                    let s = Sched { slot, global };
                    for _ in 0..n {
                        gate_in(&s);
                        order.lock().unwrap().push(name);
                        take_in(&s);
                    }
                })
            };
            // B starts first: it must still wait for A's first turn.
            let hb = run(b, 'b', 3);
            let ha = run(a, 'a', 2);
            hb.join().unwrap();
            ha.join().unwrap();
            assert_eq!(*order.lock().unwrap(), vec!['a', 'b', 'b', 'a', 'b']);
            assert!(followed(global, [a, b]));
        }
    }

    /// Past the end of its recorded turns a worker that was killed there stops; one that finished runs on;
    /// a replay that did not take every ticket did not follow its schedule to the end.
    #[test]
    fn the_end_of_a_schedule_is_what_the_recorded_worker_did_there() {
        let global = leak(GLOBAL_WORDS);
        let a = leak(WORDS);
        let s = Sched { slot: a, global };
        arm(a, Some((&[0], End::Stop)));
        assert!(!followed(global, [a]));
        assert_eq!(arrive_in(&s), Turn::Go);
        assert!(followed(global, [a]));
        assert_eq!(gate_in(&s), Turn::Stop);
        reset(global);
        arm(a, Some((&[0], End::RunOn)));
        assert_eq!(arrive_in(&s), Turn::Go);
        assert_eq!(gate_in(&s), Turn::Go);
        assert!(!diverged(global));
    }

    /// A worker stopping to be killed holds the others at their next turn until the scheduler releases it.
    #[test]
    fn a_stopping_worker_holds_the_others_until_released() {
        let global = leak(GLOBAL_WORDS);
        let (a, b) = (leak(WORDS), leak(WORDS));
        arm(a, None);
        arm(b, None);
        hold_in(&Sched { slot: b, global });
        hold_in(&Sched { slot: b, global });
        let released = Arc::new(AtomicBool::new(false));
        let waiting = Arc::new(AtomicBool::new(false));
        let h = {
            let (released, waiting) = (Arc::clone(&released), Arc::clone(&waiting));
            std::thread::spawn(move || {
                waiting.store(true, Ordering::Release);
                let t = arrive_in(&Sched { slot: a, global });
                (t, released.load(Ordering::Acquire))
            })
        };
        while !waiting.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        for _ in 0..1000 {
            std::thread::yield_now();
        }
        released.store(true, Ordering::Release);
        release(b, global);
        release(b, global); // a second release of the same worker is nothing
        assert_eq!(h.join().unwrap(), (Turn::Go, true), "the turn waited for the release");
        assert_eq!(global[G_HOLDS].load(Ordering::Acquire), 0);
        assert_eq!(recorded(a), vec![0]);
    }
}
