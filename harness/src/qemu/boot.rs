//! Booting the guest: the qemu command line, streaming its console (framed events, kernel trouble) into
//! a [`Watch`], the wall-clock timeout, Ctrl-C/SIGTERM — shared by `dbtorture qemu` (a scenario) and
//! `dbtorture qemu --replay` (a bundle), which differ only in the job they hand the guest and what they
//! bring back from its card.
//!
//! Why a timeout with a kill and a pdeathsig: an emulated guest can hang silently (a kernel stuck in a
//! driver, a run that never ends); qemu must never outlive this process or the deadline, whatever the guest
//! does. qemu is started through `setpriv --pdeathsig KILL` so it dies with us even if we are SIGKILLed.

use super::console::{GuestMsg, KernelTrouble, LineSplitter, kernel_trouble};
use super::guest::Job;
use super::host::{Artifacts, QemuArgs};
use super::results::{self, TroubleLine};
use anyhow::{Context, Result, bail};
use dbtorture_reports::RunEvent;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Set once a boot has ended with qemu having run (not failed to start): from then on a failure is the harness's (exit 3), not the input's (exit 2).
static BOOTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process has started a guest (see [`BOOTED`]).
pub fn booted() -> bool {
    BOOTED.load(std::sync::atomic::Ordering::Relaxed)
}

/// How a boot ended, and what it was.
pub(super) struct Boot {
    pub(super) watch: Watch,
    pub(super) timed_out: bool,
    pub(super) interrupted: bool,
    pub(super) wall_s: f64,
    pub(super) append: String,
    pub(super) qemu_cmd: Vec<String>,
    /// Seconds after starting qemu at which the [`PowerSwitch`] had it SIGKILLed, if it did.
    pub(super) cut_at_s: Option<f64>,
}

/// Watches the console and may cut the power: SIGKILL qemu (`qemu --power-cut`, `powercut.rs`).
pub(super) trait PowerSwitch {
    /// A console line, as it arrives (also the lines read after the kill: qemu wrote them before it).
    fn line(&mut self, line: &str, at: Instant);
    /// When to kill qemu, once that is known.
    fn cut_at(&self) -> Option<Instant>;
}

impl Boot {
    /// How the guest ended, from its sentinel, the worst kernel trouble, the timeout and an interrupt (a power
    /// cut's caller decides `PowerCut` itself).
    pub(super) fn exit_reason(&self) -> results::ExitReason {
        let w = &self.watch;
        results::ExitReason::decide(
            w.done.map(|d| d.0),
            w.worst(),
            self.timed_out,
            !w.guest_errors.is_empty(),
            self.interrupted,
        )
    }

    /// guest.json of this boot: a scenario's run and a replay differ only in cycles per minute and in where
    /// the results came from.
    pub(super) fn info(
        &self,
        a: &QemuArgs,
        art: &Artifacts,
        reason: results::ExitReason,
        cycles_per_min: std::collections::BTreeMap<String, f64>,
        results_from: &str,
    ) -> results::GuestInfo {
        let w = &self.watch;
        results::GuestInfo {
            schema: 1,
            exit_reason: reason,
            guest_exit: w.done.map(|d| d.0),
            machine: a.machine.clone(),
            kernel: art.kernel.display().to_string(),
            dtb: art.dtb.as_ref().map(|d| d.display().to_string()),
            initrd: art.initrd.display().to_string(),
            append: self.append.clone(),
            qemu_command: self.qemu_cmd.clone(),
            boot_to_init_s: w.init_at,
            boot_to_ready_s: w.ready_at,
            boot_to_first_cycle_s: w.first_cycle_at,
            first_findings: w.first_findings.clone(),
            wall_s: self.wall_s,
            guest_uptime_s: w.done.map(|d| d.1),
            cycles_per_min,
            results_from: results_from.into(),
            kernel_trouble: w.trouble.clone(),
            guest_errors: w.guest_errors.clone(),
        }
    }
}

/// Boot the guest with `job` on the card `sd`, stream its console into `out/console.log`, and wait until
/// it powers off, panics, times out (`timeout`) or is interrupted.
#[allow(clippy::too_many_arguments)] // one boot, as its three callers describe it
pub(super) fn boot(
    a: &QemuArgs,
    art: &Artifacts,
    sd: &Path,
    out: &Path,
    job: &Job,
    timeout: Duration,
    title: &str,
    mut switch: Option<&mut dyn PowerSwitch>,
) -> Result<Boot> {
    // The guest has no clock: it gets the host's (see `Job::clock`).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs());
    let job = &Job { clock: job.clock.or(now), ..job.clone() };
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

    if !a.quiet {
        eprintln!("qemu: {title}, timeout {}s; out {}", timeout.as_secs(), out.display());
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
    let mut cut_at_s = None;
    loop {
        let now = Instant::now();
        if status.is_none() && switch.as_ref().and_then(|s| s.cut_at()).is_some_and(|t| now >= t) {
            // The power cut: no signal the guest could see, no sync; the card keeps what was written back.
            let _ = child.kill();
            cut_at_s = Some(started.elapsed().as_secs_f64());
            status = child.wait().ok();
        }
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
        let mut wait = Duration::from_millis(500);
        if let Some(t) = switch.as_ref().and_then(|s| s.cut_at()).filter(|_| status.is_none()) {
            wait = wait.min(t.saturating_duration_since(Instant::now()));
        }
        match rx.recv_timeout(wait) {
            Ok(Chunk::Console(b)) => {
                let _ = console_log.write_all(&b);
                let t = started.elapsed().as_secs_f64();
                for l in lines.push(&b) {
                    if let Some(s) = switch.as_mut() {
                        s.line(&l, Instant::now());
                    }
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
    BOOTED.store(true, std::sync::atomic::Ordering::Relaxed);

    Ok(Boot { watch, timed_out, interrupted, wall_s, append, qemu_cmd, cut_at_s })
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
pub(super) struct Watch {
    pub(super) events: Vec<RunEvent>,
    pub(super) trouble: Vec<TroubleLine>,
    pub(super) guest_errors: Vec<String>,
    pub(super) done: Option<(i32, f64)>,
    pub(super) init_at: Option<f64>,
    pub(super) ready_at: Option<f64>,
    pub(super) first_cycle_at: Option<f64>,
    /// The first finding of each kind (time to first detection) and its text.
    pub(super) first_findings: std::collections::BTreeMap<String, results::FirstFinding>,
    pub(super) cycles: u64,
    pub(super) unexpected: u64,
    /// The sentinel came and the kernel said "reboot: Power down". On machines qemu gives no power-off
    /// (raspi0) the reboot syscall then exits init, which panics: that panic is the power-off, not a crash.
    pub(super) powered_off: bool,
}

impl Watch {
    pub(super) fn worst(&self) -> Option<KernelTrouble> {
        self.trouble.iter().map(|t| t.kind).max()
    }

    pub(super) fn line(&mut self, line: &str, t: f64, quiet: bool) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::results::ExitReason;

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
