//! The one event loop of a cycle: from the moment its children are forked until every one is reaped.
//!
//! Why one loop for every kind of cycle: writers and readers, a conversion, a replay — all are children
//! that may report on a pipe, stop at an armed crash point, need a kill at a planned time, overrun the
//! cycle's timeout, or be interrupted by the user. The loop waits on the children's pipes and a signalfd
//! (SIGCHLD, SIGINT, SIGTERM, SIGHUP) with `poll`, so it never busy-waits and never blocks on a child, and
//! the process stays single-threaded (fork needs that).

use super::collect::Collected;
use super::deadline::Deadline;
use super::faults::{CycleFault, FaultEnv};
use crate::fault::crashpoint;
use crate::fault::plan::WorkerPlan;
use crate::fault::powerloss::iogate;
use crate::sys::AtomicU64;
use anyhow::{Context, Result};
use dbtorture_reports::{KillTrigger, Role};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::io::Read;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// A child of the cycle, as the loop tracks it.
pub struct Child {
    pub index: u32,
    pub role: Role,
    pub pid: Pid,
    pipe: Option<std::fs::File>,
    buf: Vec<u8>,
    pub plan: WorkerPlan,
    pub killed_at: Option<Duration>,
    /// The last signal the scheduler sent, and why.
    pub sent: Option<(Signal, KillTrigger)>,
    /// Reaped: the final status (None inside: reaped by someone else).
    pub status: Option<Option<WaitStatus>>,
}

impl Child {
    pub fn new(index: u32, role: Role, pid: Pid, pipe: Option<std::fs::File>, plan: WorkerPlan) -> Child {
        Child { index, role, pid, pipe, buf: Vec::new(), plan, killed_at: None, sent: None, status: None }
    }

    fn send(&mut self, sig: Signal, trigger: KillTrigger, now: Duration) {
        let _ = kill(self.pid, sig);
        self.killed_at.get_or_insert(now);
        self.sent = Some((sig, trigger));
    }

    fn running(&self) -> bool {
        self.status.is_none()
    }

