//! The naive kill loop of the real rpm (`ci/naive-rpm-loop.sh`): the yardstick dbtorture's real-rpm scenario
//! is measured against.
//!
//! Why it lives here: the loop must install the same packages dbtorture's rpm scenario installs, and only the
//! workload pool can build them. `dbtorture __naive-rpm-packages SCENARIO DIR` writes them out as `.rpm` files
//! in the layout the script reads; [`run_loop`] runs the script (compiled into the binary, so `bench rpm`
//! works from any directory) and reads its closing line.

use crate::scenario::Scenario;
use crate::workload::{Pool, PoolSpec};
use anyhow::{Context, Result, bail};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The script, as shipped in `ci/`.
pub const SCRIPT: &str = include_str!("../../ci/naive-rpm-loop.sh");

/// Where [`write_packages`] puts things inside its directory: the template root's packages, the packages each
/// cycle's `rpm -U` installs, and the probe package.
pub const INITIAL: &str = "initial";
pub const CYCLE: &str = "cycle";
pub const PROBE: &str = "probe.rpm";
/// The kill delay range the loop draws from, `MIN MAX` in ms (the scenario's `[kill]`).
pub const DELAY: &str = "delay-ms";

/// What [`write_packages`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSet {
    pub initial: usize,
    pub cycle: usize,
}

/// Write the scenario's pool (same seed ⇒ the same bytes dbtorture's rpm scenario installs) into `dir`:
/// `initial/` (one version of about `initial_fraction` of the names, the fresh root's packages), `cycle/`
/// (for every name, a version other than the initial one: an upgrade or a new install), `probe.rpm`, and
/// `delay-ms` (the scenario's kill delay range).
pub fn write_packages(sc: &Scenario, dir: &Path) -> Result<PackageSet> {
    let w = &sc.workload;
    if w.packages == 0 || w.versions == 0 {
        bail!("scenario {}: the workload has no packages", sc.name);
    }
    let pool =
        Pool::build(PoolSpec { names: w.packages, versions: w.versions, files_mean: w.files_mean, seed: sc.seed })
            .context("building the scenario's package pool")?;
    let files = pool.rpm_files().context("writing the pool's .rpm files")?;
    let (initial_dir, cycle_dir) = (dir.join(INITIAL), dir.join(CYCLE));
    for d in [&initial_dir, &cycle_dir] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let write =
        |to: PathBuf, bytes: &[u8]| std::fs::write(&to, bytes).with_context(|| format!("writing {}", to.display()));
    let mut rng = ChaCha8Rng::seed_from_u64(sc.seed);
    let mut set = PackageSet { initial: 0, cycle: 0 };
    for n in 0..w.packages {
        let id = |v: u32| (n * w.versions + v) as usize;
        let first = if rng.random_range(0.0..1.0) < w.initial_fraction {
            let v = rng.random_range(0..w.versions);
            let p = &pool.packages[id(v)];
            write(initial_dir.join(format!("{}.rpm", p.nevra)), &files[id(v)].1)?;
            set.initial += 1;
            Some(v)
        } else {
            None
        };
        // rpm -U of the installed version itself is refused ("already installed"): another one or none.
        let next = match first {
            None => Some(0),
            Some(v) if w.versions > 1 => Some((v + 1) % w.versions),
            Some(_) => None,
        };
        if let Some(v) = next {
            write(cycle_dir.join(format!("{}.rpm", pool.packages[id(v)].nevra)), &files[id(v)].1)?;
            set.cycle += 1;
        }
    }
    let probe = files.last().expect("rpm_files ends with the probe package");
    write(dir.join(PROBE), &probe.1)?;
    write(dir.join(DELAY), format!("{} {}\n", sc.kill.delay_ms_min, sc.kill.delay_ms_max).as_bytes())?;
    Ok(set)
}

/// The closing line of one run of the loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoopResult {
    pub cycles: u64,
    pub seconds: f64,
}

/// Write the script into `dir` (executable), for [`run_loop`].
pub fn install_script(dir: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("naive-rpm-loop.sh");
    std::fs::write(&path, SCRIPT).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// Run the loop in `script` over the packages in `pkgdir` for about `seconds` (it finishes the cycle in hand),
/// with scratch roots under `workdir`. Fails when the loop reports a failure.
pub fn run_loop(script: &Path, pkgdir: &Path, workdir: &Path, seconds: Duration, seed: u64) -> Result<LoopResult> {
    let out = Command::new("bash")
        .arg(script)
        .args(["--seconds", &format!("{:.3}", seconds.as_secs_f64())])
        .args(["--seed", &seed.to_string()])
        .arg("--workdir")
        .arg(workdir)
        .arg(pkgdir)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}{}",
            script.display(),
            out.status,
            stdout.trim_end(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    stdout
        .lines()
        .rev()
        .find_map(parse_result)
        .with_context(|| format!("{} printed no result line: {stdout}", script.display()))
}

/// `naive-rpm-loop: N cycles in S s: R cycles/s`.
pub fn parse_result(line: &str) -> Option<LoopResult> {
    let rest = line.strip_prefix("naive-rpm-loop: ")?;
    let mut words = rest.split_whitespace();
    let cycles = words.next()?.parse().ok()?;
    if words.next()? != "cycles" || words.next()? != "in" {
        return None;
    }
    let seconds = words.next()?.parse().ok()?;
    Some(LoopResult { cycles, seconds })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_line() {
        assert_eq!(
            parse_result("naive-rpm-loop: 12 cycles in 10.5 s: 1.14 cycles/s"),
            Some(LoopResult { cycles: 12, seconds: 10.5 })
        );
        assert_eq!(parse_result("naive-rpm-loop: FAIL cycle 3: rpmdb --verifydb failed"), None);
        assert_eq!(parse_result("cycle 3 ok"), None);
    }
}
