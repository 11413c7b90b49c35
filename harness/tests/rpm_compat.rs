//! Compatibility with Debian's rpm 4.18, both ways, on real files:
//! - a database written by our sqlite backend is read by `rpm` (`-qa`, `-qf`, `--whatprovides` agree);
//! - a database written by `rpm` (`--initdb` + `-U --justdb` of packages the `rpm` crate builds) verifies clean.
//!
//! Needs the `rpm` binary (`.ci/run` and `ci/test.sh` install it). Without it these tests fail with a message
//! saying so, unless DBTORTURE_SKIP_RPM=1 is set, in which case they print that they were skipped.

mod common;
use common::*;

use dbtorture::workload::{Pool, PoolSpec};
use dbtorture_backends::{BackendKind, OpenMode};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn rpm_available() -> bool {
    if Command::new("rpm").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    if std::env::var("DBTORTURE_SKIP_RPM").as_deref() == Ok("1") {
        eprintln!("SKIPPED: `rpm` is not installed and DBTORTURE_SKIP_RPM=1 (run ci/test.sh to install it)");
        return false;
    }
    panic!("`rpm` is not installed: run ci/test.sh (apt-get install rpm) or set DBTORTURE_SKIP_RPM=1 to skip");
}

fn rpm(args: &[&str]) -> (String, String) {
    let out = Command::new("rpm").args(args).output().expect("run rpm");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "rpm {args:?} failed: {stderr}");
    (stdout, stderr)
}

fn pool() -> Pool {
    Pool::build(PoolSpec { names: 12, versions: 2, files_mean: 6, seed: 77 }).unwrap()
}

const QF: &str = "%{NAME} %{EPOCHNUM}:%{VERSION}-%{RELEASE}.%{ARCH}\\n";

fn label(p: &dbtorture::workload::PoolPackage) -> String {
    let h = dbtorture_backends::rpmdb::Header::parse(&p.header).unwrap();
    use dbtorture_backends::rpmdb::tags;
    let s = |t| String::from_utf8_lossy(h.string(t).unwrap()).into_owned();
    format!(
        "{} {}:{}-{}.{}",
        s(tags::NAME),
        h.u32_first(tags::EPOCH).unwrap_or(0),
        s(tags::VERSION),
        s(tags::RELEASE),
        s(tags::ARCH)
    )
}

#[test]
fn rpm_418_reads_what_our_sqlite_backend_wrote() {
    if !rpm_available() {
        return;
    }
    let pool = pool();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rpmdb");
    let chosen: Vec<_> = pool.packages.iter().filter(|p| p.id % 2 == 0).collect();
    let mut db = BackendKind::Sqlite.open(&dir, OpenMode::Create).unwrap();
    db.begin().unwrap();
    for p in &chosen {
        db.install(&p.installed_blob(1_700_000_123)).unwrap();
    }
    db.commit().unwrap();
    db.close().unwrap();

    let dbpath = dir.to_str().unwrap();
    let (out, err) = rpm(&["--dbpath", dbpath, "-qa", "--qf", QF]);
    assert!(err.trim().is_empty(), "rpm complained: {err}");
    let got: BTreeSet<String> = out.lines().map(str::to_string).collect();
    let want: BTreeSet<String> = chosen.iter().map(|p| label(p)).collect();
    assert_eq!(got, want);

    for p in &chosen {
        let (out, err) = rpm(&["--dbpath", dbpath, "-q", "--whatprovides", &p.provide, "--qf", QF]);
        assert!(err.trim().is_empty(), "{err}");
        let h = dbtorture_backends::rpmdb::Header::parse(&p.header).unwrap();
        use dbtorture_backends::rpmdb::tags;
        // rpm lists a package once per Providename row that matches: a capability provided twice (versioned
        // and not) is listed twice — our Providename holds a row for each position, as rpm's own does.
        let positions = h.strings(tags::PROVIDENAME).unwrap().iter().filter(|n| **n == p.provide.as_bytes()).count();
        assert_eq!(out.lines().collect::<Vec<_>>(), vec![label(p).as_str(); positions], "--whatprovides {}", p.provide);
        if let (Some(dirs), Some(idx), Some(bases)) =
            (h.strings(tags::DIRNAMES), h.u32s(tags::DIRINDEXES), h.strings(tags::BASENAMES))
        {
            let last = bases.len() - 1;
            let path = format!(
                "{}{}",
                String::from_utf8_lossy(dirs[idx[last] as usize]),
                String::from_utf8_lossy(bases[last])
            );
            // `-qf` needs the file to exist; `--path` asks the database only (Basenames + Dirnames).
            let (out, err) = rpm(&["--dbpath", dbpath, "-q", "--path", &path, "--qf", QF]);
            assert!(err.trim().is_empty(), "{err}");
            assert_eq!(out.trim(), label(p), "-qf {path}");
        }
    }
    // rpm's own verify agrees, and ours is clean too.
    let st = Command::new("rpmdb").args(["--dbpath", dbpath, "--verifydb"]).status().unwrap();
    assert!(st.success());
    assert_eq!(BackendKind::Sqlite.verify(&dir, OpenMode::ReadOnly).unwrap(), vec![]);
}

