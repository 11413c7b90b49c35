//! I/O kill points and injected I/O errors: the recorder counts each process's writes, fsyncs and renames
//! over the cycle and, at the armed one (an op kind and its ordinal), either holds the process there for the
//! scheduler to SIGKILL or fails the operation (EIO, ENOSPC, a short write).
//!
//! Why in the recorder: it sees every file operation of every engine, ours and the real `rpm` and libdb,
//! so its operations are kill points any engine passes — the crash points of engines that have none.
//!
//! Counting: an operation counts when it comes from a user process other than the harness (the daemon's
//! parent); writes the kernel's flusher threads make (dirty shared-mmap pages written back) do not count.
//! The ordinal is over the whole cycle, all processes together: with one writer (the rpm scenarios) it is
//! deterministic; with several, which writer's operation is the N-th depends on how they interleave.
//!
//! Holding: the daemon does not perform the armed operation; it publishes the requester and waits. The
//! scheduler SIGKILLs that process (and the cycle's child it descends from) and releases the hold; the
//! daemon then answers EIO, which no code of the dead process ever sees (a process killed in a FUSE request
//! waits for the answer, then dies). So the operation never happens and nothing after it runs.
//!
//! Injected errors: EIO and ENOSPC are answered without doing the operation. A short write writes the first
//! half of the bytes asked, rounded down to a whole 512-byte sector ([`short_len`]), and answers that count:
//! the kernel hands the short count to the process (a FUSE write answered short ends the `write(2)` there),
//! which may legally write the rest again — sqlite's unix VFS does, so for it a short write is absorbed.
//! Short on an fsync or rename is EIO. The process that got the error is kept (the held word) so the
//! verdict knows whose failure the error explains (`scheduler/ioerror.rs`).
//!
//! Shared words (the recorder's page; word 0 is its operation counter): armed op, ordinal, action; counts
//! passed per op kind; the held process (or the one that got the error); the hold's state; whether an error
//! fired; a short write's bytes asked and written.

use crate::scenario::{IoAction, IoKill, IoMode};
use crate::sys::AtomicU64;
use dbtorture_reports::IoOp;
use rand::RngExt;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const W_OP: usize = 1;
const W_NTH: usize = 2;
const W_ACTION: usize = 3;
const W_PASSED: usize = 4; // 3 words, one per IoOp
const W_HELD: usize = 7;
const W_STATE: usize = 8;
const W_FIRED: usize = 9;
const W_STOPPING: usize = 10;
const W_ASKED: usize = 11;
const W_WRITTEN: usize = 12;
/// Words of the recorder's shared page.
pub const WORDS: usize = 13;

/// How many of `asked` bytes a short write writes: half, rounded down to a 512-byte sector; a write of less
/// than 1 KiB gets half (a 1-byte write gets 0, which the kernel turns into EIO for the process).
pub fn short_len(asked: usize) -> usize {
    match (asked / 2) & !511 {
        0 => asked / 2,
        n => n,
    }
}

/// The harness is unmounting: every process of the cycle has ended, so the log is whole whatever the FUSE
/// session says as it ends (the daemon reads this with [`Counter::stopping`]).
pub fn set_stopping(words: &[AtomicU64]) {
    words[W_STOPPING].store(1, Ordering::SeqCst);
}

const IDLE: u64 = 0;
const HELD: u64 = 1;
const KILLED: u64 = 2;
const PROCEED: u64 = 3;

/// How long the daemon holds a process before letting the operation through (a scheduler that never
/// answered: the cycle's timeout judges it).
const HOLD_LIMIT: Duration = Duration::from_secs(20);

fn op_index(op: IoOp) -> usize {
    IoOp::ALL.iter().position(|o| *o == op).expect("every op is in ALL")
}

fn action_code(a: IoAction) -> u64 {
    match a {
        IoAction::Kill => 0,
        IoAction::Eio => 1,
        IoAction::Enospc => 2,
        IoAction::Short => 3,
        // Resolved to one of the three when drawn (`IoArm::draw`); never armed as such.
        IoAction::Errors => 1,
    }
}

fn action_of(code: u64) -> IoAction {
    match code {
        1 => IoAction::Eio,
        2 => IoAction::Enospc,
        3 => IoAction::Short,
        _ => IoAction::Kill,
    }
}

/// One cycle's armed operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoArm {
    pub op: IoOp,
    pub nth: u64,
    pub action: IoAction,
}

