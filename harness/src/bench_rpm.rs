//! `dbtorture bench rpm`: dbtorture's real-rpm scenario against the naive shell kill loop
//! (`ci/naive-rpm-loop.sh`, see `naive_rpm.rs`), side by side in one run.
//!
//! Why alternating rounds: the machine's load (other builds, other runs) changes by the minute; running the
//! two in turns, for the same wall time each, lets that load hit both alike, so the ratio means something even
//! when the absolute rates do not. Both install the same packages (same scenario, same seed) and kill on the
//! scenario's delay range; dbtorture's time includes its own set-up (pool, packages, initial database) in
//! every round, the loop's excludes its template root.

use crate::naive_rpm::{self, LoopResult};
use crate::run::{RunOptions, run};
use crate::scenario::Scenario;
use anyhow::{Context, Result, ensure};
use std::path::Path;
use std::time::Duration;

/// Totals of one side over the rounds.
#[derive(Debug, Default, Clone, Copy)]
struct Side {
    cycles: u64,
    seconds: f64,
}

impl Side {
    fn add(&mut self, cycles: u64, seconds: f64) {
        self.cycles += cycles;
        self.seconds += seconds;
    }
    fn rate(self) -> f64 {
        if self.seconds > 0.0 { self.cycles as f64 / self.seconds } else { 0.0 }
    }
}

/// Run `rounds` rounds of (naive loop for `each`, dbtorture's `scenario` for `each`); print every round and
/// the totals: both cycles/s and their ratio.
pub fn compare(scenario: &Path, each: Duration, rounds: u32) -> Result<()> {
    ensure!(dbtorture_backends::rpmcli::available(), "`rpm` is not installed (apt-get install rpm)");
    let sc = Scenario::load(scenario)?;
    ensure!(
        sc.backends.iter().any(|b| b == "rpm"),
        "{}: not a real-rpm scenario (its backends are {:?}; try scenarios/rpm-sqlite.toml)",
        scenario.display(),
        sc.backends
    );
    let tmp = crate::leftovers::scratch("bench-rpm")?;
    let pkgdir = tmp.path().join("packages");
    let set = naive_rpm::write_packages(&sc, &pkgdir)?;
    let script = naive_rpm::install_script(tmp.path())?;
    crate::say!(
        "rpm: {} (dbtorture) vs ci/naive-rpm-loop.sh ({} initial packages, rpm -U of {}), {} rounds of {:.0} s each",
        sc.name,
        set.initial,
        set.cycle,
        rounds,
        each.as_secs_f64()
    );
    let (mut naive, mut ours) = (Side::default(), Side::default());
    let mut judging = Vec::new();
    for round in 0..rounds {
        let seed = sc.seed.wrapping_add(u64::from(round));
        let LoopResult { cycles, seconds } = naive_rpm::run_loop(&script, &pkgdir, tmp.path(), each, seed)
            .with_context(|| format!("round {}: the naive loop", round + 1))?;
        naive.add(cycles, seconds);
        let r = run(
            &sc,
            &RunOptions { seed: Some(seed), duration: Some(each), quiet: true, no_bundles: true, ..Default::default() },
        )
        .with_context(|| format!("round {}: dbtorture run {}", round + 1, sc.name))?;
        let s = &r.summary;
        ensure!(s.unexpected == 0, "round {}: dbtorture's run had {} unexpected cycles", round + 1, s.unexpected);
        ours.add(s.cycles, s.duration_s);
        judging.extend(r.overhead);
        crate::say!(
            "  round {}: naive {} cycles in {:.1} s ({:.2}/s); dbtorture {} cycles in {:.1} s ({:.2}/s), {} kills",
            round + 1,
            cycles,
            seconds,
            cycles as f64 / seconds.max(1e-9),
            s.cycles,
            s.duration_s,
            s.cycles_per_sec,
            s.kills
        );
    }
    let ratio = if naive.rate() > 0.0 { ours.rate() / naive.rate() } else { f64::INFINITY };
    crate::say!(
        "  naive loop {:.2} cycles/s ({} in {:.1} s), dbtorture {:.2} cycles/s ({} in {:.1} s): ratio {:.1}x (target >= 5x)",
        naive.rate(),
        naive.cycles,
        naive.seconds,
        ours.rate(),
        ours.cycles,
        ours.seconds,
        ratio
    );
    if !judging.is_empty() {
        crate::say!(
            "  dbtorture's judging per cycle (fork, verify, rpm's own checks, probe): {} of {:.0} ms a cycle",
            crate::bench::stats(judging),
            1000.0 / ours.rate().max(1e-9)
        );
    }
    Ok(())
}
