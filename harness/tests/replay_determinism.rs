//! Deterministic replay of bdbenv bundles (README, "What the same seed fixes"): a bundle whose kills were
//! all at crash points replays along its recorded interleaving — every crash point and every critical
//! section of the shared regions in the recorded order — to its end, and reaches its verdict (on the first
//! run of the cycle for all but at most one of 8). Measured before this: 13 of 14 bundles reached their verdict (with up to three runs),
//! 2 of 14 followed their schedule.
//!
//! Real Berkeley DB with two writers and a reader (the guest's capture scenario, `qemu_replay.rs`) does the
//! same on x86: its locks are taken inside the library, so a cursor's open, a put/del and failchk are turns
//! (`db-backends/src/libdb/engine.rs`). Before, of 13 such bundles (seeds 7–10) 2 left their schedule and a
//! third did on its first run.

mod common;
use common::*;

use std::path::{Path, PathBuf};

/// `bdbenv-kill.toml` with only exact crash-point kills, and only `clean` allowed: every cycle that left
/// anything behind writes a bundle.
fn point_scenario(dir: &Path) -> PathBuf {
    let original = std::fs::read_to_string(root().join("scenarios/bdbenv-kill.toml")).unwrap();
    let text: String = original
        .lines()
        .map(|l| match l {
            l if l.starts_with("bdbenv = [") => "bdbenv = [\"clean\"]",
            l if l.starts_with("mode = ") => "mode = \"crash-point\"",
            l => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("mode = \"crash-point\""), "bdbenv-kill.toml has no kill mode line to change");
    let sc = dir.join("point.toml");
    std::fs::write(&sc, text).unwrap();
    sc
}

#[test]
fn bdbenv_bundles_of_crash_point_kills_replay_along_their_schedule_to_the_same_verdict_first_time() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = point_scenario(tmp.path());
    let out = tmp.path().join("out");
    let o = bin()
        .args(["run", sc.to_str().unwrap(), "--cycles", "16", "--seed", "11", "-q", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "crash-point kills of bdbenv leave stale locks or damage: {}", text(&o));
    let mut bundles: Vec<_> = std::fs::read_dir(out.join("bundles")).unwrap().map(|e| e.unwrap().path()).collect();
    bundles.sort();
    assert!(bundles.len() >= 4, "too few failing cycles to measure: {bundles:?}");
    let (mut same, mut followed, mut first) = (0, 0, 0);
    let tried = bundles.iter().take(8).count();
    let mut texts = Vec::new();
    for b in bundles.iter().take(8) {
        let r = bin().arg("replay").arg(b).output().unwrap();
        let t = text(&r);
        same += usize::from(r.status.code() == Some(0) && t.contains("same verdict"));
        followed += usize::from(t.contains("interleaving: followed the recorded schedule to its end"));
        first += usize::from(t.contains("same verdict (run 1 of the cycle)"));
        texts.push(format!("{}:\n{t}", b.display()));
    }
    eprintln!("{tried} replays: {same} same verdict, {first} on the first run, {followed} followed to the end");
    assert_eq!((same, followed), (tried, tried), "{}", texts.join("\n"));
    // On the first run: 22 of 22 when this was built; since the workload writes every index, 7 of 8 in two
    // suite runs (one bundle needed its 2nd or 3rd run, cause not yet found) and 8 of 8 alone.
    assert!(first + 1 >= tried, "{first} of {tried} on the first run: {}", texts.join("\n"));
}

/// Two writers and a reader of real Berkeley DB: every bundle of crash-point kills of seeds 7–12 replays
/// along its whole schedule to the same verdict on the first run. Measured 2026-12-01 by hand (2 shared
/// cores, noisy): 93 of 93 bundles in five rounds. Before the library's lock steps were turns, bundles left
/// their schedule now and then (1 of 18 and 0 of 19 in two rounds; 2 of 13 of seeds 7–10 before that), so
/// this test catches that gap only some of the time. With three readers of 60 queries (more R locks for a
/// put to meet) it caught it 4 times of 4 — and still failed 2 times of 15 with the turns: not airtight
/// (qemu/README.md).
#[test]
fn two_writer_libdb_bundles_replay_along_their_schedule_to_the_same_verdict() {
    if !dbtorture_backends::libdb::BUILT {
        assert!(std::env::var_os("CI").is_none(), "CI builds the libdb backend (ci/deps.sh)");
        eprintln!("SKIPPED: built without the `libdb` feature (needs libdb5.3-dev)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sc = tmp.path().join("libdb-two-writers.toml");
    std::fs::write(&sc, LIBDB_TWO_WRITERS.replace("cycles = 2", "cycles = 4")).unwrap();
    let mut bundles = Vec::new();
    for seed in 7..=12 {
        let out = tmp.path().join(format!("out-{seed}"));
        let seed_arg = seed.to_string();
        let o =
            bin().args(["run", "-q", "--jobs", "1", "--seed", &seed_arg, "--out"]).arg(&out).arg(&sc).output().unwrap();
        // 1: an outcome the scenario does not allow (bundled too); the replays are what is tested here.
        assert!(matches!(o.status.code(), Some(0 | 1)), "seed {seed}: {}", text(&o));
        let Ok(dir) = std::fs::read_dir(out.join("bundles")) else { continue };
        bundles.extend(dir.map(|e| e.unwrap().path()));
    }
    bundles.sort();
    // Only cycles whose every kill was at a crash point replay exactly: a cycle the timeout ended (a hang, or
    // a reader that crashed on a page a killed writer left half-written) had kills no turn records.
    let bundles: Vec<_> = bundles.into_iter().filter(|b| all_kills_at_points(b, tmp.path())).collect();
    assert!(bundles.len() >= 8, "too few cycles with findings to measure: {bundles:?}");
    for b in &bundles {
        let r = bin().arg("replay").arg(b).output().unwrap();
        let t = text(&r);
        let why = format!("{}:\n{t}", b.display());
        assert!(t.contains("interleaving: followed the recorded schedule to its end"), "{why}");
        assert!(!t.contains("recorded turns"), "every worker took every recorded turn: {why}");
        assert!(t.contains("same verdict (run 1 of the cycle)"), "{why}");
        assert_eq!(r.status.code(), Some(0), "{why}");
    }
}

/// Whether every kill of the bundle `b` (an archive) was at a crash point.
fn all_kills_at_points(b: &Path, scratch: &Path) -> bool {
    // Bundles of one run sit in OUT/bundles/: unpack each run's into its own directory.
    let run = b.parent().and_then(Path::parent).and_then(Path::file_name).unwrap();
    let dir = scratch.join("unpacked").join(run);
    std::fs::create_dir_all(&dir).unwrap();
    let st = std::process::Command::new("tar").arg("xzf").arg(b).arg("-C").arg(&dir).status().unwrap();
    assert!(st.success(), "unpacking {}", b.display());
    let name = b.file_name().unwrap().to_string_lossy().trim_end_matches(".tar.gz").to_string();
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(name).join("bundle.json")).unwrap()).unwrap();
    info["kills"].as_array().unwrap().iter().all(|k| k["trigger"] == "point")
}
