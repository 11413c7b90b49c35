//! `dbtorture bench`: the figures the project tracks, printed (speed targets live here, not in tests).
//!
//! - overhead: harness cost per cycle on a 100-package database — fork + reap of a worker, full verify
//!   (storage checks + cross-check + installed set), operability probe, classify. Target ≤ 5 ms.
//! - smoke: kills/s and cycles/s of a scenario (default smoke.toml).
//! - verify-fedora: full verify of a Fedora-size database (2,500 packages, ~350,000 files), in this process
//!   and side by side with `rpmdb --verifydb` as whole processes (`bench_verify.rs`). Targets: ≤ 1.5× rpm's
//!   wall time, ≤ 40 MiB peak.
//! - power-loss: crash images judged per second, and the recorder's cost per cycle (fault::powerloss::bench).
//! - lanes: `--jobs 2` against `--jobs 1`, side by side (lanes::bench).

use crate::run::{RunOptions, run};
use crate::scenario::Scenario;
use crate::scheduler::verdict::classify;
use crate::sys;
use crate::verify;
use crate::workload::{Pool, PoolSpec};
use anyhow::{Context, Result};
use dbtorture_backends::rpmdb::tags;
use dbtorture_backends::{BackendKind, OpenMode};
use std::path::Path;
use std::time::{Duration, Instant};

pub(crate) fn stats(mut xs: Vec<Duration>) -> String {
    xs.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = xs.iter().map(|d| ms(*d)).sum::<f64>() / xs.len().max(1) as f64;
    format!(
        "median {:.2} ms, mean {:.2} ms, p90 {:.2} ms (n={})",
        ms(xs[xs.len() / 2]),
        mean,
        ms(xs[xs.len() * 9 / 10]),
        xs.len()
    )
}

fn build_db(dir: &Path, pool: &Pool) -> Result<()> {
    build_db_of(BackendKind::Sqlite, dir, pool)
}

fn build_db_of(kind: BackendKind, dir: &Path, pool: &Pool) -> Result<()> {
    let mut db = kind.open(dir, OpenMode::Create)?;
    db.begin()?;
    for p in &pool.packages {
        db.install(&p.installed_blob(1))?;
    }
    db.commit()?;
    db.close()?;
    Ok(())
}

pub fn overhead() -> Result<()> {
    for files_mean in [12, 140] {
        overhead_at(files_mean)?;
    }
    Ok(())
}

fn overhead_at(files_mean: u32) -> Result<()> {
    let tmp = crate::leftovers::scratch("bench")?;
    let dir = tmp.path().join("db");
    let pool = Pool::build(PoolSpec { names: 100, versions: 1, files_mean, seed: 1 })?;
    build_db(&dir, &pool)?;
    let files: u32 = pool.packages.iter().map(|p| p.files).sum();
    crate::say!("overhead: 100 packages, {files} files, sqlite");
    let n = 200;
    let (mut fork, mut ver, mut probe, mut total) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let t0 = Instant::now();
        let pid = sys::fork_child(|| 0)?;
        nix::sys::wait::waitpid(pid, None)?;
        let t1 = Instant::now();
        let data = verify::data(BackendKind::Sqlite, &dir, &pool);
        let t2 = Instant::now();
        let pr = verify::probe(BackendKind::Sqlite, &dir, &pool, Duration::from_secs(10))?;
        let outcome = classify(&crate::finding::from_db(data.findings.clone()), pr.0 == verify::Probe::TimedOut);
        let t3 = Instant::now();
        anyhow::ensure!(
            data.findings.is_empty() && pr.0 == verify::Probe::Ok,
            "bench database is not clean: {outcome}"
        );
        fork.push(t1 - t0);
        ver.push(t2 - t1);
        probe.push(t3 - t2);
        total.push(t3 - t0);
    }
    crate::say!("  fork + reap            {}", stats(fork));
    crate::say!("  full verify            {}", stats(ver));
    crate::say!("  probe + classify       {}", stats(probe));
    crate::say!("  total per cycle        {}", stats(total));
    breakdown(&dir, 20)?;
    Ok(())
}

pub fn smoke(scenario: &Path) -> Result<()> {
    let sc = Scenario::load(scenario)?;
    let t0 = Instant::now();
    // One lane: the single-process figure (`bench lanes` measures lanes side by side).
    let r = run(&sc, &RunOptions { quiet: true, jobs: Some(1), ..Default::default() })?;
    let s = &r.summary;
    crate::say!(
        "{} (--jobs 1): {} cycles, {} kills in {:.2} s: {:.1} kills/s, {:.1} cycles/s, unexpected {} (wall {:.2} s)",
        sc.name,
        s.cycles,
        s.kills,
        s.duration_s,
        s.kills_per_sec,
        s.cycles_per_sec,
        s.unexpected,
        t0.elapsed().as_secs_f64()
    );
    crate::say!("  harness overhead per cycle: {}", stats(r.overhead));
    Ok(())
}

