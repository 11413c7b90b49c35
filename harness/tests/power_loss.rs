//! Power loss end to end: the FUSE recorder under real workers (ours and the real rpm), crash images judged,
//! planted fsync bugs caught, a failing image's bundle replayed byte for byte.
//!
//! Needs /dev/fuse and the right to mount (root, or fusermount3 from Debian's fuse3); the rpm tests need
//! Debian's rpm and eatmydata (ci/deps.sh). Without them a test prints why it is skipped — under `CI`, fails.

mod common;
use common::{bin, events, root, text};
use serde_json::Value;

use common::fuse_missing as skip;

macro_rules! skip_unless {
    ($tools:expr) => {
        if let Some(why) = skip($tools) {
            assert!(std::env::var_os("CI").is_none(), "CI must run the power-loss tests: {why}");
            eprintln!("skipped: {why}");
            return;
        }
    };
}

fn power_events(out: &std::path::Path) -> Vec<Value> {
    events(out).into_iter().filter(|e| e["event"] == "fault" && e["kind"] == "power-loss").collect()
}

/// "N crash images of M recorded operations …; K not allowed" → (N, M, K).
fn counts(e: &Value) -> (u64, u64, u64) {
    let d = e["detail"].as_str().unwrap();
    let num = |s: &str| s.trim().split(' ').next().unwrap().parse::<u64>().unwrap();
    let images = num(d);
    let ops = num(d.split(" of ").nth(1).unwrap());
    let bad = num(d.rsplit("; ").next().unwrap());
    (images, ops, bad)
}

#[test]
fn sqlite_crash_images_keep_every_acknowledged_commit() {
    skip_unless!(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = bin()
        .current_dir(root())
        .args(["run", "scenarios/power-loss.toml", "--backend", "sqlite", "--cycles", "3", "-q"])
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let pl = power_events(&out);
    assert_eq!(pl.len(), 3, "one power-loss verdict per cycle: {pl:#?}");
    for e in &pl {
        let (images, ops, bad) = counts(e);
        // The recorder saw the workers' writes and fsyncs; every sync boundary gave images.
        assert!(ops > 50 && images > 30 && bad == 0, "{e}");
    }
    // The summary adds every cycle's images up, and the terminal says it per 1,000 images.
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let tally = &summary["crash_images"]["sqlite"];
    let images: u64 = pl.iter().map(|e| counts(e).0).sum();
    assert_eq!(tally["images"].as_u64(), Some(images), "{tally}");
    assert_eq!((tally["lost_commit"].as_u64(), tally["inconsistent"].as_u64()), (Some(0), Some(0)), "{tally}");
    assert!(text(&o).contains(&format!("power loss, sqlite: {images} images; per 1,000: 0.0 lose")), "{}", text(&o));
    // The recorder left nothing mounted and the database back in place.
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(tmp.path().to_str().unwrap()), "{mounts}");
}

#[test]
fn sqlite_sync_off_loses_acknowledged_commits_and_its_bundle_replays_exactly() {
    skip_unless!(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = bin()
        .current_dir(root())
        .env("DBTORTURE_PLANT", "sqlite-sync-off")
        .args(["run", "scenarios/power-loss.toml", "--backend", "sqlite", "--cycles", "1", "-q"])
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let ev = events(&out);
    assert!(ev.iter().any(|e| e["event"] == "cycle-end" && e["outcome"] == "lost-commit"), "{}", text(&o));
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let tally = &summary["crash_images"]["sqlite"];
    assert!(tally["lost_commit"].as_u64().unwrap() >= 1, "the images that lost a commit are counted: {tally}");
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

#[test]
fn real_rpm_survives_power_cuts_but_not_under_eatmydata() {
    skip_unless!(&["rpm", "eatmydata"]);
    let tmp = tempfile::tempdir().unwrap();
    let run = |eat: bool, out: &std::path::Path| {
        let mut c = if eat {
            let mut c = std::process::Command::new("eatmydata");
            c.arg(env!("CARGO_BIN_EXE_dbtorture"));
            c
        } else {
            bin()
        };
        c.current_dir(root())
            .args(["run", "scenarios/rpm-power-loss.toml", "--cycles", "1", "-q", "--no-bundles"])
            .args(["--out", out.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let honest = tmp.path().join("honest");
    let o = run(false, &honest);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let (images, _, bad) = counts(&power_events(&honest)[0]);
    assert!(images >= 8 && bad == 0);
    let eat = tmp.path().join("eat");
    let o = run(true, &eat);
    assert_eq!(o.status.code(), Some(1), "eatmydata's rpm must be caught: {}", text(&o));
    assert!(events(&eat).iter().any(|e| e["event"] == "cycle-end" && e["outcome"] == "lost-commit"), "{}", text(&o));
}
