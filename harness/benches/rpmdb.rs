//! criterion benches of the rpmdb layer at 100 and 2,500 packages (Fedora-size: ~140 files a package), on
//! databases the workload pool builds: header decode, index regeneration from Packages, the cross-check
//! (regenerate + compare with the stored rows), and the sqlite backend's full verify.
//!
//! Why here and not in db-backends: the packages come from the harness's workload pool (real rpm headers,
//! same seed ⇒ same bytes). Run with `cargo bench -p dbtorture --bench rpmdb`; a regression shows in
//! criterion's "change" line against the last run saved in target/criterion/. Kept short (10 samples, 2 s).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use dbtorture::workload::{Pool, PoolSpec};
use dbtorture_backends::rpmdb::{Header, Snapshot, check, tags};
use dbtorture_backends::{BackendKind, OpenMode};
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

const SIZES: [u32; 2] = [100, 2500];
const FILES_MEAN: u32 = 140;

struct Fixture {
    packages: u32,
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    snap: Snapshot,
}

fn fixture(packages: u32) -> Fixture {
    let pool = Pool::build(PoolSpec { names: packages, versions: 1, files_mean: FILES_MEAN, seed: 4 }).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let mut db = BackendKind::Sqlite.open(&dir, OpenMode::Create).unwrap();
    db.begin().unwrap();
    for p in &pool.packages {
        db.install(&p.installed_blob(1)).unwrap();
    }
    db.commit().unwrap();
    db.close().unwrap();
    let snap = snapshot(&dir);
    assert!(check::cross_check(&snap).is_empty(), "the bench database is not clean");
    Fixture { packages, _tmp: tmp, dir, snap }
}

fn snapshot(dir: &Path) -> Snapshot {
    let mut db = BackendKind::Sqlite.open_reader(dir).unwrap();
    let mut findings = Vec::new();
    let snap = db.snapshot(&mut findings).unwrap();
    assert!(findings.is_empty());
    snap
}

fn benches(c: &mut Criterion) {
    let fixtures: Vec<Fixture> = SIZES.iter().map(|&n| fixture(n)).collect();
    let mut g = c.benchmark_group("rpmdb");
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    for f in &fixtures {
        let n = f.packages;
        g.bench_with_input(BenchmarkId::new("header-decode", n), &f.snap.packages, |b, pkgs| {
            b.iter(|| {
                let mut names = 0usize;
                for (_, blob) in pkgs {
                    let h = Header::parse(blob).unwrap();
                    names += h.strings(tags::BASENAMES).map_or(0, |v| v.len());
                    names += h.string(tags::NAME).map_or(0, <[u8]>::len);
                }
                black_box(names)
            })
        });
        g.bench_with_input(BenchmarkId::new("index-regeneration", n), &f.snap.packages, |b, pkgs| {
            b.iter(|| {
                let mut findings = Vec::new();
                black_box(check::regenerate(pkgs, &mut findings))
            })
        });
        g.bench_with_input(BenchmarkId::new("cross-check", n), &f.snap, |b, snap| {
            b.iter(|| black_box(check::cross_check(snap)))
        });
        g.bench_with_input(BenchmarkId::new("sqlite-verify", n), &f.dir, |b, dir| {
            b.iter(|| black_box(BackendKind::Sqlite.verify(dir, OpenMode::ReadOnly).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(rpmdb, benches);
criterion_main!(rpmdb);
