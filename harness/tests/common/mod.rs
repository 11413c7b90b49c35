//! What every end-to-end test file needs: the binary under test, the repository root, a run's text, and its
//! events. (Each test file is its own crate; not every one uses everything.)
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `dbtorture` binary built for these tests.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dbtorture"))
}

/// The repository root (scenarios/ and reports/schema/ are relative to it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// stdout then stderr of a finished command, for assertion messages.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Every event of `out/events.jsonl`.
pub fn events(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

/// Why the FUSE recorder cannot run here (no `/dev/fuse`, or one of `tools` not on PATH), if it cannot.
pub fn fuse_missing(tools: &[&str]) -> Option<String> {
    let mut why = Vec::new();
    if !Path::new("/dev/fuse").exists() {
        why.push("/dev/fuse is missing".to_string());
    }
    for t in tools {
        let found = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(t).is_file()));
        if !found {
            why.push(format!("{t} is not installed"));
        }
    }
    (!why.is_empty()).then(|| why.join(", "))
}

/// Why the qemu guest cannot be booted here, if it cannot (tests/qemu.rs, tests/qemu_replay.rs).
pub fn guest_missing() -> Option<String> {
    let g = root().join("qemu/.cache/guest");
    for f in ["vmlinuz", "guest.dtb", "initrd.cpio.gz", "sd-template.img"] {
        if !g.join(f).is_file() {
            return Some(format!("{} missing: run qemu/build-guest.sh", g.join(f).display()));
        }
    }
    for tool in ["qemu-system-arm", "debugfs"] {
        let found = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            || std::path::Path::new("/usr/sbin").join(tool).is_file();
        if !found {
            return Some(format!("{tool} not installed: run qemu/build-guest.sh"));
        }
    }
    None
}

/// Crash-point SIGKILLs of real Berkeley DB 5.3 with two writers and a reader, every cycle with a finding
/// bundled, sized for the emulated ARM core: the guest's capture scenario (`qemu_replay.rs`) and its x86
/// twin (`replay_determinism.rs`, more cycles).
pub const LIBDB_TWO_WRITERS: &str = r#"
name = "libdb-two-writers"
description = "crash-point SIGKILLs of real Berkeley DB 5.3, two writers and a reader"
seed = 7
cycles = 2
backends = ["libdb"]
bundles = "findings"

[workload]
packages = 16
versions = 2
files_mean = 6
initial_fraction = 0.5
writers = 2
readers = 1
txns_per_writer = 3
queries_per_reader = 20

[kill]
mode = "crash-point"
probability = 1.0
hit_max = 8

[timeouts]
cycle_ms = 10000
probe_ms = 8000

[expect]
libdb = ["clean", "stale-locks", "recovered", "hang"]
"#;
