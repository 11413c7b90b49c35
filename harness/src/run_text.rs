//! What `run`, `merge` and `shrink` print at the end, and the reproduction commands the reports carry.
//!
//! Why one module: the path from a red run to a fix starts with these lines. Every command printed here must
//! work pasted into the shell the run was started from — bundle paths as the user gave `--out` (relative to
//! the current directory, or absolute), `DBTORTURE_PLANT=…` when a bug was planted, and the seed and cycle
//! count pinned (for a `--duration` run, the cycles it actually ran).

use crate::run::RunReport;
use crate::scenario::Scenario;
use crate::shrink::Shrunk;
use dbtorture_backends::BackendKind;
use dbtorture_reports::{Shard, Summary};
use std::fmt::Write as _;
use std::path::Path;

/// Failing cycles listed one by one before "and N more".
pub const LISTED: usize = 10;

/// `s` as one shell word: unchanged when it needs no quoting, single-quoted otherwise.
pub fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+' | ':' | '=' | ','));
    if plain { s.to_string() } else { format!("'{}'", s.replace('\'', r"'\''")) }
}

/// `DBTORTURE_PLANT=name ` when a planted bug is switched on in this process, else nothing.
fn plant_prefix() -> String {
    dbtorture_backends::planted::current()
        .filter(|p| !p.is_empty())
        .map(|p| format!("DBTORTURE_PLANT={} ", shell_word(&p)))
        .unwrap_or_default()
}

/// The command that runs the same cycles again: scenario, seed, cycle count (or, before a duration run has
/// run, its duration), shard and backends, with the planted bug if one is on.
pub fn run_command(
    sc: &Scenario,
    seed: u64,
    cycles: Option<u64>,
    duration: Option<std::time::Duration>,
    shard: Option<Shard>,
    backends: &[BackendKind],
) -> String {
    let mut cmd =
        format!("{}dbtorture run {} --seed {seed}", plant_prefix(), shell_word(&sc.source.display().to_string()));
    match (cycles, duration) {
        (Some(c), _) => write!(cmd, " --cycles {c}").ok(),
        (None, Some(d)) => write!(cmd, " --duration {}s", d.as_secs()).ok(),
        _ => None,
    };
    if let Some(s) = shard {
        write!(cmd, " --shard {s}").ok();
    }
    for b in backends {
        write!(cmd, " --backend {}", b.name()).ok();
    }
    cmd
}

/// The replay command of a bundle at `path` (as the user can reach it from the current directory). No
/// `DBTORTURE_PLANT=`: a bundle records its planted bug and replay switches it on.
pub fn replay_command(path: &Path) -> String {
    format!("dbtorture replay {}", shell_word(&path.display().to_string()))
}

/// Make the summary's bundle replay commands work from the current directory: the fold records bundle paths
/// relative to the report's directory; prefix the directory as the user named it.
pub fn anchor_replays(summary: &mut Summary, out: &Path) {
    for f in &mut summary.failures {
        if let Some(b) = &f.bundle {
            f.replay = Some(replay_command(&out.join(b)));
        }
    }
}

/// Everything after the outcome table of `run`: each failing cycle (up to [`LISTED`], then "and N more")
/// with its findings, bundle and replay command; the bundles kept by policy; the run-level command; and a
/// final `PASS`/`FAIL` line naming the out directory.
pub fn run_result(report: &RunReport, out: Option<&Path>) -> String {
    let s = &report.summary;
    let mut t = String::new();
    for f in s.failures.iter().take(LISTED) {
        writeln!(t, "unexpected: cycle {} {} → {}", f.cycle, f.backend, f.outcome).ok();
        for finding in f.findings.iter().take(5) {
            writeln!(t, "    {finding}").ok();
        }
        if let (Some(b), Some(out)) = (&f.bundle, out) {
            writeln!(t, "    bundle: {}", out.join(b).display()).ok();
        }
        if let Some(r) = &f.replay {
            writeln!(t, "    replay: {r}").ok();
        }
    }
    let more = s.unexpected.saturating_sub(s.failures.len().min(LISTED) as u64);
    if more > 0 {
        writeln!(
            t,
            "… and {more} more unexpected cycle(s){}",
            out.map(|o| format!(" (see {}/summary.json)", o.display())).unwrap_or_default()
        )
        .ok();
    }
    if let Some(out) = out {
        let bundles = out.join("bundles");
        let n = std::fs::read_dir(&bundles)
            .map(|d| d.filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().ends_with(".tar.gz")).count())
            .unwrap_or(0);
        if n > 0 {
            writeln!(t, "bundles: {n} in {} (`dbtorture inspect`, `replay`, `shrink` take them)", bundles.display())
                .ok();
        }
    }
    for (backend, tally) in &s.crash_images {
        writeln!(t, "power loss, {backend}: {}", tally.per_mille()).ok();
    }
    for (backend, tally) in &s.io_errors {
        writeln!(t, "I/O errors, {backend}: {}", tally.describe()).ok();
    }
    writeln!(t, "run again: {}", s.replay).ok();
    let verdict = if s.interrupted {
        "INTERRUPTED"
    } else if s.unexpected > 0 {
        "FAIL"
    } else {
        "PASS"
    };
    let whr = match out {
        Some(o) => format!("reports in {}", o.display()),
        None => "no reports written (--out DIR writes them)".into(),
    };
    let lanes = if report.jobs > 1 { format!(" in {} lanes", report.jobs) } else { String::new() };
    writeln!(t, "{verdict}: {} unexpected of {} cycles{lanes}; {whr}", s.unexpected, s.cycles).ok();
    t
}

