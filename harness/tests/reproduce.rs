//! From a red run to a reproduction: bundles by policy (a lost-write run keeps a bundle of every cycle with a
//! finding, which `inspect` reads and `replay` reproduces), what the terminal prints (each failing cycle's
//! bundle and replay command, "and N more", the planted bug, the cycles a `--duration` run ran, PASS/FAIL
//! with the out directory), replay paths in the reports that work from the current directory, and a refused
//! merge that leaves nothing behind.

mod common;
use common::*;

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// (cycle, backend) of every event of `kind` in a run's events.
fn cycles_with(events: &[Value], kind: &str) -> BTreeSet<(u64, String)> {
    events
        .iter()
        .filter(|e| e["event"] == kind)
        .filter_map(|e| Some((e["cycle"].as_u64()?, e["backend"].as_str()?.to_string())))
        .collect()
}

/// `inspect`: the backend is our BDB-style re-creation, which `dbtorture inspect` reads (real BDB 5.3's region
/// layout is its own: its bundles have pre/ and post/ but no inspect.json).
fn lost_write_runs(tmp: &Path, scenario: &str, backend: &str, inspect: bool, first_seed: usize) -> bool {
    // Whether a stale page lands on a live lock is timing: take the first of a few seeds that shows findings.
    let mut tried = Vec::new();
    let (out, t, ev, found) = loop {
        let seed = first_seed + tried.len();
        let out = tmp.join(format!("out-{seed}"));
        let o = bin()
            .args(["run", root().join("scenarios").join(scenario).to_str().unwrap(), "--cycles", "3", "-q"])
            .args(["--seed", &seed.to_string(), "--out"])
            .arg(&out)
            .output()
            .unwrap();
        let t = text(&o);
        assert_eq!(o.status.code(), Some(0), "every outcome of the lost-write scenario is allowed: {t}");
        let ev = events(&out);
        let found = cycles_with(&ev, "finding");
        if !found.is_empty() {
            break (out, t, ev, found);
        }
        tried.push(seed);
        assert!(tried.len() < 4, "seeds {tried:?} of {scenario} produced no findings: {t}");
    };
    let bundled = cycles_with(&ev, "bundle");
    assert_eq!(found, bundled, "every cycle with a finding keeps a bundle (bundles = \"findings\")");
    assert!(t.contains(&format!("bundles: {} in", bundled.len())), "{t}");
    assert!(t.contains("PASS:") && t.contains(&out.display().to_string()), "{t}");
    let mut archives: Vec<_> = std::fs::read_dir(out.join("bundles")).unwrap().map(|e| e.unwrap().path()).collect();
    archives.sort();
    assert_eq!(archives.len(), bundled.len());
    for b in &archives {
        let opened = dbtorture::bundle::open(b).unwrap();
        for part in ["pre", "post", "bundle.json"] {
            assert!(opened.dir.join(part).exists(), "{} lacks {part}", b.display());
        }
        assert_eq!(opened.dir.join("inspect.json").exists(), inspect, "{}", b.display());
        let info: Value =
            serde_json::from_str(&std::fs::read_to_string(opened.dir.join("bundle.json")).unwrap()).unwrap();
        assert_eq!(info["schema"], 2);
        // The replay command names the archive as it can be reached from here.
        assert_eq!(info["replay"].as_str().unwrap(), format!("dbtorture replay {}", b.display()));
        if inspect {
            let i = bin().args(["inspect", "--backend", backend]).arg(opened.dir.join("post")).output().unwrap();
            assert!(matches!(i.status.code(), Some(0 | 1)), "inspect reads the damaged region: {}", text(&i));
        }
    }
    // Concurrency (and, for real BDB, its own timing) makes a cycle's verdict vary a little; one of the bundles
    // must replay to its own.
    archives.iter().any(|b| {
        let r = bin().arg("replay").arg(b).output().unwrap();
        r.status.code() == Some(0) && String::from_utf8_lossy(&r.stdout).contains("same verdict")
    })
}

/// A lost-write run with a fixed seed keeps bundles of every cycle with a finding; `inspect` reads them and
/// one replays to its verdict. Whether a replay lands the stale page as the run did is timing (for real BDB
/// also its own): a run whose bundles all replay differently is retried from the next seeds, a few times.
fn lost_write(scenario: &str, backend: &str, inspect: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let replayed = (0..3)
        .any(|round| lost_write_runs(&tmp.path().join(format!("r{round}")), scenario, backend, inspect, 3 + 4 * round));
    assert!(replayed, "no bundle of {scenario} replayed to its verdict in three runs");
}

#[test]
fn a_lost_write_run_keeps_bundles_that_inspect_reads_and_replay_reproduces() {
    lost_write("lock-region-lost-write.toml", "bdbenv", true);
}

#[test]
fn the_libdb_lost_write_run_keeps_bundles_too() {
    if !dbtorture_backends::libdb::BUILT {
        let why = "built without the `libdb` feature (needs libdb5.3-dev)";
        assert!(std::env::var_os("CI").is_none(), "CI must run the libdb tests: {why}");
        eprintln!("SKIPPED: {why}");
        return;
    }
    lost_write("libdb-lost-write.toml", "libdb", false);
}

const PLANTED: &str = r#"
name = "planted-skip-row"
backends = ["sqlite"]
[workload]
packages = 30
versions = 3
files_mean = 4
writers = 2
readers = 0
txns_per_writer = 6
[kill]
mode = "none"
[timeouts]
cycle_ms = 5000
probe_ms = 5000
[expect]
sqlite = ["clean"]
"#;

