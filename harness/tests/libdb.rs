//! Real Berkeley DB 5.3 (the `libdb` backend) with real processes and signals: it round-trips installs,
//! erases and lookups; a SIGKILLed reader's locks are freed by failchk at the next open; a SIGKILLed writer
//! (holding a CDB write cursor) makes failchk demand recovery, and `rm __db.*` + rebuilddb brings back a
//! clean database; the rpmdb cross-check finds an index entry removed from a real BDB btree.
//!
//! Needs libdb5.3 (the `libdb` feature) and, for the environment forensics, db5.3-util; `ci/test.sh`
//! installs both. Without them a test prints why it is skipped and returns.

mod common;
use common::*;

use dbtorture::workload::{Pool, PoolSpec};
use dbtorture_backends::libdb::{self, DB_STAT, DB_VERIFY};
use dbtorture_backends::rpmdb::{Finding, IndexTag, tags};
use dbtorture_backends::{BackendError, BackendKind, OpenMode};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

const KIND: BackendKind = BackendKind::Libdb;

/// The reason to skip, if the library (or, with `tools`, db5.3-util) is missing.
fn skip(tools: bool) -> Option<String> {
    if !libdb::BUILT {
        return Some("built without the `libdb` feature (needs libdb5.3-dev)".into());
    }
    if tools {
        for t in [DB_STAT, DB_VERIFY] {
            if !libdb::tool_available(t) {
                return Some(format!("{t} is not installed (Debian package db5.3-util; ci/test.sh installs it)"));
            }
        }
    }
    None
}

