//! A bundle written on another kind of machine (a 32-bit ARM guest's, read on x86_64): what cannot be read
//! here is refused with exit 2 and the reason, never reported as damage — a replay of a bdbenv bundle (it
//! re-runs the engine natively; `dbtorture qemu --replay` runs it in the guest), anything of libdb (its files
//! are the C library's layout), a region of the other byte order. `inspect` and `verify` of bdbenv read the
//! other width (arm32_bundle.rs). Portable databases (sqlite) are not refused.

mod common;
use common::*;

use std::path::Path;

/// A bundle directory whose bundle.json says it was written on `arch` with `width`-bit pointers.
fn bundle(root_dir: &Path, backend: &str, arch: &str, width: u32) -> std::path::PathBuf {
    bundle_of(root_dir, backend, arch, width, true)
}

fn bundle_of(root_dir: &Path, backend: &str, arch: &str, width: u32, little: bool) -> std::path::PathBuf {
    let dir = root_dir.join(format!("cycle-00006-{backend}-{arch}-{little}"));
    std::fs::create_dir_all(dir.join("pre")).unwrap();
    std::fs::create_dir_all(dir.join("post")).unwrap();
    let mut text = std::fs::read_to_string(root().join("scenarios/qemu-smoke.toml")).unwrap();
    // The scenario of sqlite and `backend` (target 1): qemu-smoke.toml's, without the other backend.
    let other = if backend == "libdb" { "bdbenv" } else { "libdb" };
    text = text.replace(
        r#"backends = ["sqlite", "bdbenv", "libdb"]"#,
        &format!(r#"backends = ["sqlite", "{}"]"#, if backend == "sqlite" { "bdbenv" } else { backend }),
    );
    text = text.lines().filter(|l| !l.starts_with(&format!("{other} = ["))).collect::<Vec<_>>().join("\n");
    let target = if backend == "sqlite" { 0 } else { 1 };
    let info = serde_json::json!({
        "schema": 2, "scenario_path": "scenarios/qemu-smoke.toml", "scenario_text": text, "seed": 1,
        "cycle": 6, "backend": backend, "target": target, "installed_before": [], "plan": "w0:none",
        "kills": [], "outcome": "hang", "findings": [], "planted": null,
        "replay": "dbtorture replay x.tar.gz", "schedule": [],
        "written_on": {"arch": arch, "pointer_width": width, "little_endian": little}
    });
    std::fs::write(dir.join("bundle.json"), serde_json::to_vec_pretty(&info).unwrap()).unwrap();
    dir
}

fn run(args: &[&str], path: &Path) -> (Option<i32>, String) {
    let o = bin().args(args).arg(path).output().unwrap();
    (o.status.code(), text(&o))
}

#[test]
fn what_cannot_be_read_here_is_refused_not_judged() {
    let tmp = tempfile::tempdir().unwrap();
    let other = if usize::BITS == 64 { 32 } else { 64 };
    let bdbenv = bundle(tmp.path(), "bdbenv", "otherarch", other);
    let libdb = bundle(tmp.path(), "libdb", "otherarch", other);
    let big = bundle_of(tmp.path(), "bdbenv", "otherarch", other, false);
    let why = format!("written on otherarch ({other}-bit");
    for (args, path, because) in [
        (vec!["replay"], bdbenv.clone(), "dbtorture qemu --replay"),
        (vec!["inspect"], big.join("post"), "little-endian 32- and 64-bit layouts only"),
        (vec!["verify", "--backend", "bdbenv"], big.join("post"), "little-endian 32- and 64-bit layouts only"),
        (vec!["verify", "--backend", "libdb"], libdb.join("post"), "laid out by the C library"),
        (vec!["verify", "--backend", "libdb"], libdb.join("pre"), "laid out by the C library"),
        (vec!["replay"], libdb.clone(), "a replay re-runs the engine natively"),
    ] {
        let (code, out) = run(&args, &path);
        assert_eq!(code, Some(2), "{args:?}: {out}");
        assert!(out.contains(&why), "{args:?} says why: {out}");
        assert!(out.contains(because), "{args:?} says {because:?}: {out}");
    }
}

#[test]
fn inspect_and_verify_read_a_bdbenv_bundle_of_the_other_width() {
    let tmp = tempfile::tempdir().unwrap();
    let other = if usize::BITS == 64 { 32 } else { 64 };
    let b = bundle(tmp.path(), "bdbenv", "otherarch", other);
    // Empty post/: not refused for its machine — it is read in its words, and there is nothing to read.
    let (code, out) = run(&["inspect"], &b.join("post"));
    assert_eq!(code, Some(2), "{out}");
    assert!(!out.contains("cannot read it here"), "{out}");
    assert!(out.contains(&format!("reading its region files with {}-byte links", other / 8)), "{out}");
    assert!(out.contains("cannot inspect"), "{out}");
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
