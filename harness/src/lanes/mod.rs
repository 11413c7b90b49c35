//! Lanes: `run --jobs N` runs N single-threaded scheduler processes side by side, each taking whole epochs
//! of the run (a lane is a shard of the run), while this process — forking them while still
//! single-threaded — is the one writer of the events: it reads each lane's pipe, puts the events back into
//! cycle order ([`order`]), and hands them to the run's observer (events.jsonl, the fold, the progress bar).
//!
//! Why processes and one writer: a cycle that waits (a kill delay, a hung worker's timeout, rpm starting)
//! leaves a core idle; lanes fill it, and the epochs' independence makes their cycles exactly those of a
//! `--jobs 1` run. Ctrl-C/SIGTERM/SIGHUP reach every lane (forwarded when sent to this process alone); the
//! lanes end their cycles as interrupted and this process still writes the reports. Every lane is in the
//! run's process group and dies with it (PR_SET_PDEATHSIG).

pub mod bench;
pub mod lane;
pub mod order;
pub mod wire;

use crate::sys::{self, SharedWords};
use anyhow::{Context, Result};
use lane::LaneSpec;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use order::Order;
use std::io::Read;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use wire::{CycleNote, LaneMsg, Lines};

/// Where the parent sends what it reads: the run's event sink and progress bar.
pub trait LaneObserver {
    /// An event, in `--jobs 1` order.
    fn in_order(&mut self, ev: &dbtorture_reports::RunEvent);
    /// A cycle ended in some lane (as it happens, not in order).
    fn note(&mut self, n: &CycleNote);
}

/// How the lanes ended, together.
#[derive(Debug, Default)]
pub struct Ended {
    pub interrupted: bool,
    /// The first lane's harness error (the others were asked to stop).
    pub harness_error: Option<anyhow::Error>,
    /// One past the last cycle index any lane began.
    pub cycles_run: u64,
}

struct Lane {
    pid: Pid,
    pipe: Option<std::fs::File>,
    lines: Lines,
    status: Option<WaitStatus>,
    /// It sent its `exit` message.
    exit: bool,
}

/// Lanes a run uses: `jobs`, but no more than the epochs it has (a lane takes whole epochs).
pub fn effective(jobs: usize, epochs: Option<u64>) -> usize {
    let jobs = jobs.max(1);
    epochs.map_or(jobs, |e| jobs.min(e.max(1) as usize))
}

/// The default `--jobs`: the CPUs this process may run on.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Run `jobs` lanes of one run (`shard` of it, epochs of `epoch_len` cycles); lane `i` works under
/// `spec(i)`. Must be called single-threaded (it forks); returns when every lane has ended and been reaped.
pub fn drive<'a>(
    jobs: usize,
    shard: Option<dbtorture_reports::Shard>,
    epoch_len: u64,
    spec: impl Fn(usize) -> LaneSpec<'a>,
    obs: &mut dyn LaneObserver,
) -> Result<Ended> {
    // SIGINT, SIGTERM, SIGHUP and SIGCHLD arrive through a signalfd (lanes unblock them after fork).
    let mut mask = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        mask.add(s);
    }
    let old = mask.thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK).context("sigprocmask")?;
    let r = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).context("signalfd").and_then(
        |signals| {
            let mut ended = run_lanes(jobs, shard, epoch_len, &spec, obs, &signals)?;
            // A Ctrl-C that came after the loop's last read (while orphans were reaped) is still pending:
            // the run was interrupted, and unblocking it below must not kill this process before it
            // writes the reports.
            while let Ok(Some(info)) = signals.read_signal() {
                let sig = Signal::try_from(info.ssi_signo as i32).ok();
                ended.interrupted |= sig.is_some_and(|s| INTERRUPTS.contains(&s));
            }
            Ok(ended)
        },
    );
    let _ = old.thread_set_mask();
    r
}

const INTERRUPTS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

