//! Every JUnit test case carries `time`: the seconds its backend's cycles took (summed `duration_ms`), not the
//! run's wall clock and not zero.

use dbtorture_reports::model::Environment;
use dbtorture_reports::{Aggregate, Outcome, RunEvent};
use std::collections::BTreeMap;

fn junit(durations: &[(&str, f64)]) -> String {
    let mut agg = Aggregate::new();
    let mut backends: Vec<String> = durations.iter().map(|(b, _)| b.to_string()).collect();
    backends.dedup();
    agg.push(&RunEvent::RunStart {
        schema: dbtorture_reports::SCHEMA_VERSION,
        scenario: "s".into(),
        scenario_hash: "h".into(),
        seed: 1,
        backends,
        version: "v".into(),
        environment: Environment::default(),
        shard: None,
        replay: "dbtorture run s".into(),
        points: Vec::new(),
    });
    for (cycle, (b, ms)) in durations.iter().enumerate() {
        let cycle = cycle as u64;
        agg.push(&RunEvent::CycleStart { cycle, backend: b.to_string(), seed: cycle, plan: String::new() });
        agg.push(&RunEvent::CycleEnd {
            cycle,
            backend: b.to_string(),
            outcome: if *b == "bdbenv" { Outcome::LostCommit } else { Outcome::Clean },
            expected: *b != "bdbenv",
            findings: 0,
            commits: 1,
            duration_ms: *ms,
            armed: None,
            hits: BTreeMap::new(),
            index_rows: BTreeMap::new(),
        });
    }
    agg.push(&RunEvent::RunEnd {
        cycles: durations.len() as u64,
        unexpected: 0,
        interrupted: false,
        duration_s: 99.0,
        harness_error: None,
    });
    dbtorture_reports::junit::junit(&agg.summary()).to_string().unwrap()
}

/// (classname, name, time) of every `<testcase>`.
fn cases(xml: &str) -> Vec<(String, String, Option<f64>)> {
    let attr = |tag: &str, a: &str| -> Option<String> {
        Some(tag.split(&format!(" {a}=\"")).nth(1)?.split('"').next()?.to_string())
    };
    xml.split("<testcase")
        .skip(1)
        .map(|t| {
            let tag = &t[..t.find('>').unwrap()];
            (attr(tag, "classname").unwrap(), attr(tag, "name").unwrap(), attr(tag, "time").map(|v| v.parse().unwrap()))
        })
        .collect()
}

#[test]
fn every_case_carries_its_backends_cycle_time() {
    let xml = junit(&[("sqlite", 1500.0), ("bdbenv", 250.0), ("sqlite", 500.0), ("bdbenv", 250.0)]);
    let cases = cases(&xml);
    assert!(cases.len() >= 16, "8 checks × 2 backends: {xml}");
    for (class, name, time) in &cases {
        let want = if class.ends_with(".sqlite") { 2.0 } else { 0.5 };
        let got = time.unwrap_or_else(|| panic!("{class} {name} has no time: {xml}"));
        assert!((got - want).abs() < 1e-6, "{class} {name}: time {got}, want {want} (its backend's cycles)");
    }
    // The failing case (bdbenv durability) carries it too.
    assert!(cases.iter().any(|(c, n, t)| c.ends_with(".bdbenv") && n == "durability" && t.is_some()));
}
