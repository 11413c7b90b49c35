//! `dbtorture qemu --replay BUNDLE`: a real bundle of the armv5tel guest (tests/data/README.md) replayed in
//! the guest, where its engine's words are native; its words and exit code come back. (Whether the replay
//! reaches the recorded verdict is the replay's own business: in the emulated guest it has left the recorded
//! interleaving — a worker waited past `fault/schedule.rs`'s 2 s for its turn — so either verdict is
//! accepted, as long as exit code and words agree.) Without the guest artifacts (or qemu-system-arm/debugfs)
//! the boot test says why it skipped; under CI it fails instead.

mod common;
use common::*;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::guest_missing as skip_reason;

fn fixture() -> PathBuf {
    root().join("harness/tests/data/arm32-bdbenv-cycle.tar.gz")
}

fn qemu_replay(bundle: &Path, out: &Path) -> Output {
    bin().current_dir(root()).args(["qemu", "-q", "--replay"]).arg(bundle).arg("--out").arg(out).output().unwrap()
}

#[test]
fn a_guest_bundle_is_replayed_in_the_guest_and_its_verdict_comes_back() {
    if let Some(why) = skip_reason() {
        assert!(std::env::var_os("CI").is_none(), "CI must boot the qemu guest: {why}");
        eprintln!("SKIPPED (no qemu guest): {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = qemu_replay(&fixture(), &out);
    let said = std::fs::read_to_string(out.join("replay.txt")).unwrap_or_default();
    let g: Value = serde_json::from_slice(&std::fs::read(out.join("guest.json")).unwrap()).unwrap();
    assert_eq!(g["exit_reason"], "completed", "{}", text(&o));
    assert!(g["append"].as_str().unwrap().contains("dbtorture.replay=bundle.tar.gz"), "{g}");
    // The guest's replay ran the bundle's cycle (it refuses nothing: the words are its own) and said so.
    assert!(
        said.contains("replayed cycle 6 of scenarios/qemu-capture.toml on bdbenv (seed 1): ")
            && said.contains(" — recorded recovered"),
        "{}\nreplay.txt:\n{said}",
        text(&o)
    );
    // Its exit code is ours, as `replay` has them: 0 same verdict, 1 different (said in its words).
    let same = said.contains("same verdict");
    assert_eq!(o.status.code(), Some(if same { 0 } else { 1 }), "{}", text(&o));
    assert_eq!(g["guest_exit"], if same { 0 } else { 1 });
    assert!(said.contains("same verdict") || said.contains("DIFFERENT verdict"), "{said}");
    assert!(text(&o).contains("guest| replayed cycle 6"), "the words are brought back: {}", text(&o));
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
