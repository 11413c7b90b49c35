//! What a run records about where it ran: kernel, architecture, memory cgroup mode, CPUs, memory, and which
//! binary (its version and the sha256 of the executable — "same seed + scenario + binary" is the unit of
//! determinism, so the report names the binary exactly).

use dbtorture_reports::Environment;
use sha2::{Digest, Sha256};

/// Hex of a digest (sha2 0.11 digests no longer format with `{:x}`).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of a text (the scenario hash).
pub fn sha256_hex(text: &[u8]) -> String {
    hex(&Sha256::digest(text))
}

/// The memory cgroup mode of this machine.
pub fn cgroup_mode() -> &'static str {
    let root = std::path::Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        "v2"
    } else if root.join("memory").exists() && root.join("unified").exists() {
        "hybrid"
    } else if root.join("memory").exists() {
        "v1"
    } else {
        "none"
    }
}

/// MemTotal in MiB (0 when /proc/meminfo cannot be read).
pub fn mem_total_mb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

/// "0.1.0 (sha256 0123…cdef)": the crate version and the executable's full sha256 — the "binary" of "same
/// seed, scenario and binary"; a prefix could collide (computed once per process, streaming: a guest has
/// little memory).
pub fn binary_version() -> String {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION
        .get_or_init(|| {
            let v = env!("CARGO_PKG_VERSION");
            let hash = std::env::current_exe().and_then(std::fs::File::open).and_then(|mut f| {
                use std::io::Read;
                let mut h = Sha256::new();
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    match f.read(&mut buf)? {
                        0 => return Ok(h.finalize()),
                        n => h.update(&buf[..n]),
                    }
                }
            });
            match hash {
                Ok(d) => format!("{v} (sha256 {})", hex(&d)),
                Err(_) => v.to_string(),
            }
        })
        .clone()
}

/// The environment of this process. `DBTORTURE_GUEST` (set by the qemu runner inside a guest) names the guest.
pub fn detect() -> Environment {
    Environment {
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default(),
        arch: std::env::consts::ARCH.to_string(),
        cgroup: cgroup_mode().to_string(),
        cpus: std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1),
        mem_total_mb: mem_total_mb(),
        version: binary_version(),
        guest: std::env::var("DBTORTURE_GUEST").ok().filter(|g| !g.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_binary_is_named_by_its_full_sha256() {
        let v = super::binary_version();
        let hash = v.split("(sha256 ").nth(1).and_then(|h| h.strip_suffix(')')).unwrap_or_default();
        assert_eq!(hash.len(), 64, "the whole hash, not a prefix: {v}");
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()), "{v}");
    }
}