impl IoArm {
    /// The cycle's arming from `[io_kill]`: a sweep walks `ops` × 1..=first, one per cycle.
    pub fn draw(cfg: &IoKill, cycle: u64, rng: &mut impl rand::Rng) -> Option<IoArm> {
        if cfg.ops.is_empty() || cfg.first == 0 {
            return None;
        }
        let (op, nth) = match cfg.mode {
            IoMode::Sweep => {
                let i = cycle % (cfg.ops.len() as u64 * cfg.first);
                (cfg.ops[(i / cfg.first) as usize], i % cfg.first + 1)
            }
            IoMode::Random => (cfg.ops[rng.random_range(0..cfg.ops.len())], rng.random_range(1..=cfg.first)),
        };
        // "errors": a seeded one of the three each cycle (drawn only then, so other scenarios' draws stay).
        let action = match cfg.action {
            IoAction::Errors => [IoAction::Eio, IoAction::Enospc, IoAction::Short][rng.random_range(0..3)],
            a => a,
        };
        Some(IoArm { op, nth, action })
    }

    pub fn describe(&self) -> String {
        let what = match self.action {
            IoAction::Kill => "kill",
            IoAction::Eio => "eio",
            IoAction::Enospc => "enospc",
            IoAction::Short => "short",
            IoAction::Errors => "errors",
        };
        format!("{}#{} {what}", self.op.point(), self.nth)
    }
}

/// What the daemon does with an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Pass,
    /// Answer this errno without doing the operation.
    Fail(i32),
    /// Write only the first half.
    Short,
}

/// The daemon's side.
pub struct Counter {
    words: &'static [AtomicU64],
    notify: Option<File>,
    harness: u32,
    /// Requester (thread id) → its process, when it counts.
    known: HashMap<u32, Option<u32>>,
}

/// /proc/TID/status: (Tgid, PPid).
fn status(tid: u32) -> Option<(u32, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    let field = |k: &str| s.lines().find_map(|l| l.strip_prefix(k)).and_then(|v| v.trim().parse::<u32>().ok());
    Some((field("Tgid:")?, field("PPid:")?))
}

impl Counter {
    pub fn new(words: &'static [AtomicU64], notify: Option<File>, harness: u32) -> Counter {
        Counter { words, notify, harness, known: HashMap::new() }
    }

    /// Whether the harness had begun to unmount ([`set_stopping`]).
    pub fn stopping(&self) -> bool {
        self.words[W_STOPPING].load(Ordering::SeqCst) == 1
    }

    /// One more operation answered (word 0: what workers read as their acknowledgement's number).
    pub fn answered(&self) {
        self.words[0].fetch_add(1, Ordering::SeqCst);
    }

    /// The process a requester belongs to, when its operations count.
    fn process(&mut self, tid: u32) -> Option<u32> {
        if tid == 0 {
            return None;
        }
        let harness = self.harness;
        *self.known.entry(tid).or_insert_with(|| match status(tid) {
            // Kernel threads are children of kthreadd (2), or kthreadd itself.
            Some((_, ppid)) if ppid == 2 || tid == 2 => None,
            Some((tgid, _)) if tgid == harness => None,
            Some((tgid, _)) => Some(tgid),
            None => None,
        })
    }

    /// Count an operation of `op` by thread `tid`; decide what happens to it.
    pub fn check(&mut self, op: IoOp, tid: u32) -> Gate {
        self.check_sized(op, tid, 0)
    }

    /// [`Counter::check`] of a write of `asked` bytes (a short write records how many it wrote).
    pub fn check_sized(&mut self, op: IoOp, tid: u32, asked: usize) -> Gate {
        let Some(pid) = self.process(tid) else { return Gate::Pass };
        let w = self.words;
        let n = w[W_PASSED + op_index(op)].fetch_add(1, Ordering::SeqCst) + 1;
        let armed = w[W_OP].load(Ordering::SeqCst);
        if armed != op_index(op) as u64 + 1 || w[W_NTH].load(Ordering::SeqCst) != n {
            return Gate::Pass;
        }
        match action_of(w[W_ACTION].load(Ordering::SeqCst)) {
            IoAction::Kill => self.hold(pid),
            a => {
                w[W_HELD].store(u64::from(pid), Ordering::SeqCst);
                w[W_FIRED].store(1, Ordering::SeqCst);
                match (a, op) {
                    (IoAction::Short, IoOp::Write) => {
                        w[W_ASKED].store(asked as u64, Ordering::SeqCst);
                        w[W_WRITTEN].store(short_len(asked) as u64, Ordering::SeqCst);
                        Gate::Short
                    }
                    (IoAction::Enospc, _) => Gate::Fail(libc::ENOSPC),
                    _ => Gate::Fail(libc::EIO),
                }
            }
        }
    }

