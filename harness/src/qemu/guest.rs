//! The guest side: dbtorture as `/init` (pid 1) of the qemu guest's initramfs.
//!
//! Why pid 1 and not a shell script: the initramfs holds nothing but this static binary and the ext4
//! modules, so the set-up a distribution's init would do is done here — /proc, /sys, /dev, /tmp, the ext4
//! modules (finit_module), the SD card at /sd (real page writeback, unlike tmpfs), cgroup v2 with +memory
//! when the scenario asks for memory pressure. The job (scenario on the SD card, seed and cycles on the
//! kernel command line) then runs as an ordinary `dbtorture run` child process, exec'd fresh and therefore
//! single-threaded, so the scheduler forks its workers exactly as on x86. Pid 1 only reaps (every orphan
//! ends up here), forwards the run's events to the console framed (see [`super::console`]), and when the
//! run exits syncs, unmounts the card, prints the sentinel and powers off. It never exits: the kernel
//! panics when init does.

use super::console::{GuestMsg, PREFIX};
use super::stall;
use crate::exit_codes;
use nix::mount::{MsFlags, mount, umount};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the SD card is mounted, and the layout the host prepares and reads back.
pub const SD: &str = "/sd";
/// `/sd/job`: the job directory (the run's working directory); the scenario is at `job/<scenario>`.
pub const JOB_DIR: &str = "job";
/// `/sd/out`: the run's `--out` (summary.json, events.jsonl, bundles/).
pub const OUT_DIR: &str = "out";
/// `/sd/work`: the run's `--workdir` (the databases under test).
pub const WORK_DIR: &str = "work";
/// The run's PATH: Debian's armel `rpm` and `rpmdb` are at `/usr/bin` of the initramfs (qemu/build-guest.sh),
/// for the rpm backend and the rpm oracle, as on the host.
const GUEST_PATH: &str = "/usr/bin:/";

/// Whether this process is the guest's init: pid 1 started without arguments (as `rdinit=/init`). A
/// container that runs `dbtorture run …` as its pid 1 passes arguments and gets the normal CLI.
pub fn is_guest_init() -> bool {
    std::process::id() == 1 && std::env::args_os().len() <= 1
}

/// The job, from the kernel command line (`dbtorture.scenario=scenarios/x.toml dbtorture.seed=7 …`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Job {
    /// Path of the scenario relative to `/sd/job`.
    pub scenario: Option<String>,
    pub seed: Option<u64>,
    pub cycles: Option<u64>,
    /// As `run --duration` takes it, e.g. `300s`.
    pub duration: Option<String>,
    /// The block device holding the ext4 image (default: the first of mmcblk0, vda, sda that appears).
    pub dev: Option<String>,
    pub no_bundles: bool,
    /// `dbtorture qemu --replay`: a bundle (relative to `/sd/job`) to replay instead of running the scenario;
    /// what `replay` prints goes to `/sd/out/replay.txt`, its exit code is the guest's.
    pub replay: Option<String>,
    /// `dbtorture qemu --power-cut`: writers commit in a loop until the host cuts the power
    /// (`powercut_guest`), instead of the scenario's run.
    pub power_cut: bool,
    /// The planted bug to switch on in the power-cut writers (the host's `DBTORTURE_PLANT`).
    pub plant: Option<String>,
    /// The host's clock (seconds since 1970) to set the guest's to: the guest has no clock of its own, and
    /// with one at 1970 the package pool is not the host's (the rpm builder stamps a build time later than
    /// the clock with the clock), so the guest's headers would not be the same seed's bytes.
    pub clock: Option<u64>,
}

impl Job {
    pub fn from_cmdline(cmdline: &str) -> Result<Job, String> {
        let mut job = Job::default();
        for word in cmdline.split_whitespace() {
            let Some(kv) = word.strip_prefix("dbtorture.") else { continue };
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let num = |v: &str| v.parse::<u64>().map_err(|_| format!("dbtorture.{k}={v}: not a number"));
            match k {
                "scenario" => job.scenario = Some(v.to_string()),
                "seed" => job.seed = Some(num(v)?),
                "cycles" => job.cycles = Some(num(v)?),
                "duration" => job.duration = Some(v.to_string()),
                "dev" => job.dev = Some(v.to_string()),
                "no_bundles" => job.no_bundles = v != "0",
                "replay" => job.replay = Some(v.to_string()),
                "power_cut" => job.power_cut = v != "0",
                "plant" => job.plant = Some(v.to_string()),
                "clock" => job.clock = Some(num(v)?),
                _ => return Err(format!("unknown kernel parameter dbtorture.{k}")),
            }
        }
        Ok(job)
    }

