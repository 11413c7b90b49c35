//! Memory pressure: a memory cgroup around the workers only (the scheduler stays outside), a balloon
//! process inside it, and MADV_PAGEOUT of the shared region mappings inside the workers.
//!
//! Why: seed 000 suspected lost write-backs of shared pages under memory pressure on small ARM machines.
//! Under a tight limit the kernel reclaims and writes back the workers' MAP_SHARED pages far more often;
//! an OOM kill is a crash like any other. cgroup v1 (`memory.limit_in_bytes`) and v2 (`memory.max`,
//! `memory.high`) are detected at run time; when no memory cgroup is writable the run says so and uses the
//! balloon and MADV_PAGEOUT only.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// A memory cgroup this run created (removed on drop).
pub struct MemCgroup {
    pub path: PathBuf,
    pub version: Version,
}

/// Counters read from the cgroup, for per-cycle deltas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemEvents {
    /// v1 memory.failcnt, or v2 memory.events `max`.
    pub limit_hits: u64,
    /// v2 memory.events `high` (0 on v1).
    pub high: u64,
    pub oom_kills: u64,
    /// Pages paged out (v1 memory.stat `pgpgout`; v2 memory.stat `pgsteal`).
    pub pageouts: u64,
}

impl MemEvents {
    pub fn delta(&self, before: &MemEvents) -> MemEvents {
        MemEvents {
            limit_hits: self.limit_hits.saturating_sub(before.limit_hits),
            high: self.high.saturating_sub(before.high),
            oom_kills: self.oom_kills.saturating_sub(before.oom_kills),
            pageouts: self.pageouts.saturating_sub(before.pageouts),
        }
    }
}

fn own_path(controller_line: impl Fn(&str) -> Option<String>) -> Option<String> {
    std::fs::read_to_string("/proc/self/cgroup").ok()?.lines().find_map(controller_line)
}

