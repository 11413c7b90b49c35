//! The host side of `dbtorture qemu`: prepare the SD image with the job, boot qemu-system-arm, stream the
//! serial console (progress lines, kernel trouble), enforce the wall-clock timeout, then bring the results
//! back into an out directory shaped like `run --out`'s.
//!
//! Why a timeout with a kill and a pdeathsig: an emulated guest can hang silently (a kernel stuck in a
//! driver, a run that never ends); qemu must never outlive this process or the deadline, whatever the guest
//! does. qemu is started through `setpriv --pdeathsig KILL` so it dies with us even if we are SIGKILLed.

use super::console::{GuestMsg, KernelTrouble, LineSplitter, kernel_trouble};
use super::disk;
use super::guest::Job;
use super::results::{self, ExitReason, GuestInfo, TroubleLine};
use crate::exit_codes;
use crate::scenario::{Scenario, parse_duration};
use anyhow::{Context, Result, bail};
use dbtorture_reports::{RunEvent, Summary, write_json_atomic};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use super::machine::DEFAULT_APPEND;

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).ok_or_else(|| format!("expected a duration like 60s or 5m, got {s:?}"))
}

/// `dbtorture qemu` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct QemuArgs {
    /// The scenario to run in the guest (copied onto the guest's SD card).
    #[arg(long)]
    pub scenario: PathBuf,
    /// Seed of the packages, transactions and kill plans (default: the scenario's `seed`).
    #[arg(long)]
    pub seed: Option<u64>,
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
struct Artifacts {
    kernel: PathBuf,
    dtb: Option<PathBuf>,
    initrd: PathBuf,
    sd_template: PathBuf,
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

fn artifacts(a: &QemuArgs) -> Result<Artifacts> {
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
fn guest_scenario_path(p: &Path) -> String {
    let plain = p.is_relative() && p.components().all(|c| matches!(c, std::path::Component::Normal(_)));
    if plain {
        p.to_string_lossy().into_owned()
    } else {
        format!("scenarios/{}", p.file_name().map(|n| n.to_string_lossy()).unwrap_or_default())
    }
}

/// Generous: the guest CPU is an emulated single core, tens of times slower than the host.
fn default_timeout(sc: &Scenario, a: &QemuArgs) -> Duration {
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

enum Chunk {
    Console(Vec<u8>),
    Stderr(Vec<u8>),
    Closed,
}

fn pump(mut r: impl Read + Send + 'static, tx: mpsc::Sender<Chunk>, wrap: fn(Vec<u8>) -> Chunk) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(wrap(buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = tx.send(Chunk::Closed);
    });
}

/// What the console told us.
#[derive(Default)]
struct Watch {
    events: Vec<RunEvent>,
    trouble: Vec<TroubleLine>,
    guest_errors: Vec<String>,
    done: Option<(i32, f64)>,
    init_at: Option<f64>,
    ready_at: Option<f64>,
    first_cycle_at: Option<f64>,
    /// The first finding of each kind (time to first detection) and its text.
    first_findings: std::collections::BTreeMap<String, results::FirstFinding>,
    cycles: u64,
    unexpected: u64,
    /// The sentinel came and the kernel said "reboot: Power down". On machines qemu gives no power-off
    /// (raspi0) the reboot syscall then exits init, which panics: that panic is the power-off, not a crash.
    powered_off: bool,
}

impl Watch {
    fn worst(&self) -> Option<KernelTrouble> {
        self.trouble.iter().map(|t| t.kind).max()
    }

