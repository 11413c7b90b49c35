//! Honest verdicts, end to end: every way a worker can end reaches the report; bad input of any kind is
//! exit 2 in every subcommand; a run that runs nothing does not pass; broken pipes end quietly.

mod common;

use common::{bin, events, root, text};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn scenario(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, body).unwrap();
    p
}

fn code(cmd: &mut Command) -> (Option<i32>, String) {
    let o = cmd.output().unwrap();
    (o.status.code(), text(&o))
}

#[test]
fn bad_input_is_exit_2_in_every_subcommand() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let file = t.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let not_bundle = t.join("junk.tar.gz");
    std::fs::write(&not_bundle, "not gzip").unwrap();
    let empty = t.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let other_point = scenario(
        t,
        "other-point",
        "name='t'\nbackends=['sqlite']\n[kill]\nmode='crash-point'\npoint='bdbenv.sync.before'\n[expect]\nsqlite=['clean']\n",
    );
    let smoke = root().join("scenarios/smoke.toml");
    let smoke = smoke.to_str().unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    // (what, arguments, environment)
    type Case<'a> = (&'a str, Vec<String>, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        ("--cycles 0", vec!["run".into(), smoke.into(), "--cycles".into(), "0".into()], vec![]),
        ("--duration 0s", vec!["run".into(), smoke.into(), "--duration".into(), "0s".into()], vec![]),
        // 10 cycles are one epoch of 50: the last of three shards has none, counted from 0 or from 1.
        (
            "empty shard",
            vec!["run".into(), smoke.into(), "--cycles".into(), "10".into(), "--shard".into(), "2/3".into()],
            vec![],
        ),
        ("kill point of another backend", vec!["run".into(), s(&other_point)], vec![]),
        ("--backend not in scenario", vec!["run".into(), smoke.into(), "--backend".into(), "libdb".into()], vec![]),
        (
            "--out is a file",
            vec!["run".into(), smoke.into(), "--cycles".into(), "1".into(), "--out".into(), s(&file)],
            vec![],
        ),
        (
            "unknown planted bug",
            vec!["run".into(), smoke.into(), "--cycles".into(), "1".into()],
            vec![("DBTORTURE_PLANT", "nonsense")],
        ),
        ("replay of junk", vec!["replay".into(), s(&not_bundle)], vec![]),
        ("shrink of junk", vec!["shrink".into(), s(&not_bundle)], vec![]),
        ("replay of nothing", vec!["replay".into(), s(&t.join("missing.tar.gz"))], vec![]),
        ("recover a missing database", vec!["recover".into(), "--backend".into(), "sqlite".into(), s(&empty)], vec![]),
        (
            "convert a missing database",
            vec!["convert".into(), "--from".into(), "bdbenv".into(), "--to".into(), "sqlite".into(), s(&empty)],
            vec![],
        ),
        (
            "convert to rpm",
            vec!["convert".into(), "--from".into(), "sqlite".into(), "--to".into(), "rpm".into(), s(&empty)],
            vec![],
        ),
        ("bench bogus", vec!["bench".into(), "bogus".into()], vec![]),
        ("verify unknown backend", vec!["verify".into(), "--backend".into(), "nope".into(), s(&empty)], vec![]),
        (
            "verify a missing database",
            vec!["verify".into(), "--backend".into(), "sqlite".into(), s(&t.join("nowhere"))],
            vec![],
        ),
        ("inspect a sqlite backend", vec!["inspect".into(), "--backend".into(), "sqlite".into(), s(&empty)], vec![]),
        ("merge nothing", vec!["merge".into(), s(&empty), "--out".into(), s(&t.join("m"))], vec![]),
    ];
    for (what, args, env) in cases {
        let mut cmd = bin();
        cmd.current_dir(root()).args(&args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (c, out) = code(&mut cmd);
        assert_eq!(c, Some(2), "{what}: expected exit 2\n{out}");
        assert!(out.contains("error:"), "{what}: a headline\n{out}");
        assert!(!out.contains("panicked"), "{what}: no panic\n{out}");
    }
    // The unknown planted bug is named, with the known ones.
    let (_, out) = code(bin().current_dir(root()).args(["list"]).env("DBTORTURE_PLANT", "nonsense"));
    assert!(out.contains("nonsense") && out.contains("sqlite-skip-index-row"), "{out}");
}

