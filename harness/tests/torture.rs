//! End-to-end runs of the `dbtorture` binary: real forked workers, real SIGKILLs, real files.

mod common;
use common::*;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

fn run(args: &[&str]) -> Output {
    bin().current_dir(root()).args(args).output().expect("run dbtorture")
}

/// A scenario file in `dir` from the smoke scenario, on the sqlite backend only, with some lines replaced.
fn scenario(dir: &Path, name: &str, edits: &[(&str, &str)]) -> PathBuf {
    let mut s = std::fs::read_to_string(root().join("scenarios/smoke.toml")).unwrap();
    s = s.replace("backends = [\"sqlite\", \"bdbenv\"]", "backends = [\"sqlite\"]");
    s = s.lines().filter(|l| !l.starts_with("bdbenv = ")).collect::<Vec<_>>().join("\n");
    s = s.replace("cycle_ms = 1000", "cycle_ms = 30000").replace("probe_ms = 1000", "probe_ms = 15000");
    for (from, to) in edits {
        assert!(s.contains(from), "smoke.toml has no {from:?}");
        s = s.replacen(from, to, 1);
    }
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, s).unwrap();
    p
}

#[test]
fn smoke_run_kills_workers_stays_clean_and_writes_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let sc = scenario(tmp.path(), "smoke-sqlite", &[]);
    let o = run(&["run", sc.to_str().unwrap(), "--cycles", "20", "--out", out.to_str().unwrap(), "-q"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    for k in ["scenario", "seed", "cycles", "kills", "outcomes", "unexpected", "cycles_per_sec", "duration_s"] {
        assert!(s.get(k).is_some(), "summary.json lacks {k}: {s}");
    }
    assert_eq!(s["cycles"], 20);
    assert_eq!(s["unexpected"], 0);
    assert_eq!(s["outcomes"]["sqlite"]["clean"], 20);
    assert!(s["kills"].as_u64().unwrap() >= 5, "too few kills: {s}");
    let ev = events(&out);
    assert_eq!(ev.iter().filter(|e| e["event"] == "cycle-end").count(), 20);
    let kills: Vec<_> = ev.iter().filter(|e| e["event"] == "kill").collect();
    assert_eq!(kills.len() as u64, s["kills"].as_u64().unwrap());
    assert!(kills.iter().any(|k| k["kill"]["trigger"] == "point"), "no crash-point kill in 20 mixed cycles");
    assert!(kills.iter().any(|k| k["kill"]["trigger"] == "time"), "no random-time kill in 20 mixed cycles");
    assert!(ev.last().unwrap()["event"] == "run-end");
}

#[test]
fn same_seed_gives_same_plans_and_verdicts() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = scenario(tmp.path(), "det", &[]);
    let plans = |seed: &str, dir: &str| {
        let out = tmp.path().join(dir);
        let o = run(&["run", sc.to_str().unwrap(), "--cycles", "8", "--seed", seed, "--out", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        events(&out)
            .into_iter()
            .filter(|e| e["event"] == "cycle-start" || e["event"] == "cycle-end")
            .map(|e| format!("{} {} {}", e["cycle"], e["plan"], e["outcome"]))
            .collect::<Vec<_>>()
    };
    let a = plans("7", "a");
    assert_eq!(a, plans("7", "b"));
    assert_ne!(a, plans("8", "c"));
}

#[test]
fn a_kill_at_every_sqlite_crash_point_leaves_a_clean_database() {
    let tmp = tempfile::tempdir().unwrap();
    let points: Vec<String> = dbtorture_backends::crash::points_of("sqlite").map(str::to_string).collect();
    assert!(points.len() >= 16);
    for p in &points {
        let sc = scenario(
            tmp.path(),
            "point",
            &[
                ("mode = \"mixed\"", &format!("mode = \"crash-point\"\npoint = \"{p}\"")),
                ("hit_max = 12", "hit_max = 3"),
            ],
        );
        let out = tmp.path().join("out");
        let o = run(&["run", sc.to_str().unwrap(), "--cycles", "3", "--out", out.to_str().unwrap(), "-q"]);
        assert_eq!(o.status.code(), Some(0), "kill at {p}: {}", text(&o));
        let ev = events(&out);
        let at_point = ev
            .iter()
            .filter(|e| e["event"] == "kill" && e["kill"]["trigger"] == "point")
            .filter(|e| e["kill"]["last_point"] == p.as_str())
            .count();
        assert!(at_point >= 1, "no worker was stopped at {p}: {ev:#?}");
    }
}

#[test]
fn a_worker_that_overruns_the_cycle_timeout_is_a_hang_not_a_hung_harness() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = scenario(
        tmp.path(),
        "hang",
        &[
            ("mode = \"mixed\"", "mode = \"none\""),
            ("txns_per_writer = 6", "txns_per_writer = 1000000"),
            ("cycle_ms = 30000", "cycle_ms = 300"),
            ("sqlite = [\"clean\"]", "sqlite = [\"hang\"]"),
        ],
    );
    let out = tmp.path().join("out");
    let o = run(&["run", sc.to_str().unwrap(), "--cycles", "2", "--out", out.to_str().unwrap(), "-q"]);
    // The run ends, and fails: no fault of these cycles explains a hang (sqlite's table in
    // db-backends/src/explain.rs), even though the expect list allows the outcome.
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let ev = events(&out);
    let ends: Vec<_> = ev.iter().filter(|e| e["event"] == "cycle-end").collect();
    assert_eq!(ends.len(), 2);
    assert!(ends.iter().all(|e| e["outcome"] == "hang"), "{ends:#?}");
    // The overrunning writers were killed by the timeout, and the database is still consistent: the only
    // findings are the unexplained hangs.
    assert!(ev.iter().any(|e| e["event"] == "kill" && e["kill"]["trigger"] == "timeout"));
    let findings: Vec<_> = ev.iter().filter(|e| e["event"] == "finding").collect();
    assert_eq!(findings.len(), 2, "{findings:#?}");
    assert!(
        findings.iter().all(|f| f["finding"]["kind"] == "unexplained"
            && f["finding"]["message"].as_str().unwrap().contains("the cycle hung")),
        "a timeout must not damage the database: {findings:#?}"
    );
}

#[test]
fn malformed_scenario_names_file_and_field_and_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = scenario(tmp.path(), "bad", &[("writers = 2", "writers = \"two\"")]);
    let o = run(&["run", sc.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(t.contains("bad.toml") && t.contains("workload.writers"), "{t}");
}

#[test]
fn verify_exit_codes_clean_findings_and_usage() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let sc = scenario(tmp.path(), "two", &[]);
    let o = run(&["run", sc.to_str().unwrap(), "--cycles", "2", "-q", "--workdir", work.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let db = work.join("sqlite/db");
    let o = run(&["verify", "--backend", "sqlite", db.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Remove one Name row behind the backend's back: a missing index entry.
    let conn = rusqlite::Connection::open(db.join("rpmdb.sqlite")).unwrap();
    conn.execute_batch("DELETE FROM Name WHERE rowid = (SELECT max(rowid) FROM Name)").unwrap();
    drop(conn);
    let o = run(&["verify", "--backend", "sqlite", db.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("missing index entry: Name"), "{}", text(&o));
    let o = run(&["verify", "--backend", "sqlite", tmp.path().join("nothing").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = run(&["verify", "--backend", "nosuch", db.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn list_shows_scenarios_backends_and_crash_points() {
    let o = run(&["list"]);
    assert!(o.status.success());
    let t = text(&o);
    assert!(t.contains("smoke.toml") && t.contains("sqlite-kill.toml"), "{t}");
    assert!(t.contains("sqlite.commit.before") && t.contains("atomic: true"), "{t}");
    assert!(!t.contains("INVALID"), "{t}");
}

#[test]
fn refuses_a_system_rpmdb_workdir_without_the_flag() {
    let o = run(&["run", "scenarios/smoke.toml", "--workdir", "/var/lib/rpm/x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--allow-system-db"));
    assert!(!Path::new("/var/lib/rpm/x").exists());
}

#[test]
fn a_corrupt_database_is_a_finding_not_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let sc = scenario(tmp.path(), "one", &[]);
    let o = run(&["run", sc.to_str().unwrap(), "--cycles", "1", "-q", "--workdir", work.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let db = work.join("sqlite/db");
    let file = db.join("rpmdb.sqlite");
    let mut bytes = std::fs::read(&file).unwrap();
    // A zero-filled page in the middle of the file, as a lost write-back would leave.
    let page = 4096;
    let mid = (bytes.len() / page / 2) * page;
    bytes[mid..mid + page].fill(0);
    std::fs::write(&file, &bytes).unwrap();
    let o = run(&["verify", "--backend", "sqlite", db.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    // Garbage instead of a database.
    std::fs::write(&file, vec![0x5a; 3 * page]).unwrap();
    let o = run(&["verify", "--backend", "sqlite", db.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("database cannot be opened"), "{}", text(&o));
}

#[test]
fn workers_die_with_the_scheduler() {
    use std::os::unix::process::CommandExt;
    // Become the reaper of orphans, so the run's workers are reparented to (and reaped by) this test.
    nix::sys::prctl::set_child_subreaper(true).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let sc = scenario(
        tmp.path(),
        "long",
        &[
            ("mode = \"mixed\"", "mode = \"none\""),
            ("txns_per_writer = 6", "txns_per_writer = 1000000"),
            ("queries_per_reader = 100", "queries_per_reader = 1000000000"),
        ],
    );
    let mut child = bin()
        .current_dir(root())
        .args(["run", sc.to_str().unwrap(), "--cycles", "1", "-q", "--out", out.to_str().unwrap()])
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = child.id() as i32;
    // Wait (bounded) until the workers have started committing, then kill only the scheduler.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let workers: Vec<i32> = loop {
        let kids: Vec<i32> = std::fs::read_to_string(format!("/proc/{pgid}/task/{pgid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if kids.len() >= 3 {
            break kids;
        }
        assert!(std::time::Instant::now() < deadline, "workers never started");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pgid), nix::sys::signal::Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    for w in workers {
        let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(w), None).unwrap();
        // SIGKILL from PR_SET_PDEATHSIG, or — forked in the instant the scheduler died, before it could ask
        // for that signal — the child's own check of its parent.
        assert!(
            matches!(
                st,
                nix::sys::wait::WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGKILL, _)
                    | nix::sys::wait::WaitStatus::Exited(_, dbtorture::sys::ORPHANED)
            ),
            "worker {w} ended with {st:?}, not with the scheduler"
        );
    }
}

#[test]
fn sweep_mode_kills_at_every_sqlite_crash_point_and_reports_coverage() {
    let tmp = tempfile::tempdir().unwrap();
    let sc =
        scenario(tmp.path(), "sweep", &[("mode = \"mixed\"", "mode = \"sweep\""), ("hit_max = 12", "hit_max = 1")]);
    let points: Vec<&str> = dbtorture_backends::crash::points_of("sqlite").collect();
    let out = tmp.path().join("out");
    let cycles = points.len().to_string();
    let o = run(&["run", sc.to_str().unwrap(), "--cycles", &cycles, "-q", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    for p in points {
        let c = &s["coverage"][p];
        assert_eq!(c["armed"], 1, "{p} not armed exactly once: {}", s["coverage"]);
        assert_eq!(c["kills"], 1, "no kill landed at {p}");
        assert_eq!(c["outcomes"]["clean"], 1, "{p}: {c}");
    }
    assert!(text(&o).contains(&format!("kill-point coverage: {cycles} of {cycles}")), "{}", text(&o));
}

#[test]
fn selftest_detects_every_planted_bug_and_passes_without_one() {
    let o = run(&["selftest", "--budget", "3s"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    for bug in dbtorture_backends::planted::ALL {
        let line =
            t.lines().find(|l| l.starts_with(bug.name)).unwrap_or_else(|| panic!("no row for {}: {t}", bug.name));
        assert!(line.contains("detected"), "{line}");
        let cycles: u64 = line.split_whitespace().nth(5).and_then(|c| c.parse().ok()).unwrap_or(0);
        assert!(cycles >= 1, "a detection needs a cycle that ran: {line}");
    }
    // The unplanted baselines: sqlite and bdbenv by default and under power cuts, rebuilds under power cuts,
    // sqlite under injected I/O errors, and bdbenv under each kind of kill a planted bug needs.
    assert_eq!(t.lines().filter(|l| l.starts_with("none") && l.contains("clean")).count(), 8, "{t}");
    assert_eq!(t.lines().filter(|l| l.starts_with("none") && l.contains("power-cut")).count(), 2, "{t}");
    for fault in ["power-rb", "io-errors", "kills", "kill-point"] {
        assert!(t.lines().any(|l| l.starts_with("none") && l.contains(fault) && l.contains("clean")), "{fault}: {t}");
    }
}

#[test]
fn memory_pressure_puts_workers_in_a_limited_cgroup_and_records_memory_events() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = run(&["run", "scenarios/memory-pressure.toml", "--cycles", "8", "-q", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let events: Vec<Value> = std::fs::read_to_string(out.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .collect();
    let mem: Vec<String> = events
        .iter()
        .filter(|e| e["event"] == "fault" && e["kind"] == "memory")
        .map(|e| e["detail"].as_str().unwrap().to_string())
        .collect();
    let first = mem.first().expect("the run says how memory pressure is applied");
    if first.starts_with("memory cgroup") {
        // One event per cycle and backend with the cgroup's counters, and the cgroup was really hit.
        let counters: Vec<&Value> = events.iter().filter(|e| e["event"] == "memory").collect();
        assert!(counters.len() >= 16, "{counters:#?}");
        assert!(counters.iter().map(|e| e["limit_hits"].as_u64().unwrap()).sum::<u64>() > 0, "{counters:#?}");
        // The cgroup is gone after the run.
        let path = first.split(" at ").nth(1).unwrap().split(':').next().unwrap();
        assert!(!Path::new(path).exists(), "{path} was left behind");
    } else {
        eprintln!("no writable memory cgroup here: {first}");
        assert!(first.contains("no writable memory cgroup") && first.contains("using the balloon"), "{first}");
    }
}
