//! rebuilddb and conversions under power loss (scenarios/rebuild-power-loss.toml): the recorder mounted over
//! the database's parent sees the swap; every crash image holds the original or the rebuilt database whole,
//! and the rebuilt one once rebuilddb returned. A rebuild that skips its fsyncs (planted
//! `rebuild-no-dir-fsync`, or rpm's two unsynced renames) loses the acknowledged rebuild.
//!
//! Needs /dev/fuse and the right to mount; without them a test prints why it is skipped — under `CI`, fails.

mod common;
use common::{bin, events, root, text};
use serde_json::Value;

macro_rules! skip_unless_fuse {
    () => {
        if let Some(why) = common::fuse_missing(&[]) {
            assert!(std::env::var_os("CI").is_none(), "CI must run the power-loss tests: {why}");
            eprintln!("skipped: {why}");
            return;
        }
    };
}

/// "N crash images of M recorded operations …; K not allowed" → (N, M, K).
fn counts(e: &Value) -> (u64, u64, u64) {
    let d = e["detail"].as_str().unwrap();
    let num = |s: &str| s.trim().split(' ').next().unwrap().parse::<u64>().unwrap();
    (num(d), num(d.split(" of ").nth(1).unwrap()), num(d.rsplit("; ").next().unwrap()))
}

#[test]
fn rebuilds_and_conversions_keep_a_whole_database_in_place_under_power_cuts() {
    skip_unless_fuse!();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = bin()
        .current_dir(root())
        .args(["run", "scenarios/rebuild-power-loss.toml", "--cycles", "2", "-q", "--no-bundles"])
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let pl: Vec<Value> =
        events(&out).into_iter().filter(|e| e["event"] == "fault" && e["kind"] == "power-loss").collect();
    for backend in ["sqlite", "bdbenv", "libdb"] {
        let mine: Vec<_> = pl.iter().filter(|e| e["backend"] == backend).collect();
        assert_eq!(mine.len(), 2, "{backend}: one verdict per cycle: {pl:#?}");
        for e in mine {
            let (images, ops, bad) = counts(e);
            // The whole rebuild was recorded (the new database written and synced, the swap), every sync
            // boundary gave images, and none broke the rebuild's promise.
            assert!(ops > 100 && images > 30 && bad == 0, "{backend}: {e}");
        }
    }
    let t = text(&o);
    for backend in ["sqlite", "bdbenv", "libdb"] {
        assert!(t.contains(&format!("power loss, {backend}: ")) && t.contains("per 1,000: 0.0 lose"), "{t}");
    }
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(tmp.path().to_str().unwrap()), "{mounts}");
}

#[test]
fn rebuild_without_fsyncs_loses_the_acknowledged_rebuild_and_its_bundle_replays_exactly() {
    skip_unless_fuse!();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = bin()
        .current_dir(root())
        .env("DBTORTURE_PLANT", "rebuild-no-dir-fsync")
        .args(["run", "scenarios/rebuild-power-loss.toml", "--backend", "sqlite", "--cycles", "1", "-q"])
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let ev = events(&out);
    assert!(ev.iter().any(|e| e["event"] == "cycle-end" && e["outcome"] == "lost-commit"), "{}", text(&o));
    assert!(
        ev.iter().any(|e| e["event"] == "finding"
            && e["finding"]["kind"] == "lost-commit"
            && e["finding"]["message"].as_str().unwrap().contains("brought the original database back")),
        "{}",
        text(&o)
    );
    let bundle = ev
        .iter()
        .filter(|e| e["event"] == "bundle")
        .map(|e| out.join(e["path"].as_str().unwrap()))
        .find(|p| p.to_string_lossy().contains("-image-"))
        .expect("a bundle of the failing crash image");
    let r = bin().current_dir(root()).args(["replay", bundle.to_str().unwrap()]).output().unwrap();
    let t = text(&r);
    assert_eq!(r.status.code(), Some(0), "{t}");
    assert!(t.contains("rebuilt byte for byte") && t.contains("lost-commit") && t.contains("same verdict"), "{t}");
}
