//! The sweep covers what the README says: `sweep.toml` (one round of first hits) and `sweep-rebuild.toml`
//! (two conversion cycles, one per source backend) together pass and arm every crash point of
//! `crash::ALL` that the backends here can pass, and the README's coverage figure is that count.

mod common;
use common::*;

use dbtorture_backends::crash;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// Run a shipped scenario for `cycles` cycles; its summary.
fn sweep(scenario: &str, cycles: u64, out: &Path) -> Value {
    let o = bin()
        .current_dir(root())
        .args(["run", scenario, "--cycles", &cycles.to_string(), "-q", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{scenario}: {}", text(&o));
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

/// (points passed, points armed) in a summary's coverage table.
fn covered(s: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let cov = s["coverage"].as_object().unwrap();
    let with = |k: &str| cov.iter().filter(|(_, c)| c[k].as_u64() > Some(0)).map(|(p, _)| p.clone()).collect();
    (with("hits"), with("armed"))
}

/// The README's figure: "pass N of the M crash points".
fn readme_figure() -> (usize, usize) {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let at = readme.find("together they pass ").expect("the README states the sweep's coverage");
    let words: Vec<&str> = readme[at..].split_whitespace().collect();
    // together they pass N of the M crash points
    (words[3].parse().unwrap(), words[6].parse().unwrap())
}

#[test]
fn the_sweeps_pass_and_arm_every_crash_point_and_the_readme_says_how_many() {
    let tmp = tempfile::tempdir().unwrap();
    // sweep.toml arms one (point, hit) per cycle and backend: bdbenv's 24 points take 24 cycles for every
    // first hit; sqlite's and libdb's fewer points wrap around within them.
    let most = ["sqlite", "bdbenv", "libdb"].iter().map(|b| crash::points_of(b).count()).max().unwrap() as u64;
    let workers = sweep("scenarios/sweep.toml", most, &tmp.path().join("workers"));
    let (mut passed, mut armed) = covered(&workers);
    for b in ["sqlite", "bdbenv", "libdb"] {
        for p in crash::points_of(b) {
            assert!(passed.contains(p), "sweep.toml never passed {p}: {}", workers["coverage"]);
            assert!(armed.contains(p), "sweep.toml never armed {p}");
        }
    }
    // Conversions: cycle 0 of each source arms the first rebuild point, cycle 1 the second.
    let conv = sweep("scenarios/sweep-rebuild.toml", 2, &tmp.path().join("rebuild"));
    let (p2, a2) = covered(&conv);
    for p in crash::points_of("rebuild") {
        assert!(p2.contains(p) && a2.contains(p), "sweep-rebuild.toml: {p}: {}", conv["coverage"]);
    }
    passed.extend(p2);
    armed.extend(a2);
    let missing: Vec<&&str> = crash::ALL.iter().filter(|p| !passed.contains(**p)).collect();
    assert!(missing.is_empty(), "crash points no sweep passes: {missing:?}");
    let (n, of) = readme_figure();
    assert_eq!((n, of), (passed.len(), crash::ALL.len()), "README's coverage figure vs this run");
    // The coverage table of each run lists every point its backends can pass, passed or not.
    assert!(workers["coverage"].as_object().unwrap().len() >= 57, "{}", workers["coverage"]);
}
