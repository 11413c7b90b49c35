//! A full disk is a harness error (exit 3) with whatever reports can be written — never a signal, never a
//! 0-byte `*.tmp` left beside the reports. Tried for real: a tmpfs of a few MiB, mounted in a private mount
//! namespace (`unshare -m`), as the `--workdir` (the bdbenv regions the scheduler maps: SIGBUS when their
//! blocks were never reserved) and as the `--out`. Needs root (CI runs as root): skipped with a reason
//! otherwise, a failure under `CI`.

mod common;

use common::root;
use std::process::Command;

fn skip_or_fail(why: &str) -> bool {
    assert!(std::env::var_os("CI").is_none(), "CI must run the full-disk test in a mount namespace: {why}");
    eprintln!("SKIPPED full-disk test: {why}");
    false
}

fn can_mount() -> bool {
    if !nix::unistd::Uid::effective().is_root() {
        return skip_or_fail("not root (unshare -m and mount need it)");
    }
    if !Command::new("unshare").args(["-m", "true"]).status().is_ok_and(|s| s.success()) {
        return skip_or_fail("unshare -m does not work here");
    }
    true
}

/// Run `dbtorture run SCENARIO` inside a namespace where `/mnt/full` is a tmpfs of `size`, with `args`;
/// returns (exit status as the shell saw it, output, names of the files left in the out directory).
fn run_on_small_tmpfs(scenario: &str, size: &str, args: &str, out_dir: &str) -> (i32, String, Vec<String>) {
    let d = tempfile::tempdir().unwrap();
    let script = format!(
        r#"
set -u
mkdir -p {mnt}
mount -t tmpfs -o size={size} dbtorture-full {mnt} || exit 90
{bin} run {scenario} --cycles 4 -q {args} > {log} 2>&1
echo "RC $?"
echo "FILES $(ls -A {out_dir} 2>/dev/null | tr '\n' ' ')"
"#,
        mnt = d.path().join("full").display(),
        bin = env!("CARGO_BIN_EXE_dbtorture"),
        scenario = root().join(scenario).display(),
        log = d.path().join("log").display(),
        args = args
            .replace("FULL", &d.path().join("full").display().to_string())
            .replace("HERE", &d.path().display().to_string()),
        out_dir = out_dir
            .replace("FULL", &d.path().join("full").display().to_string())
            .replace("HERE", &d.path().display().to_string()),
    );
    let out = Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-c", &script]).output().unwrap();
    let text = common::text(&out);
    let log = std::fs::read_to_string(d.path().join("log")).unwrap_or_default();
    let rc = text.lines().find_map(|l| l.strip_prefix("RC ")).and_then(|r| r.trim().parse().ok()).unwrap_or(-1);
    let files = text
        .lines()
        .find_map(|l| l.strip_prefix("FILES "))
        .map(|f| f.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    (rc, format!("{text}\n--- dbtorture's output ---\n{log}"), files)
}

#[test]
fn a_full_workdir_is_exit_3_with_reports_not_sigbus() {
    if !can_mount() {
        return;
    }
    // 1 MiB holds the scenario's directories but not bdbenv's region files (several MiB).
    let (rc, text, files) =
        run_on_small_tmpfs("scenarios/bdbenv-kill.toml", "1m", "--workdir FULL/work --out HERE/out", "HERE/out");
    assert_eq!(rc, 3, "a full workdir is a harness error, exit 3 (135 = SIGBUS): {text}");
    assert!(text.contains("No space left on device"), "the cause is named: {text}");
    for f in ["summary.json", "junit.xml", "report.html", "events.jsonl"] {
        assert!(files.iter().any(|x| x == f), "{f} written beside the harness error: {files:?}\n{text}");
    }
}

#[test]
fn a_full_out_directory_is_exit_3_and_leaves_no_temp_files() {
    if !can_mount() {
        return;
    }
    // 64 KiB: events.jsonl fills it during the run; the reports cannot all be written.
    let (rc, text, files) = run_on_small_tmpfs("scenarios/smoke.toml", "64k", "--out FULL/out", "FULL/out");
    assert_eq!(rc, 3, "a full --out is a harness error, exit 3: {text}");
    assert!(text.contains("No space left on device"), "the cause is named: {text}");
    let tmp: Vec<&String> = files.iter().filter(|f| f.ends_with(".tmp")).collect();
    assert!(tmp.is_empty(), "no temporary report file is left behind: {files:?}\n{text}");
}
