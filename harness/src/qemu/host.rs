//! The host side of `dbtorture qemu`: prepare the SD image with the job, boot qemu-system-arm (`boot.rs`),
//! then bring the results back into an out directory shaped like `run --out`'s.

use super::boot::boot;
use super::disk;
use super::guest::Job;
use super::results::{self, ExitReason};
use crate::exit_codes;
use crate::scenario::{Scenario, parse_duration};
use anyhow::{Context, Result, bail};
use dbtorture_reports::{RunEvent, Summary, write_json_atomic};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use super::machine::DEFAULT_APPEND;

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).ok_or_else(|| format!("expected a duration like 60s or 5m, got {s:?}"))
}

/// `dbtorture qemu` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct QemuArgs {
    /// The scenario to run in the guest (copied onto the guest's SD card).
    #[arg(long, required_unless_present = "replay")]
    pub scenario: Option<PathBuf>,
    /// Instead of a scenario: replay a bundle of a guest run (OUT/bundles/cycle-….tar.gz, or its directory)
    /// in the guest, with `dbtorture replay`; exit codes as `replay` has them (0 same verdict, 1 different).
    #[arg(long, conflicts_with_all = ["scenario", "seed", "cycles", "duration", "no_bundles"])]
    pub replay: Option<PathBuf>,
    /// Seed of the packages, transactions and kill plans (default: the scenario's `seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Multiply the scenario's `[timeouts]` by N in the guest (nothing else changes): an x86 scenario's
    /// timeouts are too short for the emulated core (see qemu/slow.rs), e.g. `--timeout-scale 5` for
    /// libdb-kill.toml. The guest and its bundles get the scaled scenario.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100), conflicts_with = "replay")]
    pub timeout_scale: u32,
    /// Cycles per backend.
    #[arg(long, conflicts_with = "duration")]
    pub cycles: Option<u64>,
    /// Run for a duration instead (guest time spent cycling), e.g. 10m.
    #[arg(long, value_parser = parse_duration_arg)]
    pub duration: Option<Duration>,
    /// Shrink the guest's RAM with the kernel's `mem=` (e.g. 160M; on raspi0 keep ≥ 131M: qemu loads the
    /// initrd at 128 MiB). Memory-pressure scenarios then use the guest's cgroup v2 inside that.
    #[arg(long)]
    pub mem: Option<String>,
    /// Out directory: summary.json, events.jsonl, bundles/, console.log, guest.json
    /// (default: target/qemu/SCENARIO-seedN).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Guest kernel (default: Debian's armel rpi kernel from qemu/build-guest.sh).
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// Device tree (default with the default kernel: its rpi-zero dtb with an rng-seed; none otherwise).
    #[arg(long)]
    pub dtb: Option<PathBuf>,
    /// Initramfs whose /init is an armv5te dbtorture (default: build-guest.sh's).
    #[arg(long)]
    pub initrd: Option<PathBuf>,
    /// qemu machine, e.g. raspi0 or versatilepb.
    #[arg(long, default_value = "raspi0")]
    pub machine: String,
    /// Kernel command line; dbtorture's own `dbtorture.*` words (and `mem=`) are appended to it.
    #[arg(long, default_value = DEFAULT_APPEND)]
    pub append: String,
    /// qemu `-drive` options for the SD/disk image (`file=` is added), e.g. `if=scsi,format=raw`.
    #[arg(long, default_value = "if=sd,format=raw")]
    pub drive: String,
    /// The guest's device node of that drive (default: the first of /dev/mmcblk0, /dev/vda, /dev/sda).
    #[arg(long)]
    pub guest_dev: Option<String>,
    /// Where build-guest.sh put its artifacts (default: qemu/.cache/guest above the current directory or
    /// the executable, or $DBTORTURE_GUEST_DIR).
    #[arg(long)]
    pub guest_dir: Option<PathBuf>,
    /// A blank ext4 image to copy as the SD card (default: GUEST_DIR/sd-template.img).
    #[arg(long)]
    pub sd_template: Option<PathBuf>,
    /// Wall-clock limit for the whole boot-run-poweroff (default: from cycles or duration and the
    /// scenario's timeouts, generously).
    #[arg(long, value_parser = parse_duration_arg)]
    pub timeout: Option<Duration>,
    /// The qemu binary.
    #[arg(long, default_value = "qemu-system-arm")]
    pub qemu: String,
    /// Extra qemu arguments, one per flag (e.g. --qemu-arg=-m --qemu-arg=256M for versatilepb).
    #[arg(long = "qemu-arg", allow_hyphen_values = true)]
    pub qemu_args: Vec<String>,
    /// Cut the power instead of running the scenario: one writer per backend commits in a loop on the SD
    /// card; qemu is SIGKILLed at a seeded time after the first acknowledged commit; then e2fsck on a copy
    /// of the card and the databases judged against each engine's power-loss promise (qemu/README.md,
    /// "Power cut"). --cycles N: N boots, one cut each (default 1).
    #[arg(long, conflicts_with_all = ["replay", "duration", "no_bundles"])]
    pub power_cut: bool,
    /// With --power-cut: the window the cut's delay after the first acknowledged commit is drawn from (by
    /// the seed), MIN..MAX.
    #[arg(long, default_value = "200ms..4s", value_parser = super::powercut::CutWindow::parse, requires = "power_cut")]
    pub cut_after: super::powercut::CutWindow,
    /// Don't write bundles of failing cycles in the guest.
    #[arg(long)]
    pub no_bundles: bool,
    /// Keep the SD image (OUT/sd.img) after copying the results out.
    #[arg(long)]
    pub keep_sd: bool,
    /// Don't echo the guest console or print progress lines.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Kernel, dtb, initrd and SD template to boot.
