//! Scenario validation at load: every value range-checked, kill points checked against the backends the
//! scenario runs, sizes checked against what can be built; each error names the field and what was expected.
//!
//! Why its own module: the scenario's shape (the types, in `mod.rs`) and the rules about its values change
//! for different reasons; the rules are most of the code.

use super::*;

impl Scenario {
    pub(super) fn validate(&self) -> Result<(), ScenarioError> {
        if self.backends.is_empty() {
            return Err(self.field_err("backends", "expected at least one backend"));
        }
        if self.epoch == 0 {
            return Err(self.field_err("epoch", "expected at least 1 cycle per epoch"));
        }
        for (i, b) in self.backends.iter().enumerate() {
            if BackendKind::from_name(b).is_none() {
                return Err(self.field_err(
                    &format!("backends[{i}]"),
                    format!("unknown backend {b:?}, expected one of: {}", backend_names()),
                ));
            }
        }
        for (b, outs) in &self.expect {
            if !self.backends.contains(b) {
                return Err(self.field_err(&format!("expect.{b}"), "backend is not listed in `backends`"));
            }
            for (i, o) in outs.iter().enumerate() {
                if Outcome::from_name(o).is_none() {
                    let all: Vec<_> = Outcome::ALL.iter().map(|o| o.name()).collect();
                    return Err(self.field_err(
                        &format!("expect.{b}[{i}]"),
                        format!("unknown outcome {o:?}, expected one of: {}", all.join(", ")),
                    ));
                }
            }
        }
        for b in &self.backends {
            if !self.expect.contains_key(b) {
                return Err(self.field_err(&format!("expect.{b}"), "missing: say which outcomes this backend may show"));
            }
        }
        self.validate_when()?;
        if let Some(d) = &self.duration
            && parse_duration(d).is_none()
        {
            return Err(self.field_err("duration", format!("expected a duration like \"60s\" or \"5m\", got {d:?}")));
        }
        if self.cycles == Some(0) {
            return Err(self.field_err("cycles", "expected at least 1"));
        }
        let w = &self.workload;
        let range = |field: &str, v: u64, lo: u64, hi: u64| {
            if v < lo || v > hi { Err(self.field_err(field, format!("expected {lo}..={hi}, got {v}"))) } else { Ok(()) }
        };
        range("workload.packages", w.packages.into(), 1, 100_000)?;
        range("workload.versions", w.versions.into(), 1, 50)?;
        range("workload.files_mean", w.files_mean.into(), 0, 100_000)?;
        range("workload.writers", w.writers.into(), 0, 64)?;
        range("workload.readers", w.readers.into(), 0, 64)?;
        range("workload.txns_per_writer", w.txns_per_writer.into(), 0, 1_000_000)?;
        // The pool is built in memory before the first cycle: bounded so a typo cannot build for hours
        // (measured: 100,000 packages × 20 files ≈ 40 s on 2 cores; Fedora is ~2,500 × 140).
        let pool = u64::from(w.packages) * u64::from(w.versions);
        if pool > MAX_POOL_PACKAGES {
            return Err(self.field_err(
                "workload.versions",
                format!(
                    "packages × versions = {} packages in the pool; at most {}",
                    thousands(pool),
                    thousands(MAX_POOL_PACKAGES)
                ),
            ));
        }
        let files = pool * u64::from(w.files_mean);
        if files > MAX_POOL_FILES {
            return Err(self.field_err(
                "workload.files_mean",
                format!(
                    "packages × versions × files_mean = {} files in the pool; at most {} (Fedora has ~350,000)",
                    thousands(files),
                    thousands(MAX_POOL_FILES)
                ),
            ));
        }
        if let Some(to) = &w.convert_to {
            if BackendKind::from_name(to).is_none() {
                return Err(self.field_err(
                    "workload.convert_to",
                    format!("unknown backend {to:?}, expected one of: {}", backend_names()),
                ));
            }
            if w.converter == Converter::Rpm {
                use dbtorture_backends::rpmconvert::{FROM, TO};
                if to != TO.name() || self.backends.iter().any(|b| b != FROM.name()) {
                    return Err(self.field_err(
                        "workload.converter",
                        format!(
                            "the real rpm converts {} into {} only (backends = [\"{}\"], convert_to = \"{}\")",
                            FROM.name(),
                            TO.name(),
                            FROM.name(),
                            TO.name()
                        ),
                    ));
                }
            }
        } else if w.converter == Converter::Rpm {
            return Err(self.field_err("workload.converter", "needs workload.convert_to"));
        } else if w.writers + w.readers == 0 {
            return Err(self.field_err("workload.writers", "expected at least one writer or reader"));
        }
        if !(0.0..=1.0).contains(&w.initial_fraction) {
            return Err(self.field_err("workload.initial_fraction", "expected a fraction in 0.0..=1.0"));
        }
        let k = &self.kill;
        if !(0.0..=1.0).contains(&k.probability) {
            return Err(self.field_err("kill.probability", "expected a probability in 0.0..=1.0"));
        }
        if k.delay_ms_max < k.delay_ms_min {
            return Err(self.field_err("kill.delay_ms_max", "expected delay_ms_max >= delay_ms_min"));
        }
        range("kill.hit_max", k.hit_max.into(), 1, 1_000_000)?;
        // A kill point must be one this scenario's cycles can pass: a point of a backend it does not run
        // would kill nothing, and the run would pass "clean" having tested nothing.
        let prefixes = self.point_prefixes();
        let valid: Vec<&str> = dbtorture_backends::crash::ALL
            .iter()
            .copied()
            .filter(|p| prefixes.iter().any(|x| p.split('.').next() == Some(*x)))
            .collect();
        if let Some(p) = &k.point
            && !valid.contains(&p.as_str())
        {
            let what = if dbtorture_backends::crash::id_of(p).is_none() {
                "unknown crash point"
            } else {
                "not a crash point of this scenario's backends"
            };
            return Err(self.field_err("kill.point", format!("{what} {p:?}; valid here: {}", valid.join(", "))));
        }
        if matches!(k.mode, KillMode::CrashPoint | KillMode::Sweep) && k.point.is_none() {
            for b in self.backend_kinds() {
                let own = if self.convert_to().is_some() { "rebuild" } else { b.point_prefix() };
                if dbtorture_backends::crash::points_of(own).next().is_none() {
                    return Err(self.field_err(
                        "kill.mode",
                        format!(
                            "backend {} has no crash points to arm (it is not our code): use random-time",
                            b.name()
                        ),
                    ));
                }
            }
        }
        if let Some(m) = &self.memory {
            range("memory.limit_mb", m.limit_mb, 8, 1 << 20)?;
            if m.balloon_mb >= m.limit_mb.saturating_mul(4) {
                return Err(self.field_err("memory.balloon_mb", "expected less than four times limit_mb"));
            }
        }
        if let Some(sp) = &self.stale_page {
            if sp.file.is_empty() || sp.file.contains('/') {
                return Err(self.field_err("stale_page.file", "expected a file name in the database directory"));
            }
            if !(0.0..=1.0).contains(&sp.probability) {
                return Err(self.field_err("stale_page.probability", "expected a probability in 0.0..=1.0"));
            }
            for (field, p) in [("stale_page.snapshot_at", &sp.snapshot_at), ("stale_page.restore_at", &sp.restore_at)] {
                if dbtorture_backends::crash::id_of(p).is_none() {
                    return Err(self.field_err(field, format!("unknown crash point {p:?} (see `dbtorture list`)")));
                }
            }
            range("stale_page.hit_max", sp.hit_max.into(), 1, 1_000_000)?;
        }
        if let Some(o) = &self.oracle {
            range("oracle.rpm_every", o.rpm_every, 1, 1_000_000)?;
            if let Some(b) = self.backend_kinds().into_iter().find(|b| !dbtorture_backends::rpmoracle::supports(*b)) {
                return Err(self.field_err(
                    "oracle.rpm_every",
                    format!(
                        "rpm 4.18 cannot read a {} database (the rpm oracle judges sqlite, libdb and rpm)",
                        b.name()
                    ),
                ));
            }
            if self.convert_to().is_some() {
                return Err(self.field_err("oracle", "cannot be combined with convert_to"));
            }
        }
        if let Some(pl) = &self.power_loss {
            range("power_loss.images_max", pl.images_max.into(), 1, 1_000_000)?;
            range("power_loss.images_random", pl.images_random.into(), 0, u64::from(pl.images_max))?;
            if self.kill.mode != KillMode::None {
                return Err(
                    self.field_err("kill.mode", "a power-loss scenario records whole cycles: expected \"none\"")
                );
            }
            if self.stale_page.is_some() || self.memory.is_some() {
                return Err(self.field_err("power_loss", "cannot be combined with stale_page or memory"));
            }
            // A rebuild under power loss is recorded over the database's parent (the swap's renames): only
            // dbtorture's own rebuilddb, of a plain database directory (not an rpm root).
            if self.convert_to().is_some()
                && (self.workload.converter != super::Converter::Dbtorture
                    || self.backend_kinds().iter().any(|b| b.rebuilds_itself()))
            {
                return Err(self.field_err(
                    "power_loss",
                    "with convert_to, only dbtorture's own rebuilddb (converter = \"dbtorture\") of sqlite, bdbenv \
                     or libdb is recorded",
                ));
            }
        }
        if let Some(io) = &self.io_kill {
            range("io_kill.first", io.first, 1, 1_000_000)?;
            if io.ops.is_empty() {
                return Err(self.field_err("io_kill.ops", "expected at least one of \"write\", \"fsync\", \"rename\""));
            }
            if self.stale_page.is_some() || self.memory.is_some() {
                return Err(self.field_err("io_kill", "cannot be combined with stale_page or memory"));
            }
            if io.action != super::IoAction::Kill {
                // An injected error is judged against what the engine documents for it (the backend's rules):
                // on an engine whose reaction is not known, every such cycle would be red or green by accident.
                if let Some(b) =
                    self.backend_kinds().into_iter().find(|b| !dbtorture_backends::ioerror::rules(*b).judged)
                {
                    return Err(self.field_err(
                        "io_kill.action",
                        format!(
                            "injected errors are judged on sqlite only; not on {}: {}",
                            b.name(),
                            dbtorture_backends::ioerror::rules(b).promise
                        ),
                    ));
                }
                if self.power_loss.is_some() {
                    return Err(self.field_err(
                        "io_kill.action",
                        "injected errors cannot be combined with power_loss (a crash image of a failed operation is \
                         not modelled)",
                    ));
                }
            }
            if self.convert_to().is_some() && io.action != super::IoAction::Kill {
                return Err(self.field_err(
                    "io_kill.action",
                    "a conversion is killed at I/O points, not failed: expected \"kill\"",
                ));
            }
        }
        range("timeouts.cycle_ms", self.timeouts.cycle_ms, 100, 86_400_000)?;
        range("timeouts.probe_ms", self.timeouts.probe_ms, 100, 86_400_000)?;
        Ok(())
    }

    /// The crash-point prefixes this scenario's cycles can pass.
    fn point_prefixes(&self) -> Vec<&'static str> {
        let mut p: Vec<&'static str> = self.backend_kinds().iter().map(|b| b.point_prefix()).collect();
        if let Some(to) = self.convert_to() {
            p.push("rebuild");
            p.push(to.point_prefix());
        }
        p
    }
}

/// The largest package pool a scenario may ask for (packages × versions).
pub const MAX_POOL_PACKAGES: u64 = 200_000;
/// The largest number of files over the pool's packages (packages × versions × files_mean).
pub const MAX_POOL_FILES: u64 = 5_000_000;

/// 1234567 → "1,234,567".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
