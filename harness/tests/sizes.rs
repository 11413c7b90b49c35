//! What a scenario asks for must be buildable on this machine: a balloon larger than the machine's memory is
//! refused before anything runs (exit 2), and a big pool being built answers Ctrl-C (exit 130 with reports).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn mem_total_mb() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb / 1024
}

#[test]
fn a_balloon_bigger_than_the_machine_is_bad_input() {
    let d = tempfile::tempdir().unwrap();
    let limit = mem_total_mb() * 2;
    let sc = d.path().join("b.toml");
    std::fs::write(
        &sc,
        format!(
            "name='b'\nbackends=['sqlite']\n[memory]\nlimit_mb={limit}\nballoon_mb={}\n[expect]\nsqlite=['clean']\n",
            limit + 1000
        ),
    )
    .unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_dbtorture")).args(["run", "-q", "--cycles", "1"]).arg(&sc).output().unwrap();
    let text = common::text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("memory.balloon_mb") && text.contains("MiB of memory"), "{text}");
}

#[test]
fn ctrl_c_while_the_pool_is_built_ends_the_run_with_its_reports() {
    let d = tempfile::tempdir().unwrap();
    let sc = d.path().join("big.toml");
    // ~4,000,000 files: tens of seconds to build on this machine.
    std::fs::write(
        &sc,
        "name='big'\nbackends=['sqlite']\n[workload]\npackages=100000\nversions=2\nfiles_mean=20\nwriters=1\nreaders=0\n\
         [kill]\nmode='none'\n[expect]\nsqlite=['clean']\n",
    )
    .unwrap();
    let out = d.path().join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dbtorture"))
        .args(["run", "-q", "--cycles", "1"])
        .arg(&sc)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The run-start event is written before the pool is built.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(out.join("events.jsonl")).unwrap_or_default().contains("run-start") {
        assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "the run never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let asked = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    // Bounded: the pool build checks for Ctrl-C between packages. A run that ignored it builds for far longer.
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if asked.elapsed() > Duration::from_secs(15) {
            child.kill().unwrap();
            panic!("Ctrl-C during the pool build was not answered within 15 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130), "interrupted");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["interrupted"], true);
    assert_eq!(summary["cycles"], 0);
}