pub(super) struct Artifacts {
    pub(super) kernel: PathBuf,
    pub(super) dtb: Option<PathBuf>,
    pub(super) initrd: PathBuf,
    pub(super) sd_template: PathBuf,
}

fn find_guest_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DBTORTURE_GUEST_DIR") {
        return Some(PathBuf::from(d));
    }
    let mut starts = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        starts.push(cwd);
    }
    if let Ok(exe) = std::env::current_exe() {
        starts.push(exe);
    }
    starts.iter().flat_map(|s| s.ancestors()).map(|a| a.join("qemu/.cache/guest")).find(|g| g.is_dir())
}

pub(super) fn artifacts(a: &QemuArgs) -> Result<Artifacts> {
    let gd = a.guest_dir.clone().or_else(find_guest_dir);
    let need = |given: &Option<PathBuf>, name: &str| -> Result<PathBuf> {
        let p = match (given, &gd) {
            (Some(p), _) => p.clone(),
            (None, Some(g)) => g.join(name),
            (None, None) => bail!("no {name}: run qemu/build-guest.sh first, or pass --guest-dir"),
        };
        if !p.is_file() {
            bail!("{} does not exist: run qemu/build-guest.sh first (or pass it explicitly)", p.display());
        }
        Ok(p)
    };
    let kernel = need(&a.kernel, "vmlinuz")?;
    let dtb = match (&a.dtb, &a.kernel) {
        (Some(_), _) | (None, None) => Some(need(&a.dtb, "guest.dtb")?),
        (None, Some(_)) => None,
    };
    Ok(Artifacts {
        kernel,
        dtb,
        initrd: need(&a.initrd, "initrd.cpio.gz")?,
        sd_template: need(&a.sd_template, "sd-template.img")?,
    })
}

