//! Lanes (`run --jobs N`): the same cycles, seeds and summary as `--jobs 1`, in the same event order; shards
//! compose with lanes; a `--duration` run with lanes runs whole epochs; bundles of failing cycles in lanes
//! replay; memory pressure and power loss run per lane. (Ctrl-C/SIGTERM with lanes: tests/reports.rs.)

mod common;
use common::*;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

/// smoke.toml narrowed to one backend with kills at crash points only and no readers (deterministic), epochs
/// of 3 cycles; `writers` writers.
fn deterministic(dir: &Path, backend: &str, writers: u32) -> PathBuf {
    let mut s = std::fs::read_to_string(root().join("scenarios/smoke.toml")).unwrap();
    s = s.replace("backends = [\"sqlite\", \"bdbenv\"]", &format!("backends = [\"{backend}\"]\nepoch = 3"));
    let other = if backend == "sqlite" { "bdbenv = " } else { "sqlite = " };
    s = s.lines().filter(|l| !l.starts_with(other)).collect::<Vec<_>>().join("\n");
    s = s.replace("mode = \"mixed\"", "mode = \"crash-point\"").replace("readers = 1", "readers = 0");
    s = s.replace("writers = 2", &format!("writers = {writers}"));
    s = s.replace("cycle_ms = 1000", "cycle_ms = 30000").replace("probe_ms = 1000", "probe_ms = 15000");
    let p = dir.join(format!("det-{backend}.toml"));
    std::fs::write(&p, s).unwrap();
    p
}