/// What `merge` says of each merged run that did not finish (interrupted, or its log ends without run-end
/// because its harness died): the cycle it was running has no verdict. Empty when every run finished.
pub fn unfinished_runs(s: &Summary) -> String {
    let mut t = String::new();
    for (i, r) in s.runs.iter().enumerate().filter(|(_, r)| r.interrupted) {
        let source = r.source.clone().unwrap_or_else(|| format!("run {}", i + 1));
        writeln!(
            t,
            "warning: {source} did not finish (interrupted, or its events end without run-end: its harness died) \
             after {} cycles; a cycle it was running has no verdict",
            r.cycles
        )
        .ok();
    }
    t
}

/// What `shrink` prints: the tries, the reductions kept, and the bundle with its replay command.
pub fn shrunk(r: &Shrunk) -> String {
    let mut t = format!("shrunk in {} tries:\n", r.tried);
    for s in &r.steps {
        writeln!(t, "  {s}").ok();
    }
    if !r.reduced {
        writeln!(t, "  (no reduced cycle replayed to its own verdict: the input, unreduced)").ok();
    }
    writeln!(t, "minimal bundle: {}", r.bundle.display()).ok();
    writeln!(t, "replay: {}", replay_command(&r.bundle)).ok();
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_word("out/bundles/cycle-00001-sqlite.tar.gz"), "out/bundles/cycle-00001-sqlite.tar.gz");
        assert_eq!(shell_word("my out/x"), "'my out/x'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }

    #[test]
    fn unfinished_runs_are_named_and_finished_ones_are_not() {
        let mut s: Summary = dbtorture_reports::Aggregate::new().summary();
        assert_eq!(unfinished_runs(&s), "");
        let run = |source: &str, interrupted| dbtorture_reports::RunInfo {
            scenario: "s".into(),
            scenario_hash: "h".into(),
            seed: 1,
            backends: vec!["sqlite".into()],
            shard: None,
            environment: Default::default(),
            cycles: 4,
            duration_s: 1.0,
            interrupted,
            source: Some(source.into()),
            replay: String::new(),
        };
        s.runs = vec![run("out/a", false), run("out/b", true)];
        let t = unfinished_runs(&s);
        assert!(t.contains("out/b did not finish") && t.contains("after 4 cycles"), "{t}");
        assert!(!t.contains("out/a"), "{t}");
    }

    #[test]
    fn anchored_replays_name_the_out_directory() {
        let mut s: Summary = dbtorture_reports::Aggregate::new().summary();
        s.failures.push(dbtorture_reports::FailureRecord {
            cycle: 3,
            backend: "sqlite".into(),
            outcome: dbtorture_reports::Outcome::Inconsistent,
            findings: vec![],
            finding_count: 0,
            kills: vec![],
            bundle: Some("bundles/cycle-00003-sqlite.tar.gz".into()),
            replay: Some("dbtorture replay bundles/cycle-00003-sqlite.tar.gz".into()),
        });
        anchor_replays(&mut s, Path::new("runs/out"));
        let r = s.failures[0].replay.as_deref().unwrap();
        assert!(r.ends_with("dbtorture replay runs/out/bundles/cycle-00003-sqlite.tar.gz"), "{r}");
    }
}
