//! The coverage table shows its gaps: every crash point the run's backends can pass has a row — never passed
//! and never armed points flagged — and the counts above it say how many of them the run reached.

use dbtorture_reports::model::Environment;
use dbtorture_reports::{Aggregate, Outcome, RunEvent};
use std::collections::BTreeMap;

fn summary() -> dbtorture_reports::Summary {
    let mut agg = Aggregate::new();
    agg.push(&RunEvent::RunStart {
        schema: dbtorture_reports::SCHEMA_VERSION,
        scenario: "s".into(),
        scenario_hash: "h".into(),
        seed: 1,
        backends: vec!["sqlite".into()],
        version: "v".into(),
        environment: Environment::default(),
        shard: None,
        replay: "dbtorture run s".into(),
        points: ["p.armed", "p.passed", "p.never"].map(String::from).to_vec(),
    });
    agg.push(&RunEvent::CycleEnd {
        cycle: 0,
        backend: "sqlite".into(),
        outcome: Outcome::Clean,
        expected: true,
        findings: 0,
        commits: 1,
        duration_ms: 1.0,
        armed: Some("p.armed".into()),
        hits: BTreeMap::from([("p.armed".into(), 2), ("p.passed".into(), 1)]),
        index_rows: BTreeMap::new(),
    });
    agg.summary()
}

#[test]
fn never_passed_and_never_armed_points_are_listed() {
    let s = summary();
    assert_eq!(s.coverage.len(), 3, "every point of the run has a row: {:?}", s.coverage);
    assert_eq!(s.coverage["p.never"].hits, 0);
    let g = dbtorture_reports::coverage_table::gaps(&s);
    assert_eq!((g.points, g.passed, g.armed), (3, 2, 1));
    assert_eq!(g.never_passed, vec!["p.never".to_string()]);
    assert_eq!(g.never_armed, vec!["p.passed".to_string()]);
    let html = dbtorture_reports::html::html(&s, &Default::default());
    assert!(html.contains("2 of 3 crash points passed"), "{html}");
    assert!(html.contains("1 crash point never passed") && html.contains("<code>p.never</code>"), "{html}");
    let row = |p: &str| html.split("<tr").find(|r| r.contains(&format!("<code>{p}</code></td>"))).unwrap().to_string();
    assert!(row("p.never").contains("never passed") && row("p.never").starts_with(" class=\"bad\""));
    assert!(row("p.passed").contains("never armed"));
    assert!(!row("p.armed").contains("never"));
}

#[test]
fn points_merge_as_a_union() {
    // A second run (shard) listing another point adds its row; counts add up.
    let mut agg = Aggregate::new();
    for pts in [vec!["a"], vec!["a", "b"]] {
        agg.push(&RunEvent::RunStart {
            schema: dbtorture_reports::SCHEMA_VERSION,
            scenario: "s".into(),
            scenario_hash: "h".into(),
            seed: 1,
            backends: vec!["sqlite".into()],
            version: "v".into(),
            environment: Environment::default(),
            shard: None,
            replay: String::new(),
            points: pts.into_iter().map(String::from).collect(),
        });
    }
    assert_eq!(agg.summary().coverage.keys().collect::<Vec<_>>(), vec!["a", "b"]);
}