    fn line(&mut self, line: &str, t: f64, quiet: bool) {
        match GuestMsg::parse(line) {
            Some(GuestMsg::Init { .. }) => self.init_at = Some(t),
            Some(GuestMsg::Ready { .. }) => self.ready_at = Some(t),
            Some(GuestMsg::Error(e)) => {
                eprintln!("[qemu {t:6.1}s] guest error: {e}");
                self.guest_errors.push(e);
            }
            Some(GuestMsg::Done { exit, uptime_s }) => self.done = Some((exit, uptime_s)),
            Some(GuestMsg::Event(ev)) => {
                match &*ev {
                    RunEvent::CycleStart { .. } if self.first_cycle_at.is_none() => {
                        self.first_cycle_at = Some(t);
                        if !quiet {
                            eprintln!("[qemu {t:6.1}s] first cycle started");
                        }
                    }
                    RunEvent::Finding { cycle, backend, finding, .. }
                        if !self.first_findings.contains_key(&finding.kind) =>
                    {
                        let text = format!("cycle {cycle} {backend}: {}", finding.message);
                        if !quiet {
                            eprintln!("[qemu {t:6.1}s] first {} finding: {text}", finding.kind);
                        }
                        self.first_findings.insert(finding.kind.clone(), results::FirstFinding { at_s: t, text });
                    }
                    RunEvent::CycleEnd { cycle, backend, outcome, expected, duration_ms, .. } => {
                        self.cycles += 1;
                        self.unexpected += u64::from(!expected);
                        if !quiet {
                            eprintln!(
                                "[qemu {t:6.1}s] cycle {cycle} {backend}: {outcome}{} in {:.1}s — {} cycles, {} unexpected",
                                if *expected { "" } else { " (UNEXPECTED)" },
                                duration_ms / 1000.0,
                                self.cycles,
                                self.unexpected
                            );
                        }
                    }
                    _ => {}
                }
                self.events.push(*ev);
            }
            None if self.done.is_some()
                && (line.contains("reboot: Power down") || line.contains("reboot: System halted")) =>
            {
                self.powered_off = true
            }
            None if self.powered_off => {}
            None => {
                if let Some(kind) = kernel_trouble(line) {
                    eprintln!("[qemu {t:6.1}s] guest kernel {kind:?}: {line}");
                    self.trouble.push(TroubleLine { kind, line: line.to_string() });
                } else if !quiet && !line.contains(super::console::PREFIX) {
                    eprintln!("  guest| {line}");
                }
            }
        }
    }
}

fn read_events(path: &Path) -> Vec<RunEvent> {
    std::fs::read_to_string(path)
        .map(|s| s.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
        .unwrap_or_default()
}

/// Run a scenario in the guest; returns the exit code (see exit_codes.rs; GUEST_KERNEL, GUEST_LOST).
pub fn run(a: &QemuArgs) -> Result<i32> {
    let sc = Scenario::load(&a.scenario).map_err(|e| anyhow::anyhow!("{e}"))?;
    let text = std::fs::read_to_string(&a.scenario).with_context(|| format!("reading {}", a.scenario.display()))?;
    let seed = a.seed.unwrap_or(sc.seed);
    let art = artifacts(a)?;
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("target/qemu/{}-seed{seed}", sc.name)));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for f in ["summary.json", "events.jsonl", "console.log", "guest.json", "sd.img"] {
        let _ = std::fs::remove_file(out.join(f));
    }
    let _ = std::fs::remove_dir_all(out.join("bundles"));

    let rel = guest_scenario_path(&a.scenario);
    let sd = out.join("sd.img");
    disk::prepare(&art.sd_template, &sd, &rel, &text).context("preparing the SD image")?;
    let job = Job {
        scenario: Some(rel),
        seed: Some(seed),
        cycles: a.cycles,
        duration: a.duration.map(|d| format!("{}s", d.as_secs())),
        dev: a.guest_dev.clone(),
        no_bundles: a.no_bundles,
    };
    let mut append = a.append.clone();
    if let Some(m) = &a.mem {
        append.push_str(&format!(" mem={m} cma=8M"));
    }
    append.push(' ');
    append.push_str(&job.to_cmdline());

    let mut qemu_cmd: Vec<String> = vec![a.qemu.clone(), "-M".into(), a.machine.clone()];
    qemu_cmd.extend(["-kernel".into(), art.kernel.display().to_string()]);
    if let Some(d) = &art.dtb {
        qemu_cmd.extend(["-dtb".into(), d.display().to_string()]);
    }
    qemu_cmd.extend(["-initrd".into(), art.initrd.display().to_string()]);
    qemu_cmd.extend(["-drive".into(), format!("file={},{}", sd.display(), a.drive)]);
    qemu_cmd.extend(["-nographic".into(), "-no-reboot".into(), "-append".into(), append.clone()]);
    qemu_cmd.extend(super::machine::timekeeping_args(&a.machine, &a.qemu_args));
    qemu_cmd.extend(a.qemu_args.iter().cloned());

    let timeout = a.timeout.unwrap_or_else(|| default_timeout(&sc, a));
    if !a.quiet {
        eprintln!(
            "qemu: {} on {} (seed {seed}), timeout {}s; out {}",
            sc.name,
            a.machine,
            timeout.as_secs(),
            out.display()
        );
    }
    let mut console_log = std::fs::File::create(out.join("console.log")).context("creating console.log")?;
    let have_setpriv = Command::new("setpriv").arg("--version").output().is_ok_and(|o| o.status.success());
    let mut cmd = if have_setpriv {
        let mut c = Command::new("setpriv");
        c.args(["--pdeathsig", "KILL", "--"]).args(&qemu_cmd);
        c
    } else {
        let mut c = Command::new(&qemu_cmd[0]);
        c.args(&qemu_cmd[1..]);
        c
    };
    // Ctrl-C/SIGTERM: stop qemu, still bring back what the guest wrote (an interrupted run keeps its report).
    // Blocked before the console threads exist, so only this thread's signalfd sees them; std's Command
    // gives qemu an empty signal mask again.
    let mut sigs = SigSet::empty();
    sigs.add(Signal::SIGINT);
    sigs.add(Signal::SIGTERM);
    sigs.thread_block().context("blocking SIGINT/SIGTERM")?;
    let signals = SignalFd::with_flags(&sigs, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).context("signalfd")?;
    let mut interrupted = false;
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {} (apt-get install qemu-system-arm)", a.qemu))?;
    let (tx, rx) = mpsc::channel();
    pump(child.stdout.take().expect("piped"), tx.clone(), Chunk::Console);
    pump(child.stderr.take().expect("piped"), tx, Chunk::Stderr);

