//! The scenarios shipped with dbtorture, compiled into the binary, so `dbtorture list` shows them from any
//! directory (a test checks this list is every file in scenarios/).

/// (file name in scenarios/, its text).
pub const SCENARIOS: &[(&str, &str)] = &[
    ("baseline.toml", include_str!("../../scenarios/baseline.toml")),
    ("bdbenv-kill.toml", include_str!("../../scenarios/bdbenv-kill.toml")),
    ("io-errors.toml", include_str!("../../scenarios/io-errors.toml")),
    ("libdb-kill.toml", include_str!("../../scenarios/libdb-kill.toml")),
    ("libdb-lost-write.toml", include_str!("../../scenarios/libdb-lost-write.toml")),
    ("lock-region-lost-write.toml", include_str!("../../scenarios/lock-region-lost-write.toml")),
    ("memory-pressure.toml", include_str!("../../scenarios/memory-pressure.toml")),
    ("power-loss.toml", include_str!("../../scenarios/power-loss.toml")),
    ("qemu-power-cut.toml", include_str!("../../scenarios/qemu-power-cut.toml")),
    ("qemu-rpm.toml", include_str!("../../scenarios/qemu-rpm.toml")),
    ("qemu-smoke.toml", include_str!("../../scenarios/qemu-smoke.toml")),
    ("qemu-soak.toml", include_str!("../../scenarios/qemu-soak.toml")),
    ("rebuild-power-loss.toml", include_str!("../../scenarios/rebuild-power-loss.toml")),
    ("rebuilddb-convert.toml", include_str!("../../scenarios/rebuilddb-convert.toml")),
    ("rpm-convert.toml", include_str!("../../scenarios/rpm-convert.toml")),
    ("rpm-io-sweep.toml", include_str!("../../scenarios/rpm-io-sweep.toml")),
    ("rpm-oracle.toml", include_str!("../../scenarios/rpm-oracle.toml")),
    ("rpm-power-loss.toml", include_str!("../../scenarios/rpm-power-loss.toml")),
    ("rpm-rebuilddb.toml", include_str!("../../scenarios/rpm-rebuilddb.toml")),
    ("rpm-sqlite.toml", include_str!("../../scenarios/rpm-sqlite.toml")),
    ("smoke.toml", include_str!("../../scenarios/smoke.toml")),
    ("sqlite-kill.toml", include_str!("../../scenarios/sqlite-kill.toml")),
    ("stale-locks.toml", include_str!("../../scenarios/stale-locks.toml")),
    ("sweep-rebuild.toml", include_str!("../../scenarios/sweep-rebuild.toml")),
    ("sweep.toml", include_str!("../../scenarios/sweep.toml")),
];

/// The scenarios part of `dbtorture list`: those in `dir`, or (without one) the shipped ones, each with its
/// description, or why it does not load.
pub fn listing(dir: Option<&std::path::Path>) -> String {
    use crate::scenario::Scenario;
    use std::fmt::Write as _;
    let mut t = String::new();
    let line = |t: &mut String, name: &str, r: Result<Scenario, crate::scenario::ScenarioError>| {
        match r {
            Ok(s) => writeln!(t, "  {name:<36} {}", s.description),
            Err(e) => writeln!(t, "  {name:<36} INVALID: {e}"),
        }
        .ok();
    };
    match dir {
        Some(dir) => {
            writeln!(t, "scenarios ({}):", dir.display()).ok();
            let mut entries: Vec<_> = match std::fs::read_dir(dir) {
                Ok(d) => d.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
                Err(e) => {
                    writeln!(t, "  cannot read {}: {e}", dir.display()).ok();
                    Vec::new()
                }
            };
            entries.sort();
            for p in entries.iter().filter(|p| p.extension().is_some_and(|x| x == "toml")) {
                line(&mut t, &p.display().to_string(), Scenario::load(p));
            }
        }
        None => {
            writeln!(t, "scenarios (shipped with dbtorture; run one as scenarios/NAME from a checkout):").ok();
            for (name, text) in SCENARIOS {
                let path = std::path::Path::new("scenarios").join(name);
                line(&mut t, &path.display().to_string(), Scenario::parse(text, &path));
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_file_in_scenarios_is_shipped_and_current() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".toml"))
            .collect();
        files.sort();
        let shipped: Vec<&str> = super::SCENARIOS.iter().map(|(n, _)| *n).collect();
        assert_eq!(files, shipped, "add the new scenario to harness/src/shipped.rs");
        for (n, text) in super::SCENARIOS {
            assert_eq!(std::fs::read_to_string(dir.join(n)).unwrap(), *text);
        }
    }
}