/// The scenario's path as the guest sees it under /sd/job: the same relative path when it is one (so the
/// replay command in summary.json is the x86 one), else `scenarios/FILE`.
pub(super) fn guest_scenario_path(p: &Path) -> String {
    let plain = p.is_relative() && p.components().all(|c| matches!(c, std::path::Component::Normal(_)));
    if plain {
        p.to_string_lossy().into_owned()
    } else {
        format!("scenarios/{}", p.file_name().map(|n| n.to_string_lossy()).unwrap_or_default())
    }
}

/// Generous: the guest CPU is an emulated single core, tens of times slower than the host.
pub(super) fn default_timeout(sc: &Scenario, a: &QemuArgs) -> Duration {
    let boot = Duration::from_secs(180);
    if let Some(d) =
        a.duration.or_else(|| if a.cycles.is_some() { None } else { sc.duration.as_deref().and_then(parse_duration) })
    {
        return boot + d + d / 2;
    }
    let cycles = a.cycles.or(sc.cycles).unwrap_or(20) * sc.backends.len().max(1) as u64;
    // Workers may run up to 3 × cycle_ms while they progress (scheduler/deadline.rs).
    let per = Duration::from_millis(3 * sc.timeouts.cycle_ms + sc.timeouts.probe_ms) + Duration::from_secs(30);
    boot + per * cycles as u32
}

