//! `bench verify-fedora`'s side-by-side figure: `dbtorture verify` against `rpmdb --verifydb` on the same
//! database, each a whole process, alternating (so the machine's load hits both alike), medians of wall time
//! and of peak resident memory (`ru_maxrss` of each process), and whether the targets hold.
//!
//! Why whole processes: that is what a user compares (`rpmdb --verifydb` is a process too), and a process's
//! peak memory is the figure the target is about.

use anyhow::{Context, Result};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Targets (issue 16): at most 1.5× rpm's wall time, at most 40 MiB peak.
pub const MAX_RATIO: f64 = 1.5;
pub const MAX_PEAK_MIB: f64 = 40.0;

/// One run of one command.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub wall: Duration,
    pub peak_kib: u64,
}

/// GNU time reports its child's `ru_maxrss`. Not measured by this process itself: a child of a process
/// that holds much memory starts its own peak at that size (Linux carries the peak of the address space it
/// replaces at exec into the new program's), and this bench holds a Fedora-size package pool.
pub const GNU_TIME: &str = "/usr/bin/time";

/// Run `program args` under GNU time to its end (output discarded); it must exit 0. `scratch` holds time's
/// report.
pub fn sample(program: &Path, args: &[&std::ffi::OsStr], scratch: &Path) -> Result<Sample> {
    let what = format!("{} {args:?}", program.display());
    let report = scratch.join("maxrss");
    let mut cmd = Command::new(GNU_TIME);
    cmd.args(["-f", "%M", "-o"]).arg(&report).arg(program).args(args);
    let t = Instant::now();
    let status = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status().context(what.clone())?;
    let wall = t.elapsed();
    anyhow::ensure!(status.success(), "{what} failed ({status})");
    let text = std::fs::read_to_string(&report).with_context(|| format!("{}: GNU time's report", report.display()))?;
    let peak_kib = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("GNU time's report is not a number of KiB: {text:?}"))?;
    Ok(Sample { wall, peak_kib })
}

fn median<T: Copy + PartialOrd>(mut xs: Vec<T>) -> T {
    xs.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    xs[xs.len() / 2]
}

/// Medians of a command's samples.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    pub wall: Duration,
    pub peak_mib: f64,
}

fn figures(xs: &[Sample]) -> Figures {
    Figures {
        wall: median(xs.iter().map(|s| s.wall).collect()),
        peak_mib: median(xs.iter().map(|s| s.peak_kib as f64 / 1024.0).collect()),
    }
}

/// The comparison's verdict, as printed.
pub fn verdict(ours: Figures, rpm: Figures) -> (f64, bool, bool) {
    let ratio = ours.wall.as_secs_f64() / rpm.wall.as_secs_f64().max(1e-9);
    (ratio, ratio <= MAX_RATIO, ours.peak_mib <= MAX_PEAK_MIB)
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

/// Run both verifies of the sqlite database in `dir` `rounds` times, alternating which goes first, after one
/// unmeasured warm-up each; print medians, the ratio and the targets.
pub fn side_by_side(dir: &Path, rounds: usize) -> Result<()> {
    let Some(rpmdb) = which("rpmdb") else {
        crate::say!("  side by side with rpm: skipped (no rpmdb on PATH; Debian package rpm)");
        return Ok(());
    };
    if !Path::new(GNU_TIME).is_file() {
        crate::say!("  side by side with rpm: skipped (no {GNU_TIME}; Debian package time)");
        return Ok(());
    }
    let exe = std::env::current_exe().context("this program's path")?;
    let scratch = crate::leftovers::scratch("bench-time")?;
    let ours_args: Vec<&std::ffi::OsStr> =
        vec!["verify".as_ref(), "--backend".as_ref(), "sqlite".as_ref(), dir.as_os_str()];
    let rpm_args: Vec<&std::ffi::OsStr> = vec!["--dbpath".as_ref(), dir.as_os_str(), "--verifydb".as_ref()];
    let ours = || sample(&exe, &ours_args, scratch.path());
    let rpm = || sample(&rpmdb, &rpm_args, scratch.path());
    ours().context("dbtorture verify (warm-up)")?;
    rpm().context("rpmdb --verifydb (warm-up)")?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        if round % 2 == 0 {
            a.push(ours()?);
            b.push(rpm()?);
        } else {
            b.push(rpm()?);
            a.push(ours()?);
        }
    }
    let (fa, fb) = (figures(&a), figures(&b));
    let (ratio, fast, small) = verdict(fa, fb);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    crate::say!("  side by side, whole processes, {rounds} alternating rounds (medians):");
    crate::say!("    dbtorture verify      {:8.1} ms, peak {:5.1} MiB", ms(fa.wall), fa.peak_mib);
    crate::say!("    rpmdb --verifydb      {:8.1} ms, peak {:5.1} MiB", ms(fb.wall), fb.peak_mib);
    crate::say!(
        "    ratio {ratio:.2}× (target ≤ {MAX_RATIO}×: {}); peak {:.1} MiB (target ≤ {MAX_PEAK_MIB} MiB: {})",
        met(fast),
        fa.peak_mib,
        met(small)
    );
    Ok(())
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(program)).find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_applies_both_targets() {
        let f = |ms: u64, mib: f64| Figures { wall: Duration::from_millis(ms), peak_mib: mib };
        assert!(verdict(f(300, 39.0), f(200, 11.0)).1);
        assert!(!verdict(f(301, 39.0), f(200, 11.0)).1);
        assert!(!verdict(f(300, 40.5), f(200, 11.0)).2);
        assert_eq!(median(vec![5, 1, 3]), 3);
    }

    #[test]
    fn sample_reports_a_child_peak_and_a_failure() {
        if !Path::new(GNU_TIME).is_file() {
            assert!(std::env::var_os("CI").is_none(), "CI needs {GNU_TIME} (Debian package time)");
            eprintln!("skipped: no {GNU_TIME}");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        // A child whose buffer is 64 MiB: its own peak is measured.
        let args: Vec<&std::ffi::OsStr> =
            vec!["if=/dev/zero".as_ref(), "of=/dev/null".as_ref(), "bs=64M".as_ref(), "count=1".as_ref()];
        let s = sample(Path::new("dd"), &args, tmp.path()).unwrap();
        assert!(s.peak_kib >= 64 * 1024, "peak {} KiB", s.peak_kib);
        let small = sample(Path::new("true"), &[], tmp.path()).unwrap();
        assert!(small.peak_kib < 32 * 1024, "peak {} KiB", small.peak_kib);
        assert!(sample(Path::new("false"), &[], tmp.path()).is_err());
    }
}