pub fn verify_fedora() -> Result<()> {
    let t0 = Instant::now();
    let pool = Pool::build(PoolSpec { names: 2500, versions: 1, files_mean: 140, seed: 4 })?;
    let files: u64 = pool.packages.iter().map(|p| u64::from(p.files)).sum();
    let built = t0.elapsed();
    let tmp = crate::leftovers::scratch("bench")?;
    let dir = tmp.path().join("db");
    let t1 = Instant::now();
    build_db(&dir, &pool)?;
    let size = std::fs::metadata(dir.join("rpmdb.sqlite"))?.len();
    crate::say!(
        "verify-fedora: {} packages, {files} files; pool built in {:.1} s, database written in {:.1} s ({:.0} MB)",
        pool.packages.len(),
        built.as_secs_f64(),
        t1.elapsed().as_secs_f64(),
        size as f64 / 1e6
    );
    breakdown(&dir, 3)?;
    crate::bench_verify::side_by_side(&dir, 7)?;
    Ok(())
}

/// Time a full verify of `dir`, and its parts, `n` times.
fn breakdown(dir: &Path, n: usize) -> Result<()> {
    let mut full = Vec::new();
    let mut parts = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let t = Instant::now();
        let findings = BackendKind::Sqlite.verify(dir, OpenMode::ReadOnly)?;
        full.push(t.elapsed());
        anyhow::ensure!(findings.is_empty(), "fedora-size database is not clean: {}", findings[0]);
        let mut db = BackendKind::Sqlite.open_reader(dir)?;
        let a = Instant::now();
        db.structural_check()?;
        let b = Instant::now();
        let mut f = Vec::new();
        let snap = db.snapshot(&mut f)?;
        let c = Instant::now();
        dbtorture_backends::rpmdb::cross_check(&snap);
        let d = Instant::now();
        parts.0.push(b - a);
        parts.1.push(c - b);
        parts.2.push(d - c);
        let rows: usize = snap.indexes.iter().map(|(_, v)| v.len()).sum();
        let basenames = snap.indexes.iter().find(|(t, _)| t.0 == tags::BASENAMES).map(|(_, v)| v.len());
        if full.len() == 1 {
            crate::say!("  index rows: {rows} (Basenames {})", basenames.unwrap_or(0));
        }
    }
    crate::say!("  full verify (streamed)  {}", stats(full));
    crate::say!("  the plain path's parts (what a damaged database costs):");
    crate::say!("    integrity+fk check    {}", stats(parts.0));
    crate::say!("    read all rows         {}", stats(parts.1));
    crate::say!("    cross-check           {}", stats(parts.2));
    Ok(())
}

/// bdbenv: full verify (environment + data) of a Fedora-size database, and the lock-region verifier on a
/// region with 1,000 lockers and 1,000 locks.
pub fn bdbenv() -> Result<()> {
    use dbtorture_backends::bdbenv::{check, lock, mmap::Region};
    let tmp = crate::leftovers::scratch("bench")?;
    let sizes = lock::Sizes { lockers: 1100, objects: 1000, locks: 1100, locker_t_size: 211, object_t_size: 211 };
    let mut r = Region::create(&tmp.path().join("__db.003"), lock::region_size(&sizes))?;
    lock::init(&mut r, &sizes)?;
    {
        let mut t = lock::LockTable::new(r.bytes_mut())?;
        for i in 0..1000u32 {
            let id = t.locker_alloc(std::process::id())?;
            t.lock_get(id, format!("object-{}", i % 997).as_bytes(), lock::Mode::R)?;
        }
    }
    let mut times = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let mut f = Vec::new();
        check::lock_region(r.bytes(), &mut f);
        times.push(t.elapsed());
        anyhow::ensure!(f.is_empty(), "bench region is not clean: {}", f[0]);
    }
    crate::say!("bdbenv lock-region verify, 1,000 lockers + 1,000 locks: {}", stats(times));
    let t0 = Instant::now();
    let pool = Pool::build(PoolSpec { names: 2500, versions: 1, files_mean: 140, seed: 4 })?;
    let files: u64 = pool.packages.iter().map(|p| u64::from(p.files)).sum();
    let dir = tmp.path().join("db");
    let t1 = Instant::now();
    build_db_of(BackendKind::Bdbenv, &dir, &pool)?;
    crate::say!(
        "bdbenv verify-fedora: {} packages, {files} files (pool {:.1} s, database written in {:.1} s)",
        pool.packages.len(),
        (t1 - t0).as_secs_f64(),
        t1.elapsed().as_secs_f64()
    );
    let mut full = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let findings = BackendKind::Bdbenv.verify(&dir, OpenMode::ReadOnly)?;
        full.push(t.elapsed());
        anyhow::ensure!(findings.is_empty(), "fedora-size bdbenv database is not clean: {}", findings[0]);
    }
    crate::say!("  full verify (environment + data files + cross-check) {}", stats(full));
    Ok(())
}

pub fn run_bench(what: &str, scenario: &Path) -> Result<()> {
    match what {
        "overhead" => overhead(),
        "smoke" => smoke(scenario),
        "verify-fedora" => verify_fedora(),
        "bdbenv" => bdbenv(),
        "power-loss" => crate::fault::powerloss::bench::power_loss(),
        "lanes" => crate::lanes::bench::lanes(),
        "all" => {
            overhead()?;
            smoke(scenario)?;
            verify_fedora()?;
            bdbenv()?;
            crate::fault::powerloss::bench::power_loss()?;
            crate::lanes::bench::lanes()
        }
        other => {
            anyhow::bail!(
                "unknown bench {other:?}: expected overhead, smoke, verify-fedora, bdbenv, power-loss, lanes or all"
            )
        }
    }
    .context(what.to_string())
}
