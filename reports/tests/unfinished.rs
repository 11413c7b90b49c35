//! A run whose log has no run-end event (a guest lost, a harness killed with SIGKILL, an upload cut short)
//! still folds into honest numbers: it counts as interrupted, its cycles are the ones its log holds, and its
//! duration is its cycles' own time — never a rate computed over zero seconds.

use dbtorture_reports::model::Environment;
use dbtorture_reports::{Aggregate, Outcome, RunEvent};
use std::collections::BTreeMap;

fn start() -> RunEvent {
    RunEvent::RunStart {
        schema: dbtorture_reports::SCHEMA_VERSION,
        scenario: "s".into(),
        scenario_hash: "h".into(),
        seed: 1,
        backends: vec!["sqlite".into()],
        version: "v".into(),
        environment: Environment::default(),
        shard: None,
        replay: "dbtorture run s".into(),
        points: Vec::new(),
    }
}

fn cycle(cycle: u64, ms: f64) -> [RunEvent; 2] {
    [
        RunEvent::CycleStart { cycle, backend: "sqlite".into(), seed: cycle, plan: String::new() },
        RunEvent::CycleEnd {
            cycle,
            backend: "sqlite".into(),
            outcome: Outcome::Clean,
            expected: true,
            findings: 0,
            commits: 1,
            duration_ms: ms,
            armed: None,
            hits: BTreeMap::new(),
            index_rows: BTreeMap::new(),
        },
    ]
}

#[test]
fn a_run_without_its_end_is_interrupted_and_timed_by_its_cycles() {
    let mut agg = Aggregate::new();
    agg.push(&start());
    for e in cycle(0, 250.0).iter().chain(cycle(1, 750.0).iter()) {
        agg.push(e);
    }
    let s = agg.summary();
    assert_eq!(s.cycles, 2);
    assert!(s.interrupted, "no run-end: the run did not finish");
    assert!(s.runs[0].interrupted);
    assert_eq!(s.runs[0].cycles, 2, "the run's cycles are the ones its log holds");
    assert!((s.duration_s - 1.0).abs() < 1e-9, "duration = the cycles' own time, got {}", s.duration_s);
    assert!((s.cycles_per_sec - 2.0).abs() < 1e-9, "got {} cycles/s", s.cycles_per_sec);
}

#[test]
fn a_finished_run_keeps_its_own_duration_and_an_empty_one_reports_no_rate() {
    let mut agg = Aggregate::new();
    agg.push(&start());
    for e in cycle(0, 250.0) {
        agg.push(&e);
    }
    agg.push(&RunEvent::RunEnd { cycles: 1, unexpected: 0, interrupted: false, duration_s: 4.0, harness_error: None });
    let s = agg.summary();
    assert!(!s.interrupted);
    assert!((s.duration_s - 4.0).abs() < 1e-9);
    assert!((s.cycles_per_sec - 0.25).abs() < 1e-9);

    let mut empty = Aggregate::new();
    empty.push(&start());
    let s = empty.summary();
    assert_eq!((s.cycles_per_sec, s.kills_per_sec), (0.0, 0.0), "no time, no rate (not n / 1e-9)");
}
