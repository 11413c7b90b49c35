//! `dbtorture qemu --replay BUNDLE`: a bundle of a guest run replayed where it was written — boot the
//! guest with the bundle on its card, run `dbtorture replay` there, bring back what it said and its exit
//! code (0 same verdict, 1 different, 2 not a bundle it can replay, 3 harness error; 4/5 guest trouble).
//!
//! Why in the guest: a replay re-runs the engine natively from the bundle's `pre/`, whose bdbenv region
//! files hold the 32-bit guest's words; on x86_64 `inspect`/`verify` can read them, but the engine cannot
//! run on them (`bundle::check_machine` refuses, naming this command).

use super::boot::boot;
use super::disk;
use super::guest::Job;
use super::host::{QemuArgs, artifacts};
use super::results::ExitReason;
use crate::bundle::BundleInfo;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file in the guest's `/sd/out` (and then in OUT) that holds what `replay` printed.
pub const GUEST_OUTPUT: &str = "replay.txt";
/// Where the bundle and its scenario are put on the card, relative to `/sd/job`.
const GUEST_BUNDLE: &str = "bundle.tar.gz";
const GUEST_SCENARIO: &str = "scenarios/replay.toml";

/// The guest's kind of machine: the bundles it wrote, and only those, replay there.
fn written_in_a_guest(info: &BundleInfo) -> Result<()> {
    match &info.written_on {
        Some(m) if m.pointer_width == 32 && m.little_endian => Ok(()),
        Some(m) => bail!(
            "this bundle was written on {} ({}-bit), not in the 32-bit ARM guest: replay it there with \
             `dbtorture replay`",
            m.arch,
            m.pointer_width
        ),
        None => {
            bail!("this bundle records no machine (an older dbtorture wrote it): replay it with `dbtorture replay`")
        }
    }
}

/// The archive to copy onto the card: the bundle itself, or a packed copy of a bundle directory.
fn archive(bundle: &Path, scratch: &Path) -> Result<PathBuf> {
    if !bundle.is_dir() {
        return Ok(bundle.to_path_buf());
    }
    let copy = scratch.join(bundle.file_name().context("the bundle directory has no name")?);
    crate::bundle::copy_dir(bundle, &copy).context("copying the bundle")?;
    Ok(crate::bundle::pack(&copy)?)
}

/// Replay `bundle` in the guest; returns the exit code.
pub fn replay(a: &QemuArgs, bundle: &Path) -> Result<i32> {
    let opened = crate::bundle::open(bundle)?;
    let text = std::fs::read_to_string(opened.dir.join("bundle.json"))
        .with_context(|| format!("{}: not a bundle (no bundle.json)", bundle.display()))?;
    let info: BundleInfo = serde_json::from_str(&text).context("bundle.json")?;
    written_in_a_guest(&info)?;
    let sc = crate::scenario::Scenario::parse(&info.scenario_text, Path::new(&info.scenario_path))?;
    let art = artifacts(a)?;
    let name = bundle.file_name().map(|n| n.to_string_lossy().trim_end_matches(".tar.gz").to_string());
    let out =
        a.out.clone().unwrap_or_else(|| PathBuf::from(format!("target/qemu/replay-{}", name.unwrap_or_default())));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for f in [GUEST_OUTPUT, "console.log", "guest.json", "sd.img"] {
        let _ = std::fs::remove_file(out.join(f));
    }
    let scratch = crate::leftovers::scratch("qemu-replay")?;
    let archive = archive(bundle, scratch.path())?;
    let sd = out.join("sd.img");
    disk::prepare(&art.sd_template, &sd, GUEST_SCENARIO, &info.scenario_text).context("preparing the SD image")?;
    disk::put(&sd, &archive, GUEST_BUNDLE).context("copying the bundle onto the SD image")?;
    let job = Job {
        scenario: Some(GUEST_SCENARIO.into()),
        replay: Some(GUEST_BUNDLE.into()),
        dev: a.guest_dev.clone(),
        ..Job::default()
    };
    // Boot, then one cycle run up to 16 placements × 3 rounds, each bounded like a run's cycle.
    let per = Duration::from_millis(3 * sc.timeouts.cycle_ms + sc.timeouts.probe_ms) + Duration::from_secs(30);
    let timeout = a.timeout.unwrap_or(Duration::from_secs(180) + per * 12);
    let title = format!("replay of cycle {} ({}, seed {}) on {}", info.cycle, info.backend, info.seed, a.machine);
    let booted = boot(a, &art, &sd, &out, &job, timeout, &title, None)?;
    let (watch, wall_s) = (&booted.watch, booted.wall_s);
    let reason = booted.exit_reason();
    let read_dir = out.join(".sd-read");
    let _ = std::fs::remove_dir_all(&read_dir);
    std::fs::create_dir_all(&read_dir)?;
    let said = match disk::read_out(&sd, &read_dir) {
        Ok(dir) => std::fs::rename(dir.join(GUEST_OUTPUT), out.join(GUEST_OUTPUT))
            .ok()
            .and_then(|_| std::fs::read_to_string(out.join(GUEST_OUTPUT)).ok()),
        Err(e) => {
            eprintln!("qemu: could not read the replay's output from the SD image: {e}");
            None
        }
    };
    let _ = std::fs::remove_dir_all(&read_dir);
    if !a.keep_sd {
        let _ = std::fs::remove_file(&sd);
    }
    let info_out = booted.info(a, &art, reason, Default::default(), if said.is_some() { "sd-image" } else { "none" });
    dbtorture_reports::write_json_atomic(&out.join("guest.json"), &info_out)?;
    match &said {
        Some(t) => crate::say_raw!("{}", t.lines().map(|l| format!("guest| {l}\n")).collect::<String>()),
        None => crate::say!("the guest's replay said nothing that came back"),
    }
    crate::say!("guest: {reason:?}, wall {wall_s:.1}s; console and guest.json in {}", out.display());
    let code = reason.exit_code(watch.done.map(|d| d.0));
    if reason == ExitReason::Completed && said.is_none() {
        bail!("the guest's replay ended (exit {code}) but its output did not come back");
    }
    Ok(code)
}