    /// Read what is in the pipe now (non-blocking) into `got`; how many bytes came.
    fn drain(&mut self, got: &mut Collected) -> u64 {
        let Some(p) = &mut self.pipe else { return 0 };
        let mut buf = [0u8; 8192];
        let mut said = 0u64;
        loop {
            match p.read(&mut buf) {
                Ok(0) => {
                    self.pipe = None;
                    break;
                }
                Ok(n) => {
                    said += n as u64;
                    self.buf.extend_from_slice(&buf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break, // WouldBlock
            }
        }
        got.take_lines(self.index, self.role, &mut self.buf);
        said
    }
}

/// How the loop ended.
pub struct Supervised {
    /// SIGINT, SIGTERM or SIGHUP arrived: the cycle is cut short, not judged.
    pub interrupted: bool,
}

/// What the loop watches besides the children.
pub struct Watch<'a> {
    pub signals: &'a SignalFd,
    /// The children's breadcrumb slots, `crashpoint::SLOT_WORDS` words each, in child order.
    pub words: &'a [AtomicU64],
    /// The cycle's schedule words (`fault::schedule`), after the slots.
    pub global: &'a [AtomicU64],
    /// How long the children may go without progress ([`Deadline`]).
    pub timeout: Duration,
    /// The recorder's I/O kill points, when the cycle is recorded.
    pub io: Option<iogate::GateHandle<'a>>,
}

/// Run the loop until every child is reaped.
pub fn run(
    children: &mut [Child],
    watch: &Watch<'_>,
    faults: &mut [Box<dyn CycleFault + '_>],
    env: &mut FaultEnv<'_, '_>,
    got: &mut Collected,
) -> Result<Supervised> {
    let t0 = Instant::now();
    let mut interrupted = false;
    let mut deadline = Deadline::new(watch.timeout);
    let mut said = 0u64;
    loop {
        let now = t0.elapsed();
        let passed: u64 = (0..children.len())
            .map(|i| crashpoint::read(&watch.words[children[i].index as usize * crashpoint::SLOT_WORDS..]).passed)
            .sum();
        deadline.observe(passed + said, now);
        for c in children.iter_mut().filter(|c| c.running() && c.sent.is_none()) {
            if c.plan.kill_at.is_some_and(|k| k <= now) {
                c.send(c.plan.signal, KillTrigger::Time, now);
            }
        }
        if deadline.due(now) {
            // Also a child that was sent SIGINT/SIGTERM and has not finished by now.
            for c in children.iter_mut().filter(|c| c.running() && c.sent.map(|s| s.0) != Some(Signal::SIGKILL)) {
                c.send(Signal::SIGKILL, KillTrigger::Timeout, now);
            }
        }
        if let Some(g) = &watch.io {
            io_hold(children, g, now);
        }
        for f in faults.iter_mut() {
            f.on_time(now, env);
        }
        reap(children, watch, t0, faults, env);
        for c in children.iter_mut() {
            said += c.drain(got);
        }
        if children.iter().all(|c| !c.running()) {
            break;
        }
        let next = children
            .iter()
            .filter(|c| c.running() && c.sent.is_none())
            .filter_map(|c| c.plan.kill_at)
            .chain(faults.iter().filter_map(|f| f.next_deadline()))
            .min()
            .unwrap_or(deadline.next())
            .min(deadline.next());
        let wait_ms = next.saturating_sub(t0.elapsed()).as_micros().div_ceil(1000).clamp(0, 1000) as u16;
        let mut fds: Vec<PollFd> = vec![PollFd::new(watch.signals.as_fd(), PollFlags::POLLIN)];
        fds.extend(watch.io.as_ref().map(|g| PollFd::new(g.fd(), PollFlags::POLLIN)));
        for c in children.iter() {
            if let Some(p) = &c.pipe {
                fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, PollTimeout::from(wait_ms)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll"),
        }
        drop(fds);
        while let Ok(Some(si)) = watch.signals.read_signal() {
            let sig = si.ssi_signo as i32;
            if [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP].iter().any(|s| *s as i32 == sig) {
                interrupted = true;
                let now = t0.elapsed();
                for c in children.iter_mut().filter(|c| c.running()) {
                    c.send(Signal::SIGKILL, KillTrigger::Interrupt, now);
                }
            }
        }
    }
    // Every child is reaped, so every write end is closed: the pipes read to their end without blocking.
    for c in children.iter_mut() {
        c.drain(got);
        c.pipe = None;
    }
    Ok(Supervised { interrupted })
}

/// A process the recorder holds at the armed I/O operation: SIGKILL the cycle's child it belongs to (and
/// the process itself, e.g. the rpm a worker runs), then let the recorder answer. A process that is no
/// child's (none should be) has its operation let through.
fn io_hold(children: &mut [Child], g: &iogate::GateHandle<'_>, now: Duration) {
    let Some((pid, op, nth)) = g.held() else { return };
    let pids: Vec<u32> = children.iter().map(|c| c.pid.as_raw() as u32).collect();
    match iogate::owner(pid, &pids) {
        Some(i) => {
            // A child already SIGKILLed (its timeout, a planned time) keeps the trigger it died of: the held
            // operation is only where that kill found it.
            if children[i].sent.map(|s| s.0) == Some(Signal::SIGKILL) {
                let _ = kill(children[i].pid, Signal::SIGKILL);
            } else {
                children[i].send(Signal::SIGKILL, KillTrigger::IoOp { op, nth }, now);
            }
            if pid != pids[i] {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            g.release(true);
        }
        None => g.release(false),
    }
}

/// Reap what changed. A child stopped at its armed crash point is SIGKILLed right there — unless a fault
/// pauses it (the stale-page injector's writer), which then acts and resumes it.
fn reap(
    children: &mut [Child],
    watch: &Watch<'_>,
    t0: Instant,
    faults: &mut [Box<dyn CycleFault + '_>],
    env: &mut FaultEnv<'_, '_>,
) {
    for (i, c) in children.iter_mut().enumerate().filter(|(_, c)| c.running()) {
        let slot = &watch.words[c.index as usize * crashpoint::SLOT_WORDS..];
        match waitpid(c.pid, Some(WaitPidFlag::WNOHANG | WaitPidFlag::WUNTRACED)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(WaitStatus::Stopped(..)) => {
                if c.sent.is_none()
                    && let Some(f) = faults.iter_mut().find(|f| f.pauses() == Some(i))
                {
                    f.on_stop(c.index, c.pid, slot, env);
                    crashpoint::release(slot, watch.global);
                    continue;
                }
                // Stopped at its armed crash point (or by someone else): kill it right there.
                let at_point = crashpoint::read(slot).stopped;
                c.send(Signal::SIGKILL, if at_point { KillTrigger::Point } else { KillTrigger::Stopped }, t0.elapsed());
            }
            Ok(st @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                c.status = Some(Some(st));
                // Dead and reaped: the workers held at their next turn go on (`fault::schedule`).
                crashpoint::release(slot, watch.global);
            }
            // Continued, ptrace events: not an end; look again next round.
            Ok(WaitStatus::Continued(_) | WaitStatus::PtraceEvent(..) | WaitStatus::PtraceSyscall(_)) => {}
            Err(nix::errno::Errno::ECHILD) => c.status = Some(None),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                // waitpid cannot fail otherwise for a pid we forked; if it does, we have lost the child.
                let _ = kill(c.pid, Signal::SIGKILL);
                eprintln!("dbtorture: waitpid({}) failed: {e}", c.pid);
                c.status = Some(None);
            }
        }
    }
}
