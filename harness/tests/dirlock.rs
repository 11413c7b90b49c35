//! A run owns its --workdir and --out: a second run on either is refused (exit 2) naming the first's pid,
//! and the directories are free again once the first has ended.

mod common;
use common::*;

use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn a_second_run_on_the_same_workdir_or_out_is_refused_naming_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let (work, out) = (tmp.path().join("work"), tmp.path().join("out"));
    let smoke = root().join("scenarios/smoke.toml");
    let mut first = bin()
        .args(["run", smoke.to_str().unwrap(), "--duration", "60s", "-q", "--backend", "sqlite", "--workdir"])
        .arg(&work)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first run holds both once it has started writing its events.
    let start = Instant::now();
    while !out.join("events.jsonl").exists() {
        assert!(start.elapsed() < Duration::from_secs(30), "the first run never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = format!("pid {}", first.id());
    for (w, o) in [(work.clone(), tmp.path().join("out2")), (tmp.path().join("work2"), out.clone())] {
        let r = bin()
            .args(["run", smoke.to_str().unwrap(), "--cycles", "1", "-q", "--workdir"])
            .arg(&w)
            .arg("--out")
            .arg(&o)
            .output()
            .unwrap();
        assert_eq!(r.status.code(), Some(2), "{}", text(&r));
        assert!(text(&r).contains("in use by another dbtorture run") && text(&r).contains(&pid), "{}", text(&r));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    first.wait().unwrap();
    let r = bin()
        .args(["run", smoke.to_str().unwrap(), "--cycles", "1", "-q", "--backend", "sqlite", "--workdir"])
        .arg(&work)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0), "free again after the first ended: {}", text(&r));
}