fn install_with_rpm(root: &Path, files: &[std::path::PathBuf]) {
    let root_s = root.to_str().unwrap();
    rpm(&["--root", root_s, "--dbpath", "/var/lib/rpm", "--initdb"]);
    let mut args = vec![
        "--root",
        root_s,
        "--dbpath",
        "/var/lib/rpm",
        "-U",
        "--justdb",
        "--nodeps",
        "--noscripts",
        "--notriggers",
        "--ignorearch",
        "--force-debian",
    ];
    let names: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
    args.extend(names);
    rpm(&args);
}

#[test]
fn database_written_by_rpm_418_verifies_clean() {
    if !rpm_available() {
        return;
    }
    let pool = pool();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let mut files = Vec::new();
    for p in pool.packages.iter().filter(|p| p.id % 2 == 1) {
        let f = tmp.path().join(format!("{}.rpm", p.id));
        std::fs::write(&f, pool.rpm_file(p.id).unwrap()).unwrap();
        files.push(f);
    }
    install_with_rpm(&root, &files);
    let dir = root.join("var/lib/rpm");
    let findings = BackendKind::Sqlite.verify(&dir, OpenMode::ReadOnly).unwrap();
    assert!(findings.is_empty(), "findings on rpm's own database: {findings:#?}");
    // And what rpm wrote is what we would have written: the same packages, found through our indexes.
    let mut db = BackendKind::Sqlite.open_reader(&dir).unwrap();
    assert_eq!(db.hnums().unwrap().len(), files.len());
    for p in pool.packages.iter().filter(|p| p.id % 2 == 1) {
        let hits =
            db.lookup(dbtorture_backends::rpmdb::IndexTag(dbtorture_backends::rpmdb::tags::NAME), p.name.as_bytes());
        assert_eq!(hits.unwrap().len(), 1, "{}", p.name);
    }
}

#[test]
fn verify_reports_what_rpm_verifydb_misses() {
    if !rpm_available() {
        return;
    }
    let pool = pool();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let p = &pool.packages[1];
    let f = tmp.path().join("p.rpm");
    std::fs::write(&f, pool.rpm_file(p.id).unwrap()).unwrap();
    install_with_rpm(&root, &[f]);
    let dir = root.join("var/lib/rpm");
    // Damage an index the way a torn write would: drop a Basenames row and mis-number a Providename row.
    let conn = rusqlite::Connection::open(dir.join("rpmdb.sqlite")).unwrap();
    conn.execute_batch(
        "DELETE FROM Basenames WHERE rowid = (SELECT min(rowid) FROM Basenames);
         UPDATE Providename SET idx = idx + 7 WHERE rowid = (SELECT min(rowid) FROM Providename);",
    )
    .unwrap();
    drop(conn);
    let st = Command::new("rpmdb").args(["--dbpath", dir.to_str().unwrap(), "--verifydb"]).status().unwrap();
    assert!(st.success(), "rpm's --verifydb does not look at index tables");
    let out = Command::new(env!("CARGO_BIN_EXE_dbtorture"))
        .args(["verify", "--backend", "sqlite", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("missing index entry: Basenames"), "{text}");
    assert!(text.contains("wrong tag index: Providename"), "{text}");
}

fn schema(path: &Path) -> Vec<(String, String, String)> {
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut stmt = conn
        .prepare("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_stat%' ORDER BY name")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, Option<String>>(2)?.unwrap_or_default())))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn our_schema_is_byte_for_byte_rpms() {
    if !rpm_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    rpm(&["--root", root.to_str().unwrap(), "--dbpath", "/var/lib/rpm", "--initdb"]);
    let ours = tmp.path().join("ours");
    BackendKind::Sqlite.open(&ours, OpenMode::Create).unwrap().close().unwrap();
    let theirs = schema(&root.join("var/lib/rpm/rpmdb.sqlite"));
    assert_eq!(theirs.len(), 49, "rpm 4.18: Packages, sqlite_sequence, 18 index tables and their indexes");
    assert_eq!(schema(&ours.join("rpmdb.sqlite")), theirs);
}

