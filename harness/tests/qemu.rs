//! `dbtorture qemu` end to end: a real armv5tel guest under qemu-system-arm, booted from the artifacts of
//! `qemu/build-guest.sh`. Without them (or without qemu-system-arm/debugfs) each test says why it skipped
//! on stderr — it never passes silently as if it had run. CI builds the artifacts first (ci/qemu-smoke.sh).

mod common;
use common::*;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

use common::guest_missing as skip_reason;

macro_rules! need_guest {
    () => {
        if let Some(why) = skip_reason() {
            // .ci/run builds the guest before the tests: under CI a missing guest is a failure, not a skip.
            assert!(std::env::var_os("CI").is_none(), "CI must boot the qemu guest: {why}");
            eprintln!("SKIPPED (no qemu guest): {why}");
            return;
        }
    };
}

fn qemu(out: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dbtorture"))
        .current_dir(root())
        .args(["qemu", "--scenario", "scenarios/qemu-smoke.toml", "-q", "--out"])
        .arg(out)
        .args(extra)
        .output()
        .expect("run dbtorture qemu")
}

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .expect("valid JSON")
}

#[test]
fn guest_run_brings_back_the_out_dir_of_an_x86_run() {
    need_guest!();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = qemu(&out, &["--cycles", "3", "--seed", "5"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s = json(&out.join("summary.json"));
    assert_eq!(s["scenario"], "qemu-smoke");
    assert_eq!(s["seed"], 5);
    assert_eq!(s["cycles"], 9, "3 cycles on each of 3 backends: {s}");
    assert_eq!(s["unexpected"], 0);
    assert_eq!(s["replay"], "dbtorture run scenarios/qemu-smoke.toml --seed 5 --cycles 3");
    let ends = std::fs::read_to_string(out.join("events.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"event\":\"cycle-end\""))
        .count();
    assert_eq!(ends, 9);
    let g = json(&out.join("guest.json"));
    assert_eq!(g["exit_reason"], "completed");
    assert_eq!(g["results_from"], "sd-image");
    assert!(g["boot_to_first_cycle_s"].as_f64().is_some_and(|t| t > 0.0 && t < 60.0), "{g}");
    assert!(std::fs::read_to_string(out.join("console.log")).unwrap().contains("@@dbtorture done exit=0"));
    assert!(!out.join("sd.img").exists(), "the SD image is removed unless --keep-sd");
}

#[test]
fn guest_kernel_panic_is_its_own_outcome_not_a_hang() {
    need_guest!();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    // No init where the kernel looks: it panics before dbtorture ever runs.
    let append = "console=ttyAMA0 panic=-1 rdinit=/no-such-init root=/dev/null \
                  initcall_blacklist=bcm2835_power_driver_init,bcm2835_i2c_driver_init quiet";
    let o = qemu(&out, &["--cycles", "1", "--append", append, "--timeout", "120s"]);
    assert_eq!(o.status.code(), Some(4), "GUEST_KERNEL: {}", text(&o));
    let g = json(&out.join("guest.json"));
    assert_eq!(g["exit_reason"], "kernel-panic");
    assert!(g["kernel_trouble"][0]["line"].as_str().unwrap_or_default().contains("Kernel panic"), "{g}");
}

#[test]
fn wall_clock_timeout_kills_qemu_and_says_so() {
    need_guest!();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let started = std::time::Instant::now();
    let o = qemu(&out, &["--cycles", "50", "--timeout", "3s"]);
    assert_eq!(o.status.code(), Some(5), "GUEST_LOST: {}", text(&o));
    assert!(started.elapsed().as_secs() < 30, "the timeout is enforced");
    assert_eq!(json(&out.join("guest.json"))["exit_reason"], "timeout");
}

/// Exit codes tell the user's mistakes (2) from the harness's (3): a failure before qemu starts is the input's;
/// once a guest ran, a failure to bring its results back is the harness's. A stand-in qemu (a script) that
/// leaves a file where the runner reads the card into makes the second happen without a guest.
#[test]
fn a_failure_after_the_guest_ran_is_a_harness_error_not_bad_input() {
    let have = |t: &str| {
        std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(t).is_file()))
            || Path::new("/usr/sbin").join(t).is_file()
            || Path::new("/sbin").join(t).is_file()
    };
    if !have("mkfs.ext4") || !have("debugfs") {
        assert!(std::env::var_os("CI").is_none(), "CI installs e2fsprogs (mkfs.ext4, debugfs)");
        eprintln!("SKIPPED: e2fsprogs (mkfs.ext4, debugfs) not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    for f in ["vmlinuz", "guest.dtb", "initrd.cpio.gz"] {
        std::fs::write(t.join(f), b"not booted").unwrap();
    }
    let sd = t.join("sd-template.img");
    std::fs::File::create(&sd).unwrap().set_len(8 << 20).unwrap();
    let mkfs = Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&sd).output().unwrap();
    assert!(mkfs.status.success(), "{}", text(&mkfs));
    let out = t.join("out");
    let fake = t.join("fake-qemu");
    std::fs::write(&fake, format!("#!/bin/sh\n: > '{}'\nexit 0\n", out.join(".sd-read").display())).unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let run = |qemu: &Path| {
        Command::new(env!("CARGO_BIN_EXE_dbtorture"))
            .current_dir(root())
            .args(["qemu", "--scenario", "scenarios/qemu-smoke.toml", "-q", "--guest-dir"])
            .arg(t)
            .arg("--qemu")
            .arg(qemu)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    };
    // qemu cannot start: the machine's or the user's to mend.
    let o = run(&t.join("no-such-qemu"));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // qemu ran and exited; then the runner cannot read the card into OUT/.sd-read: the harness's.
    let o = run(&fake);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("the guest ran, but its results could not all be brought back"), "{}", text(&o));
}
