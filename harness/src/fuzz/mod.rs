//! Seeded mutation fuzzing of everything that reads bytes a user hands over (`dbtorture __fuzz`).
//!
//! Why not cargo-fuzz: it needs a nightly compiler. Here the inputs are mutations of real files
//! ([`mutate`]), run by [`targets`] in a forked child whose address space is capped (RLIMIT_AS: an
//! allocation beyond the cap aborts the child) and whose progress the parent watches: an input that runs
//! longer than the time limit is a hang; a child that dies is a crash at the input it was running. Either
//! is recorded with (seed, index) — enough to reproduce it with `--from INDEX --inputs 1` — and the run
//! goes on with the next input.

pub mod mutate;
pub mod targets;

use crate::sys;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How a fuzz run is set up.
#[derive(Debug, Clone)]
pub struct FuzzOptions {
    /// Target names (see [`targets::ALL`]); empty: all.
    pub targets: Vec<String>,
    /// Inputs per target.
    pub inputs: u64,
    pub seed: u64,
    /// The first input's index (to reproduce one).
    pub from: u64,
    /// An input running longer than this is a hang.
    pub time_limit: Duration,
    /// Address space a child may add beyond what it had at fork.
    pub mem_cap: u64,
    /// Where to save the inputs that failed.
    pub crashes: Option<PathBuf>,
}

/// What one input did wrong.
#[derive(Debug, Clone)]
pub struct Failure {
    pub index: u64,
    pub what: String,
}

/// One target's figures.
#[derive(Debug, Clone)]
pub struct TargetReport {
    pub name: &'static str,
    pub inputs: u64,
    pub elapsed: Duration,
    pub failures: Vec<Failure>,
}

/// Run the fuzzer; one report per target.
pub fn run(opts: &FuzzOptions) -> anyhow::Result<Vec<TargetReport>> {
    let work = crate::leftovers::scratch("fuzz")?;
    let all = targets::corpus(work.path())?;
    let mut reports = Vec::new();
    let chosen = |t: &&targets::Target| match opts.targets.is_empty() {
        true => targets::ALL.contains(&t.name),
        false => opts.targets.iter().any(|n| n == t.name),
    };
    for t in all.iter().filter(chosen) {
        reports.push(fuzz_target(t, opts)?);
    }
    Ok(reports)
}

fn fuzz_target(t: &targets::Target, opts: &FuzzOptions) -> anyhow::Result<TargetReport> {
    let scratch = crate::leftovers::scratch("fuzz-scratch")?;
    let start = Instant::now();
    let end = opts.from + opts.inputs;
    let mut next = opts.from;
    let mut failures = Vec::new();
    while next < end {
        // A child killed mid-input leaves its mutated file behind: every child starts from the real files.
        let _ = std::fs::remove_dir_all(scratch.path().join("dir"));
        let (rd, wr) = nix::unistd::pipe()?;
        let first = next;
        let pid = sys::fork_child(|| {
            cap_address_space(opts.mem_cap);
            let Ok(fd) = wr.try_clone() else { return 4 };
            let mut progress = std::fs::File::from(fd);
            for i in first..end {
                if progress.write_all(&i.to_le_bytes()).is_err() {
                    return 3;
                }
                let (from, input) = mutate::input(&t.seeds, opts.seed, i);
                targets::run_one(t, from, &input, scratch.path());
            }
            0
        })?;
        drop(wr);
        let mut file = std::fs::File::from(rd);
        let mut running: Option<u64> = None;
        let mut since = Instant::now();
        let mut buf = [0u8; 8 * 512];
        let mut partial = Vec::new();
        let mut hung = false;
        loop {
            if since.elapsed() > opts.time_limit {
                let _ = kill(pid, Signal::SIGKILL);
                hung = true;
                break;
            }
            let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(200u16)) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(e.into()),
            }
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    partial.extend_from_slice(&buf[..n]);
                    let whole = partial.len() / 8 * 8;
                    if let Some(last) = partial[..whole].chunks_exact(8).last() {
                        running = Some(u64::from_le_bytes(last.try_into().expect("8 bytes")));
                        since = Instant::now();
                    }
                    partial.drain(..whole);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        let status = waitpid(pid, None)?;
        let what = match (hung, status) {
            (true, _) => Some(format!("hang: still running after {:?}", opts.time_limit)),
            (false, WaitStatus::Exited(_, 0)) => None,
            (false, WaitStatus::Exited(_, 112)) => Some("panic".to_string()),
            (false, WaitStatus::Exited(_, c)) => Some(format!("exited {c}")),
            (false, WaitStatus::Signaled(_, Signal::SIGABRT, _)) => {
                Some("aborted (an allocation over the cap, or a failed assertion)".to_string())
            }
            (false, WaitStatus::Signaled(_, s, _)) => Some(format!("died of {s}")),
            (false, other) => Some(format!("{other:?}")),
        };
        match (what, running) {
            (None, _) => next = end,
            (Some(what), Some(index)) => {
                if let Some(dir) = &opts.crashes {
                    std::fs::create_dir_all(dir)?;
                    let (_, input) = mutate::input(&t.seeds, opts.seed, index);
                    std::fs::write(dir.join(format!("{}-{}-{index}.bin", t.name, opts.seed)), input)?;
                }
                failures.push(Failure { index, what });
                next = index + 1;
            }
            (Some(what), None) => anyhow::bail!("{}: the fuzz child failed before its first input: {what}", t.name),
        }
    }
    Ok(TargetReport { name: t.name, inputs: opts.inputs, elapsed: start.elapsed(), failures })
}