/// A duration shorter than preparing the databases once ended the run before its first cycle: 0 cycles,
/// "PASS", exit 0 and a green junit.xml. Every run that is not interrupted runs at least one cycle.
#[test]
fn a_duration_shorter_than_the_set_up_still_runs_a_cycle() {
    let tmp = tempfile::tempdir().unwrap();
    // Smoke in epochs of 2 cycles: a lane finishes the epoch it took when time is up.
    let text = std::fs::read_to_string(root().join("scenarios/smoke.toml")).unwrap();
    let smoke = scenario(tmp.path(), "smoke-short-epochs", &format!("epoch = 2\n{text}"));
    for jobs in ["1", "2"] {
        let out = tmp.path().join(format!("jobs-{jobs}"));
        let (c, text) = code(
            bin()
                .args(["run", smoke.to_str().unwrap(), "--duration", "1ms", "-q", "--jobs", jobs])
                .arg("--out")
                .arg(&out),
        );
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
        let cycles = summary["cycles"].as_u64().unwrap();
        assert!(cycles >= 1, "--jobs {jobs}: a run that passes ran something (exit {c:?}, {cycles} cycles)\n{text}");
        assert_eq!(c, Some(0), "--jobs {jobs}: smoke's cycles are allowed\n{text}");
        let ends = events(&out).iter().filter(|e| e["event"] == "cycle-end").count() as u64;
        assert_eq!(ends, cycles, "--jobs {jobs}: the summary counts the cycles events.jsonl holds");
    }
}

/// A run whose harness died mid-cycle (SIGKILL, the OOM killer) leaves events.jsonl without its cycle's end
/// and without run-end. Merging it once passed: exit 0, "merged 1 runs", the cycle in flight (and its
/// findings) gone. `run` never exits 0 for a run that did not finish; neither does `merge`.
#[test]
fn a_merge_of_a_run_cut_mid_cycle_does_not_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let smoke = root().join("scenarios/smoke.toml");
    let whole = tmp.path().join("whole");
    let (c, t) = code(
        bin()
            .args(["run", smoke.to_str().unwrap(), "--cycles", "2", "--backend", "sqlite", "-q", "--jobs", "1"])
            .arg("--out")
            .arg(&whole),
    );
    assert_eq!(c, Some(0), "{t}");
    // Not vacuous: the finished run merges and passes.
    let (c, t) = code(bin().arg("merge").arg(&whole).arg("--out").arg(tmp.path().join("m-whole")));
    assert_eq!(c, Some(0), "{t}");
    // The same log cut where the harness died: after the last cycle-start.
    let text = std::fs::read_to_string(whole.join("events.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let last_start = lines.iter().rposition(|l| l.contains("\"event\":\"cycle-start\"")).unwrap();
    let cut = tmp.path().join("cut");
    std::fs::create_dir(&cut).unwrap();
    std::fs::write(cut.join("events.jsonl"), lines[..=last_start].join("\n") + "\n").unwrap();
    let merged = tmp.path().join("m-cut");
    let (c, t) = code(bin().arg("merge").arg(&cut).arg("--out").arg(&merged));
    assert_eq!(c, Some(130), "a merged run that did not finish is interrupted, as `run` says of it\n{t}");
    assert!(t.contains("did not finish") && t.contains("cut"), "the unfinished input is named\n{t}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(merged.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["interrupted"], true, "{summary}");
}

