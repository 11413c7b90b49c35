//! Golden tests of the report shapes: the JSON schemas are generated from the model and checked in (a model
//! change shows up as a schema diff in review); a fixed sequence of events folds into a summary.json and a
//! junit.xml that must equal the checked-in ones and validate against their schemas.
//!
//! Regenerate after an intended change with `DBTORTURE_BLESS=1 cargo test -p dbtorture-reports --test golden`.

use dbtorture_reports::model::Environment;
use dbtorture_reports::{
    Aggregate, ConversionState, FindingRecord, KillRecord, KillTrigger, Outcome, Role, RunEvent, SCHEMA_VERSION, Shard,
    Summary, WorkerEnd,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Compare `actual` with the checked-in file, or write it when blessing.
fn golden(rel: &str, actual: &str) {
    let path = root().join(rel);
    if std::env::var_os("DBTORTURE_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(expected, actual, "{rel} differs; if intended, rerun with DBTORTURE_BLESS=1");
}

fn schema_text<T: schemars::JsonSchema>() -> String {
    serde_json::to_string_pretty(&schemars::schema_for!(T)).unwrap() + "\n"
}

fn validator(rel: &str) -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root().join(rel)).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

/// A small run: two backends, a kill at a crash point, an unexpected lost commit with a bundle, memory events.
fn events() -> Vec<RunEvent> {
    let env = Environment {
        kernel: "6.1.0-test".into(),
        arch: "x86_64".into(),
        cgroup: "v2".into(),
        cpus: 2,
        mem_total_mb: 2048,
        version: "0.1.0 (sha256 000000000000)".into(),
        guest: None,
    };
    let kill = |w: u32, point: &str, trigger: KillTrigger| KillRecord {
        worker: w,
        role: Role::Writer,
        signal: "SIGKILL".into(),
        at_ms: 12,
        trigger,
        last_point: Some(point.into()),
        last_hit: Some(3),
        points_passed: 40,
    };
    let end = |cycle: u64, backend: &str, outcome: Outcome, expected: bool, armed: Option<&str>| RunEvent::CycleEnd {
        cycle,
        backend: backend.into(),
        outcome,
        expected,
        findings: usize::from(!expected),
        commits: 4,
        duration_ms: 25.0,
        armed: armed.map(String::from),
        hits: BTreeMap::from([("sqlite.commit.before".to_string(), 2), ("bdbenv.put.before".to_string(), 1)]),
        index_rows: BTreeMap::from([("Name".to_string(), 2), ("Triggername".to_string(), 0)]),
    };
    let start = |cycle: u64, backend: &str| RunEvent::CycleStart {
        cycle,
        backend: backend.into(),
        seed: 7 + cycle,
        plan: "w0 kill@point".into(),
    };
    vec![
        RunEvent::RunStart {
            schema: SCHEMA_VERSION,
            scenario: "golden".into(),
            scenario_hash: "ab".repeat(32),
            seed: 7,
            backends: vec!["sqlite".into(), "bdbenv".into()],
            version: "0.1.0 (sha256 000000000000)".into(),
            environment: env,
            shard: Some(Shard { index: 1, count: 2 }),
            replay: "dbtorture run scenarios/golden.toml --seed 7 --cycles 2 --shard 1/2".into(),
            // One point never passed: the coverage table still lists it.
            points: vec!["sqlite.commit.before".into(), "sqlite.commit.after".into()],
        },
        start(0, "sqlite"),
        RunEvent::Kill {
            cycle: 0,
            backend: "sqlite".into(),
            kill: kill(0, "sqlite.commit.before", KillTrigger::Point),
        },
        end(0, "sqlite", Outcome::Clean, true, Some("sqlite.commit.before")),
        start(0, "bdbenv"),
        RunEvent::Memory { cycle: 0, backend: "bdbenv".into(), limit_hits: 10, high: 0, oom_kills: 1, pageouts: 300 },
        RunEvent::Kill { cycle: 0, backend: "bdbenv".into(), kill: kill(1, "bdbenv.put.before", KillTrigger::Time) },
        RunEvent::WorkerExit {
            cycle: 0,
            backend: "bdbenv".into(),
            worker: 0,
            role: Role::Reader,
            end: WorkerEnd::Crashed { signal: "SIGABRT".into(), core_dumped: false },
        },
        RunEvent::Finding {
            cycle: 0,
            backend: "bdbenv".into(),
            phase: "verify".into(),
            finding: FindingRecord {
                kind: "lost-commit".into(),
                message: "lost commit: transaction 3 (install foo-1.0) was acknowledged".into(),
                package: Some("foo-1.0".into()),
                detail: serde_json::json!({"kind": "lost-commit", "txn": 3}),
            },
        },
        RunEvent::Bundle { cycle: 0, backend: "bdbenv".into(), path: "bundles/cycle-00000-bdbenv.tar.gz".into() },
        end(0, "bdbenv", Outcome::LostCommit, false, None),
        start(1, "sqlite"),
        // A conversion by the real rpm, killed while the original was still in place.
        RunEvent::Conversion {
            cycle: 1,
            backend: "sqlite".into(),
            state: ConversionState::Original,
            killed: true,
            rerun_ok: true,
            detail: "rpm left dbrebuilddb.4242".into(),
        },
        end(1, "sqlite", Outcome::Clean, true, None),
        // Interrupted: a kill but no cycle-end; it must not count.
        start(1, "bdbenv"),
        RunEvent::Kill { cycle: 1, backend: "bdbenv".into(), kill: kill(0, "bdbenv.put.before", KillTrigger::Time) },
        RunEvent::RunEnd { cycles: 3, unexpected: 1, interrupted: true, duration_s: 2.0, harness_error: None },
    ]
}

fn summary() -> (Summary, Aggregate) {
    let mut agg = Aggregate::new();
    for e in events() {
        agg.push(&e);
    }
    (agg.summary(), agg)
}

#[test]
fn schemas_are_generated_from_the_model() {
    golden("schema/summary.schema.json", &schema_text::<Summary>());
    golden("schema/event.schema.json", &schema_text::<RunEvent>());
}

#[test]
fn summary_json_matches_golden_and_schema() {
    let (s, _) = summary();
    assert_eq!((s.cycles, s.kills, s.unexpected), (3, 2, 1));
    assert!(s.interrupted);
    assert_eq!(s.failures.len(), 1);
    assert_eq!(s.failures[0].replay.as_deref(), Some("dbtorture replay bundles/cycle-00000-bdbenv.tar.gz"));
    assert_eq!(s.per_backend["bdbenv"].failure_rate.failing_kills, 1);
    assert_eq!(s.coverage["sqlite.commit.before"].kills, 1);
    assert_eq!(s.coverage["sqlite.commit.before"].hits, 6);
    let text = serde_json::to_string_pretty(&s).unwrap() + "\n";
    golden("tests/golden/summary.json", &text);
    let v = validator("schema/summary.schema.json");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let errors: Vec<String> = v.iter_errors(&value).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // And the schema does reject a wrong shape.
    let mut bad = value.clone();
    bad["failures"][0]["outcome"] = "exploded".into();
    assert!(!v.is_valid(&bad));
}

#[test]
fn every_event_validates_against_the_event_schema() {
    let v = validator("schema/event.schema.json");
    for e in events() {
        let value = serde_json::to_value(&e).unwrap();
        let errors: Vec<String> = v.iter_errors(&value).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{value}: {errors:#?}");
    }
    assert!(!v.is_valid(&serde_json::json!({"event": "cycle-end", "cycle": "x"})));
}

#[test]
fn junit_xml_matches_golden() {
    let (s, _) = summary();
    let xml = dbtorture_reports::junit::junit(&s).to_string().unwrap();
    golden("tests/golden/junit.xml", &xml);
    // One test case per backend and check; the lost commit fails `durability` of bdbenv only.
    assert_eq!(xml.matches("<testcase ").count(), 2 * dbtorture_reports::junit::CHECKS.len());
    assert_eq!(xml.matches("<failure ").count(), 1);
    assert!(xml.contains("bundle: bundles/cycle-00000-bdbenv.tar.gz"));
    assert!(xml.contains("replay: dbtorture replay bundles/cycle-00000-bdbenv.tar.gz"));
}

#[test]
fn junit_xml_validates_against_the_xsd() {
    let (s, _) = summary();
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("junit.xml");
    std::fs::write(&xml, dbtorture_reports::junit::junit(&s).to_string().unwrap()).unwrap();
    let xsd = root().join("schema/junit.xsd");
    let out = match std::process::Command::new("xmllint").arg("--noout").arg("--schema").arg(&xsd).arg(&xml).output() {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "SKIP junit_xml_validates_against_the_xsd: xmllint not available ({e}); ci/test.sh installs libxml2-utils"
            );
            return;
        }
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The schema is not vacuous: a failure without its testcase is rejected.
    std::fs::write(&xml, "<testsuites><testsuite name=\"x\" tests=\"1\"><failure/></testsuite></testsuites>").unwrap();
    let out =
        std::process::Command::new("xmllint").arg("--noout").arg("--schema").arg(&xsd).arg(&xml).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn html_report_is_self_contained_and_names_the_failure() {
    let (s, agg) = summary();
    let html = dbtorture_reports::html::html(&s, agg.timeline());
    assert!(html.contains("FAIL"));
    assert!(html.contains("href=\"bundles/cycle-00000-bdbenv.tar.gz\""));
    assert!(html.matches("<svg").count() >= 4, "outcomes, over cycles, rate, memory");
    // Nothing fetched from anywhere: no scripts, no stylesheets or images by address (the SVG namespace
    // `xmlns="http://www.w3.org/2000/svg"` is a name, not a fetch).
    for needle in ["<script", "<link", "src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(!html.contains(needle), "{needle}");
    }
}

/// A run that exited 3 (the harness failed mid-run) must never render green in CI: its `harness` test cases
/// are errors, whatever its cycles said.
#[test]
fn a_harness_error_run_has_a_failing_harness_case() {
    let mut evs = events();
    evs.pop();
    evs.push(RunEvent::RunEnd {
        cycles: 3,
        unexpected: 0,
        interrupted: false,
        duration_s: 2.0,
        harness_error: Some("building the package pool: disk full".into()),
    });
    let mut agg = Aggregate::new();
    for e in &evs {
        agg.push(e);
    }
    let s = agg.summary();
    assert_eq!(s.harness_error.as_deref(), Some("building the package pool: disk full"));
    assert!(s.unexpected >= 1);
    let report = dbtorture_reports::junit::junit(&s);
    let xml = report.to_string().unwrap();
    assert!(xml.contains("errors=\"2\""), "one harness error per backend: {xml}");
    assert!(xml.contains("disk full"), "{xml}");
}
