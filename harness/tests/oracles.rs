//! Sharper oracles (issue 12): durability judged on what survives losing the cache, and again after recovery.

mod common;
use common::{bin, events, text};
use serde_json::Value;
use std::path::Path;

/// selftest's bdbenv scenario: no faults, so whatever fails is the planted bug's.
const NO_FAULTS: &str = r#"
name = "oracle-no-faults"
backends = ["bdbenv"]
[workload]
packages = 30
versions = 3
files_mean = 8
writers = 2
readers = 1
txns_per_writer = 6
queries_per_reader = 30
[kill]
mode = "none"
[timeouts]
cycle_ms = 3000
probe_ms = 3000
[expect]
bdbenv = ["clean"]
"#;

/// db 4.3's environment under kills: a dead writer's lock hangs the probe, so recovery (`rm __db.*`) runs on
/// a cache nobody wrote back.
const DB43_KILLS: &str = r#"
name = "oracle-db43-kills"
seed = 7
backends = ["bdbenv-db43"]
[workload]
packages = 40
versions = 3
files_mean = 10
initial_fraction = 0.5
writers = 2
readers = 1
txns_per_writer = 4
queries_per_reader = 60
[kill]
mode = "mixed"
probability = 0.8
distribution = "exponential"
delay_ms_min = 0
delay_ms_max = 15
hit_max = 30
[timeouts]
cycle_ms = 2000
probe_ms = 500
[expect]
bdbenv-db43 = ["clean", "stale-locks", "recovered", "hang"]
"#;

fn run(dir: &Path, scenario: &str, cycles: u32, plant: Option<&str>) -> (Option<i32>, Vec<Value>, String) {
    let sc = dir.join("s.toml");
    std::fs::write(&sc, scenario).unwrap();
    let out = dir.join("out");
    let mut cmd = bin();
    cmd.args(["run", sc.to_str().unwrap(), "-q", "--cycles", &cycles.to_string(), "--out", out.to_str().unwrap()])
        .env_remove("DBTORTURE_PLANT");
    if let Some(p) = plant {
        cmd.env("DBTORTURE_PLANT", p);
    }
    let o = cmd.output().unwrap();
    (o.status.code(), events(&out), text(&o))
}

fn findings<'a>(ev: &'a [Value], phase: &str, kind: &str) -> Vec<&'a Value> {
    ev.iter().filter(|e| e["event"] == "finding" && e["phase"] == phase && e["finding"]["kind"] == kind).collect()
}

/// A sync that leaves a Packages page in the cache only: the overlaid check sees every commit, the data
/// files alone do not — a `cache-only-commit`, the cycle unexpected. Without the bug: clean.
#[test]
fn a_commit_only_the_cache_holds_is_found_on_the_data_files_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, ev, out) = run(tmp.path(), NO_FAULTS, 10, Some("bdbenv-mpool-skip-frame"));
    assert_eq!(code, Some(1), "{out}");
    let hits = findings(&ev, "verify", "cache-only-commit");
    assert!(!hits.is_empty(), "no cache-only commit found: {out}");
    assert!(hits[0]["finding"]["message"].as_str().unwrap().contains("rm __db.*"), "{}", hits[0]);
    assert!(findings(&ev, "verify", "lost-commit").is_empty(), "the overlaid read must see every commit");

    let tmp = tempfile::tempdir().unwrap();
    let (code, ev, out) = run(tmp.path(), NO_FAULTS, 6, None);
    assert_eq!(code, Some(0), "{out}");
    assert!(ev.iter().all(|e| e["event"] != "finding"), "{out}");
}

/// Recovery throws the cache away: the oracle runs again on what it produced, and a commit recovery lost
/// is a `lost-commit` of phase `after-recovery` that makes the cycle unexpected even when its outcome is an
/// allowed `hang` (a lost commit hides behind no other outcome).
#[test]
fn the_oracle_runs_again_after_recovery() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, ev, out) = run(tmp.path(), DB43_KILLS, 30, Some("bdbenv-mpool-skip-frame"));
    assert_eq!(code, Some(1), "{out}");
    let lost = findings(&ev, "after-recovery", "lost-commit");
    let cycle = lost.first().unwrap_or_else(|| panic!("no commit lost by recovery found: {out}"))["cycle"].clone();
    let end = ev.iter().find(|e| e["event"] == "cycle-end" && e["cycle"] == cycle).unwrap();
    assert_eq!(end["expected"].as_bool(), Some(false), "{end}");
}
