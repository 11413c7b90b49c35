//! `[[expect_when]]` end to end: a rule applies to the cycles whose faults have its shape, a cycle that
//! breaks it is unexpected (exit 1) with an `expectation-unmet` finding naming the rule, in the events and in
//! summary.json's failures; and the shipped baseline has a "no fault → clean" rule for every backend.

mod common;
use common::*;

/// Fault-free sqlite cycles, judged by a rule that (deliberately) allows only `hang` for them.
const SCENARIO: &str = r#"
name = "expect-when"
backends = ["sqlite"]
[workload]
packages = 12
versions = 2
files_mean = 4
writers = 1
readers = 1
txns_per_writer = 2
queries_per_reader = 10
[kill]
mode = "none"
[expect]
sqlite = ["clean", "hang"]
[[expect_when]]
backend = "sqlite"
faults = "none"
outcomes = ["hang"]
"#;

#[test]
fn a_cycle_that_breaks_a_rule_is_unexpected_and_the_report_names_the_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = tmp.path().join("when.toml");
    std::fs::write(&sc, SCENARIO).unwrap();
    let out = tmp.path().join("out");
    let o = bin().args(["run", sc.to_str().unwrap(), "--cycles", "2", "-q", "--out"]).arg(&out).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "clean is on the expect list but not the rule's: {}", text(&o));
    let unmet: Vec<_> = events(&out)
        .into_iter()
        .filter(|e| e["event"] == "finding" && e["finding"]["kind"] == "expectation-unmet")
        .collect();
    assert_eq!(unmet.len(), 2, "one per cycle: {unmet:?}");
    assert_eq!(unmet[0]["phase"], "expect");
    let m = unmet[0]["finding"]["message"].as_str().unwrap();
    assert!(m.contains("expect_when[0]") && m.contains("faults = none") && m.contains("was clean"), "{m}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["unexpected"], 2);
    assert!(s["failures"].to_string().contains("expect_when[0]"), "{}", s["failures"]);
    // Allowed by the rule: the same cycles pass.
    std::fs::write(&sc, SCENARIO.replace("outcomes = [\"hang\"]", "outcomes = [\"clean\"]")).unwrap();
    let o = bin().args(["run", sc.to_str().unwrap(), "--cycles", "2", "-q", "--out"]).arg(&out).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn the_baseline_runs_every_shipped_backend_without_faults_and_says_no_fault_means_clean() {
    let text = std::fs::read_to_string(root().join("scenarios/baseline.toml")).unwrap();
    let sc = dbtorture::scenario::Scenario::parse(&text, std::path::Path::new("baseline.toml")).unwrap();
    assert_eq!(sc.kill.mode, dbtorture::scenario::KillMode::None);
    assert!(sc.stale_page.is_none() && sc.memory.is_none() && sc.power_loss.is_none());
    for &k in dbtorture_backends::BackendKind::ALL {
        assert_eq!(sc.expected(k), [dbtorture_reports::Outcome::Clean], "{}", k.name());
        let rule = sc.expect_when.iter().find(|r| r.backend == k).unwrap_or_else(|| panic!("no rule for {}", k.name()));
        assert_eq!(rule.faults, dbtorture::scenario::when::FaultShape::None);
        assert_eq!(rule.outcomes, [dbtorture_reports::Outcome::Clean]);
    }
}
