//! Hostile bundles: `replay` and `shrink` refuse, with exit 2 and no panic, a bundle whose `installed_before`
//! names packages outside the scenario's pool, and a bundle path that is a FIFO (without blocking on it).

mod common;
use common::*;

use std::process::Stdio;
use std::time::{Duration, Instant};

const SCENARIO: &str = r#"
name = "planted-sqlite"
backends = ["sqlite"]
[workload]
packages = 20
versions = 2
files_mean = 4
writers = 2
readers = 0
txns_per_writer = 6
queries_per_reader = 0
[kill]
mode = "crash-point"
probability = 1.0
point = "sqlite.savepoint.after"
hit_max = 3
[timeouts]
cycle_ms = 5000
probe_ms = 5000
[expect]
sqlite = ["clean"]
"#;

#[test]
fn installed_before_outside_the_pool_is_bad_input_for_replay_and_shrink() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = tmp.path().join("planted.toml");
    std::fs::write(&sc, SCENARIO).unwrap();
    let out = tmp.path().join("out");
    let o = bin()
        .args(["run", sc.to_str().unwrap(), "--cycles", "20", "-q", "--out"])
        .arg(&out)
        .env("DBTORTURE_PLANT", "sqlite-commit-per-package")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "the planted bug must make a cycle fail: {}", text(&o));
    let archive = std::fs::read_dir(out.join("bundles")).unwrap().next().unwrap().unwrap().path();
    let opened = dbtorture::bundle::open(&archive).unwrap();
    let json = opened.dir.join("bundle.json");
    let mut info: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    info["installed_before"] = serde_json::json!([0, 4_000_000_000u32]);
    std::fs::write(&json, serde_json::to_string(&info).unwrap()).unwrap();
    for args in [vec!["replay"], vec!["shrink", "--out", tmp.path().join("min").to_str().unwrap()]] {
        let o = bin().args(&args).arg(&opened.dir).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("installed_before names package 4000000000"), "{args:?}: {}", text(&o));
        assert!(!text(&o).contains("panicked"), "{}", text(&o));
    }
}

#[test]
fn a_fifo_as_bundle_is_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("cycle-1-sqlite.tar.gz");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    for cmd in ["replay", "shrink"] {
        let mut child = bin().arg(cmd).arg(&fifo).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > Duration::from_secs(20) {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!("{cmd} of a FIFO hung");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{cmd}: {}", text(&o));
        assert!(text(&o).contains("a FIFO"), "{cmd}: {}", text(&o));
    }
}