/// The real rpm as a target: `rpm -U` of many packages SIGKILLed at a range of moments; after each kill our
/// verifier (cross-check of rpmdb.sqlite, `rpmdb --verifydb`, `rpm -qa` against what we read) judges the
/// root, and it must be consistent (rpm commits per package) and operable by rpm again.
#[test]
fn a_killed_real_rpm_leaves_a_database_our_verifier_judges() {
    if !rpm_available() {
        return;
    }
    let pool = Pool::build(PoolSpec { names: 60, versions: 1, files_mean: 10, seed: 5 }).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let pkgs = root.join("pkgs");
    std::fs::create_dir_all(&pkgs).unwrap();
    let mut files = Vec::new();
    for (sha1, bytes) in pool.rpm_files().unwrap().into_iter().take(60) {
        let f = pkgs.join(format!("{sha1}.rpm"));
        std::fs::write(&f, bytes).unwrap();
        files.push(f);
    }
    let run = dbtorture_backends::rpmcli::run;
    assert!(run("rpm", &root, &["--initdb"]).unwrap().ok());
    let installed = |root: &Path| -> usize {
        // rpm's own view, read while it works (WAL: readers do not wait for the writer).
        rusqlite::Connection::open_with_flags(
            root.join("var/lib/rpm/rpmdb.sqlite"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|c| c.query_row("SELECT count(*) FROM Packages", [], |r| r.get::<_, i64>(0)))
        .unwrap_or(0) as usize
    };
    let root_s = root.to_str().unwrap().to_string();
    // Kill rpm once k packages are in (k = 1, 10, 25, 45): by watching the database, not the clock.
    for (i, k) in [1usize, 10, 25, 45].into_iter().enumerate() {
        // A fresh batch each time: erase what is installed (rpm -e refuses a name that is not), then install all.
        let present = run("rpm", &root, &["-qa", "--qf", "%{NAME}\\n"]).unwrap().stdout;
        if !present.trim().is_empty() {
            let mut erase = vec!["-e", "--nodeps", "--noscripts", "--allmatches"];
            erase.extend(present.lines());
            assert!(run("rpm", &root, &erase).unwrap().ok());
        }
        assert_eq!(installed(&root), 0);
        let mut install = vec!["-U", "--nodeps", "--ignorearch", "--replacefiles", "--noscripts"];
        let file_args: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        install.extend(file_args.iter().map(String::as_str));
        let mut child = dbtorture_backends::rpmcli::command("rpm", Path::new(&root_s), &install)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while installed(&root) < k && child.try_wait().unwrap().is_none() {
            assert!(std::time::Instant::now() < deadline, "rpm installed fewer than {k} packages in a minute");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        let o = bin().args(["verify", "--backend", "rpm"]).arg(&root).output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "kill {i} after {k} packages ({status}): {out}");
        let n = run("rpm", &root, &["-qa"]).unwrap();
        assert!(n.ok(), "rpm -qa after the kill: {}", n.stderr);
        let listed = n.stdout.lines().count();
        // The kill landed inside rpm's work: some packages in, not all.
        assert!(listed >= k && listed < files.len(), "kill {i}: {listed} of {} installed", files.len());
    }
    // And the same verifier does fail on a damaged root: one index row gone.
    let db = rusqlite::Connection::open(root.join("var/lib/rpm/rpmdb.sqlite")).unwrap();
    assert_eq!(db.execute("DELETE FROM Name WHERE rowid = (SELECT min(rowid) FROM Name)", []).unwrap(), 1);
    drop(db);
    let o = bin().args(["verify", "--backend", "rpm"]).arg(&root).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("missing index entry"), "{out}");
}

/// `dbtorture run SCENARIO --cycles N` from the repository root; exit 0 required; its summary.json.
fn run_scenario(scenario: &str, cycles: u32) -> serde_json::Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = bin()
        .current_dir(&root)
        .args(["run", scenario, "--cycles", &cycles.to_string(), "-q", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{text}");
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

/// `dbtorture run` with the rpm target: real rpm processes killed by SIGKILL and SIGINT, every cycle judged.
#[test]
fn rpm_target_scenario_runs_clean() {
    if !rpm_available() {
        return;
    }
    let s = run_scenario("scenarios/rpm-sqlite.toml", 12);
    assert_eq!(s["outcomes"]["rpm"]["clean"], 12, "{s}");
    assert!(s["kills"].as_u64().unwrap() >= 5, "{s}");
    assert!(s["commits"].as_u64().unwrap() >= 10, "rpm must have acknowledged transactions: {s}");
}

/// The real `rpm --rebuilddb` SIGKILLed at random moments: the database in place stays whole and operable.
#[test]
fn killed_real_rpm_rebuilddb_leaves_a_whole_database() {
    if !rpm_available() {
        return;
    }
    let s = run_scenario("scenarios/rpm-rebuilddb.toml", 5);
    assert_eq!(s["outcomes"]["rpm"]["clean"], 5, "{s}");
    assert!(s["kills"].as_u64().unwrap() >= 2, "rpm --rebuilddb must have been killed mid-way: {s}");
}
