//! A guest run that stopped making progress: where every process is, said once, then the run ended.
//!
//! Why: the guest's scheduler has been seen to stop (no event for minutes, the host's wall clock the only
//! way out) and such a guest came back with nothing but its console, the cause unknown. Pid 1 watches the
//! run's `events.jsonl`; when it has not grown for longer than any cycle may take, pid 1 reads every
//! process's state from `/proc` (state, parent, wait channel, current system call, kernel stack) and reports
//! it as a guest error — a harness failure with its evidence, instead of a lost guest an hour later — then
//! ends the run (SIGTERM, then SIGKILL) so the card is synced and the host gets results.

use std::path::Path;
use std::time::{Duration, Instant};

/// Watches one growing file for a stall; pure apart from the clock it is given.
#[derive(Debug)]
pub struct Watch {
    limit: Duration,
    len: u64,
    since: Instant,
}

impl Watch {
    pub fn new(limit: Duration, now: Instant) -> Watch {
        Watch { limit, len: 0, since: now }
    }

    /// The file's length now; `true` once it has not changed for longer than the limit.
    pub fn stalled(&mut self, len: u64, now: Instant) -> bool {
        if len != self.len {
            self.len = len;
            self.since = now;
        }
        now.duration_since(self.since) > self.limit
    }

    pub fn limit(&self) -> Duration {
        self.limit
    }
}

/// How long a guest run may go without an event: twice the longest a cycle may take (its workers up to 3 ×
/// `cycle_ms` while they progress, see `scheduler/deadline.rs`, then the probe), which leaves the checks
/// and a recovery room, and never under two minutes of emulated time (a database prepared for an epoch
/// writes no event either).
pub fn limit(cycle_ms: u64, probe_ms: u64) -> Duration {
    (Duration::from_millis(3 * cycle_ms + probe_ms) * 2).max(Duration::from_secs(120))
}

/// One process as `/proc` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    /// `R`, `S`, `D`, `T`, `Z`, …
    pub state: char,
    pub comm: String,
    /// The kernel function it sleeps in (`0` when running).
    pub wchan: String,
    /// `/proc/PID/syscall`: the system call number and arguments, `running`, or empty if unreadable.
    pub syscall: String,
    /// `/proc/PID/stack`, one frame per entry, when the kernel has it.
    pub stack: Vec<String>,
}

impl Proc {
    /// One line: `pid 53 (dbtorture) S ppid 40 pgrp 40 wchan futex_wait syscall 240 0x… stack a<b<c`.
    pub fn line(&self) -> String {
        let mut s = format!(
            "pid {} ({}) {} ppid {} pgrp {} wchan {} syscall {}",
            self.pid, self.comm, self.state, self.ppid, self.pgrp, self.wchan, self.syscall
        );
        if !self.stack.is_empty() {
            s.push_str(" stack ");
            s.push_str(&self.stack.join("<"));
        }
        s
    }
}

/// Parse `/proc/PID/stat`: `pid (comm) state ppid pgrp …` (comm may hold spaces and parentheses).
pub fn parse_stat(stat: &str) -> Option<(i32, String, char, i32, i32)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let pid = stat[..open].trim().parse().ok()?;
    let comm = stat.get(open + 1..close)?.to_string();
    let mut rest = stat.get(close + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    let pgrp = rest.next()?.parse().ok()?;
    Some((pid, comm, state, ppid, pgrp))
}

/// Every process under `proc` (normally `/proc`), by pid; processes that vanish while read are skipped.
pub fn processes(proc: &Path) -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir(proc) else { return Vec::new() };
    let mut out: Vec<Proc> = dir
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        .filter_map(|e| {
            let p = e.path();
            let (pid, comm, state, ppid, pgrp) = parse_stat(&std::fs::read_to_string(p.join("stat")).ok()?)?;
            let read = |f: &str| std::fs::read_to_string(p.join(f)).map(|s| s.trim().to_string()).unwrap_or_default();
            let stack = read("stack")
                .lines()
                .filter_map(|l| l.split_whitespace().nth(1).map(|f| f.split('+').next().unwrap_or(f).to_string()))
                .collect();
            Some(Proc { pid, ppid, pgrp, state, comm, wchan: read("wchan"), syscall: read("syscall"), stack })
        })
        .collect();
    out.sort_by_key(|p| p.pid);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_stops_growing_stalls_after_the_limit_and_growth_rearms_it() {
        let t0 = Instant::now();
        let mut w = Watch::new(Duration::from_secs(10), t0);
        assert!(!w.stalled(0, t0 + Duration::from_secs(9)));
        assert!(w.stalled(0, t0 + Duration::from_secs(11)), "nothing for 11 s is a stall");
        assert!(!w.stalled(5, t0 + Duration::from_secs(12)), "growth re-arms");
        assert!(!w.stalled(5, t0 + Duration::from_secs(21)));
        assert!(w.stalled(5, t0 + Duration::from_secs(23)));
    }

    #[test]
    fn the_limit_covers_twice_the_longest_cycle_and_at_least_two_minutes() {
        assert_eq!(limit(10_000, 8_000), Duration::from_secs(120));
        assert_eq!(limit(60_000, 30_000), Duration::from_secs(420));
    }

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        assert_eq!(parse_stat("53 (dbtorture) S 40 40 0 0"), Some((53, "dbtorture".into(), 'S', 40, 40)));
        assert_eq!(parse_stat("7 (a) b (c)) R 1 7 0"), Some((7, "a) b (c)".into(), 'R', 1, 7)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_found_in_proc_with_its_parent() {
        let me = std::process::id() as i32;
        let all = processes(Path::new("/proc"));
        let p = all.iter().find(|p| p.pid == me).expect("this process is listed");
        assert_eq!(p.ppid, nix::unistd::getppid().as_raw());
        assert!(p.line().starts_with(&format!("pid {me} (")), "{}", p.line());
    }
}