    /// The kernel command-line words that carry this job (the inverse of [`Job::from_cmdline`]).
    pub fn to_cmdline(&self) -> String {
        let mut w = Vec::new();
        if let Some(s) = &self.scenario {
            w.push(format!("dbtorture.scenario={s}"));
        }
        if let Some(s) = self.seed {
            w.push(format!("dbtorture.seed={s}"));
        }
        if let Some(c) = self.cycles {
            w.push(format!("dbtorture.cycles={c}"));
        }
        if let Some(d) = &self.duration {
            w.push(format!("dbtorture.duration={d}"));
        }
        if let Some(d) = &self.dev {
            w.push(format!("dbtorture.dev={d}"));
        }
        if self.no_bundles {
            w.push("dbtorture.no_bundles=1".into());
        }
        if let Some(b) = &self.replay {
            w.push(format!("dbtorture.replay={b}"));
        }
        if self.power_cut {
            w.push("dbtorture.power_cut=1".into());
        }
        if let Some(p) = &self.plant {
            w.push(format!("dbtorture.plant={p}"));
        }
        if let Some(c) = self.clock {
            w.push(format!("dbtorture.clock={c}"));
        }
        w.join(" ")
    }

    /// The job's `dbtorture` arguments, relative to the job directory: `replay BUNDLE`, or the run.
    fn args(&self, scenario: &str) -> Vec<String> {
        match &self.replay {
            Some(b) => vec!["replay".to_string(), b.clone()],
            None => self.run_args(scenario),
        }
    }

    /// `dbtorture run` arguments, relative to the job directory.
    fn run_args(&self, scenario: &str) -> Vec<String> {
        let mut a = vec!["run".to_string(), scenario.to_string()];
        if let Some(s) = self.seed {
            a.extend(["--seed".into(), s.to_string()]);
        }
        if let Some(c) = self.cycles {
            a.extend(["--cycles".into(), c.to_string()]);
        }
        if let Some(d) = &self.duration {
            a.extend(["--duration".into(), d.clone()]);
        }
        a.extend(["--out".into(), format!("{SD}/{OUT_DIR}"), "--workdir".into(), format!("{SD}/{WORK_DIR}")]);
        if self.no_bundles {
            a.push("--no-bundles".into());
        }
        // One lane: the guest is one emulated CPU, and its run is compared cycle by cycle with the host's.
        a.extend(["--jobs".into(), "1".into()]);
        a.push("-q".into());
        a
    }
}

fn uptime_s() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

fn say(m: &GuestMsg) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", m.frame());
    let _ = out.flush();
}

fn note(text: &str) {
    println!("dbtorture-init: {text}");
}

/// Pid 1's whole life: set up, run the job, report, power off. Never returns.
pub fn init_main() -> ! {
    let exit = match set_up_and_run() {
        Ok(code) => code,
        Err(e) => {
            say(&GuestMsg::Error(e));
            exit_codes::HARNESS
        }
    };
    power_off(exit)
}

fn mount_fs(src: &str, target: &str, fstype: &str, data: Option<&str>) -> Result<(), String> {
    let _ = std::fs::create_dir_all(target);
    match mount(Some(src), target, Some(fstype), MsFlags::empty(), data) {
        Ok(()) | Err(nix::errno::Errno::EBUSY) => Ok(()),
        Err(e) => Err(format!("mount {fstype} on {target}: {e}")),
    }
}