    let mut watch = Watch::default();
    let mut lines = LineSplitter::default();
    let mut qemu_stderr = Vec::new();
    let mut open = 2;
    let mut timed_out = false;
    let mut deadline = started + timeout;
    let mut status = None;
    loop {
        let now = Instant::now();
        if status.is_none() && now >= deadline {
            // Timeout, or the grace after a panic/sentinel ran out: qemu must go.
            timed_out = watch.done.is_none() && watch.worst() != Some(KernelTrouble::Panic);
            if timed_out {
                eprintln!("[qemu {:6.1}s] wall-clock timeout: killing qemu", started.elapsed().as_secs_f64());
            }
            let _ = child.kill();
            status = child.wait().ok();
        }
        if status.is_none() && matches!(signals.read_signal(), Ok(Some(_))) {
            eprintln!("[qemu {:6.1}s] interrupted: stopping qemu", started.elapsed().as_secs_f64());
            interrupted = true;
            let _ = child.kill();
            status = child.wait().ok();
        }
        if open == 0 {
            break;
        }
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(Chunk::Console(b)) => {
                let _ = console_log.write_all(&b);
                let t = started.elapsed().as_secs_f64();
                for l in lines.push(&b) {
                    let before = (watch.done.is_some(), watch.worst(), watch.powered_off);
                    watch.line(&l, t, a.quiet);
                    // Synced and unmounted before the sentinel: on machines that only halt (versatilepb),
                    // qemu is stopped once the kernel says so.
                    if watch.powered_off && !before.2 {
                        deadline = deadline.min(Instant::now() + Duration::from_secs(2));
                    }
                    // After the sentinel or a panic qemu should exit by itself; give it a grace period.
                    if (watch.done.is_some(), watch.worst()) != (before.0, before.1)
                        && (watch.done.is_some() || watch.worst() == Some(KernelTrouble::Panic))
                    {
                        deadline = deadline.min(Instant::now() + Duration::from_secs(20));
                    }
                }
            }
            Ok(Chunk::Stderr(b)) => qemu_stderr.extend_from_slice(&b),
            Ok(Chunk::Closed) => open -= 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if status.is_none() {
            status = child.try_wait().ok().flatten();
        }
    }
    if let Some(l) = lines.finish() {
        watch.line(&l, started.elapsed().as_secs_f64(), a.quiet);
    }
    let status = match status {
        Some(s) => s,
        None => {
            let _ = child.kill();
            child.wait().context("waiting for qemu")?
        }
    };
    let wall_s = started.elapsed().as_secs_f64();
    if !qemu_stderr.is_empty() {
        let _ = console_log.write_all(b"\n--- qemu stderr ---\n");
        let _ = console_log.write_all(&qemu_stderr);
    }
    drop(console_log);
    if watch.init_at.is_none() && !status.success() && watch.done.is_none() && !timed_out && !interrupted {
        eprintln!("{}", String::from_utf8_lossy(&qemu_stderr).trim());
        bail!("{} exited with {status} before the guest started (see {})", a.qemu, out.join("console.log").display());
    }

    // Results: the SD image is authoritative; the console's framed events are the fallback.
    let reason = ExitReason::decide(
        watch.done.map(|d| d.0),
        watch.worst(),
        timed_out,
        !watch.guest_errors.is_empty(),
        interrupted,
    );
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
                a.scenario.display(),
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
    let info = GuestInfo {
        schema: 1,
        exit_reason: reason,
        guest_exit: watch.done.map(|d| d.0),
        machine: a.machine.clone(),
        kernel: art.kernel.display().to_string(),
        dtb: art.dtb.as_ref().map(|d| d.display().to_string()),
        initrd: art.initrd.display().to_string(),
        append,
        qemu_command: qemu_cmd,
        boot_to_init_s: watch.init_at,
        boot_to_ready_s: watch.ready_at,
        boot_to_first_cycle_s: watch.first_cycle_at,
        first_findings: watch.first_findings.clone(),
        wall_s,
        guest_uptime_s: watch.done.map(|d| d.1),
        cycles_per_min: results::cycles_per_min(&events),
        results_from: results_from.into(),
        kernel_trouble: watch.trouble.clone(),
        guest_errors: watch.guest_errors.clone(),
    };
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
fn timeline(events: &[dbtorture_reports::RunEvent]) -> dbtorture_reports::Timeline {
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

    #[test]
    fn the_panic_of_a_machine_without_power_off_is_not_a_crash_but_one_before_the_sentinel_is() {
        let power_off = [
            "@@dbtorture done exit=0 uptime=7.25",
            "[    7.292974] reboot: Power down",
            "[    7.296273] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000000",
        ];
        let mut w = Watch::default();
        for l in power_off {
            w.line(l, 1.0, true);
        }
        assert_eq!((w.done, w.worst()), (Some((0, 7.25)), None));
        let mut w = Watch::default();
        for l in &power_off[1..] {
            w.line(l, 1.0, true);
        }
        assert_eq!((w.done, w.worst()), (None, Some(KernelTrouble::Panic)));
        assert_eq!(ExitReason::decide(None, w.worst(), false, false, false), ExitReason::KernelPanic);
    }
}
