//! The fuzzer, short: a few hundred mutated real files per target must give no panic, crash, hang or
//! allocation over the cap; and the supervisor must catch each of those when a canary target commits them.

mod common;
use common::*;

#[test]
fn a_short_fuzz_run_of_every_target_is_clean() {
    let o = bin().args(["__fuzz", "--inputs", "300", "--seed", "11"]).output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    for target in ["header", "sqlite", "bdbenv-regions", "bdbenv", "bundle", "merge"] {
        assert!(t.lines().any(|l| l.starts_with(target) && l.trim_end().ends_with(" 0")), "{target}: {t}");
    }
    assert!(
        t.contains("total") && t.contains(&format!("{}", 300 * if cfg!(feature = "libdb") { 7 } else { 6 })),
        "{t}"
    );
}

#[test]
fn the_supervisor_catches_panics_huge_allocations_and_hangs() {
    let crashes = tempfile::tempdir().unwrap();
    let o = bin()
        .args(["__fuzz", "canary-panic", "canary-alloc", "canary-hang", "--inputs", "30", "--time-limit", "1s"])
        .arg("--crashes")
        .arg(crashes.path())
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains(": panic"), "{t}");
    assert!(t.contains("allocation over the cap"), "{t}");
    assert!(t.contains("hang: still running"), "{t}");
    // Each canary fails on the same inputs (by content), and every failing input was saved.
    let saved = std::fs::read_dir(crashes.path()).unwrap().count();
    let per = saved / 3;
    assert!(per > 0 && saved == 3 * per, "{saved} saved: {t}");
}
