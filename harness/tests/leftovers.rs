//! A run that dies without cleaning up (SIGKILL of the scheduler) leaves its scratch directory and its memory
//! cgroup; the next run removes them — and never a live run's.

mod common;

use common::root;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn scratch_dirs(tmp: &std::path::Path, pid: u32) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("dbtorture-{pid}.")))
        .collect()
}

fn cgroups_of(pid: u32) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![std::path::PathBuf::from("/sys/fs/cgroup")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) && !e.file_type().unwrap().is_symlink() {
                if p.file_name().unwrap().to_string_lossy().starts_with(&format!("dbtorture-{pid}.")) {
                    found.push(p.clone());
                }
                if p.components().count() < 9 {
                    stack.push(p);
                }
            }
        }
    }
    found
}

#[test]
fn a_killed_runs_scratch_dir_and_cgroup_are_removed_by_the_next_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let bin = env!("CARGO_BIN_EXE_dbtorture");
    let mut first = Command::new(bin)
        // One lane: the cgroup is then named after the run's own process (lanes name theirs after themselves).
        .args(["run", &root().join("scenarios/memory-pressure.toml").display().to_string(), "-q", "--cycles", "1000"])
        .args(["--jobs", "1"])
        .arg("--out")
        .arg(&out)
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = first.id();
    // Wait until the first run is inside its cycles (a cycle-end event), bounded.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(out.join("events.jsonl")).unwrap_or_default().contains("\"cycle-end\"") {
        assert!(Instant::now() < deadline, "the first run never finished a cycle");
        assert!(first.try_wait().unwrap().is_none(), "the first run ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    let dirs = scratch_dirs(tmp.path(), pid);
    assert_eq!(dirs.len(), 1, "the run's work directory is named after it: {dirs:?}");
    let cgroups = cgroups_of(pid);
    let root_user = nix::unistd::Uid::effective().is_root();
    if root_user {
        assert!(!cgroups.is_empty(), "a root run under memory pressure makes a memory cgroup named after it");
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    first.wait().unwrap();
    assert!(dirs[0].exists(), "SIGKILL leaves the work directory behind");

    let second = Command::new(bin)
        .args(["run", &root().join("scenarios/smoke.toml").display().to_string(), "-q", "--cycles", "1"])
        .arg("--out")
        .arg(tmp.path().join("out2"))
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let text = common::text(&second);
    assert!(second.status.success(), "{text}");
    assert!(!dirs[0].exists(), "the next run removed the dead run's work directory: {text}");
    assert!(text.contains("left by a run that died"), "and said so: {text}");
    for cg in &cgroups {
        assert!(!cg.exists(), "the next run removed the dead run's memory cgroup {}: {text}", cg.display());
    }
}
