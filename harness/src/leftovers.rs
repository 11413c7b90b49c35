//! What a run leaves behind when it dies without cleaning up (SIGKILL, a power cut, an OOM kill of the
//! scheduler): its scratch directories under `$TMPDIR` and its memory cgroup. Both are named after the
//! process that made them — pid and start time — so any later run can tell, without a registry, which ones
//! belong to a process that is gone, and remove them.
//!
//! Why pid *and* start time: pids are reused. A directory of pid 4242 started at tick 1000 is dead when
//! pid 4242 now started at another tick (or does not exist); a live run's directories are never touched.
//! Scratch directories are made with mkdtemp semantics (a random suffix, mode 0700, created exclusively).

use std::path::{Path, PathBuf};

const PREFIX: &str = "dbtorture-";

/// A process's identity over time: its pid and its start time in clock ticks since boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub start: u64,
}

impl Owner {
    /// This process.
    pub fn me() -> Owner {
        let pid = std::process::id();
        Owner { pid, start: start_time(pid).unwrap_or(0) }
    }

    /// Whether the process is still running (the same process, not a later one with its pid).
    pub fn alive(self) -> bool {
        start_time(self.pid) == Some(self.start)
    }

    /// `dbtorture-<pid>.<start>`: the name of this owner's memory cgroup and the stem of its directories.
    pub fn tag(self) -> String {
        format!("{PREFIX}{}.{}", self.pid, self.start)
    }

    /// The owner a leftover's name carries (`dbtorture-<pid>.<start>` or `dbtorture-<pid>.<start>-…`).
    pub fn from_name(name: &str) -> Option<Owner> {
        let rest = name.strip_prefix(PREFIX)?;
        let (pid, rest) = rest.split_once('.')?;
        let start = rest.split('-').next()?;
        Some(Owner { pid: pid.parse().ok()?, start: start.parse().ok()? })
    }
}

/// Field 22 of `/proc/<pid>/stat` (starttime), read after the command name (which may hold spaces and ')').
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// A scratch directory of this process for `what` (e.g. "run", "image"): `$TMPDIR/dbtorture-<pid>.<start>-<what>-XXXXXX`.
pub fn scratch(what: &str) -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix(&format!("{}-{what}-", Owner::me().tag())).tempdir()
}

/// Where scratch that is written and thrown away many times a second goes: `/dev/shm` (tmpfs: no journal,
/// no block allocation — crash images are judged ~1.3× faster there) when it is a writable directory, else
/// the system's temporary directory. [`sweep`] looks in both.
pub fn memory_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let writable = nix::unistd::access(shm, nix::unistd::AccessFlags::W_OK).is_ok();
    if shm.is_dir() && writable { shm.to_path_buf() } else { std::env::temp_dir() }
}

/// [`scratch`] in [`memory_dir`].
pub fn scratch_in_memory(what: &str) -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix(&format!("{}-{what}-", Owner::me().tag())).tempdir_in(memory_dir())
}

/// The name of this process's memory cgroup.
pub fn cgroup_name() -> String {
    Owner::me().tag()
}

/// What a sweep removed.
#[derive(Debug, Default)]
pub struct Swept {
    pub dirs: Vec<PathBuf>,
    pub cgroups: Vec<PathBuf>,
}

fn dead(name: &str) -> bool {
    Owner::from_name(name).is_some_and(|o| !o.alive())
}

/// Remove the scratch directories in `tmp` and the memory cgroups beside this process's own that belong to
/// dead processes. Only directories owned by this user are touched; a failure to remove one is left for the
/// next sweep (never an error: cleaning up after others must not stop this run).
pub fn sweep_in(tmp: &Path) -> Swept {
    let me = nix::unistd::Uid::effective().as_raw();
    let mut swept = Swept::default();
    if let Ok(entries) = std::fs::read_dir(tmp) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ours = e.path().symlink_metadata().is_ok_and(|m| {
                use std::os::unix::fs::MetadataExt;
                m.is_dir() && m.uid() == me
            });
            if !ours || !dead(&name) {
                continue;
            }
            unmount_below(&e.path());
            if std::fs::remove_dir_all(e.path()).is_ok() {
                swept.dirs.push(e.path());
            }
        }
    }
    swept.cgroups = crate::fault::memory::MemCgroup::sweep(dead);
    swept
}

/// A dead run may have left a mount inside its directory (the power-loss recorder's FUSE filesystem, whose
/// daemon died with it: "Transport endpoint is not connected"). Detach each, deepest first.
pub fn unmount_below(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        let quiet = |cmd: &mut std::process::Command| {
            cmd.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !quiet(std::process::Command::new("fusermount3").arg("-u").arg("-z").arg(&p)) {
            quiet(std::process::Command::new("umount").arg("-l").arg(&p));
        }
    }
}

/// [`sweep_in`] the system's temporary directory, saying on stderr what was removed.
pub fn sweep() {
    let mut s = sweep_in(&std::env::temp_dir());
    let mem = memory_dir();
    if mem != std::env::temp_dir() {
        s.dirs.extend(sweep_in(&mem).dirs);
    }
    for p in s.dirs.iter().chain(&s.cgroups) {
        eprintln!("dbtorture: removed {} (left by a run that died)", p.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_owner_and_this_process_is_alive() {
        let me = Owner::me();
        assert!(me.start > 0, "start time read from /proc/self/stat");
        assert!(me.alive());
        assert_eq!(Owner::from_name(&me.tag()), Some(me));
        assert_eq!(Owner::from_name(&format!("{}-run-AbC123", me.tag())), Some(me));
        assert_eq!(Owner::from_name("dbtorture-fuzz.Xy12"), None, "a name without an owner is never swept");
        assert_eq!(Owner::from_name("other-1.2"), None);
        // The same pid with another start time is another (dead) process.
        assert!(!Owner { start: me.start + 1, ..me }.alive());
    }

    #[test]
    fn a_sweep_removes_dead_owners_dirs_only() {
        let tmp = tempfile::tempdir().unwrap();
        let me = Owner::me();
        let gone = Owner { start: me.start + 1, ..me };
        let dead_dir = tmp.path().join(format!("{}-run-aaaaaa", gone.tag()));
        let live_dir = tmp.path().join(format!("{}-run-bbbbbb", me.tag()));
        let other = tmp.path().join("dbtorture-unowned");
        for d in [&dead_dir, &live_dir, &other] {
            std::fs::create_dir_all(d.join("db")).unwrap();
        }
        let swept = sweep_in(tmp.path());
        assert_eq!(swept.dirs, vec![dead_dir.clone()]);
        assert!(!dead_dir.exists() && live_dir.exists() && other.exists());
        let made = scratch("run").unwrap();
        let name = made.path().file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(Owner::from_name(&name), Some(me), "scratch dirs carry their owner: {name}");
    }
}