    fn hold(&mut self, pid: u32) -> Gate {
        let w = self.words;
        w[W_HELD].store(u64::from(pid), Ordering::SeqCst);
        w[W_STATE].store(HELD, Ordering::SeqCst);
        if let Some(n) = self.notify.as_mut() {
            let _ = n.write_all(b"h");
        }
        let t0 = Instant::now();
        let state = loop {
            let s = w[W_STATE].load(Ordering::SeqCst);
            if s != HELD || t0.elapsed() > HOLD_LIMIT {
                break s;
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        w[W_STATE].store(IDLE, Ordering::SeqCst);
        if state == KILLED {
            w[W_FIRED].store(1, Ordering::SeqCst);
            Gate::Fail(libc::EIO)
        } else {
            Gate::Pass
        }
    }
}

/// The scheduler's side, over the recorder's page and the read end of its notification pipe.
pub struct GateHandle<'a> {
    pub(super) words: &'a [AtomicU64],
    pub(super) notify: &'a File,
}

impl GateHandle<'_> {
    /// Arm the cycle's operation (before any child exists).
    pub fn arm(&self, a: IoArm) {
        let w = self.words;
        w[W_NTH].store(a.nth, Ordering::SeqCst);
        w[W_ACTION].store(action_code(a.action), Ordering::SeqCst);
        w[W_OP].store(op_index(a.op) as u64 + 1, Ordering::SeqCst);
    }

    /// The notification pipe, to poll.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.notify.as_fd()
    }

    /// A process held at the armed operation: (its pid, the operation, its ordinal).
    pub fn held(&self) -> Option<(u32, IoOp, u64)> {
        let mut buf = [0u8; 16];
        let _ = (&mut &*self.notify).read(&mut buf); // non-blocking: drain the wake-ups
        let w = self.words;
        if w[W_STATE].load(Ordering::SeqCst) != HELD {
            return None;
        }
        let op = IoOp::ALL[(w[W_OP].load(Ordering::SeqCst) as usize).clamp(1, 3) - 1];
        Some((w[W_HELD].load(Ordering::SeqCst) as u32, op, w[W_NTH].load(Ordering::SeqCst)))
    }

    /// End the hold: `killed` (the process is dead once answered) or let the operation through.
    pub fn release(&self, killed: bool) {
        self.words[W_STATE].store(if killed { KILLED } else { PROCEED }, Ordering::SeqCst);
    }

    /// Operations counted so far, per kind.
    pub fn passed(&self) -> Vec<(IoOp, u64)> {
        IoOp::ALL.iter().map(|&o| (o, self.words[W_PASSED + op_index(o)].load(Ordering::SeqCst))).collect()
    }

    /// An injected error that fired: the process it was answered to, and for a short write the bytes
    /// asked and written.
    pub fn injected(&self) -> Option<(u32, Option<(u64, u64)>)> {
        let w = self.words;
        let action = action_of(w[W_ACTION].load(Ordering::SeqCst));
        if action == IoAction::Kill || !self.fired() {
            return None;
        }
        let asked = w[W_ASKED].load(Ordering::SeqCst);
        let short = (asked > 0).then(|| (asked, w[W_WRITTEN].load(Ordering::SeqCst)));
        Some((w[W_HELD].load(Ordering::SeqCst) as u32, short))
    }

    /// Whether the armed operation was reached (held and killed, or failed).
    pub fn fired(&self) -> bool {
        self.words[W_FIRED].load(Ordering::SeqCst) == 1
    }
}

