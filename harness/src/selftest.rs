//! `dbtorture selftest`: prove on this platform that the harness catches real bugs. Each planted bug
//! (db-backends' `planted`) runs in a short scenario and must be detected within a time budget; the same
//! scenarios without a planted bug must pass. Runs `dbtorture run` as child processes (a planted bug is
//! switched on per process), and reads their events.

use anyhow::{Context, Result};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The selftest scenario for one backend: the same small workload; sqlite is killed at the point where
/// a transaction's second package begins (so a non-atomic commit shows), bdbenv runs without faults (so any
/// damage is the bug's).
fn scenario(backend: &str) -> String {
    let (kill, timeout_ms) = match backend {
        "sqlite" => ("mode = \"crash-point\"\npoint = \"sqlite.savepoint.after\"\nhit_max = 3", 5000),
        _ => ("mode = \"none\"", 3000),
    };
    format!(
        "name = \"selftest-{backend}\"\nbackends = [\"{backend}\"]\n\
         [workload]\npackages = 30\nversions = 3\nfiles_mean = 8\nwriters = 2\nreaders = 1\n\
         txns_per_writer = 6\nqueries_per_reader = 30\n\
         [kill]\n{kill}\n\
         [timeouts]\ncycle_ms = {timeout_ms}\nprobe_ms = {timeout_ms}\n\
         [expect]\n{backend} = [\"clean\"]\n"
    )
}

/// One row of the table.
pub struct Row {
    pub bug: String,
    pub backend: &'static str,
    pub detected: bool,
    pub seconds: f64,
    pub cycles: u64,
    pub finding: String,
}

fn run_case(dir: &Path, bug: Option<&str>, backend: &'static str, budget: Duration) -> Result<Row> {
    let name = bug.unwrap_or("none");
    let sc = dir.join(format!("{backend}-{name}.toml"));
    std::fs::write(&sc, scenario(backend))?;
    let out = dir.join(format!("{backend}-{name}"));
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["run", sc.to_str().context("path")?, "-q", "--duration", &format!("{}ms", budget.as_millis())])
        .args(["--out", out.to_str().context("path")?])
        .env_remove("DBTORTURE_PLANT");
    if let Some(b) = bug {
        cmd.env("DBTORTURE_PLANT", b);
    }
    let started = Instant::now();
    let o = cmd.output()?;
    let wall = started.elapsed();
    let events = std::fs::read_to_string(out.join("events.jsonl")).unwrap_or_default();
    let (mut elapsed_ms, mut cycles, mut first) = (0.0f64, 0u64, None);
    let mut finding = String::new();
    for line in events.lines() {
        let Ok(e) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        match e["event"].as_str() {
            Some("finding") if finding.is_empty() => {
                finding = e["finding"]["message"].as_str().unwrap_or("").chars().take(90).collect();
            }
            Some("cycle-end") => {
                cycles += 1;
                elapsed_ms += e["duration_ms"].as_f64().unwrap_or(0.0);
                if e["expected"] == false && first.is_none() {
                    first = Some((elapsed_ms / 1000.0, cycles));
                }
            }
            _ => {}
        }
    }
    // Exit 1: an unexpected outcome; exit 3: the bug broke even the harness's own set-up of the database,
    // and the error says how (e.g. "rpmdb: Locker is not valid").
    let detected = first.is_some() || matches!(o.status.code(), Some(1) | Some(3));
    if finding.is_empty() {
        finding = String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or("").chars().take(90).collect();
    }
    let (seconds, cycles) = first.unwrap_or((wall.as_secs_f64(), cycles));
    Ok(Row { bug: name.into(), backend, detected, seconds, cycles, finding })
}

/// Run every planted bug and both unplanted baselines; print the table. Ok(true) if all behaved.
pub fn run(budget: Duration) -> Result<bool> {
    let tmp = tempfile::tempdir()?;
    let mut rows = Vec::new();
    for (bug, _) in dbtorture_backends::planted::ALL {
        let backend = if bug.starts_with("sqlite") { "sqlite" } else { "bdbenv" };
        rows.push(run_case(tmp.path(), Some(bug), backend, budget)?);
    }
    for backend in ["sqlite", "bdbenv"] {
        rows.push(run_case(tmp.path(), None, backend, budget)?);
    }
    println!("{:<30} {:<8} {:<10} {:>9} {:>7}  first finding", "planted bug", "backend", "verdict", "time", "cycles");
    let mut ok = true;
    for r in &rows {
        let planted = r.bug != "none";
        let verdict = match (planted, r.detected) {
            (true, true) => "detected",
            (true, false) => "MISSED",
            (false, false) => "clean",
            (false, true) => "FALSE ALARM",
        };
        ok &= planted == r.detected;
        println!(
            "{:<30} {:<8} {:<10} {:>8.2}s {:>7}  {}",
            r.bug,
            r.backend,
            verdict,
            r.seconds,
            r.cycles,
            if planted { r.finding.as_str() } else { "" }
        );
    }
    Ok(ok)
}
