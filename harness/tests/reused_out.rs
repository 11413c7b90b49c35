//! A reused `--out` holds the reports of the run that just ran, nothing of an earlier one: the earlier
//! run's bundles are not counted, listed or merged as this run's; files the user put there are kept.

mod common;

use common::root;
use std::process::Command;

#[test]
fn a_second_run_into_the_same_out_replaces_the_first_ones_reports_and_bundles() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let bin = env!("CARGO_BIN_EXE_dbtorture");
    let smoke = root().join("scenarios/smoke.toml");
    // A red first run (a planted bug): bundles.
    let first = Command::new(bin)
        .args(["run", "-q", "--cycles", "3", "--backend", "sqlite"])
        .arg(&smoke)
        .arg("--out")
        .arg(&out)
        .env("DBTORTURE_PLANT", "sqlite-commit-per-package")
        .output()
        .unwrap();
    assert_eq!(first.status.code(), Some(1), "{}", common::text(&first));
    let bundles = || std::fs::read_dir(out.join("bundles")).map(|d| d.count()).unwrap_or(0);
    assert!(bundles() > 0, "the red run wrote bundles");
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    // A green second run into the same directory.
    let second = Command::new(bin)
        .args(["run", "-q", "--cycles", "2", "--backend", "sqlite"])
        .arg(&smoke)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let text = common::text(&second);
    assert_eq!(second.status.code(), Some(0), "{text}");
    assert_eq!(bundles(), 0, "the earlier run's bundles are gone: {text}");
    assert!(!text.contains("bundles:"), "no bundles are announced for a green run: {text}");
    assert!(text.contains("replacing the reports of an earlier run"), "and the run says so: {text}");
    assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "mine", "the user's own file is kept");
    let merged = Command::new(bin).arg("merge").arg(&out).arg("--out").arg(d.path().join("m")).output().unwrap();
    assert_eq!(merged.status.code(), Some(0), "the merge sees only the green run: {}", common::text(&merged));
}
