//! The guest's half of `dbtorture qemu --power-cut`: writers committing in a loop on the SD card, each
//! acknowledgement on the serial console before the writer goes on, until the host pulls the plug.
//!
//! Why the console, drained: the host must know which commits were acknowledged before the cut, and the
//! guest gets no chance to say so afterwards. Each writer is an ordinary worker (`worker::run`, the same
//! transactions and pipe protocol as on x86) whose "pipe" is the console: every message goes out as one
//! framed line ([`frame`]) in one write(2), followed by `tcdrain` — the writer goes on only once the UART
//! has sent the line, and qemu hands each byte the guest sends to its stdout as it is sent. So when the host
//! SIGKILLs qemu, every commit the guest acknowledged is already in the host's pipe (read after the kill),
//! and the host knows every transaction that began: a `Begin` is drained before the transaction touches the
//! database. A line still in qemu when it died was never acknowledged to anyone (the writer was blocked).
//!
//! The databases start as an x86 run's epoch 0 ([`initial_installed`]), are created by this process (not a
//! worker, so no planted bug acts there) and `sync`ed before the first writer starts: the cut is of the
//! workload, not of the set-up. Readers are not run: a power cut judges what reached the disk.

use super::console::PREFIX;
use super::guest::{SD, WORK_DIR};
use crate::scenario::{Scenario, Workload};
use crate::scheduler::derive_seed;
use crate::worker::{self, Role, WorkerSpec};
use crate::workload::{Pool, PoolSpec, ops::in_slice};
use dbtorture_backends::{BackendKind, OpenMode};
use nix::unistd::Pid;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The frame word of a writer's line: `@@dbtorture pc <backend> <writer> <worker message>`.
pub const WORD: &str = "pc";

/// Transactions a writer may run before it stops on its own (the host cuts long before).
pub const MAX_TXNS: u32 = 1_000_000;

/// One writer's message as a console line (without the newline).
pub fn frame(backend: BackendKind, writer: u32, msg: &str) -> String {
    format!("{PREFIX}{WORD} {} {writer} {}", backend.name(), msg.trim_end_matches('\n'))
}

/// A console line of a writer, parsed back: (backend, writer, the worker message's own line). `None` for
/// any other line, and for one damaged in transit (which the host counts).
pub fn parse(line: &str) -> Option<(BackendKind, u32, &str)> {
    let body = &line[line.find(PREFIX)? + PREFIX.len()..];
    let rest = body.strip_prefix(WORD)?.strip_prefix(' ')?;
    let (backend, rest) = rest.split_once(' ')?;
    let (writer, msg) = rest.split_once(' ')?;
    Some((BackendKind::from_name(backend)?, writer.parse().ok()?, msg.trim_end_matches('\r')))
}

/// The packages installed before the first cycle of an x86 run with this seed (its epoch 0), which is where
/// every power-cut boot starts.
pub fn initial_installed(seed: u64, w: &Workload) -> BTreeSet<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, 0xfeed, 0));
    let mut installed = BTreeSet::new();
    for n in 0..w.packages {
        if rng.random_range(0.0..1.0) < w.initial_fraction {
            installed.insert(n * w.versions + rng.random_range(0..w.versions));
        }
    }
    installed
}

/// The pool of a scenario's workload (as `run` builds it from the seed).
pub fn pool(sc: &Scenario, seed: u64) -> Result<Pool, String> {
    let w = &sc.workload;
    Pool::build(PoolSpec { names: w.packages, versions: w.versions, files_mean: w.files_mean, seed })
        .map_err(|e| format!("building the package pool: {e}"))
}

/// The seed of writer `w` of the backend at `slot`.
pub fn writer_seed(seed: u64, slot: usize, w: u32) -> u64 {
    derive_seed(seed, 0xc07_0000 + slot as u64, u64::from(w))
}

/// Where the guest keeps a backend's database, relative to the SD card's root.
pub fn db_rel(kind: BackendKind) -> String {
    format!("{WORK_DIR}/{}/db", kind.name())
}

/// A worker's report stream onto the console: whole lines, framed, one write each, drained.
struct Console {
    kind: BackendKind,
    writer: u32,
    partial: Vec<u8>,
}

