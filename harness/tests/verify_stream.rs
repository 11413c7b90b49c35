//! The streamed sqlite verify (`db-backends/src/sqlite_verify.rs`) says exactly what the plain path says: on
//! a clean database and on each kind of damage, the same findings in the same order, and the same Packages.

use dbtorture::workload::{Pool, PoolSpec};
use dbtorture_backends::sqlite_verify::{full, streamed_proves_clean};
use dbtorture_backends::{BackendKind, OpenMode};
use rusqlite::Connection;
use std::path::{Path, PathBuf};

/// A database of 12 packages, 3 of them erased again (gaps in the header numbers).
fn build(dir: &Path) {
    let pool = Pool::build(PoolSpec { names: 12, versions: 1, files_mean: 6, seed: 11 }).unwrap();
    let mut db = BackendKind::Sqlite.open(dir, OpenMode::Create).unwrap();
    db.begin().unwrap();
    for (i, p) in pool.packages.iter().enumerate() {
        db.install(&p.installed_blob(100 + i as u32)).unwrap();
    }
    db.commit().unwrap();
    db.begin().unwrap();
    for h in [2, 5, 9] {
        db.erase(h).unwrap();
    }
    db.commit().unwrap();
    db.close().unwrap();
}

fn copy_of(clean: &Path, root: &Path, name: &str) -> PathBuf {
    let d = root.join(name);
    std::fs::create_dir_all(&d).unwrap();
    for e in std::fs::read_dir(clean).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
    }
    d
}

/// Both paths agree on `dir`; returns the number of findings.
fn agree(dir: &Path, case: &str) -> usize {
    let (plain, plain_snap) = full(dir, OpenMode::ReadOnly).unwrap();
    let (streamed, snap) = BackendKind::Sqlite.check_lean(dir, OpenMode::ReadOnly).unwrap();
    assert_eq!(streamed, plain, "{case}: check_lean");
    let (checked, whole) = BackendKind::Sqlite.check(dir, OpenMode::ReadOnly).unwrap();
    assert_eq!(checked, plain, "{case}: check");
    // check keeps its whole snapshot (the rpm oracle compares its index rows).
    let rows = |s: &dbtorture_backends::rpmdb::Snapshot| s.indexes.iter().map(|(_, v)| v.len()).sum::<usize>();
    assert_eq!(whole.as_ref().map(rows), plain_snap.as_ref().map(rows), "{case}: check's index rows");
    assert_eq!(snap.map(|s| s.packages), plain_snap.map(|s| s.packages), "{case}: Packages returned by check_lean");
    assert_eq!(BackendKind::Sqlite.verify(dir, OpenMode::ReadOnly).unwrap(), plain, "{case}: verify");
    assert_eq!(BackendKind::Sqlite.verify_threaded(dir, OpenMode::ReadOnly).unwrap(), plain, "{case}: threaded");
    plain.len()
}