macro_rules! skip_unless {
    ($tools:expr) => {
        if let Some(why) = skip($tools) {
            // CI installs everything (ci/deps.sh): there a missing piece is a failure, never a silent skip.
            assert!(std::env::var_os("CI").is_none(), "CI must run the libdb tests: {why}");
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
}

/// A libdb database with packages, made by one clean cycle of the harness.
fn database(tmp: &Path) -> PathBuf {
    let mut s = std::fs::read_to_string(root().join("scenarios/libdb-kill.toml")).unwrap();
    s = s.replace("mode = \"mixed\"", "mode = \"none\"");
    let sc = tmp.join("db.toml");
    std::fs::write(&sc, s).unwrap();
    let work = tmp.join("work");
    let o = bin()
        .args(["run", sc.to_str().unwrap(), "--cycles", "1", "-q", "--workdir", work.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    work.join("libdb").join("db")
}

/// Start `dbtorture __hold --backend libdb` and wait (bounded by the child's own open) until it holds.
fn hold(dir: &Path, write: bool) -> Child {
    let mut args = vec!["__hold", "--backend", "libdb", dir.to_str().unwrap()];
    if write {
        args.push("--write");
    }
    let mut child = bin().args(&args).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "held");
    child
}

fn kill9(mut c: Child) {
    c.kill().unwrap();
    c.wait().unwrap();
}

fn verify(dir: &Path) -> (i32, String) {
    let o = bin().args(["verify", "--backend", "libdb", dir.to_str().unwrap()]).output().unwrap();
    (o.status.code().unwrap_or(-1), text(&o))
}

fn package_count(dir: &Path) -> usize {
    let (_, snap) = KIND.check(dir, OpenMode::ReadOnly).unwrap();
    snap.unwrap().packages.len()
}

#[test]
fn libdb_round_trips_install_erase_and_lookup() {
    skip_unless!(false);
    let pool = Pool::build(PoolSpec { names: 6, versions: 1, files_mean: 4, seed: 5 }).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let mut db = KIND.open(&dir, OpenMode::Create).unwrap();
    db.begin().unwrap();
    let hnums: Vec<u32> =
        pool.packages.iter().map(|p| db.install(&p.installed_blob(7)).unwrap().number().unwrap()).collect();
    db.commit().unwrap();
    assert_eq!(hnums, (1..=pool.packages.len() as u32).collect::<Vec<_>>(), "header numbers count up from 1");
    for (p, h) in pool.packages.iter().zip(&hnums) {
        assert_eq!(db.lookup(IndexTag(tags::NAME), p.name.as_bytes()).unwrap(), vec![(*h, 0)]);
        assert_eq!(db.get(*h).unwrap().as_deref(), Some(&p.installed_blob(7)[..]));
    }
    db.begin().unwrap();
    db.erase(hnums[1]).unwrap();
    db.erase(hnums[3]).unwrap();
    db.commit().unwrap();
    assert!(db.lookup(IndexTag(tags::NAME), pool.packages[1].name.as_bytes()).unwrap().is_empty());
    assert_eq!(db.hnums().unwrap().len(), pool.packages.len() - 2);
    db.close().unwrap();
    // Real BDB files: Packages is a hash database, the indexes btrees; all verify, and the cross-check of
    // what BDB stored against the regenerated indexes is clean.
    let findings = KIND.verify(&dir, OpenMode::ReadOnly).unwrap();
    assert!(findings.is_empty(), "{findings:#?}");
    assert_eq!(package_count(&dir), pool.packages.len() - 2);
}

#[test]
fn failchk_frees_the_locks_of_a_killed_libdb_reader() {
    skip_unless!(true);
    let tmp = tempfile::tempdir().unwrap();
    let dir = database(tmp.path());
    kill9(hold(&dir, false));
    let (code, out) = verify(&dir);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("stale lock") && out.contains("(0 write)") && out.contains("db5.3_stat -N -CA"), "{out}");
    // A fresh process runs failchk after opening, as rpm 4.16 does, and frees the dead reader's locks.
    let mut db = KIND.open(&dir, OpenMode::ReadWrite).unwrap();
    let msgs = db.take_messages();
    eprintln!("BDB printed at open: {msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("Freeing read locks for locker 0x")), "{msgs:?}");
    db.begin().unwrap();
    db.commit().unwrap();
    db.close().unwrap();
    let (code, out) = verify(&dir);
    assert_eq!(code, 0, "failchk left locks behind: {out}");
}

#[test]
fn a_killed_libdb_writer_needs_recovery_and_recovery_restores_a_clean_database() {
    skip_unless!(true);
    let tmp = tempfile::tempdir().unwrap();
    let dir = database(tmp.path());
    let before = package_count(&dir);
    kill9(hold(&dir, true));
    let (code, out) = verify(&dir);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("stale lock") && out.contains("(1 write)"), "{out}");
    match KIND.open(&dir, OpenMode::ReadWrite) {
        Err(BackendError::RunRecovery(m)) => {
            eprintln!("BDB said: {m}");
            assert!(m.contains("locker has write locks") && m.contains("DB_RUNRECOVERY"), "{m}")
        }
        Err(e) => panic!("expected DB_RUNRECOVERY, got {e}"),
        Ok(_) => panic!("a dead writer's locks must demand recovery"),
    }
    // failchk panicked the environment: every later open is told to run recovery too.
    assert!(matches!(KIND.open(&dir, OpenMode::ReadWrite), Err(BackendError::RunRecovery(_))));
    let o = bin().args(["recover", "--backend", "libdb", dir.to_str().unwrap()]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let (code, out) = verify(&dir);
    assert_eq!(code, 0, "{out}");
    assert_eq!(package_count(&dir), before, "rebuilddb keeps every package");
    let mut db = KIND.open(&dir, OpenMode::ReadWrite).unwrap();
    db.begin().unwrap();
    db.commit().unwrap();
    db.close().unwrap();
}

#[test]
fn the_cross_check_finds_an_index_entry_removed_from_a_real_btree() {
    skip_unless!(false);
    let pool = Pool::build(PoolSpec { names: 4, versions: 1, files_mean: 3, seed: 9 }).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let mut db = KIND.open(&dir, OpenMode::Create).unwrap();
    db.begin().unwrap();
    for p in &pool.packages {
        db.install(&p.installed_blob(1)).unwrap();
    }
    db.commit().unwrap();
    db.close().unwrap();
    let victim = pool.packages[2].name.clone();
    // Delete one key from the Name btree with BDB itself, behind the rpmdb layer's back.
    assert!(libdb::remove_index_key(&dir, IndexTag(tags::NAME), victim.as_bytes()).unwrap());
    let findings = KIND.verify(&dir, OpenMode::ReadOnly).unwrap();
    assert!(
        findings
            .iter()
            .any(|f| matches!(f, Finding::MissingIndexEntry { index, key, .. } if index == "Name" && *key == victim)),
        "{findings:#?}"
    );
    assert_eq!(findings.len(), 1, "only the removed entry: {findings:#?}");
}
