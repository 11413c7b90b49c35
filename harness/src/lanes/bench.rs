//! `dbtorture bench lanes`: the speed-up of `--jobs 2` over `--jobs 1`, measured side by side — smoke,
//! bdbenv-kill and sqlite-kill, each run alternately with one lane and with two (same seed, same cycles,
//! same binary, so the machine's load hits both alike) — and whether the two runs did the same cycles.
//!
//! What "the summaries agree" means here: the same cycles per backend, each with the same seed and plan
//! (the `cycle-start` events), and no unexpected outcome in either. Outcome and kill counts of these
//! scenarios depend on timing (random-time kills, concurrent workers) and differ between two `--jobs 1`
//! runs too; the exact equality of whole summaries is tested on deterministic scenarios
//! (`harness/tests/lanes.rs`).

use crate::run::{RunOptions, run};
use crate::scenario::Scenario;
use anyhow::{Context, Result};
use dbtorture_reports::{RunEvent, Summary};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

/// The benched scenarios and their cycle counts: two epochs of 50 each (one per lane; smoke's own 60
/// cycles are an epoch of 50 and one of 10, which two lanes cannot share evenly).
pub const CASES: [(&str, u64); 3] =
    [("scenarios/smoke.toml", 100), ("scenarios/bdbenv-kill.toml", 100), ("scenarios/sqlite-kill.toml", 100)];

/// Rounds of (--jobs 1, --jobs 2), alternating.
const ROUNDS: usize = 2;

/// The deterministic part of a run: (cycle, backend, seed, plan) of every cycle begun.
pub fn plans(events: &Path) -> Result<BTreeSet<(u64, String, u64, String)>> {
    let mut set = BTreeSet::new();
    dbtorture_reports::read_events(events, |e| {
        if let RunEvent::CycleStart { cycle, backend, seed, plan } = e {
            set.insert((cycle, backend, seed, plan));
        }
    })?;
    Ok(set)
}

/// What differs between two runs of the same cycles that must not (empty: they agree).
pub fn differences(a: (&Summary, &Path), b: (&Summary, &Path)) -> Result<Vec<String>> {
    let mut d = Vec::new();
    if a.0.cycles != b.0.cycles {
        d.push(format!("cycles {} vs {}", a.0.cycles, b.0.cycles));
    }
    let per = |s: &Summary| s.per_backend.iter().map(|(k, t)| (k.clone(), t.cycles)).collect::<Vec<_>>();
    if per(a.0) != per(b.0) {
        d.push(format!("cycles per backend {:?} vs {:?}", per(a.0), per(b.0)));
    }
    let (pa, pb) = (plans(a.1)?, plans(b.1)?);
    if pa != pb {
        let first = pa.symmetric_difference(&pb).next().map(|c| format!("cycle {} {}", c.0, c.1));
        d.push(format!("cycle seeds or plans differ, first at {}", first.unwrap_or_default()));
    }
    if a.0.unexpected + b.0.unexpected > 0 {
        d.push(format!("unexpected outcomes: {} and {}", a.0.unexpected, b.0.unexpected));
    }
    Ok(d)
}

pub fn lanes() -> Result<()> {
    let tmp = crate::leftovers::scratch("bench")?;
    crate::say!(
        "lanes: --jobs 1 vs --jobs 2, alternating, {ROUNDS} rounds each, {} CPUs (shared: a loaded machine lowers both)",
        super::default_jobs()
    );
    for (path, cycles) in CASES {
        let sc = Scenario::load(Path::new(path)).with_context(|| path.to_string())?;
        let mut wall = [0.0f64; 2];
        let mut done = [0u64; 2];
        let mut last: [Option<(Summary, std::path::PathBuf)>; 2] = [None, None];
        for round in 0..ROUNDS {
            for (i, jobs) in [1usize, 2].into_iter().enumerate() {
                let out = tmp.path().join(format!("{}-{round}-{jobs}", sc.name));
                let opts = RunOptions {
                    cycles: Some(cycles),
                    quiet: true,
                    no_bundles: true,
                    out: Some(out.clone()),
                    jobs: Some(jobs),
                    ..Default::default()
                };
                let t = Instant::now();
                let r = run(&sc, &opts).with_context(|| format!("{} --jobs {jobs}", sc.name))?;
                wall[i] += t.elapsed().as_secs_f64();
                done[i] += r.summary.cycles;
                last[i] = Some((r.summary, out.join("events.jsonl")));
            }
        }
        let rate = |i: usize| done[i] as f64 / wall[i].max(1e-9);
        let (Some(a), Some(b)) = (&last[0], &last[1]) else { unreachable!("ROUNDS > 0") };
        let diff = differences((&a.0, &a.1), (&b.0, &b.1))?;
        crate::say!(
            "  {:<12} {cycles} cycles: --jobs 1 {:.1} cycles/s, --jobs 2 {:.1} cycles/s, speed-up {:.2}x; {}",
            sc.name,
            rate(0),
            rate(1),
            rate(1) / rate(0).max(1e-9),
            if diff.is_empty() { "summaries agree".to_string() } else { format!("DIFFER: {}", diff.join("; ")) }
        );
    }
    Ok(())
}
