//! A bundle written on another kind of machine (a 32-bit ARM guest's, read on x86_64): its BDB-style region
//! files hold that machine's words, so `inspect`, `verify` and `replay` refuse it with exit 2 and say why,
//! instead of reporting its lock region as damage. Portable databases (sqlite) are not refused.

mod common;
use common::*;

use std::path::Path;

/// A bundle directory whose bundle.json says it was written on `arch` with `width`-bit pointers.
fn bundle(root_dir: &Path, backend: &str, arch: &str, width: u32) -> std::path::PathBuf {
    let dir = root_dir.join(format!("cycle-00006-{backend}-{arch}"));
    std::fs::create_dir_all(dir.join("pre")).unwrap();
    std::fs::create_dir_all(dir.join("post")).unwrap();
    let text = std::fs::read_to_string(root().join("scenarios/qemu-smoke.toml")).unwrap();
    let target = if backend == "sqlite" { 0 } else { 1 };
    let info = serde_json::json!({
        "schema": 2, "scenario_path": "scenarios/qemu-smoke.toml", "scenario_text": text, "seed": 1,
        "cycle": 6, "backend": backend, "target": target, "installed_before": [], "plan": "w0:none",
        "kills": [], "outcome": "hang", "findings": [], "planted": null,
        "replay": "dbtorture replay x.tar.gz", "schedule": [],
        "written_on": {"arch": arch, "pointer_width": width, "little_endian": true}
    });
    std::fs::write(dir.join("bundle.json"), serde_json::to_vec_pretty(&info).unwrap()).unwrap();
    dir
}

fn run(args: &[&str], path: &Path) -> (Option<i32>, String) {
    let o = bin().args(args).arg(path).output().unwrap();
    (o.status.code(), text(&o))
}

#[test]
fn a_bdbenv_bundle_of_a_machine_with_other_words_is_refused_not_judged() {
    let tmp = tempfile::tempdir().unwrap();
    let other = if usize::BITS == 64 { 32 } else { 64 };
    let b = bundle(tmp.path(), "bdbenv", "otherarch", other);
    let why = format!("written on otherarch ({other}-bit");
    for (args, path) in [
        (vec!["inspect"], b.join("post")),
        (vec!["verify", "--backend", "bdbenv"], b.join("post")),
        (vec!["verify", "--backend", "bdbenv"], b.join("pre")),
        (vec!["replay"], b.clone()),
    ] {
        let (code, out) = run(&args, &path);
        assert_eq!(code, Some(2), "{args:?}: {out}");
        assert!(out.contains(&why), "{args:?} says why: {out}");
    }
}

#[test]
fn a_bundle_of_this_kind_of_machine_or_of_a_portable_engine_is_not_refused_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    let here = bundle(tmp.path(), "bdbenv", std::env::consts::ARCH, usize::BITS);
    let (_, out) = run(&["inspect"], &here.join("post"));
    assert!(!out.contains("written on"), "{out}");
    let other = if usize::BITS == 64 { 32 } else { 64 };
    let sqlite = bundle(tmp.path(), "sqlite", "otherarch", other);
    let (_, out) = run(&["verify", "--backend", "sqlite"], &sqlite.join("post"));
    assert!(!out.contains("written on"), "sqlite files are portable: {out}");
}