/// Cap the address space at what it is now plus `cap` (RLIMIT_AS): a larger allocation fails and the child
/// aborts, which the parent records.
#[allow(clippy::unnecessary_fallible_conversions)]
fn cap_address_space(cap: u64) {
    let now_kib: u64 = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmSize:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0);
    // rlim_t is 32 bits on armel (the qemu guest): a limit past it is no limit there.
    let limit = nix::sys::resource::rlim_t::try_from(now_kib * 1024 + cap).unwrap_or(nix::sys::resource::RLIM_INFINITY);
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_AS, limit, limit);
}

/// Peak resident set of any child so far, in KiB (`c_long`: 32 bits on armel, hence `i64::from`).
#[allow(clippy::useless_conversion)]
pub fn peak_child_rss_kib() -> i64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .map(|u| i64::from(u.max_rss()))
        .unwrap_or(0)
}

/// The figures as a table.
pub fn table(reports: &[TargetReport]) -> String {
    let mut s = format!("{:<16} {:>10} {:>9} {:>9} {:>8}\n", "target", "inputs", "seconds", "inputs/s", "failures");
    let (mut inputs, mut secs, mut fails) = (0, 0.0, 0);
    for r in reports {
        let t = r.elapsed.as_secs_f64();
        s.push_str(&format!(
            "{:<16} {:>10} {:>9.1} {:>9.0} {:>8}\n",
            r.name,
            r.inputs,
            t,
            r.inputs as f64 / t.max(1e-9),
            r.failures.len()
        ));
        for f in r.failures.iter().take(10) {
            s.push_str(&format!("    input {}: {}\n", f.index, f.what));
        }
        inputs += r.inputs;
        secs += t;
        fails += r.failures.len();
    }
    s.push_str(&format!("{:<16} {:>10} {:>9.1} {:>9} {:>8}\n", "total", inputs, secs, "", fails));
    s.push_str(&format!("peak RSS of a fuzz child: {} MiB\n", peak_child_rss_kib() / 1024));
    s
}

/// `dbtorture __fuzz`: run, print the table, exit 0 (no failure), 1 (failures), 2 (bad target), 3 (harness).
pub fn main(
    targets: Vec<String>,
    inputs: u64,
    seed: u64,
    from: u64,
    crashes: Option<PathBuf>,
    time_limit: Duration,
) -> i32 {
    use crate::exit_codes;
    let known = |t: &str| targets::ALL.contains(&t) || targets::CANARIES.iter().any(|(n, _)| *n == t);
    if let Some(t) = targets.iter().find(|t| !known(t)) {
        eprintln!("error: unknown fuzz target {t:?}; known: {}", targets::ALL.join(", "));
        return exit_codes::USAGE;
    }
    let opts = FuzzOptions { targets, inputs, seed, from, time_limit, mem_cap: 512 << 20, crashes };
    match run(&opts) {
        Ok(reports) => {
            print!("{}", table(&reports));
            let failed = reports.iter().any(|r| !r.failures.is_empty());
            if failed { exit_codes::FINDINGS } else { exit_codes::OK }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            exit_codes::HARNESS
        }
    }
}
