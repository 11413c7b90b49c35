//! The workload exercises every index: a run of the smoke scenario writes rows into every rpm 4.18 index
//! table (triggers, file and transaction file triggers, weak and rich dependencies included), and the report
//! says how many per table — a table no cycle wrote would show 0.

mod common;
use common::*;

#[test]
fn smoke_writes_every_rpm_4_18_index_table_and_the_report_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = bin()
        .args(["run", "scenarios/smoke.toml", "--cycles", "30", "-q", "--out"])
        .arg(&out)
        .current_dir(root())
        .output()
        .unwrap();
    // Coverage is counted whatever the verdicts (on a loaded machine smoke's 1 s cycles can overrun).
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", text(&o));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let rows = s["index_rows"].as_object().expect("summary.json has index_rows");
    let tables: Vec<&str> = dbtorture_backends::rpmdb::tags::INDEXES.iter().map(|t| t.name()).collect();
    assert_eq!(rows.len(), tables.len(), "every rpm 4.18 index table is listed: {rows:?}");
    let never: Vec<&&str> =
        tables.iter().filter(|t| rows.get(**t).and_then(|n| n.as_u64()).unwrap_or(0) == 0).collect();
    assert!(never.is_empty(), "index tables the smoke workload never wrote: {never:?} (rows: {rows:?})");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Index coverage") && html.contains("Transfiletriggername"), "report.html has the table");
    assert!(html.contains("0 of 18 tables never written"), "report.html counts the tables never written");
}
