//! Running a foreign program (rpm, rpmdb, db5.3_stat, db5.3_verify) so that it can never stop the harness:
//! a deadline after which it is SIGKILLed, output read as it comes (a full pipe would block the program) and
//! capped (a walk over a damaged list prints the same lines for ever), an optional Ctrl-C to forward, and the
//! child dying with its parent (PR_SET_PDEATHSIG, checked against a parent that died before it was set).
//!
//! Why no threads: the scheduler forks workers and must stay single-threaded; one poll loop reads both pipes.

#![allow(unsafe_code)]

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// At most this much of each stream is kept.
pub const OUTPUT_MAX: usize = 1 << 20;

/// How a program run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolEnd {
    Exited(i32),
    /// Died of a signal not sent for the deadline (e.g. a forwarded Ctrl-C).
    Signaled(i32),
    /// Still running at the deadline: SIGKILLed (blocked, e.g. on a dead owner's mutex).
    TimedOut,
    /// Printed more than [`OUTPUT_MAX`] on one stream: SIGKILLed.
    Overflow,
}

#[derive(Debug, Clone)]
pub struct ToolRun {
    pub end: ToolEnd,
    pub stdout: String,
    pub stderr: String,
}

impl ToolRun {
    pub fn ok(&self) -> bool {
        self.end == ToolEnd::Exited(0)
    }

    /// Non-empty lines of stdout then stderr.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.stdout.lines().chain(self.stderr.lines()).filter(|l| !l.trim().is_empty())
    }

    /// "exited 2", "killed at the deadline", …
    pub fn describe(&self) -> String {
        match self.end {
            ToolEnd::Exited(c) => format!("exited {c}"),
            ToolEnd::Signaled(s) => format!("died of signal {s}"),
            ToolEnd::TimedOut => "was killed at its deadline".into(),
            ToolEnd::Overflow => format!("printed more than {} MiB and was killed", OUTPUT_MAX >> 20),
        }
    }
}

/// Make `cmd`'s child die with this process: PR_SET_PDEATHSIG, then exit if the parent is already gone.
pub fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id() as i32;
    // SAFETY: runs in the forked child before exec and calls only prctl(2), getppid(2) and _exit(2), which are
    // async-signal-safe; it touches no memory of the parent.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::_exit(crate::child::ChildExit::Orphaned as i32);
            }
            Ok(())
        });
    }
}

/// Run `cmd` to its end, its deadline, or too much output. `interrupt` is polled: once it says so, the child
/// gets SIGINT (as from a terminal) and is waited for as usual.
pub fn run(mut cmd: Command, deadline: Duration, interrupt: Option<fn() -> bool>) -> std::io::Result<ToolRun> {
    die_with_parent(&mut cmd);
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|e| {
        let program = cmd.get_program().to_string_lossy();
        let hint = if e.kind() == std::io::ErrorKind::NotFound { " (not found on PATH)" } else { "" };
        std::io::Error::new(e.kind(), format!("starting `{program}`{hint}: {e}"))
    })?;
    let pid = Pid::from_raw(child.id() as i32);
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let (mut o, mut e) = (Vec::new(), Vec::new());
    let (mut o_open, mut e_open) = (true, true);
    let start = Instant::now();
    let mut end = None;
    let mut killed_at: Option<Instant> = None;
    let mut interrupted = false;
    let mut buf = [0u8; 1 << 16];
    while o_open || e_open {
        if end.is_none() && start.elapsed() >= deadline {
            let _ = kill(pid, Signal::SIGKILL);
            end = Some(ToolEnd::TimedOut);
        }
        // Killed, but something it started may still hold the pipes: stop reading soon after.
        if end.is_some() && killed_at.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(2) {
            break;
        }
        if !interrupted && interrupt.is_some_and(|f| f()) {
            let _ = kill(pid, Signal::SIGINT);
            interrupted = true;
        }
        let mut fds = Vec::with_capacity(2);
        if o_open {
            fds.push(PollFd::new(out.as_fd(), PollFlags::POLLIN));
        }
        if e_open {
            fds.push(PollFd::new(err.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::from(20u16)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())).collect();
        drop(fds);
        let mut i = 0;
        for (open, pipe, acc) in [(&mut o_open, &mut out as &mut dyn Read, &mut o), (&mut e_open, &mut err, &mut e)] {
            if !*open {
                continue;
            }
            if ready[i] {
                match pipe.read(&mut buf) {
                    Ok(0) => *open = false,
                    Ok(n) => {
                        acc.extend_from_slice(&buf[..n]);
                        if acc.len() > OUTPUT_MAX && end.is_none() {
                            let _ = kill(pid, Signal::SIGKILL);
                            end = Some(ToolEnd::Overflow);
                        }
                    }
                    Err(x) if x.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => *open = false,
                }
            }
            i += 1;
        }
    }
    let status = child.wait()?;
    o.truncate(OUTPUT_MAX);
    e.truncate(OUTPUT_MAX);
    use std::os::unix::process::ExitStatusExt;
    let end = end.unwrap_or(match (status.code(), status.signal()) {
        (Some(c), _) => ToolEnd::Exited(c),
        (None, Some(s)) => ToolEnd::Signaled(s),
        _ => ToolEnd::Exited(-1),
    });
    Ok(ToolRun {
        end,
        stdout: String::from_utf8_lossy(&o).into_owned(),
        stderr: String::from_utf8_lossy(&e).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_that_cannot_start_is_named_in_the_error() {
        let e = run(Command::new("dbtorture-no-such-program"), Duration::from_secs(5), None).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        let m = e.to_string();
        assert!(m.contains("`dbtorture-no-such-program` (not found on PATH)"), "{m}");
    }

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn output_of_both_streams_comes_back() {
        let r = run(sh("echo out; echo err >&2; exit 3"), Duration::from_secs(10), None).unwrap();
        assert_eq!(r.end, ToolEnd::Exited(3));
        assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("out\n", "err\n"));
    }

    #[test]
    fn more_than_a_pipe_holds_does_not_block_the_program() {
        let r = run(sh("head -c 300000 /dev/zero | tr '\\0' x"), Duration::from_secs(20), None).unwrap();
        assert_eq!(r.end, ToolEnd::Exited(0));
        assert_eq!(r.stdout.len(), 300_000);
    }

    #[test]
    fn a_program_past_its_deadline_is_killed() {
        let r = run(sh("exec sleep 30"), Duration::from_millis(200), None).unwrap();
        assert_eq!(r.end, ToolEnd::TimedOut);
    }

    #[test]
    fn endless_output_is_cut_off() {
        let r = run(sh("yes loop"), Duration::from_secs(30), None).unwrap();
        assert_eq!(r.end, ToolEnd::Overflow);
        assert!(r.stdout.len() <= OUTPUT_MAX);
    }
}
