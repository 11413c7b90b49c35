//! Real rpm as an independent oracle of the index layer (`[oracle] rpm_every`, `verify --oracle rpm`): it
//! catches the three planted index-layer bugs our own cross-check shares the code of, agrees with the
//! databases the harness builds, names both sides, and never changes the directory it judges.
//!
//! Needs rpm 4.18 (`rpm`, `rpmdb`; the libdb case also the libdb feature). Without them these tests print why
//! they skip; under `CI` they fail instead.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn missing() -> Option<String> {
    for p in ["rpm", "rpmdb"] {
        if !Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success()) {
            return Some(format!("`{p}` is not installed (Debian package rpm; ci/test.sh installs it)"));
        }
    }
    None
}

macro_rules! skip_unless_rpm {
    () => {
        if let Some(why) = missing() {
            assert!(std::env::var_os("CI").is_none(), "CI must run the rpm oracle tests: {why}");
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
}

/// scenarios/rpm-oracle.toml on sqlite only (the planted bugs live in every backend's writer; sqlite is the
/// quickest), `cycles` cycles, with `plant` switched on.
fn run_sqlite(tmp: &Path, plant: Option<&str>, cycles: u32) -> (Option<i32>, PathBuf) {
    let s = std::fs::read_to_string(root().join("scenarios/rpm-oracle.toml")).unwrap();
    let s = s.replace("backends = [\"sqlite\", \"libdb\", \"rpm\"]", "backends = [\"sqlite\"]");
    let s: String =
        s.lines().filter(|l| !l.starts_with("libdb =") && !l.starts_with("rpm =")).map(|l| format!("{l}\n")).collect();
    let sc = tmp.join(format!("{}.toml", plant.unwrap_or("none")));
    std::fs::write(&sc, s).unwrap();
    let out = tmp.join(plant.unwrap_or("none"));
    let mut c = bin();
    c.args(["run", sc.to_str().unwrap(), "--cycles", &cycles.to_string(), "-q", "--no-bundles", "--out"])
        .arg(&out)
        .env_remove("DBTORTURE_PLANT");
    if let Some(p) = plant {
        c.env("DBTORTURE_PLANT", p);
    }
    let o = c.output().unwrap();
    (o.status.code(), out)
}

/// finding kind → count, and the oracle's own lines.
fn findings(out: &Path) -> (BTreeMap<String, u64>, Vec<String>) {
    let mut kinds = BTreeMap::new();
    let mut notes = Vec::new();
    for e in events(out) {
        if e["event"] == "finding" {
            *kinds.entry(e["finding"]["kind"].as_str().unwrap().to_string()).or_default() += 1;
        }
        if e["event"] == "engine-message" && e["message"].as_str().unwrap().starts_with("rpm oracle") {
            notes.push(e["message"].as_str().unwrap().to_string());
        }
    }
    (kinds, notes)
}

#[test]
fn the_rpm_oracle_catches_each_index_layer_bug_within_one_short_run() {
    skip_unless_rpm!();
    let tmp = tempfile::tempdir().unwrap();
    let (code, out) = run_sqlite(tmp.path(), None, 3);
    let (kinds, notes) = findings(&out);
    assert_eq!(code, Some(0), "unplanted: {kinds:?}");
    assert_eq!(notes.len(), 3, "the oracle ran after every cycle: {notes:?}");
    assert!(notes.iter().all(|n| n.contains(" 0 disagreement(s)")), "{notes:?}");
    for (bug, index) in [
        ("index-dirnames-wrong-array", "Dirnames"),
        ("index-providename-dedup", "Providename"),
        ("index-basenames-skip-colour-2", "Basenames"),
    ] {
        let (code, out) = run_sqlite(tmp.path(), Some(bug), 3);
        assert_eq!(code, Some(1), "{bug} must fail the run");
        let named: Vec<String> = events(&out)
            .into_iter()
            .filter(|e| e["event"] == "finding" && e["finding"]["kind"] == "rpm-disagrees")
            .map(|e| e["finding"]["message"].as_str().unwrap().to_string())
            .collect();
        assert!(!named.is_empty(), "{bug}: no rpm-disagrees finding: {:?}", findings(&out).0);
        assert!(
            named.iter().any(|m| m.contains(index) && m.contains("ours ") && m.contains(", rpm ")),
            "{bug}: a disagreement in {index} naming both sides: {named:?}"
        );
    }
}

/// A database with packages, made by one unkilled cycle of `scenario` on `backend`; returns its directory.
fn database(tmp: &Path, scenario: &str, backend: &str) -> PathBuf {
    let s = std::fs::read_to_string(root().join(scenario)).unwrap();
    let s = s.replace("mode = \"mixed\"", "mode = \"none\"").replace("mode = \"random-time\"", "mode = \"none\"");
    let s = s.replace("[oracle]\nrpm_every = 1\n", "");
    let sc = tmp.join(format!("{backend}.toml"));
    std::fs::write(&sc, s).unwrap();
    let work = tmp.join(format!("work-{backend}"));
    let o = bin()
        .args(["run", sc.to_str().unwrap(), "--cycles", "1", "-q", "--no-bundles", "--workdir"])
        .arg(&work)
        .args(["--out"])
        .arg(tmp.join(format!("out-{backend}")))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    work.join(backend).join("db")
}

/// Every file of a directory tree with its bytes (to prove `verify` changed nothing).
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in walk(dir) {
        out.insert(e.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&e).unwrap());
    }
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            v.extend(walk(&e.path()));
        } else {
            v.push(e.path());
        }
    }
    v
}

