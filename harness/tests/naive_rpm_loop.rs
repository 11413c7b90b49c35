//! `ci/naive-rpm-loop.sh`, the yardstick of `dbtorture bench rpm`: it runs cycles of the scenario's packages
//! with every check, and it fails on a damaged database (a loop that cannot fail would measure nothing).
//! Not timed: the rates are `dbtorture bench rpm`'s business.
//!
//! Needs the `rpm` binary: without it these tests print why they skip, and fail when `CI` is set.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rpm_missing() -> bool {
    if Command::new("rpm").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "`rpm` is not installed and CI is set: run ci/test.sh (apt-get install rpm)"
    );
    eprintln!("SKIPPED: `rpm` is not installed (ci/test.sh installs it)");
    true
}

/// The rpm-sqlite scenario's packages, written by the hidden subcommand.
fn packages(tmp: &Path) -> PathBuf {
    let dir = tmp.join("pkgs");
    let o = bin().arg("__naive-rpm-packages").arg(root().join("scenarios/rpm-sqlite.toml")).arg(&dir).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(dir.join("probe.rpm").is_file() && dir.join("delay-ms").is_file(), "{}", text(&o));
    let n = std::fs::read_dir(dir.join("cycle")).unwrap().count();
    assert!(n > 0, "no cycle packages");
    dir
}

fn naive(args: &[&str], pkgdir: &Path, workdir: &Path) -> Output {
    Command::new("bash")
        .arg(root().join("ci/naive-rpm-loop.sh"))
        .args(args)
        .arg("--workdir")
        .arg(workdir)
        .arg(pkgdir)
        .output()
        .unwrap()
}

fn install_flags() -> Vec<&'static str> {
    let debian = Command::new("rpm").args(["--force-debian", "--version"]).output().is_ok_and(|o| o.status.success());
    let mut f = if debian { vec!["--force-debian"] } else { vec![] };
    f.extend([
        "--nodeps",
        "--noscripts",
        "--notriggers",
        "--ignorearch",
        "--ignoreos",
        "--replacefiles",
        "--oldpackage",
    ]);
    f
}

#[test]
fn runs_cycles_with_every_check() {
    if rpm_missing() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pkgdir = packages(tmp.path());
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let o = naive(&["--cycles", "3", "--seed", "7", "--verbose"], &pkgdir, &work);
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let r = dbtorture::naive_rpm::parse_result(last).unwrap_or_else(|| panic!("no result line: {stdout}"));
    assert_eq!(r.cycles, 3, "{stdout}");
    assert!(r.seconds > 0.0);
    // One line per cycle, each with installed packages whose files and provides were cross-checked.
    let stderr = String::from_utf8_lossy(&o.stderr);
    let cycles: Vec<&str> = stderr.lines().filter(|l| l.starts_with("cycle ")).collect();
    assert_eq!(cycles.len(), 3, "{stderr}");
    for l in cycles {
        assert!(l.ends_with("probe ok"), "{l}");
        let num_before = |what: &str| -> u64 {
            let head = &l[..l.find(what).unwrap_or_else(|| panic!("{what} in {l}"))];
            head.rsplit(|c: char| !c.is_ascii_digit()).find(|w| !w.is_empty()).unwrap().parse().unwrap()
        };
        assert!(num_before(" packages") > 0 && num_before(" files") > 0 && num_before(" provides") > 0, "{l}");
    }
    // Its scratch directory is gone.
    assert_eq!(std::fs::read_dir(&work).unwrap().count(), 0, "the loop left its scratch directory");
}

#[test]
fn fails_on_a_damaged_database() {
    if rpm_missing() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pkgdir = packages(tmp.path());
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    // A root as the loop builds its own: rpm's database holding the initial packages.
    let rootdir = tmp.path().join("root");
    std::fs::create_dir(&rootdir).unwrap();
    let rpm = |args: &[&str]| {
        let o = Command::new("rpm").arg("--root").arg(&rootdir).args(["--dbpath", "/var/lib/rpm"]).args(args).output();
        let o = o.unwrap();
        assert!(o.status.success(), "rpm {args:?}: {}", text(&o));
    };
    rpm(&["--initdb"]);
    let initial: Vec<String> =
        std::fs::read_dir(pkgdir.join("initial")).unwrap().map(|e| e.unwrap().path().display().to_string()).collect();
    let mut args = vec!["-U"];
    args.extend(install_flags());
    args.extend(initial.iter().map(String::as_str));
    rpm(&args);
    // Undamaged, the template passes: what fails below is the damage.
    let o = naive(&["--cycles", "1", "--template", rootdir.to_str().unwrap()], &pkgdir, &work);
    assert!(o.status.success(), "{}", text(&o));

    // Scribble over a cell of three index b-trees (Name, Basenames, Providename): Packages is intact.
    let db = rootdir.join("var/lib/rpm/rpmdb.sqlite");
    let (page, roots) = {
        let c = rusqlite::Connection::open(&db).unwrap();
        let page: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        let mut st =
            c.prepare("SELECT rootpage FROM sqlite_master WHERE name IN ('Name', 'Basenames', 'Providename')").unwrap();
        let roots: Vec<i64> = st.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
        (page as u64, roots.into_iter().map(|r| r as u64).collect::<Vec<u64>>())
    };
    assert_eq!(roots.len(), 3);
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
        for r in roots {
            f.seek(SeekFrom::Start((r - 1) * page + page - 200)).unwrap();
            f.write_all(&[0xa5; 16]).unwrap();
        }
    }
    let o = naive(&["--cycles", "3", "--template", rootdir.to_str().unwrap()], &pkgdir, &work);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("naive-rpm-loop: FAIL cycle 1: rpmdb --verifydb"), "{}", text(&o));
    assert!(!stdout.contains(" cycles in "), "a failing loop printed a rate: {stdout}");
}

#[test]
fn bad_usage_is_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let script = root().join("ci/naive-rpm-loop.sh");
    let run = |args: &[&str]| Command::new("bash").arg(&script).args(args).output().unwrap();
    for (args, says) in [
        (vec![], "usage:"),
        (vec!["--cycles", "x", "/nonexistent"], "--cycles x: not a number"),
        (vec!["--bogus", "/nonexistent"], "unknown option --bogus"),
        (vec![tmp.path().to_str().unwrap()], "__naive-rpm-packages"),
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(says), "{args:?} should say {says:?}: {}", text(&o));
    }
}

#[test]
fn bench_rpm_prints_both_rates_and_their_ratio() {
    let o = bin().args(["bench", "rpm", "--scenario"]).arg(root().join("scenarios/smoke.toml")).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not a real-rpm scenario"), "{}", text(&o));
    if rpm_missing() {
        return;
    }
    let o = bin()
        .args(["bench", "rpm", "--each", "3s", "--rounds", "1", "--scenario"])
        .arg(root().join("scenarios/rpm-sqlite.toml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    let total = t.lines().find(|l| l.trim_start().starts_with("naive loop ")).unwrap_or_else(|| panic!("{t}"));
    assert!(total.contains("cycles/s") && total.contains("dbtorture ") && total.contains("ratio "), "{total}");
    assert!(t.contains("round 1: naive "), "{t}");
}