fn set_up_and_run() -> Result<i32, String> {
    mount_fs("proc", "/proc", "proc", None)?;
    say(&GuestMsg::Init { uptime_s: uptime_s() });
    mount_fs("sysfs", "/sys", "sysfs", None)?;
    mount_fs("devtmpfs", "/dev", "devtmpfs", None)?;
    mount_fs("tmpfs", "/tmp", "tmpfs", Some("mode=1777"))?;
    let cmdline = std::fs::read_to_string("/proc/cmdline").map_err(|e| format!("/proc/cmdline: {e}"))?;
    let job = Job::from_cmdline(&cmdline)?;
    if let Some(t) = job.clock {
        let now = nix::sys::time::TimeSpec::from(Duration::from_secs(t));
        if let Err(e) = nix::time::clock_settime(nix::time::ClockId::CLOCK_REALTIME, now) {
            note(&format!("setting the clock to {t}: {e}"));
        }
    }
    load_modules(Path::new("/lib/modules"));
    let dev = wait_for_device(job.dev.as_deref(), Duration::from_secs(20))?;
    mount_fs(&dev, SD, "ext4", None).map_err(|e| format!("{e} (is ext4 built in or its modules in /lib/modules?)"))?;
    let job_dir = Path::new(SD).join(JOB_DIR);
    let scenario = job.scenario.clone().ok_or("no dbtorture.scenario= on the kernel command line")?;
    let sc = crate::scenario::Scenario::load(&job_dir.join(&scenario)).map_err(|e| e.to_string())?;
    if sc.memory.is_some() {
        // The scheduler creates its workers' memory cgroup below its own (the root here).
        mount_fs("cgroup2", "/sys/fs/cgroup", "cgroup2", None)?;
        std::fs::write("/sys/fs/cgroup/cgroup.subtree_control", "+memory")
            .map_err(|e| format!("enabling the memory controller: {e}"))?;
    }
    for d in [OUT_DIR, WORK_DIR] {
        let p = Path::new(SD).join(d);
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/init"));
    let mut cmd = std::process::Command::new(exe);
    cmd.args(job.args(&scenario)).current_dir(&job_dir).env("PATH", GUEST_PATH).env("HOME", "/tmp");
    if job.replay.is_some() {
        // The replay's scratch databases on the card (real writeback, as a run's --workdir), its words in a file.
        let path = Path::new(SD).join(OUT_DIR).join(super::replay::GUEST_OUTPUT);
        let out = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let err = out.try_clone().map_err(|e| format!("{}: {e}", path.display()))?;
        cmd.env("TMPDIR", Path::new(SD).join(WORK_DIR)).stdout(out).stderr(err);
    }
    let job_pid = if job.power_cut {
        super::powercut_guest::spawn(&job_dir, &scenario, job.seed, job.plant.as_deref())?
    } else {
        let child = cmd.spawn().map_err(|e| format!("starting the run: {e}"))?;
        Pid::from_raw(child.id() as i32)
    };
    say(&GuestMsg::Ready { uptime_s: uptime_s() });
    let events = Path::new(SD).join(OUT_DIR).join("events.jsonl");
    let mut tail = Tail::new(events.clone());
    let mut watch = stall::Watch::new(stall::limit(sc.timeouts.cycle_ms, sc.timeouts.probe_ms), Instant::now());
    let mut ended: Option<Instant> = None;
    let status = loop {
        let done = reap(job_pid);
        tail.forward();
        if let Some(s) = done {
            break s;
        }
        let len = std::fs::metadata(&events).map(|m| m.len()).unwrap_or(0);
        match ended {
            // A replay or a power cut writes no events: the host's wall-clock timeout bounds it.
            None if job.replay.is_none() && !job.power_cut && watch.stalled(len, Instant::now()) => {
                report_stall(watch.limit());
                let _ = nix::sys::signal::kill(job_pid, nix::sys::signal::Signal::SIGTERM);
                ended = Some(Instant::now());
            }
            // Whatever did not end on SIGTERM: every process but pid 1 (the guest runs nothing else).
            Some(t) if t.elapsed() > Duration::from_secs(20) => {
                let _ = nix::sys::signal::kill(Pid::from_raw(-1), nix::sys::signal::Signal::SIGKILL);
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    tail.forward();
    Ok(status)
}

/// The run stopped making progress: every process's state to the console, then one guest error (the host
/// records it in guest.json and exits as a harness error).
fn report_stall(limit: Duration) {
    let procs = stall::processes(Path::new("/proc"));
    let lines: Vec<String> =
        procs.iter().filter(|p| p.pid != 1 && p.ppid != 2 && p.pid != 2).map(stall::Proc::line).collect();
    for l in &lines {
        note(&format!("stalled: {l}"));
    }
    say(&GuestMsg::Error(format!(
        "the run wrote no event for {} s (a stalled scheduler or worker); its processes: {}",
        limit.as_secs(),
        lines.join("; ")
    )));
}

/// Insert the modules listed in `dir/order` (in that order); a module the kernel already has is fine,
/// and failures are only noted: a user's kernel may have ext4 built in.
fn load_modules(dir: &Path) {
    if !Path::new("/proc/modules").exists() {
        return; // a kernel without module support (everything built in)
    }
    let Ok(order) = std::fs::read_to_string(dir.join("order")) else { return };
    for name in order.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let path = dir.join(name);
        let f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                note(&format!("insmod {}: {e}", path.display()));
                continue;
            }
        };
        match nix::kmod::finit_module(&f, c"", nix::kmod::ModuleInitFlags::empty()) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => note(&format!("insmod {}: {e}", path.display())),
        }
    }
}

