//! `dbtorture qemu --timeout-scale N`: an x86 scenario run as it is in the guest, its `[timeouts]` × N.
//!
//! Why: the guest is one emulated core, several times slower than the host. An x86 scenario's timeouts
//! (libdb-kill.toml's `cycle_ms = 2000`) end most guest cycles as `hang`, with no fault to explain them,
//! so its seed could not be compared with the x86 run's. Scaling the timeouts, and nothing else (seed,
//! workload, kill plans, stale pages stay), keeps the same cycles comparable. The guest is given the scaled
//! scenario (its bundles carry that text, so `qemu --replay` replays what ran); the original's comments are
//! not kept (TOML re-serialised), a header comment says what was scaled.

use anyhow::{Context, Result, bail};

/// The scenario text with `[timeouts] cycle_ms` and `probe_ms` multiplied by `factor` (their defaults when
/// the scenario leaves them out). `factor` 1 returns the text unchanged.
pub fn scale_timeouts(text: &str, factor: u32) -> Result<String> {
    if factor == 1 {
        return Ok(text.to_string());
    }
    if factor == 0 {
        bail!("--timeout-scale must be at least 1");
    }
    let mut table: toml::Table = toml::from_str(text).context("the scenario is not valid TOML")?;
    let defaults = crate::scenario::Timeouts::default();
    let timeouts = table
        .entry("timeouts")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .context("the scenario's `timeouts` is not a table")?;
    for (key, default) in [("cycle_ms", defaults.cycle_ms), ("probe_ms", defaults.probe_ms)] {
        let ms = match timeouts.get(key) {
            None => default,
            Some(v) => v
                .as_integer()
                .and_then(|i| u64::try_from(i).ok())
                .with_context(|| format!("[timeouts] {key} is not a number of milliseconds"))?,
        };
        let scaled = ms.checked_mul(u64::from(factor)).and_then(|x| i64::try_from(x).ok());
        let scaled = scaled.with_context(|| format!("[timeouts] {key} × {factor} is too large"))?;
        timeouts.insert(key.to_string(), toml::Value::Integer(scaled));
    }
    let body = toml::to_string(&table).context("writing the scaled scenario")?;
    Ok(format!("# [timeouts] × {factor} for the emulated guest (dbtorture qemu --timeout-scale {factor})\n{body}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;
    use std::path::Path;

    fn load(text: &str) -> Scenario {
        Scenario::parse(text, Path::new("s.toml")).unwrap()
    }

    /// Only the timeouts change: the shipped libdb-kill.toml scaled by 5 is the same scenario but for them.
    #[test]
    fn only_the_timeouts_are_scaled() {
        let text = crate::shipped::SCENARIOS.iter().find(|(n, _)| *n == "libdb-kill.toml").unwrap().1;
        let (before, after) = (load(text), load(&scale_timeouts(text, 5).unwrap()));
        assert_eq!((after.timeouts.cycle_ms, after.timeouts.probe_ms), (10_000, 10_000));
        assert_eq!(after.seed, before.seed);
        assert_eq!(format!("{:?}", after.workload), format!("{:?}", before.workload));
        assert_eq!(format!("{:?}", after.kill), format!("{:?}", before.kill));
        assert_eq!(after.backends, before.backends);
        assert_eq!(scale_timeouts(text, 1).unwrap(), text);
    }

    #[test]
    fn missing_timeouts_scale_their_defaults_and_nonsense_is_refused() {
        let text = "name = \"x\"\nseed = 1\ncycles = 1\nbackends = [\"sqlite\"]\n[expect]\nsqlite = [\"clean\"]\n";
        let sc = load(&scale_timeouts(text, 2).unwrap());
        let d = crate::scenario::Timeouts::default();
        assert_eq!((sc.timeouts.cycle_ms, sc.timeouts.probe_ms), (2 * d.cycle_ms, 2 * d.probe_ms));
        assert!(scale_timeouts(text, 0).is_err());
        assert!(scale_timeouts("[timeouts]\ncycle_ms = \"slow\"\n", 2).is_err());
    }
}