#[test]
fn streamed_verify_equals_the_plain_one_on_clean_and_damaged_databases() {
    let tmp = tempfile::tempdir().unwrap();
    let clean = tmp.path().join("clean");
    build(&clean);
    assert_eq!(agree(&clean, "clean"), 0);
    assert!(streamed_proves_clean(&clean), "the streamed pass must prove a clean database clean by itself");
    let sql: &[(&str, &str, bool)] = &[
        ("missing", "DELETE FROM Basenames WHERE rowid = (SELECT max(rowid) FROM Basenames)", true),
        ("stale", "INSERT INTO Requirename VALUES ('ghost', 1, 0)", true),
        ("wrong-tag", "UPDATE Providename SET idx = idx + 5 WHERE rowid = 1", true),
        ("duplicate", "INSERT INTO Name SELECT key, hnum, idx FROM Name WHERE rowid = 1", true),
        ("dangling-after", "INSERT INTO Basenames VALUES ('x', 999, 0)", true),
        ("dangling-before", "INSERT INTO Dirnames VALUES ('/x/', 0, 0)", true),
        ("dangling-gap", "INSERT INTO 'Group' VALUES ('Unknown', 5, 0)", true),
        ("wrong-type", "UPDATE Basenames SET key = CAST(key AS BLOB) WHERE rowid = 1", true),
        ("unreadable", "UPDATE Packages SET blob = X'00000001' WHERE hnum = 3", true),
        ("dup-package", "INSERT INTO Packages SELECT NULL, blob FROM Packages WHERE hnum = 1", true),
        ("no-table", "DROP TABLE Conflictname", true),
        ("text-hnum", "UPDATE Name SET hnum = 'x' WHERE rowid = 1", true),
        // Clean, the last header's rows stored in reverse: the streamed pass sorts them and proves it clean.
        (
            "reversed",
            "CREATE TEMP TABLE r AS SELECT * FROM Basenames WHERE hnum = (SELECT max(hnum) FROM Packages) \
             ORDER BY rowid DESC; DELETE FROM Basenames WHERE hnum = (SELECT max(hnum) FROM Packages); \
             INSERT INTO Basenames SELECT * FROM r",
            false,
        ),
        // Clean by content, but rows out of header-number order: the streamed pass gives up, nothing found.
        (
            "reordered",
            "CREATE TEMP TABLE t AS SELECT * FROM Dirnames WHERE hnum = 1; DELETE FROM Dirnames WHERE hnum = 1; \
             INSERT INTO Dirnames SELECT * FROM t",
            false,
        ),
    ];
    for (name, stmt, damaged) in sql {
        let d = copy_of(&clean, tmp.path(), name);
        let c = Connection::open(d.join("rpmdb.sqlite")).unwrap();
        c.execute_batch(&format!("PRAGMA foreign_keys = OFF; {stmt}")).unwrap();
        drop(c);
        let n = agree(&d, name);
        assert_eq!(n > 0, *damaged, "{name}: {n} findings");
        let proven = streamed_proves_clean(&d);
        assert_eq!(proven, *name == "reversed", "{name}: proven clean by the streamed pass alone: {proven}");
    }
    // A flipped byte in a header's region: a digest mismatch, or an unreadable header.
    let d = copy_of(&clean, tmp.path(), "digest");
    let c = Connection::open(d.join("rpmdb.sqlite")).unwrap();
    let mut blob: Vec<u8> = c.query_row("SELECT blob FROM Packages WHERE hnum = 4", [], |r| r.get(0)).unwrap();
    // The first byte of the data area, inside the immutable region.
    let il = u32::from_be_bytes(blob[..4].try_into().unwrap()) as usize;
    let at = 8 + il * 16;
    blob[at] ^= 0x20;
    c.execute("UPDATE Packages SET blob = ? WHERE hnum = 4", [blob]).unwrap();
    drop(c);
    assert!(agree(&d, "digest") > 0);
}

/// `dbtorture verify`'s peak memory does not grow with the database: 1,000 packages of 140 files on average
/// (the plain path held every index: ~45 MiB here, 106 MiB at Fedora size) stay under 32 MiB. Memory only;
/// speed lives in `bench verify-fedora`.
#[test]
fn verify_peak_memory_stays_bounded_on_a_mid_size_database() {
    let time = Path::new("/usr/bin/time");
    if !time.is_file() {
        assert!(std::env::var_os("CI").is_none(), "CI needs /usr/bin/time (Debian package time)");
        eprintln!("skipped: no /usr/bin/time (Debian package time)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let pool = Pool::build(PoolSpec { names: 1000, versions: 1, files_mean: 140, seed: 4 }).unwrap();
    let mut db = BackendKind::Sqlite.open(&dir, OpenMode::Create).unwrap();
    db.begin().unwrap();
    for p in &pool.packages {
        db.install(&p.installed_blob(1)).unwrap();
    }
    db.commit().unwrap();
    db.close().unwrap();
    let report = tmp.path().join("maxrss");
    let out = std::process::Command::new(time)
        .args(["-f", "%M", "-o"])
        .arg(&report)
        .arg(env!("CARGO_BIN_EXE_dbtorture"))
        .args(["verify", "--backend", "sqlite"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("clean"), "{}", String::from_utf8_lossy(&out.stdout));
    let kib: u64 = std::fs::read_to_string(&report).unwrap().lines().last().unwrap().trim().parse().unwrap();
    assert!(kib < 32 * 1024, "dbtorture verify peaked at {:.1} MiB", kib as f64 / 1024.0);
}