#[test]
fn a_closed_stdout_ends_quietly() {
    for args in [vec!["list"], vec!["list", "--scenarios", "scenarios"]] {
        let mut child =
            bin().current_dir(root()).args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        // The reader is gone (as `| head -1` would be): the rest of the output meets a broken pipe.
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!first.is_empty());
        assert_eq!(o.status.code(), Some(0), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// Children of `pid` whose command line is a dbtorture worker (same binary, forked).
fn children(pid: u32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
        let ppid = stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

/// A signal sent to a worker from outside (here SIGABRT; a SIGSEGV sent with kill is swallowed by Rust's
/// runtime) makes that cycle unexpected as `crashed`, names the signal, and writes a bundle.
#[test]
fn an_unexpected_signal_to_a_worker_is_a_crashed_cycle_with_a_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    // Long cycles without planned faults: the only death is the one this test causes.
    let sc = scenario(
        tmp.path(),
        "slow",
        "name='slow'\nbackends=['sqlite']\n[workload]\npackages=40\nwriters=1\nreaders=1\ntxns_per_writer=400\n\
         queries_per_reader=100000\n[kill]\nmode='none'\n[timeouts]\ncycle_ms=60000\n[expect]\nsqlite=['clean']\n",
    );
    let out = tmp.path().join("out");
    let run = bin()
        .args(["run", sc.to_str().unwrap(), "--cycles", "1", "-q", "--out", out.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the workers (the scheduler's children that are not the probe: the cycle starts with them).
    let start = Instant::now();
    let victim = loop {
        assert!(start.elapsed() < Duration::from_secs(60), "no worker appeared");
        // The workers are forked right after `cycle-start` is written (events are flushed as they happen);
        // before it, the run may run other programs (the system-db guard asks the host rpm for %_dbpath).
        let started = std::fs::read_to_string(out.join("events.jsonl")).is_ok_and(|e| e.contains("\"cycle-start\""));
        if !started {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        // Forks of dbtorture only.
        let mut forks = children(run.id())
            .into_iter()
            .filter(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "dbtorture"));
        if let Some(w) = forks.next() {
            break w;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(victim), nix::sys::signal::Signal::SIGABRT).unwrap();
    let o = run.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "a crashed cycle is unexpected: {}", text(&o));
    let ev = events(&out);
    let end = ev.iter().find(|e| e["event"] == "cycle-end").expect("the cycle ended");
    assert_eq!(end["outcome"], "crashed", "{end}");
    assert_eq!(end["expected"], false);
    assert!(
        ev.iter()
            .any(|e| e["event"] == "worker-exit" && e["end"]["kind"] == "crashed" && e["end"]["signal"] == "SIGABRT"),
        "the worker's end names the signal"
    );
    assert!(
        ev.iter()
            .any(|e| e["event"] == "finding" && e["finding"]["message"].as_str().unwrap_or("").contains("SIGABRT")),
        "a finding names the signal"
    );
    assert!(ev.iter().any(|e| e["event"] == "bundle"), "a bundle was written");
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("name=\"no-crash\"") && junit.contains("<failure"), "{junit}");
}

/// A worker panic reaches the report with its message, as `crashed`, with a bundle.
#[test]
fn a_worker_panic_is_a_crashed_cycle_with_its_message() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = bin()
        .current_dir(root())
        .env("DBTORTURE_PLANT", "sqlite-panic-mid-transaction")
        .args(["run", "scenarios/sqlite-kill.toml", "--cycles", "6", "-q", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let ev = events(&out);
    let panicked = ev
        .iter()
        .find(|e| e["event"] == "worker-exit" && e["end"]["kind"] == "panicked")
        .unwrap_or_else(|| panic!("no panicked worker: {}", text(&o)));
    assert!(panicked["end"]["message"].as_str().unwrap().contains("row cache"), "{panicked}");
    assert!(ev.iter().any(|e| e["event"] == "cycle-end" && e["outcome"] == "crashed"));
    assert!(ev.iter().any(|e| e["event"] == "bundle"));
}

/// The region faults say what they measured, for every engine that runs in our workers: a libdb scenario
/// (real Berkeley DB, not our code) with `mlock = true` reports the region bytes its workers really locked
/// (it once claimed "mlocked" while nothing was), and so does bdbenv.
#[test]
fn mlock_is_measured_for_every_engine_not_claimed() {
    let mut files = vec!["lock-region-lost-write.toml"];
    if dbtorture_backends::libdb::BUILT {
        files.push("libdb-lost-write.toml");
    } else {
        assert!(std::env::var_os("CI").is_none(), "CI builds the libdb backend");
        eprintln!("SKIPPED for libdb: built without the `libdb` feature (needs libdb5.3-dev)");
    }
    for file in files {
        let tmp = tempfile::tempdir().unwrap();
        let s = std::fs::read_to_string(root().join("scenarios").join(file)).unwrap();
        assert!(s.contains("mlock = false"), "{file} has an mlock key");
        let sc = scenario(tmp.path(), "mlock", &s.replace("mlock = false", "mlock = true"));
        let out = tmp.path().join("out");
        let o = bin()
            .args(["run", sc.to_str().unwrap(), "--cycles", "2", "-q", "--out", out.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(matches!(o.status.code(), Some(0 | 1)), "{file}: {}", text(&o));
        let ev = events(&out);
        let m: Vec<_> = ev.iter().filter(|e| e["event"] == "fault" && e["kind"] == "mlock").collect();
        assert_eq!(m.len(), 2, "{file}: one measured mlock event per cycle");
        for e in m {
            let d = e["detail"].as_str().unwrap();
            assert!(d.starts_with("region mappings mlock()ed: w0 "), "{file}: a measured figure: {d}");
            assert!(!d.contains(" 0 KiB"), "{file}: {d}");
        }
    }
}