fn stat_value(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

impl MemCgroup {
    /// Where this process may create child memory cgroups: its own cgroup in the v2 hierarchy (when the
    /// memory controller is enabled there), then in the v1 memory hierarchy.
    fn parents() -> Vec<(PathBuf, Version)> {
        let mut out = Vec::new();
        for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
            let ctl = std::fs::read_to_string(Path::new(root).join("cgroup.controllers")).unwrap_or_default();
            if ctl.split_whitespace().any(|c| c == "memory") {
                let own = own_path(|l| l.strip_prefix("0::").map(str::to_string)).unwrap_or_default();
                out.push((Path::new(root).join(own.trim_start_matches('/')), Version::V2));
            }
        }
        let root = Path::new("/sys/fs/cgroup/memory");
        if root.join("memory.limit_in_bytes").exists() {
            let own = own_path(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, ctl, path) = (parts.next()?, parts.next()?, parts.next()?);
                ctl.split(',').any(|c| c == "memory").then(|| path.to_string())
            })
            .unwrap_or_default();
            out.push((root.join(own.trim_start_matches('/')), Version::V1));
        }
        out
    }

    /// Create a child memory cgroup of this process's own, limited to `limit` bytes (v2: `high` too).
    pub fn create(name: &str, limit: u64, high: Option<u64>) -> Result<MemCgroup, String> {
        let parents = Self::parents();
        let mut errors = Vec::new();
        for (parent, version) in &parents {
            let path = parent.join(name);
            if let Err(e) = std::fs::create_dir(&path) {
                errors.push(format!("cannot create {}: {e}", path.display()));
                continue;
            }
            let cg = MemCgroup { path, version: *version };
            match version {
                Version::V2 => {
                    cg.write("memory.max", &limit.to_string())?;
                    if let Some(h) = high {
                        cg.write("memory.high", &h.to_string())?;
                    }
                }
                Version::V1 => cg.write("memory.limit_in_bytes", &limit.to_string())?,
            }
            return Ok(cg);
        }
        if parents.is_empty() {
            return Err("no writable memory cgroup (neither v2 with the memory controller nor v1 memory)".into());
        }
        Err(errors.join("; "))
    }

    /// Remove the memory cgroups beside this process's own whose name `dead` says belongs to a run that is
    /// gone; processes still in one (orphans of that run) are killed first. Returns what was removed.
    pub fn sweep(dead: impl Fn(&str) -> bool) -> Vec<PathBuf> {
        let mut removed = Vec::new();
        for (parent, version) in Self::parents() {
            let Ok(entries) = std::fs::read_dir(&parent) else { continue };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !e.path().is_dir() || !dead(&name) {
                    continue;
                }
                kill_all(&e.path(), version);
                if std::fs::remove_dir(e.path()).is_ok() {
                    removed.push(e.path());
                }
            }
        }
        removed
    }

    fn write(&self, file: &str, value: &str) -> Result<(), String> {
        std::fs::write(self.path.join(file), value).map_err(|e| format!("{}: {e}", self.path.join(file).display()))
    }

    /// Move a process into the cgroup.
    pub fn add(&self, pid: u32) -> Result<(), String> {
        self.write("cgroup.procs", &pid.to_string())
    }

    pub fn events(&self) -> MemEvents {
        let read = |f: &str| std::fs::read_to_string(self.path.join(f)).unwrap_or_default();
        match self.version {
            Version::V1 => MemEvents {
                limit_hits: read("memory.failcnt").trim().parse().unwrap_or(0),
                high: 0,
                oom_kills: stat_value(&read("memory.oom_control"), "oom_kill"),
                pageouts: stat_value(&read("memory.stat"), "pgpgout"),
            },
            Version::V2 => {
                let ev = read("memory.events");
                MemEvents {
                    limit_hits: stat_value(&ev, "max"),
                    high: stat_value(&ev, "high"),
                    oom_kills: stat_value(&ev, "oom_kill"),
                    pageouts: stat_value(&read("memory.stat"), "pgsteal"),
                }
            }
        }
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        // Every process in it has been reaped by now; an empty cgroup can be removed.
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// The balloon: allocate and touch `bytes` (every page), tell the scheduler on `ready`, then wait to be
/// killed. Under the cgroup limit, this is memory the workers cannot have.
pub fn balloon(bytes: usize, mut ready: std::fs::File) -> ! {
    use std::io::Write;
    let mut v = vec![0u8; bytes];
    for i in (0..bytes).step_by(4096) {
        v[i] = 1;
    }
    std::hint::black_box(&v);
    let _ = ready.write_all(b"1");
    drop(ready);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// SIGKILL every process in the cgroup (`cgroup.kill` where v2 has it) and wait until it is empty.
fn kill_all(path: &Path, version: Version) {
    let procs = || -> Vec<i32> {
        std::fs::read_to_string(path.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    };
    if procs().is_empty() {
        return;
    }
    if version == Version::V1 || std::fs::write(path.join("cgroup.kill"), "1").is_err() {
        for pid in procs() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
    // A SIGKILLed process leaves the cgroup as soon as it is gone; bounded, since a process stuck in
    // uninterruptible sleep may take a while (the cgroup is then left for the next sweep).
    for _ in 0..100 {
        if procs().is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_values_parse_like_the_kernel_writes_them() {
        assert_eq!(stat_value("low 0\nhigh 12\nmax 3\noom 1\noom_kill 1\n", "high"), 12);
        assert_eq!(stat_value("oom_kill_disable 0\nunder_oom 0\noom_kill 4\n", "oom_kill"), 4);
        assert_eq!(stat_value("cache 1\npgpgout 77\n", "pgpgout"), 77);
        assert_eq!(stat_value("", "max"), 0);
        let a = MemEvents { limit_hits: 5, high: 2, oom_kills: 1, pageouts: 10 };
        assert_eq!(a.delta(&MemEvents { limit_hits: 3, ..a }).limit_hits, 2);
    }
}