fn run(sc: &Path, out: &Path, extra: &[&str]) -> Output {
    bin()
        .current_dir(root())
        .args(["run", sc.to_str().unwrap(), "-q", "--out", out.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap()
}

/// The summary without what timing decides (seconds, rates, where and when it ran).
fn untimed(out: &Path) -> Value {
    let mut v = json(&out.join("summary.json"));
    let o = v.as_object_mut().unwrap();
    for k in ["duration_s", "cycles_per_sec", "kills_per_sec", "environment"] {
        assert!(o.remove(k).is_some(), "summary.json has no {k}");
    }
    for r in o["runs"].as_array_mut().unwrap() {
        let r = r.as_object_mut().unwrap();
        r.remove("duration_s");
        r.remove("environment");
    }
    for t in o["per_backend"].as_object_mut().unwrap().values_mut() {
        assert!(t["duration_s"].as_f64().unwrap() > 0.0, "a backend's cycles took time: {t}");
        t.as_object_mut().unwrap().remove("duration_s");
    }
    for f in o["failures"].as_array_mut().unwrap() {
        for k in f["kills"].as_array_mut().unwrap() {
            k.as_object_mut().unwrap().remove("at_ms");
        }
    }
    v
}

/// The cycle-start and cycle-end events in file order, without their times.
fn cycle_events(out: &Path) -> Vec<String> {
    events(out)
        .into_iter()
        .filter(|e| e["event"] == "cycle-start" || e["event"] == "cycle-end")
        .map(|mut e| {
            e.as_object_mut().unwrap().remove("duration_ms");
            e.to_string()
        })
        .collect()
}

fn lanes_used(work: &Path) -> usize {
    (1..=8).filter(|i| work.join(format!("lane-{i}")).is_dir()).count()
}

fn same_as_one_lane(backend: &str, writers: u32, extra: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let sc = deterministic(tmp.path(), backend, writers);
    let (one, two, work) = (tmp.path().join("one"), tmp.path().join("two"), tmp.path().join("work"));
    let o = run(&sc, &one, &[&["--cycles", "12", "--jobs", "1"], extra].concat());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let args = [&["--cycles", "12", "--jobs", "2", "--workdir", work.to_str().unwrap()], extra].concat();
    let o = run(&sc, &two, &args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(lanes_used(&work), 2, "--jobs 2 ran two lanes");
    let (a, b) = (untimed(&one), untimed(&two));
    assert!(a["kills"].as_u64().unwrap() > 0, "the comparison needs kills");
    assert!(a["cycles"].as_u64().unwrap() > 0);
    assert_eq!(a, b, "--jobs 2's summary differs from --jobs 1's");
    assert_eq!(cycle_events(&one), cycle_events(&two), "events.jsonl's cycles are not in --jobs 1's order");
}

#[test]
fn two_lanes_sum_to_one_lanes_summary_sqlite() {
    same_as_one_lane("sqlite", 2, &[]);
}

#[test]
fn two_lanes_sum_to_one_lanes_summary_bdbenv() {
    same_as_one_lane("bdbenv", 1, &[]);
}

#[test]
fn shards_compose_with_lanes() {
    // 12 cycles in epochs of 3: shard 1/2 runs epochs 0 and 2 (cycles 0-2, 6-8), one per lane.
    same_as_one_lane("sqlite", 2, &["--shard", "1/2"]);
}

#[test]
fn a_timed_run_with_lanes_runs_whole_epochs_and_pins_them() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = deterministic(tmp.path(), "sqlite", 2);
    let out = tmp.path().join("out");
    let o = run(&sc, &out, &["--duration", "1s", "--jobs", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s = json(&out.join("summary.json"));
    let cycles = s["cycles"].as_u64().unwrap();
    assert!(cycles >= 3 && cycles.is_multiple_of(3), "lanes finish whole epochs of 3: {cycles} cycles");
    // Every epoch taken was run to its end, so the cycles run are exactly 0..cycles: pinned as --cycles.
    assert!(s["replay"].as_str().unwrap().ends_with(&format!("--cycles {cycles}")), "{}", s["replay"]);
    let mut seen: Vec<u64> =
        events(&out).iter().filter(|e| e["event"] == "cycle-end").map(|e| e["cycle"].as_u64().unwrap()).collect();
    seen.sort();
    assert_eq!(seen, (0..cycles).collect::<Vec<_>>());
}

#[test]
fn the_last_line_says_how_many_lanes_and_a_timed_run_takes_one_unless_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = deterministic(tmp.path(), "sqlite", 2);
    let o = run(&sc, &tmp.path().join("two"), &["--cycles", "6", "--jobs", "2"]);
    assert!(text(&o).contains("unexpected of 6 cycles in 2 lanes;"), "{}", text(&o));
    // No --jobs: a --duration run keeps one lane (a lane would finish a whole epoch after the time is up).
    let o = run(&sc, &tmp.path().join("timed"), &["--duration", "1s"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!text(&o).contains(" lanes;"), "{}", text(&o));
}

#[test]
fn failing_cycles_in_lanes_leave_bundles_that_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = deterministic(tmp.path(), "sqlite", 2);
    let out = tmp.path().join("out");
    let o = bin()
        .current_dir(root())
        .env("DBTORTURE_PLANT", "sqlite-skip-index-row")
        .args(["run", sc.to_str().unwrap(), "--cycles", "6", "--jobs", "2", "-q", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let s = json(&out.join("summary.json"));
    let failures = s["failures"].as_array().unwrap();
    assert!(failures.iter().any(|f| f["cycle"].as_u64().unwrap() >= 3), "the second lane's epoch failed too");
    let bundles: Vec<_> = std::fs::read_dir(out.join("bundles")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(bundles.len(), failures.len(), "one bundle per failing cycle, none overwritten: {bundles:?}");
    for f in failures {
        let b = out.join(f["bundle"].as_str().unwrap());
        assert!(b.ends_with(format!("cycle-{:05}-sqlite.tar.gz", f["cycle"].as_u64().unwrap())), "{}", b.display());
        assert!(b.is_file(), "{}", b.display());
    }
    let last = out.join(failures.last().unwrap()["bundle"].as_str().unwrap());
    let r = bin().current_dir(root()).arg("replay").arg(&last).output().unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", text(&r));
    assert!(text(&r).contains("same verdict"), "{}", text(&r));
}

#[test]
fn memory_pressure_runs_a_cgroup_and_balloon_per_lane() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = std::fs::read_to_string(root().join("scenarios/memory-pressure.toml")).unwrap();
    assert!(!s.contains("\nepoch"), "the test sets the epoch");
    s = s.replacen("\n[workload]", "\nepoch = 1\n\n[workload]", 1);
    let sc = tmp.path().join("mem.toml");
    std::fs::write(&sc, s).unwrap();
    let out = tmp.path().join("out");
    let o = run(&sc, &out, &["--cycles", "2", "--jobs", "2"]);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", text(&o));
    let notes: Vec<String> = events(&out)
        .iter()
        .filter(|e| e["event"] == "fault" && e["kind"] == "memory")
        .map(|e| e["detail"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(notes.len(), 2, "each lane says what memory pressure it runs: {notes:?}");
    if notes.iter().all(|n| n.starts_with("memory cgroup")) {
        assert_ne!(notes[0], notes[1], "one cgroup per lane, named after the lane's process");
    } else {
        eprintln!("no memory cgroup here (balloon only): {notes:?}");
    }
    // Balloons that could not fit the machine together are refused before anything runs.
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let total_mb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .parse::<u64>()
        .unwrap()
        / 1024;
    let big = std::fs::read_to_string(&sc)
        .unwrap()
        .replace("balloon_mb = 30", &format!("balloon_mb = {}", total_mb / 2 + 1))
        .replace("limit_mb = 32", &format!("limit_mb = {}", total_mb / 2));
    std::fs::write(&sc, big).unwrap();
    let o = run(&sc, &tmp.path().join("big"), &["--cycles", "2", "--jobs", "2"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--jobs 2"), "{}", text(&o));
}

#[test]
fn power_loss_records_per_lane() {
    if let Some(why) = fuse_missing(&[]) {
        assert!(std::env::var_os("CI").is_none(), "CI must run the power-loss tests: {why}");
        eprintln!("skipped: {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut s = std::fs::read_to_string(root().join("scenarios/power-loss.toml")).unwrap();
    s = s.replace("backends = [\"sqlite\", \"bdbenv\", \"libdb\"]", "backends = [\"sqlite\"]\nepoch = 1");
    s = s.lines().filter(|l| !l.starts_with("bdbenv = ") && !l.starts_with("libdb = ")).collect::<Vec<_>>().join("\n");
    let sc = tmp.path().join("pl.toml");
    std::fs::write(&sc, s).unwrap();
    let (out, work) = (tmp.path().join("out"), tmp.path().join("work"));
    let o = run(&sc, &out, &["--cycles", "2", "--jobs", "2", "--workdir", work.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(lanes_used(&work), 2);
    let s = json(&out.join("summary.json"));
    assert_eq!(s["cycles"].as_u64(), Some(2));
}

#[test]
fn run_help_says_what_lanes_change() {
    let h = String::from_utf8_lossy(&bin().args(["run", "--help"]).output().unwrap().stdout).into_owned();
    for w in ["--jobs", "one per CPU", "--duration", "cycle order"] {
        assert!(h.contains(w), "run --help lacks {w:?}: {h}");
    }
}