fn read_events(path: &Path) -> Vec<RunEvent> {
    std::fs::read_to_string(path)
        .map(|s| s.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
        .unwrap_or_default()
}

/// Run a scenario in the guest; returns the exit code (see exit_codes.rs; GUEST_KERNEL, GUEST_LOST).
pub fn run(a: &QemuArgs) -> Result<i32> {
    if let Some(bundle) = &a.replay {
        return super::replay::replay(a, bundle);
    }
    let scenario = a.scenario.as_deref().context("no --scenario (and no --replay)")?;
    Scenario::load(scenario).map_err(|e| anyhow::anyhow!("{e}"))?;
    let text = std::fs::read_to_string(scenario).with_context(|| format!("reading {}", scenario.display()))?;
    let text = super::slow::scale_timeouts(&text, a.timeout_scale)?;
    let sc = Scenario::parse(&text, scenario).map_err(|e| anyhow::anyhow!("{e}"))?;
    let seed = a.seed.unwrap_or(sc.seed);
    let art = artifacts(a)?;
    if a.power_cut {
        return super::powercut::run(a, &art, &sc, scenario, &text, seed);
    }
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("target/qemu/{}-seed{seed}", sc.name)));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for f in ["summary.json", "events.jsonl", "console.log", "guest.json", "sd.img"] {
        let _ = std::fs::remove_file(out.join(f));
    }
    let _ = std::fs::remove_dir_all(out.join("bundles"));

    let rel = guest_scenario_path(scenario);
    let sd = out.join("sd.img");
    disk::prepare(&art.sd_template, &sd, &rel, &text).context("preparing the SD image")?;
    let job = Job {
        scenario: Some(rel),
        seed: Some(seed),
        cycles: a.cycles,
        duration: a.duration.map(|d| format!("{}s", d.as_secs())),
        dev: a.guest_dev.clone(),
        no_bundles: a.no_bundles,
        ..Job::default()
    };
    let title = format!("{} on {} (seed {seed})", sc.name, a.machine);
    let timeout = a.timeout.unwrap_or_else(|| default_timeout(&sc, a));
    let booted = boot(a, &art, &sd, &out, &job, timeout, &title, None)?;
    let (watch, wall_s) = (&booted.watch, booted.wall_s);

    // Results: the SD image is authoritative; the console's framed events are the fallback.
    let reason = booted.exit_reason();
    let read_dir = out.join(".sd-read");
    let _ = std::fs::remove_dir_all(&read_dir);
    std::fs::create_dir_all(&read_dir)?;
    let mut results_from = "none";
    match disk::read_out(&sd, &read_dir) {
        Ok(dir) if dir.join("events.jsonl").is_file() => {
            for e in std::fs::read_dir(&dir)?.flatten() {
                std::fs::rename(e.path(), out.join(e.file_name()))
                    .with_context(|| format!("moving {} into {}", e.path().display(), out.display()))?;
            }
            results_from = "sd-image";
        }
        Ok(_) => {}
        Err(e) => eprintln!("qemu: could not read results from the SD image: {e}"),
    }
    let _ = std::fs::remove_dir_all(&read_dir);
    let mut events = read_events(&out.join("events.jsonl"));
    if events.len() < watch.events.len() {
        // The guest died before its writes reached the card: keep what the console carried.
        let mut f = std::fs::File::create(out.join("events.jsonl"))?;
        for ev in &watch.events {
            writeln!(f, "{}", serde_json::to_string(ev)?)?;
        }
        events = watch.events.clone();
        results_from = "console";
    }
    let summary_path = out.join("summary.json");
    let from_guest: Option<Summary> =
        std::fs::read_to_string(&summary_path).ok().and_then(|s| serde_json::from_str(&s).ok());
    let summary = match (reason, from_guest) {
        (ExitReason::Completed, Some(s)) => Some(s),
        (_, s) => {
            // A guest that died is one more event (the cycle it lost), folded like every other, so the
            // summary, junit.xml, report.html and a later `merge` all count it.
            if let Some(ev) =
                results::lost_event(reason, &events, s.as_ref().map(|s| s.backends.as_slice()).unwrap_or(&[]))
            {
                let mut f = std::fs::OpenOptions::new().append(true).create(true).open(out.join("events.jsonl"))?;
                writeln!(f, "{}", serde_json::to_string(&ev)?)?;
                events.push(ev);
            }
            let replay = format!(
                "dbtorture qemu --scenario {} --seed {seed}{}",
                scenario.display(),
                a.cycles.map(|c| format!(" --cycles {c}")).unwrap_or_default()
            );
            let mut s = results::summary_from_events(&events, replay).or(s);
            if let Some(s) = &mut s {
                if reason == ExitReason::Interrupted {
                    s.interrupted = true;
                }
                dbtorture_reports::write_reports(&out, s, &timeline(&events))?;
            }
            s
        }
    };
    if !a.keep_sd {
        let _ = std::fs::remove_file(&sd);
    }
    let info = booted.info(a, &art, reason, results::cycles_per_min(&events), results_from);
    write_json_atomic(&out.join("guest.json"), &info)?;

    if let Some(s) = &summary {
        crate::say_raw!("{}", crate::run::summary_table(s, false));
        crate::say!("replay: {}", s.replay);
    }
    crate::say!(
        "guest: {:?}, boot to first cycle {}, wall {:.1}s, cycles/min {}; results in {} (from {results_from})",
        reason,
        watch.first_cycle_at.map(|t| format!("{t:.1}s")).unwrap_or_else(|| "-".into()),
        wall_s,
        info.cycles_per_min.iter().map(|(b, c)| format!("{b} {c:.1}")).collect::<Vec<_>>().join(", "),
        out.display()
    );
    let code = reason.exit_code(watch.done.map(|d| d.0));
    if summary.is_none() && code == exit_codes::OK {
        bail!("the guest reported success but no summary came back");
    }
    Ok(code)
}

/// The plotted timeline of `events` (the same fold the summary comes from).
pub(super) fn timeline(events: &[dbtorture_reports::RunEvent]) -> dbtorture_reports::Timeline {
    let mut agg = dbtorture_reports::Aggregate::new();
    for e in events {
        agg.push(e);
    }
    agg.timeline().clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_sees_the_scenario_at_the_same_relative_path() {
        assert_eq!(guest_scenario_path(Path::new("scenarios/qemu-smoke.toml")), "scenarios/qemu-smoke.toml");
        assert_eq!(guest_scenario_path(Path::new("/tmp/x/my.toml")), "scenarios/my.toml");
        assert_eq!(guest_scenario_path(Path::new("../s/my.toml")), "scenarios/my.toml");
    }
}