/// Which of `children` `pid` is, or descends from (walking /proc's parent links).
pub fn owner(pid: u32, children: &[u32]) -> Option<usize> {
    let mut p = pid;
    for _ in 0..64 {
        if let Some(i) = children.iter().position(|&c| c == p) {
            return Some(i);
        }
        match status(p) {
            Some((_, ppid)) if ppid > 1 => p = ppid,
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_sweep_arms_every_op_and_ordinal_once_per_round() {
        let cfg = IoKill { ops: vec![IoOp::Write, IoOp::Fsync], first: 3, ..IoKill::default() };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let arms: Vec<_> = (0..6).map(|c| IoArm::draw(&cfg, c, &mut rng).unwrap()).collect();
        let got: Vec<_> = arms.iter().map(|a| (a.op, a.nth)).collect();
        assert_eq!(
            got,
            [
                (IoOp::Write, 1),
                (IoOp::Write, 2),
                (IoOp::Write, 3),
                (IoOp::Fsync, 1),
                (IoOp::Fsync, 2),
                (IoOp::Fsync, 3)
            ]
        );
        assert_eq!(IoArm::draw(&cfg, 6, &mut rng).map(|a| (a.op, a.nth)), Some((IoOp::Write, 1)));
    }

    #[test]
    fn the_armed_operation_fails_and_only_it() {
        let page = crate::sys::SharedWords::new(WORDS).unwrap();
        let words = page.child_static();
        let (rd, _wr) = nix::unistd::pipe().unwrap();
        let rd = File::from(rd);
        let h = GateHandle { words, notify: &rd };
        h.arm(IoArm { op: IoOp::Write, nth: 2, action: IoAction::Enospc });
        let mut c = Counter::new(words, None, 0);
        let me = std::process::id();
        assert_eq!(c.check(IoOp::Fsync, me), Gate::Pass);
        assert_eq!(c.check(IoOp::Write, me), Gate::Pass);
        assert!(!h.fired());
        assert_eq!(c.check(IoOp::Write, me), Gate::Fail(libc::ENOSPC));
        assert_eq!(c.check(IoOp::Write, me), Gate::Pass);
        assert!(h.fired());
        assert_eq!(h.injected(), Some((me, None)), "the process that got ENOSPC is kept");
        assert_eq!(h.passed(), [(IoOp::Write, 3), (IoOp::Fsync, 1), (IoOp::Rename, 0)]);
        // The harness's own operations and the kernel's do not count.
        let mut mine = Counter::new(words, None, me);
        assert_eq!(mine.check(IoOp::Write, me), Gate::Pass);
        assert_eq!(mine.check(IoOp::Write, 0), Gate::Pass);
        assert_eq!(h.passed()[0], (IoOp::Write, 3));
    }

    #[test]
    fn a_process_descends_from_its_cycle_child() {
        let me = std::process::id();
        let parent = std::os::unix::process::parent_id();
        assert_eq!(owner(me, &[7, parent]), Some(1));
        assert_eq!(owner(me, &[me]), Some(0));
        assert_eq!(owner(me, &[u32::MAX - 1]), None);
    }
}

#[cfg(test)]
mod short_tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_short_write_is_half_rounded_down_to_a_sector() {
        assert_eq!(short_len(4096), 2048);
        assert_eq!(short_len(4096 + 24), 2048);
        assert_eq!(short_len(3000), 1024);
        assert_eq!(short_len(1000), 500, "under 1 KiB: half");
        assert_eq!(short_len(1), 0);
    }

    #[test]
    fn the_armed_short_write_records_its_bytes_and_errors_draw_all_three_kinds() {
        let page = crate::sys::SharedWords::new(WORDS).unwrap();
        let words = page.child_static();
        let (rd, _wr) = nix::unistd::pipe().unwrap();
        let rd = File::from(rd);
        let h = GateHandle { words, notify: &rd };
        h.arm(IoArm { op: IoOp::Write, nth: 1, action: IoAction::Short });
        let mut c = Counter::new(words, None, 0);
        let me = std::process::id();
        assert_eq!(h.injected(), None);
        assert_eq!(c.check_sized(IoOp::Write, me, 8192), Gate::Short);
        assert_eq!(h.injected(), Some((me, Some((8192, 4096)))));

        let cfg = IoKill { ops: vec![IoOp::Write], first: 5, mode: IoMode::Sweep, action: IoAction::Errors };
        let draw = |seed| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            IoArm::draw(&cfg, seed, &mut rng).unwrap()
        };
        let kinds: std::collections::BTreeSet<_> = (0..60).map(|s| action_code(draw(s).action)).collect();
        assert_eq!(kinds.into_iter().collect::<Vec<_>>(), [1, 2, 3], "eio, enospc and short all drawn");
        assert_eq!(draw(7), draw(7), "the same seed arms the same error");
    }
}