fn run_lanes<'a>(
    jobs: usize,
    shard: Option<dbtorture_reports::Shard>,
    epoch_len: u64,
    spec: &impl Fn(usize) -> LaneSpec<'a>,
    obs: &mut dyn LaneObserver,
    signals: &SignalFd,
) -> Result<Ended> {
    // What a killed lane's workers started (an exec'd rpm) is re-parented here and reaped at the end.
    sys::become_subreaper().context("PR_SET_CHILD_SUBREAPER")?;
    let shared = SharedWords::new(lane::WORDS).context("mapping the lanes' shared page")?;
    let words = shared.words();
    let mut ended = Ended::default();
    let mut lanes: Vec<Lane> = Vec::new();
    for i in 0..jobs {
        let s = spec(i);
        let forked = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe").and_then(|(rd, wr)| {
            let wr_ref = &wr;
            let pid = sys::fork_child(|| match wr_ref.try_clone() {
                Ok(fd) => lane::main(&s, words, std::fs::File::from(fd)),
                Err(_) => 3,
            })
            .with_context(|| format!("forking lane {}", i + 1))?;
            drop(wr);
            nix::fcntl::fcntl(&rd, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK))
                .context("O_NONBLOCK")?;
            Ok((pid, rd))
        });
        match forked {
            Ok((pid, rd)) => lanes.push(Lane {
                pid,
                pipe: Some(std::fs::File::from(rd)),
                lines: Lines::default(),
                status: None,
                exit: false,
            }),
            Err(e) => {
                words[lane::STOP].store(1, Ordering::SeqCst);
                ended.harness_error.get_or_insert(e);
                break;
            }
        }
    }
    let mut order = Order::new(shard, epoch_len);
    let mut buf = vec![0u8; 1 << 16];
    while lanes.iter().any(|l| l.pipe.is_some() || l.status.is_none()) {
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        fds.extend(lanes.iter().filter_map(|l| l.pipe.as_ref()).map(|p| PollFd::new(p.as_fd(), PollFlags::POLLIN)));
        match poll(&mut fds, PollTimeout::from(1000u16)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll"),
        }
        drop(fds);
        while let Ok(Some(si)) = signals.read_signal() {
            let Some(sig) = INTERRUPTS.into_iter().find(|s| *s as i32 == si.ssi_signo as i32) else { continue };
            // Ctrl-C reaches the whole process group; a SIGTERM or SIGHUP sent to this process alone is
            // passed on, so every lane ends its cycle as interrupted.
            ended.interrupted = true;
            words[lane::STOP].store(1, Ordering::SeqCst);
            for l in lanes.iter().filter(|l| l.status.is_none()) {
                let _ = nix::sys::signal::kill(l.pid, sig);
            }
        }
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(st) => {
                    if let Some(l) = lanes.iter_mut().find(|l| Some(l.pid) == st.pid()) {
                        l.status = Some(st);
                    }
                }
            }
        }
        for (i, l) in lanes.iter_mut().enumerate() {
            let Some(pipe) = &mut l.pipe else { continue };
            let mut closed = false;
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => {
                        for m in l.lines.push(&buf[..n]) {
                            l.exit |= handle(i, m, &mut order, obs, &mut ended, words);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break, // WouldBlock: nothing more now
                }
            }
            // A reaped lane wrote everything before it ended; a process it left may hold the pipe open.
            if closed || l.status.is_some() {
                l.pipe = None;
            }
        }
    }
    // A lane that died without its exit message (OOM-killed, SIGKILLed, panicked) cleaned nothing up: its
    // recorder's FUSE mount in its directory, its /dev/shm images and its memory cgroup (named after the
    // lane's pid, now dead) go now, not at some later run's sweep.
    if lanes.iter().any(|l| !l.exit) {
        for i in 0..jobs {
            crate::leftovers::unmount_below(&spec(i).workdir);
        }
        let _ = crate::leftovers::sweep_in(&crate::leftovers::memory_dir());
    }
    for (i, l) in lanes.iter().enumerate() {
        if l.exit {
            continue;
        }
        let by_interrupt = matches!(l.status, Some(WaitStatus::Signaled(_, s, _)) if INTERRUPTS.contains(&s));
        if !(ended.interrupted && by_interrupt) {
            let cut = l.lines.rest().map(|r| format!(" (its last line cut short: {r:?})")).unwrap_or_default();
            ended.harness_error.get_or_insert(anyhow::anyhow!(
                "lane {} (pid {}) ended without saying how: {:?}{cut}",
                i + 1,
                l.pid,
                l.status
            ));
        }
    }
    for ev in order.finish() {
        obs.in_order(&ev);
    }
    sys::reap_orphans(std::time::Duration::from_secs(10)).map_err(anyhow::Error::msg)?;
    Ok(ended)
}

/// One message of lane `i`; whether it was the lane's last (`exit`).
fn handle(
    i: usize,
    m: Result<LaneMsg, String>,
    order: &mut Order,
    obs: &mut dyn LaneObserver,
    ended: &mut Ended,
    words: &[sys::AtomicU64],
) -> bool {
    let fail = |ended: &mut Ended, e: anyhow::Error| {
        words[lane::STOP].store(1, Ordering::SeqCst);
        ended.harness_error.get_or_insert(e);
    };
    match m {
        Ok(LaneMsg::Begin { cycle }) => order.begin(i, cycle),
        Ok(LaneMsg::Event { event }) => {
            if let Err(e) = order.event(i, *event) {
                fail(ended, e.into());
            }
        }
        Ok(LaneMsg::Note { note }) => obs.note(&note),
        Ok(LaneMsg::End) => {
            for ev in order.end(i) {
                obs.in_order(&ev);
            }
        }
        Ok(LaneMsg::Exit { interrupted, harness_error, cycles_run }) => {
            ended.interrupted |= interrupted;
            ended.cycles_run = ended.cycles_run.max(cycles_run);
            if let Some(e) = harness_error {
                fail(ended, anyhow::anyhow!("lane {}: {e}", i + 1));
            }
            return true;
        }
        Err(e) => fail(ended, anyhow::anyhow!("lane {} sent a bad message: {e}", i + 1)),
    }
    false
}