impl Write for Console {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.partial.extend_from_slice(buf);
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            let text = frame(self.kind, self.writer, &String::from_utf8_lossy(&line));
            let mut out = std::io::stdout().lock();
            out.write_all(format!("{text}\n").as_bytes())?;
            out.flush()?;
            // Until the UART has sent it, the line is the guest's alone: the writer must not go on.
            nix::sys::termios::tcdrain(std::io::stdout()).map_err(std::io::Error::from)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Fork the power-cut job (pid 1 is single-threaded): the databases, then the writers; the job exits only
/// if every writer ended (an error, or out of transactions) before the host cut the power.
pub fn spawn(job_dir: &Path, scenario: &str, seed: Option<u64>, plant: Option<&str>) -> Result<Pid, String> {
    let sc = Scenario::load(&job_dir.join(scenario)).map_err(|e| e.to_string())?;
    let seed = seed.unwrap_or(sc.seed);
    let plant = plant.map(str::to_string);
    crate::sys::fork_child(move || match job(&sc, seed, plant.as_deref()) {
        Ok(code) => code,
        Err(e) => {
            println!("{}", super::console::GuestMsg::Error(format!("power cut job: {e}")).frame());
            crate::exit_codes::HARNESS
        }
    })
    .map_err(|e| format!("forking the power cut job: {e}"))
}

fn job(sc: &Scenario, seed: u64, plant: Option<&str>) -> Result<i32, String> {
    let pool = pool(sc, seed)?;
    let before = initial_installed(seed, &sc.workload);
    let kinds = sc.backend_kinds();
    let mut dirs: Vec<PathBuf> = Vec::new();
    for &kind in &kinds {
        let dir = Path::new(SD).join(db_rel(kind));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut db = kind.open(&dir, OpenMode::Create).map_err(|e| format!("{}: create: {e}", kind.name()))?;
        db.begin().map_err(|e| e.to_string())?;
        for &id in &before {
            db.install(&pool.get(id).installed_blob(1_600_000_000)).map_err(|e| e.to_string())?;
        }
        db.commit().map_err(|e| e.to_string())?;
        db.close().map_err(|e| e.to_string())?;
        dirs.push(dir);
    }
    // The set-up is on the card before any writer starts: only the workload is cut.
    nix::unistd::sync();
    if let Some(p) = plant
        && !dbtorture_backends::planted::force(p)
    {
        return Err(format!("planted bug {p} could not be switched on"));
    }
    let writers = sc.workload.writers.max(1);
    let mut pids = Vec::new();
    for (slot, (&kind, dir)) in kinds.iter().zip(&dirs).enumerate() {
        for w in 0..writers {
            let installed = before.iter().copied().filter(|&p| in_slice(&pool, p, w, writers)).collect();
            let spec = WorkerSpec {
                index: w,
                role: Role::Writer,
                writers,
                backend: kind,
                dir,
                seed: writer_seed(seed, slot, w),
                ops: MAX_TXNS,
                txn_base: u64::from(w) * 10_000_000,
                installed,
            };
            let pool = &pool;
            let pid = crate::sys::fork_child(move || {
                worker::run(spec, pool, Console { kind, writer: w, partial: Vec::new() })
            })
            .map_err(|e| format!("forking writer {w} of {}: {e}", kind.name()))?;
            pids.push(pid);
        }
    }
    let mut worst = 0;
    for pid in pids {
        if let Ok(nix::sys::wait::WaitStatus::Exited(_, code)) = nix::sys::wait::waitpid(pid, None) {
            worst = worst.max(code);
        } else {
            worst = worst.max(crate::exit_codes::HARNESS);
        }
    }
    Ok(worst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_line_survives_the_console_and_others_are_not_taken_for_one() {
        let l = frame(BackendKind::Bdbenv, 1, "C 10000003\n");
        assert_eq!(l, "@@dbtorture pc bdbenv 1 C 10000003");
        assert_eq!(parse(&format!("{l}\r")), Some((BackendKind::Bdbenv, 1, "C 10000003")));
        assert_eq!(parse(&format!("[ 3.2] noise{l}")), Some((BackendKind::Bdbenv, 1, "C 10000003")));
        assert_eq!(parse("@@dbtorture pc nosuch 1 C 3"), None);
        assert_eq!(parse("@@dbtorture pc sqlite x C 3"), None);
        assert_eq!(parse("@@dbtorture ev {}"), None);
        assert_eq!(parse("@@dbtorture pcx sqlite 0 C 3"), None);
    }

    #[test]
    fn the_guest_starts_from_the_epoch_an_x86_run_starts_from() {
        let sc =
            Scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/qemu-power-cut.toml")).unwrap();
        let a = initial_installed(5, &sc.workload);
        assert_eq!(a, initial_installed(5, &sc.workload));
        assert_ne!(a, initial_installed(6, &sc.workload));
        assert!(!a.is_empty() && a.iter().all(|&p| p < sc.workload.packages * sc.workload.versions));
        assert_ne!(writer_seed(5, 0, 0), writer_seed(5, 1, 0));
    }
}
