//! The verifier's layers after a cycle: data (storage checks + the rpmdb cross-check, from the backend),
//! the installed set the oracle compares, and operability (a fresh process opens, reads and writes within a
//! timeout).
//!
//! Does not check (here): the shared environment (lock regions) — that belongs to the environment backends.

use crate::sys;
use crate::workload::Pool;
use dbtorture_backends::rpmdb::{Finding, Header, IndexTag, Snapshot, tags};
use dbtorture_backends::{BackendKind, OpenMode};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use std::collections::BTreeSet;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

pub struct DataReport {
    pub findings: Vec<Finding>,
    /// Pool ids present in Packages (by SHA1HEADER); `None` if the database could not be read.
    pub installed: Option<BTreeSet<u32>>,
}

/// Storage checks, the full cross-check, and the installed set, in one read of the database.
pub fn data(kind: BackendKind, dir: &Path, pool: &Pool) -> DataReport {
    // Read-only: verification must not change what it judges (the probe writes, afterwards).
    let (mut findings, snap) = match kind.check_lean(dir, OpenMode::ReadOnly) {
        Ok(r) => r,
        Err(e) => (vec![Finding::Unopenable { detail: e.to_string() }], None),
    };
    let Some(snap) = snap else { return DataReport { findings, installed: None } };
    let installed = installed_of(&snap, pool, &mut findings);
    DataReport { findings, installed: Some(installed) }
}

/// The pool ids a snapshot's Packages holds (by SHA1HEADER); a header of no workload package is a finding.
pub fn installed_of(snap: &Snapshot, pool: &Pool, findings: &mut Vec<Finding>) -> BTreeSet<u32> {
    let mut installed = BTreeSet::new();
    for (hnum, blob) in &snap.packages {
        let Ok(h) = Header::parse(blob) else { continue };
        let Some(sha1) = h.string(tags::SHA1HEADER) else { continue };
        if sha1 == pool.probe.sha1.as_bytes() {
            // Left by a probe that was cut short (a non-atomic backend keeps its half): harness state, not
            // the workload's; the next probe removes it.
            continue;
        }
        match pool.by_sha1.get(String::from_utf8_lossy(sha1).as_ref()) {
            Some(id) => {
                installed.insert(*id);
            }
            None => findings.push(Finding::UnexpectedPackage {
                package: dbtorture_backends::rpmdb::check::nevra(&h),
                detail: format!("#{hnum} is not a package of this workload"),
            }),
        }
    }
    installed
}

/// Result of the operability probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Ok,
    Failed(String),
    TimedOut,
}

/// Fork a fresh process that opens the database, reads, installs and erases the probe package, and closes —
/// within `timeout`. A probe that overruns is SIGKILLed and reported as `TimedOut`. Also returns what the
/// engine printed on the way (e.g. failchk freeing a dead reader's locks).
pub fn probe(
    kind: BackendKind,
    dir: &Path,
    pool: &Pool,
    timeout: Duration,
) -> Result<(Probe, Vec<String>), sys::ForkError> {
    let (rd, wr) = nix::unistd::pipe().map_err(sys::ForkError::Fork)?;
    let pid = sys::fork_child(|| {
        let Ok(fd) = wr.try_clone() else { return 4 };
        let mut out = std::fs::File::from(fd);
        use std::io::Write;
        // Each message goes out as soon as the engine says it: a probe that then hangs (failchk said it
        // freed a dead reader's locks, and the probe blocks on them) has still said it.
        let mut say = |messages: Vec<String>| {
            for m in messages {
                let _ = out.write_all(format!("M {}\n", m.replace('\n', " ")).as_bytes());
            }
        };
        let res = probe_body(kind, dir, pool, &mut say);
        match res {
            Ok(()) => 0,
            Err(e) => {
                let _ = out.write_all(format!("E {}\n", e.replace('\n', " ")).as_bytes());
                1
            }
        }
    })?;
    drop(wr);
    let deadline = Instant::now() + timeout;
    let mut msg = Vec::new();
    let mut file = std::fs::File::from(rd);
    let said = |msg: &[u8]| -> Vec<String> {
        let text = String::from_utf8_lossy(msg);
        text.lines().filter_map(|l| l.strip_prefix("M ")).map(str::to_string).collect()
    };
    // The child holds the pipe's write end until it exits: EOF means it is exiting.
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            // What it said before it hung is judged too (only whole lines).
            let whole = msg.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            return Ok((Probe::TimedOut, said(&msg[..whole])));
        }
        let ms = left.as_millis().clamp(1, 1000) as u16;
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Ok((Probe::Failed(format!("poll: {e}")), Vec::new())),
        }
        let mut buf = [0u8; 4096];
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => msg.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let messages = said(&msg);
    let text = String::from_utf8_lossy(&msg).into_owned();
    let text: String = text.lines().filter_map(|l| l.strip_prefix("E ")).collect::<Vec<_>>().join("; ");
    let verdict = match waitpid(pid, None) {
        Ok(WaitStatus::Exited(_, 0)) => Probe::Ok,
        Ok(WaitStatus::Exited(_, code)) => {
            Probe::Failed(if text.is_empty() { format!("probe exited with status {code}") } else { text })
        }
        Ok(WaitStatus::Signaled(_, sig, _)) => Probe::Failed(format!("probe died of {sig}")),
        Ok(other) => Probe::Failed(format!("probe: {other:?}")),
        Err(e) => Probe::Failed(format!("waitpid: {e}")),
    };
    Ok((verdict, messages))
}

fn probe_body(kind: BackendKind, dir: &Path, pool: &Pool, say: &mut dyn FnMut(Vec<String>)) -> Result<(), String> {
    let mut db = kind.open(dir, OpenMode::ReadWrite).map_err(|e| format!("open: {e}"))?;
    say(db.take_messages());
    let p = &pool.probe;
    db.lookup(IndexTag(tags::NAME), b"dbtorture-probe").map_err(|e| format!("read: {e}"))?;
    db.hnums().map_err(|e| format!("read: {e}"))?;
    // Write transactions that install and then erase the probe package: they take the write locks, write
    // every index, commit (fsync), and leave the data as it was. Separate transactions, because a target
    // driven through the rpm binary learns a header number only when rpm has committed the package.
    // First remove what an earlier, interrupted probe may have left behind.
    let leftovers = db.lookup(IndexTag(tags::SHA1HEADER), p.sha1.as_bytes()).map_err(|e| format!("read: {e}"))?;
    if !leftovers.is_empty() {
        db.begin().map_err(|e| format!("begin: {e}"))?;
        for (hnum, _) in leftovers {
            db.erase(hnum).map_err(|e| format!("erase leftover probe package #{hnum}: {e}"))?;
        }
        db.commit().map_err(|e| format!("commit: {e}"))?;
    }
    db.begin().map_err(|e| format!("begin: {e}"))?;
    db.install(&p.installed_blob(1)).map_err(|e| format!("write: {e}"))?;
    db.commit().map_err(|e| format!("commit: {e}"))?;
    let installed = db.lookup(IndexTag(tags::SHA1HEADER), p.sha1.as_bytes()).map_err(|e| format!("read: {e}"))?;
    let Some(&(h, _)) = installed.first() else {
        return Err("the probe package is not in the database after its install was committed".into());
    };
    db.begin().map_err(|e| format!("begin: {e}"))?;
    db.erase(h).map_err(|e| format!("erase: {e}"))?;
    db.commit().map_err(|e| format!("commit: {e}"))?;
    say(db.take_messages());
    db.close().map_err(|e| format!("close: {e}"))
}
