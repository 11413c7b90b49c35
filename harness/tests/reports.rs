//! The reports of real runs: summary.json and every event validate against the checked-in JSON schemas,
//! junit.xml against its XSD, report.html renders in headless Chromium; an interrupted run (SIGINT or
//! SIGTERM) leaves all of them valid; N shards merged equal one unsharded run with the same seed.

mod common;
use common::*;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

fn validator(name: &str) -> jsonschema::Validator {
    jsonschema::validator_for(&json(&root().join("reports/schema").join(name))).unwrap()
}

/// Every report in `out` is complete and valid; returns the summary.
fn check_reports(out: &Path) -> Value {
    let summary = json(&out.join("summary.json"));
    let errors: Vec<String> =
        validator("summary.schema.json").iter_errors(&summary).map(|e| format!("{}: {e}", e.instance_path)).collect();
    assert!(errors.is_empty(), "summary.json: {errors:#?}");
    let ev = validator("event.schema.json");
    for e in events(out) {
        let errors: Vec<String> = ev.iter_errors(&e).map(|x| x.to_string()).collect();
        assert!(errors.is_empty(), "{e}: {errors:#?}");
    }
    let cycle_ends = events(out).iter().filter(|e| e["event"] == "cycle-end").count() as u64;
    assert_eq!(summary["cycles"].as_u64(), Some(cycle_ends), "the summary counts exactly the cycles that ended");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.ends_with("</html>\n"), "report.html is complete");
    match Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(root().join("reports/schema/junit.xsd"))
        .arg(out.join("junit.xml"))
        .output()
    {
        Ok(o) => assert!(o.status.success(), "junit.xml: {}", text(&o)),
        Err(e) => {
            eprintln!("SKIP junit.xml schema validation: xmllint not found ({e}); ci/test.sh installs libxml2-utils")
        }
    }
    for entry in std::fs::read_dir(out).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.ends_with(".tmp"), "a temporary file was left: {name}");
    }
    summary
}

/// A sqlite-only scenario with kills at crash points only (deterministic), no readers, short epochs.
fn deterministic_scenario(dir: &Path) -> PathBuf {
    let mut s = std::fs::read_to_string(root().join("scenarios/smoke.toml")).unwrap();
    s = s.replace("backends = [\"sqlite\", \"bdbenv\"]", "backends = [\"sqlite\"]\nepoch = 3");
    s = s.lines().filter(|l| !l.starts_with("bdbenv = ")).collect::<Vec<_>>().join("\n");
    s = s.replace("mode = \"mixed\"", "mode = \"crash-point\"").replace("readers = 1", "readers = 0");
    s = s.replace("cycle_ms = 1000", "cycle_ms = 30000").replace("probe_ms = 1000", "probe_ms = 15000");
    let p = dir.join("det.toml");
    std::fs::write(&p, s).unwrap();
    p
}

