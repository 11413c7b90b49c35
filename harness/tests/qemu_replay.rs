//! `dbtorture qemu --replay BUNDLE`: a real bundle of the armv5tel guest (tests/data/README.md) replayed in
//! the guest, where its engine's words are native, reaching the verdict it recorded. Without the guest
//! artifacts (or qemu-system-arm/debugfs) the boot test says why it skipped; under CI it fails instead.

mod common;
use common::*;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

/// Why the guest cannot be booted here, if it cannot.
fn skip_reason() -> Option<String> {
    let g = root().join("qemu/.cache/guest");
    for f in ["vmlinuz", "guest.dtb", "initrd.cpio.gz", "sd-template.img"] {
        if !g.join(f).is_file() {
            return Some(format!("{} missing: run qemu/build-guest.sh", g.join(f).display()));
        }
    }
    for tool in ["qemu-system-arm", "debugfs"] {
        let found = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            || Path::new("/usr/sbin").join(tool).is_file();
        if !found {
            return Some(format!("{tool} not installed: run qemu/build-guest.sh"));
        }
    }
    None
}

fn fixture() -> PathBuf {
    root().join("harness/tests/data/arm32-bdbenv-cycle.tar.gz")
}

fn qemu_replay(bundle: &Path, out: &Path) -> Output {
    bin().current_dir(root()).args(["qemu", "-q", "--replay"]).arg(bundle).arg("--out").arg(out).output().unwrap()
}

#[test]
fn a_guest_bundle_replays_in_the_guest_to_its_recorded_verdict() {
    if let Some(why) = skip_reason() {
        assert!(std::env::var_os("CI").is_none(), "CI must boot the qemu guest: {why}");
        eprintln!("SKIPPED (no qemu guest): {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = qemu_replay(&fixture(), &out);
    let said = std::fs::read_to_string(out.join("replay.txt")).unwrap_or_default();
    // The fixture's kill is a crash-point kill with its recorded interleaving: the replay is exact.
    assert_eq!(o.status.code(), Some(0), "{}\nreplay.txt:\n{said}", text(&o));
    assert!(
        said.contains(
            "replayed cycle 6 of scenarios/qemu-capture.toml on bdbenv (seed 1): recovered — recorded recovered"
        ),
        "{said}"
    );
    assert!(said.contains("same verdict"), "{said}");
    assert!(text(&o).contains("guest| same verdict"), "the verdict is brought back: {}", text(&o));
    let g: Value = serde_json::from_slice(&std::fs::read(out.join("guest.json")).unwrap()).unwrap();
    assert_eq!(g["exit_reason"], "completed");
    assert_eq!(g["guest_exit"], 0);
    assert!(g["append"].as_str().unwrap().contains("dbtorture.replay=bundle.tar.gz"), "{g}");
    assert!(!out.join("sd.img").exists());
}

#[test]
fn a_bundle_not_written_in_the_guest_is_refused_before_booting() {
    let tmp = tempfile::tempdir().unwrap();
    let st = std::process::Command::new("tar").arg("xzf").arg(fixture()).arg("-C").arg(tmp.path()).status().unwrap();
    assert!(st.success());
    let b = tmp.path().join("cycle-00006-bdbenv");
    let p = b.join("bundle.json");
    let mut info: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    info["written_on"] = serde_json::json!({"arch": "x86_64", "pointer_width": 64, "little_endian": true});
    std::fs::write(&p, serde_json::to_vec(&info).unwrap()).unwrap();
    let o = qemu_replay(&b, &tmp.path().join("out"));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("replay it there with `dbtorture replay`"), "{}", text(&o));
    assert!(!tmp.path().join("out/console.log").exists(), "no guest was booted");
}