/// The SD card's device node appears when its controller has probed, possibly after init started.
fn wait_for_device(dev: Option<&str>, limit: Duration) -> Result<String, String> {
    let candidates: Vec<&str> = match dev {
        Some(d) => vec![d],
        None => vec!["/dev/mmcblk0", "/dev/vda", "/dev/sda"],
    };
    let start = Instant::now();
    loop {
        if let Some(d) = candidates.iter().find(|d| Path::new(d).exists()) {
            return Ok(d.to_string());
        }
        if start.elapsed() > limit {
            return Err(format!("none of {} appeared within {}s", candidates.join(", "), limit.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reap every exited child (pid 1 inherits all orphans); the job's exit code once it has exited.
fn reap(job: Pid) -> Option<i32> {
    let mut job_status = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == job => job_status = Some(code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == job => job_status = Some(128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return job_status,
            Ok(_) => {}
        }
    }
}

/// Follows events.jsonl as the run appends to it and prints each complete line framed.
struct Tail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl Tail {
    fn new(path: PathBuf) -> Tail {
        Tail { path, offset: 0, partial: Vec::new() }
    }

    fn forward(&mut self) {
        let Ok(mut f) = std::fs::File::open(&self.path) else { return };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return;
        }
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let mut out = std::io::stdout().lock();
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            let text = String::from_utf8_lossy(&line[..nl]);
            let _ = writeln!(out, "{PREFIX}ev {text}");
        }
        let _ = out.flush();
    }
}

/// Sync, unmount the SD card (so the host reads a clean file system), print the sentinel, power off. If the
/// power-off fails, keep reaping forever: pid 1 must not exit.
fn power_off(exit: i32) -> ! {
    nix::unistd::sync();
    if let Err(e) = umount(SD) {
        if e != nix::errno::Errno::EINVAL {
            note(&format!("umount {SD}: {e}; remounting read-only"));
            let _ = mount(None::<&str>, SD, None::<&str>, MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, None::<&str>);
        }
        nix::unistd::sync();
    }
    say(&GuestMsg::Done { exit, uptime_s: uptime_s() });
    let e = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    say(&GuestMsg::Error(format!("power off: {e:?}")));
    loop {
        let _ = waitpid(Pid::from_raw(-1), None);
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_survives_the_kernel_command_line() {
        let job = Job {
            scenario: Some("scenarios/qemu-smoke.toml".into()),
            seed: Some(7),
            cycles: Some(40),
            duration: None,
            dev: Some("/dev/mmcblk0".into()),
            no_bundles: true,
            replay: None,
            power_cut: false,
            plant: None,
            clock: None,
        };
        let cmdline = format!("console=ttyAMA0 panic=-1 rdinit=/init quiet mem=160M {}\n", job.to_cmdline());
        assert_eq!(Job::from_cmdline(&cmdline), Ok(job.clone()));
        let args = job.run_args("scenarios/qemu-smoke.toml");
        assert_eq!(args[..6], ["run", "scenarios/qemu-smoke.toml", "--seed", "7", "--cycles", "40"]);
        assert!(args.contains(&"/sd/out".to_string()) && args.contains(&"--no-bundles".to_string()));
        let replay = Job { replay: Some("cycle-00006-bdbenv.tar.gz".into()), ..job };
        assert_eq!(Job::from_cmdline(&replay.to_cmdline()), Ok(replay.clone()));
        assert_eq!(replay.args("scenarios/qemu-smoke.toml"), ["replay", "cycle-00006-bdbenv.tar.gz"]);
        let cut = Job {
            power_cut: true,
            plant: Some("sqlite-sync-off".into()),
            replay: None,
            clock: Some(1_796_000_000),
            ..replay
        };
        assert_eq!(Job::from_cmdline(&cut.to_cmdline()), Ok(cut));
    }

    #[test]
    fn a_bad_job_parameter_is_an_error_not_a_default() {
        assert!(Job::from_cmdline("dbtorture.seed=seven").is_err());
        assert!(Job::from_cmdline("dbtorture.cylces=3").is_err());
        assert_eq!(Job::from_cmdline("quiet loglevel=3"), Ok(Job::default()));
    }
}