#[test]
fn a_red_run_prints_each_failure_with_a_bundle_and_a_replay_that_work_from_here() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("planted.toml"), PLANTED).unwrap();
    // Relative paths, run from the temporary directory: what a user types.
    let o = bin()
        .current_dir(tmp.path())
        .args(["run", "planted.toml", "--cycles", "14", "--seed", "2", "-q", "--out", "out"])
        .env("DBTORTURE_PLANT", "sqlite-skip-index-row")
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(1), "{t}");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("out/summary.json")).unwrap()).unwrap();
    let unexpected = summary["unexpected"].as_u64().unwrap();
    assert!(unexpected > 10, "the planted bug fails most cycles: {t}");
    assert_eq!(t.matches("unexpected: cycle ").count(), 10, "{t}");
    assert!(t.contains(&format!("and {} more unexpected", unexpected - 10)), "{t}");
    // Every listed bundle exists from the current directory, and its replay command says so.
    let bundles: Vec<&str> = t.lines().filter_map(|l| l.trim().strip_prefix("bundle: ")).collect();
    assert_eq!(bundles.len(), 10, "{t}");
    for b in &bundles {
        assert!(tmp.path().join(b).is_file(), "{b} is not reachable from the run's directory");
        // The bundle records the planted bug, so its replay needs no DBTORTURE_PLANT.
        assert!(t.contains(&format!("replay: dbtorture replay {b}")), "{t}");
    }
    // The run-level command pins seed and cycles and carries the planted bug.
    assert!(
        t.contains("run again: DBTORTURE_PLANT=sqlite-skip-index-row dbtorture run planted.toml --seed 2 --cycles 14"),
        "{t}"
    );
    assert!(t.lines().last().unwrap().starts_with("FAIL:") && t.contains("reports in out"), "{t}");
    // The reports' replay commands work from the same directory.
    for f in summary["failures"].as_array().unwrap() {
        let r = f["replay"].as_str().unwrap();
        let path = r.rsplit(' ').next().unwrap();
        assert!(path.starts_with("out/bundles/") && tmp.path().join(path).is_file(), "{r}");
    }
    let junit = std::fs::read_to_string(tmp.path().join("out/junit.xml")).unwrap();
    assert!(junit.contains("dbtorture replay out/bundles/cycle-"), "{junit}");
}

#[test]
fn a_duration_run_pins_the_cycles_it_ran() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = tmp.path().join("clean.toml");
    std::fs::write(&sc, PLANTED).unwrap();
    let out = tmp.path().join("out");
    let o = bin()
        .args(["run", sc.to_str().unwrap(), "--duration", "2s", "--seed", "5", "-q", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{t}");
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let cycles = summary["cycles"].as_u64().unwrap();
    assert!(cycles > 0);
    let want = format!("--seed 5 --cycles {cycles}");
    assert!(summary["replay"].as_str().unwrap().ends_with(&want), "{}", summary["replay"]);
    assert!(t.contains(&format!("run again: dbtorture run {} {want}", sc.display())), "{t}");
    assert!(!t.contains("--duration"), "{t}");
    assert!(t.lines().last().unwrap().starts_with("PASS:"), "{t}");
}

#[test]
fn a_refused_merge_leaves_no_output_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let mut dirs = Vec::new();
    for name in ["a", "b"] {
        let sc = tmp.path().join(format!("{name}.toml"));
        std::fs::write(&sc, PLANTED.replace("planted-skip-row", name)).unwrap();
        let out = tmp.path().join(format!("out-{name}"));
        let o = bin().args(["run", sc.to_str().unwrap(), "--cycles", "1", "-q", "--out"]).arg(&out).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        dirs.push(out);
    }
    let merged = tmp.path().join("merged");
    let o = bin().arg("merge").args(&dirs).arg("--out").arg(&merged).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "runs of different scenarios do not merge: {}", text(&o));
    assert!(!Path::new(&merged.join("events.jsonl")).exists());
    assert!(!merged.exists(), "the refused merge created {} and left it", merged.display());
}

#[test]
fn convert_to_rpm_is_refused_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("rpmdb.sqlite"), b"").unwrap();
    let o = bin().args(["convert", "--from", "sqlite", "--to", "rpm"]).arg(&dir).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = bin().args(["convert", "--from", "bdbenv", "--to", "sqlite"]).arg(&dir).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "no bdbenv database there: {}", text(&o));
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["db"], "nothing beside the database");
}

#[test]
fn a_rebuild_that_fails_half_way_leaves_no_half_built_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let wd = tmp.path().join("wd");
    let o = bin()
        .args(["run", root().join("scenarios/smoke.toml").to_str().unwrap(), "--cycles", "1", "-q", "--backend"])
        .args(["sqlite", "--workdir"])
        .arg(&wd)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Into the rpm backend the copy fails at the first package (the database holds no .rpm files): what
    // `convert --to rpm` did before it was refused. The half-built DIR.rebuilddb.PID must go with the error.
    let dir = wd.join("sqlite/db");
    let r = dbtorture_backends::rebuild::rebuilddb(
        dbtorture_backends::BackendKind::Sqlite,
        dbtorture_backends::BackendKind::Rpm,
        &dir,
    );
    assert!(r.is_err(), "{r:?}");
    let left: Vec<_> = std::fs::read_dir(wd.join("sqlite")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["db"]);
}
