//! Every finding explained, across cycles: a cycle that adopts stale locks a killed reader left (no
//! recovery) carries its kill to the next cycle, whose findings that kill explains. The bundle of such a
//! cycle records the carried causes, and its replay judges with them — without them, a replay called the
//! inherited stale locks unexplained.

mod common;
use common::*;

use serde_json::Value;
use std::path::Path;

/// db 4.3 has no failchk: a killed reader's locker stays in the lock table, blocking nothing, and the cycle
/// is adopted as `stale-locks`. Kills late in a window wider than a cycle's work often miss, so some cycles
/// have no kill of their own and only inherited causes.
const SCENARIO: &str = r#"
name = "carried"
seed = 11
backends = ["bdbenv-db43"]
bundles = "findings"
[workload]
packages = 30
versions = 2
files_mean = 8
initial_fraction = 0.5
writers = 2
readers = 2
txns_per_writer = 4
queries_per_reader = 80
[kill]
mode = "random-time"
signal = "mixed"
probability = 0.3
distribution = "uniform"
delay_ms_min = 0
delay_ms_max = 200
readers = true
[timeouts]
cycle_ms = 1500
probe_ms = 1500
[expect]
bdbenv-db43 = ["clean", "stale-locks", "recovered", "hang"]
"#;

fn bundle_json(b: &Path) -> Value {
    let opened = dbtorture::bundle::open(b).unwrap();
    serde_json::from_str(&std::fs::read_to_string(opened.dir.join("bundle.json")).unwrap()).unwrap()
}

#[test]
fn a_replayed_bundle_judges_with_the_causes_its_cycle_inherited() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = tmp.path().join("carried.toml");
    std::fs::write(&sc, SCENARIO).unwrap();
    // Cycles without a kill of their own but with inherited stale locks: look over a few seeds.
    let mut specimen = None;
    for seed in 11..=14 {
        let out = tmp.path().join(format!("out-{seed}"));
        let o = bin()
            .args(["run", sc.to_str().unwrap(), "--cycles", "30", "--seed", &seed.to_string(), "-q", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "every cycle's findings are explained: {}", text(&o));
        let Ok(dir) = std::fs::read_dir(out.join("bundles")) else { continue };
        let mut bundles: Vec<_> = dir.map(|e| e.unwrap().path()).collect();
        bundles.sort();
        specimen = bundles.into_iter().find(|b| {
            let j = bundle_json(b);
            j["kills"].as_array().unwrap().is_empty() && !j["findings"].as_array().unwrap().is_empty()
        });
        if specimen.is_some() {
            break;
        }
    }
    let b = specimen.expect("no cycle without a kill of its own inherited findings in 4 runs of 30 cycles");
    let j = bundle_json(&b);
    assert_eq!(j["carried"], serde_json::json!(["kill"]), "the bundle records the inherited kill: {j}");
    assert!(
        j["findings"].as_array().unwrap().iter().all(|f| f["kind"] != "unexplained"),
        "the run explained them: {j}"
    );
    let o = bin().arg("replay").arg(&b).env("DBTORTURE_REPLAY_EVENTS", "1").output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    let events: Vec<Value> = stderr.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(events.iter().any(|e| e["event"] == "cycle-end"), "the replay ran its cycle: {}", text(&o));
    let unexplained: Vec<_> = events.iter().filter(|e| e["phase"] == "explain").collect();
    assert!(unexplained.is_empty(), "the replay judged without the inherited kill: {unexplained:?}\n{}", text(&o));
    assert!(
        events.iter().any(|e| e["event"] == "cycle-end" && e["expected"] == true),
        "the replayed cycle is expected: {}",
        text(&o)
    );
}