fn run_to(sc: &Path, out: &Path, extra: &[&str]) -> Output {
    bin()
        .current_dir(root())
        .args(["run", sc.to_str().unwrap(), "--cycles", "12", "-q", "--out", out.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap()
}

/// What must be equal between runs of the same cycles: each cycle's verdict and its kills.
fn cycles(out: &Path) -> Vec<String> {
    let mut v: Vec<String> = events(out)
        .iter()
        .filter(|e| e["event"] == "cycle-end" || e["event"] == "kill")
        .map(|e| {
            let mut e = e.clone();
            let o = e.as_object_mut().unwrap();
            o.remove("duration_ms");
            if let Some(k) = o.get_mut("kill").and_then(|k| k.as_object_mut()) {
                k.remove("at_ms");
            }
            e.to_string()
        })
        .collect();
    v.sort();
    v
}

#[test]
fn shards_merged_equal_one_unsharded_run() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = deterministic_scenario(tmp.path());
    let whole = tmp.path().join("whole");
    let o = run_to(&sc, &whole, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let mut dirs = Vec::new();
    // Shards are 1-based, as in nextest, Jest and Playwright: 1/3, 2/3, 3/3.
    for i in 1..=3u64 {
        let d = tmp.path().join(format!("shard-{i}"));
        let o = run_to(&sc, &d, &["--shard", &format!("{i}/3")]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let s = check_reports(&d);
        // 12 cycles in epochs of 3 (epochs 0..=3): shard 1 runs epochs 0 and 3, shards 2 and 3 one epoch each.
        let expect = (0..12u64).filter(|c| (c / 3) % 3 == i - 1).count() as u64;
        assert_eq!(s["cycles"].as_u64(), Some(expect), "shard {i}");
        assert_eq!(s["runs"][0]["shard"]["index"].as_u64(), Some(i), "summary.json shows the shard as given");
        assert!(s["replay"].as_str().unwrap().contains(&format!("--shard {i}/3")), "{}", s["replay"]);
        dirs.push(d);
    }
    // Merging two of the three names the missing one as the user numbers it.
    let o = bin().arg("merge").args(&dirs[..2]).arg("--out").arg(tmp.path().join("partial")).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("shards 3 of 3 are missing"), "{}", text(&o));
    let merged = tmp.path().join("merged");
    let o = bin().arg("merge").args(&dirs).arg("--out").arg(&merged).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let m = check_reports(&merged);
    let w = check_reports(&whole);
    // Seconds differ between runs (per_backend's duration_s, the JUnit cases' time); every count must not.
    let untimed = |v: &Value| {
        let mut v = v.clone();
        for t in v["per_backend"].as_object_mut().unwrap().values_mut() {
            assert!(t["duration_s"].as_f64().unwrap() > 0.0, "a backend's cycles took time: {t}");
            t.as_object_mut().unwrap().remove("duration_s");
        }
        v
    };
    let (m, w) = (untimed(&m), untimed(&w));
    for k in ["cycles", "kills", "commits", "outcomes", "unexpected", "kill_points", "coverage", "per_backend"] {
        assert_eq!(m[k], w[k], "{k} differs between merged shards and the unsharded run");
    }
    assert_eq!(m["runs"].as_array().unwrap().len(), 3);
    assert_eq!(cycles(&merged), cycles(&whole));
    assert!(w["kills"].as_u64().unwrap() > 0, "the comparison needs kills");

    // Merging a shard twice would count its cycles twice: refused with a reason.
    let o = bin().arg("merge").args([&dirs[0], &dirs[0]]).arg("--out").arg(tmp.path().join("dup")).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("same cycles"), "{}", text(&o));
    // A directory that is not a run's output is named as such.
    let o = bin().arg("merge").arg(tmp.path().join("nowhere")).arg("--out").arg(tmp.path().join("x")).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("no events.jsonl"), "{}", text(&o));
}

#[test]
fn shards_are_numbered_from_one() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = deterministic_scenario(tmp.path());
    for bad in ["0/4", "5/4", "1/0", "a/4", "2"] {
        let o = run_to(&sc, &tmp.path().join("bad"), &["--shard", bad]);
        assert_eq!(o.status.code(), Some(2), "--shard {bad}: {}", text(&o));
        assert!(text(&o).contains("--shard"), "--shard {bad}: {}", text(&o));
    }
    let o = run_to(&sc, &tmp.path().join("bad"), &["--shard", "0/4"]);
    assert!(text(&o).contains("numbered 1 to N"), "{}", text(&o));
    assert!(!tmp.path().join("bad").exists(), "a refused --shard writes nothing");
    // The last shard is a real one: 4/4 of 12 cycles in epochs of 3 runs epoch 3 (cycles 9, 10, 11).
    let out = tmp.path().join("last");
    let o = run_to(&sc, &out, &["--shard", "4/4"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(check_reports(&out)["cycles"].as_u64(), Some(3));
}

#[test]
fn per_backend_runs_merge_into_the_full_run() {
    let tmp = tempfile::tempdir().unwrap();
    let body = std::fs::read_to_string(deterministic_scenario(tmp.path()))
        .unwrap()
        .replace("backends = [\"sqlite\"]", "backends = [\"bdbenv\", \"sqlite\"]")
        // bdbenv hangs (a killed process holding the region mutex) cost a timeout each: keep them short.
        .replace("cycle_ms = 30000", "cycle_ms = 1500")
        .replace("probe_ms = 15000", "probe_ms = 1500")
        .replace("[expect]", "[expect]\nbdbenv = [\"clean\", \"stale-locks\", \"recovered\", \"hang\"]");
    let sc = tmp.path().join("two.toml");
    std::fs::write(&sc, body).unwrap();
    let whole = tmp.path().join("whole");
    let o = run_to(&sc, &whole, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let (a, b) = (tmp.path().join("sqlite"), tmp.path().join("bdbenv"));
    assert_eq!(run_to(&sc, &a, &["--backend", "sqlite"]).status.code(), Some(0));
    assert_eq!(run_to(&sc, &b, &["--backend", "bdbenv"]).status.code(), Some(0));
    let merged = tmp.path().join("merged");
    let o = bin().arg("merge").args([&a, &b]).arg("--out").arg(&merged).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let m = check_reports(&merged);
    assert_eq!(m["cycles"], 24);
    assert_eq!(m["backends"], serde_json::json!(["sqlite", "bdbenv"]));
    // sqlite's cycles alone are the ones it had beside bdbenv (seeded by its place in the scenario).
    let only = |d: &Path| cycles(d).into_iter().filter(|l| l.contains("\"sqlite\"")).collect::<Vec<_>>();
    assert_eq!(only(&merged), only(&whole));
    assert_eq!(m["outcomes"]["sqlite"], check_reports(&whole)["outcomes"]["sqlite"]);
}

fn interrupt_with(sig: nix::sys::signal::Signal, extra: &[&str]) {
    // "--to-group" is the test's own: signal the whole process group (as Ctrl-C does), not the first process.
    let to_group = extra.contains(&"--to-group");
    let extra: Vec<&str> = extra.iter().copied().filter(|a| *a != "--to-group").collect();
    use std::os::unix::process::CommandExt;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let child = bin()
        .current_dir(root())
        .args(["run", "scenarios/smoke.toml", "--duration", "10m", "-q", "--out", out.to_str().unwrap()])
        .args(extra)
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pgid = child.id() as i32;
    // Wait (bounded) until at least two cycles have ended, then interrupt.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let n =
            std::fs::read_to_string(out.join("events.jsonl")).map(|t| t.matches("\"cycle-end\"").count()).unwrap_or(0);
        if n >= 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no cycle finished within two minutes");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(if to_group { -pgid } else { pgid }), sig).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{sig}: {}", text(&o));
    let s = check_reports(&out);
    assert_eq!(s["interrupted"], true);
    assert!(s["cycles"].as_u64().unwrap() >= 2);
    assert!(events(&out).last().unwrap()["event"] == "run-end");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("INTERRUPTED") || html.contains("FAIL"), "the report says the run did not finish");
    // Nothing of the run's process group survives it.
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(-pgid), None);
    assert!(alive.is_err(), "processes of the run's group are still alive");
}