fn verify_oracle(backend: &str, dir: &Path) -> std::process::Output {
    bin().args(["verify", "--backend", backend, "--oracle", "rpm"]).arg(dir).output().unwrap()
}

#[test]
fn verify_oracle_rpm_agrees_with_the_databases_the_harness_builds_and_changes_nothing() {
    skip_unless_rpm!();
    let tmp = tempfile::tempdir().unwrap();
    let mut cases = vec![("sqlite", database(tmp.path(), "scenarios/rpm-oracle.toml", "sqlite"))];
    cases.push(("rpm", database(tmp.path(), "scenarios/rpm-oracle.toml", "rpm")));
    if dbtorture_backends::libdb::BUILT {
        cases.push(("libdb", database(tmp.path(), "scenarios/rpm-oracle.toml", "libdb")));
    } else {
        assert!(std::env::var_os("CI").is_none(), "CI builds the libdb feature");
        eprintln!("SKIPPED (libdb case): built without the `libdb` feature");
    }
    for (backend, dir) in cases {
        let before = tree(&dir);
        let o = verify_oracle(backend, &dir);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(0), "{backend}: {t}");
        assert!(t.contains(" 0 disagreement(s)") && !t.contains(" 0 packages"), "{backend}: {t}");
        assert_eq!(tree(&dir), before, "{backend}: verify --oracle rpm changed {}", dir.display());
    }
}

#[test]
fn verify_oracle_rpm_names_both_sides_of_a_removed_row_and_refuses_what_rpm_cannot_read() {
    skip_unless_rpm!();
    let tmp = tempfile::tempdir().unwrap();
    let dir = database(tmp.path(), "scenarios/rpm-oracle.toml", "sqlite");
    let db = rusqlite::Connection::open(dir.join("rpmdb.sqlite")).unwrap();
    let (key, n): (String, i64) = db
        .query_row("SELECT key, (SELECT count(*) FROM Basenames) FROM Basenames ORDER BY key LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(n > 1);
    db.execute("DELETE FROM Basenames WHERE key = ?1", [&key]).unwrap();
    drop(db);
    let o = verify_oracle("sqlite", &dir);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.lines().any(|l| l.starts_with("rpm disagrees: Basenames") && l.contains(&key) && l.contains("ours no row")),
        "{t}"
    );

    // bdbenv's files are not Berkeley DB's: rpm's bdb_ro cannot read them — bad input, said so.
    let bdb = tmp.path().join("bdbenv");
    std::fs::create_dir(&bdb).unwrap();
    std::fs::write(bdb.join("Packages"), b"").unwrap();
    let o = verify_oracle("bdbenv", &bdb);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