#[test]
fn sigint_leaves_valid_reports_and_no_processes() {
    interrupt_with(nix::sys::signal::Signal::SIGINT, &[]);
}

/// Ctrl-C reaches the whole process group: the parent and both lanes.
#[test]
fn sigint_with_two_lanes_leaves_valid_reports_and_no_processes() {
    interrupt_with(nix::sys::signal::Signal::SIGINT, &["--jobs", "2", "--to-group"]);
}

/// SIGTERM to the run's first process alone (as `kill PID` sends it): the lanes hear of it too.
#[test]
fn sigterm_to_the_parent_of_two_lanes_stops_them_all() {
    interrupt_with(nix::sys::signal::Signal::SIGTERM, &["--jobs", "2"]);
}

#[test]
fn sigterm_leaves_valid_reports_and_no_processes() {
    interrupt_with(nix::sys::signal::Signal::SIGTERM, &[]);
}

#[test]
fn failing_run_reports_render_in_headless_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    // A planted bug makes failures (with bundles) to show.
    let o = bin()
        .current_dir(root())
        .env("DBTORTURE_PLANT", "sqlite-skip-index-row")
        .args(["run", "scenarios/smoke.toml", "--cycles", "3", "-q", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let s = check_reports(&out);
    let f = &s["failures"][0];
    let bundle = out.join(f["bundle"].as_str().expect("a failure names its bundle"));
    assert!(bundle.is_file() && bundle.to_string_lossy().ends_with(".tar.gz"), "{}", bundle.display());
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("<failure") && junit.contains(f["bundle"].as_str().unwrap()), "{junit}");
    // Merged, and merged again: the bundles travel along and the links stay true.
    let (m1, m2) = (tmp.path().join("m1"), tmp.path().join("m2"));
    assert_eq!(bin().arg("merge").arg(&out).arg("--out").arg(&m1).output().unwrap().status.code(), Some(1));
    assert_eq!(bin().arg("merge").arg(&m1).arg("--out").arg(&m2).output().unwrap().status.code(), Some(1));
    let s2 = check_reports(&m2);
    assert_eq!(s2["failures"].as_array().unwrap().len(), s["failures"].as_array().unwrap().len());
    for f in s2["failures"].as_array().unwrap() {
        let b = m2.join(f["bundle"].as_str().unwrap());
        assert!(b.is_file(), "{} is missing after merging twice", b.display());
    }

    let chromium =
        ["chromium", "chromium-browser"].into_iter().find(|c| Command::new(c).arg("--version").output().is_ok());
    let Some(chromium) = chromium else {
        eprintln!("SKIP the headless-browser check: no chromium here; ci/test.sh installs it");
        return;
    };
    let profile = tmp.path().join("profile");
    let dom = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", out.join("report.html").display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    // The browser parsed the page into a DOM holding the verdict, the charts and the failure table.
    assert!(dom.contains("FAIL"), "{dom}");
    assert!(dom.matches("<svg").count() >= 3, "charts missing from the rendered DOM");
    assert!(dom.contains("missing index entry"), "the failure table is missing");
}
