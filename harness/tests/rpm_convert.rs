//! The real rpm converting a Berkeley DB rpmdb (written by our libdb backend) to sqlite, killed at random
//! (`scenarios/rpm-convert.toml`), and the judge of what a kill leaves (original, converted, neither, mix).
//!
//! Needs rpm 4.18 (`rpm`, `rpmdb`) and the libdb feature. Without them these tests print why they skip; under
//! `CI` they fail instead.

mod common;
use common::*;

use dbtorture::scheduler::rpmconvert::judge;
use dbtorture::scheduler::{Observer, events::Ctx};
use dbtorture_backends::{BackendKind, libdb, rpmconvert};
use dbtorture_reports::{ConversionState, RunEvent};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn missing() -> Option<String> {
    if !libdb::BUILT {
        return Some("built without the `libdb` feature (needs libdb5.3-dev)".into());
    }
    for p in ["rpm", "rpmdb"] {
        if !Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success()) {
            return Some(format!("`{p}` is not installed (Debian package rpm; ci/test.sh installs it)"));
        }
    }
    None
}

macro_rules! skip_unless_tools {
    () => {
        if let Some(why) = missing() {
            assert!(std::env::var_os("CI").is_none(), "CI must run the rpm conversion tests: {why}");
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
}

/// A libdb database with packages (one clean, unkilled cycle of libdb-kill.toml), and its SHA1HEADERs as
/// real rpm reads them through bdb_ro.
fn database(tmp: &Path) -> (PathBuf, BTreeSet<String>) {
    let s = std::fs::read_to_string(root().join("scenarios/libdb-kill.toml")).unwrap();
    let sc = tmp.join("db.toml");
    std::fs::write(&sc, s.replace("mode = \"mixed\"", "mode = \"none\"")).unwrap();
    let work = tmp.join("work");
    let o = bin()
        .args(["run", sc.to_str().unwrap(), "--cycles", "1", "-q", "--workdir", work.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let dir = work.join("libdb").join("db");
    let read = rpmconvert::rpm_reads(&dir, &tmp.join("read")).unwrap();
    assert!(read.found_bdb, "rpm with the sqlite backend must fall back to bdb_ro: {:?}", read.stderr);
    assert!(read.sha1s.len() >= 5, "the database holds packages: {:?}", read.sha1s);
    (dir, read.sha1s)
}

#[derive(Default)]
struct Events(Vec<RunEvent>);

impl Observer for Events {
    fn event(&mut self, ev: &RunEvent) {
        self.0.push(ev.clone());
    }
}

fn judged(dir: &Path, scratch: &Path, want: &BTreeSet<String>) -> (ConversionState, Vec<String>, bool) {
    let mut evs = Events::default();
    let mut ctx = Ctx::new(0, BackendKind::Libdb, &mut evs);
    let j = judge(dir, scratch, want, true, &mut ctx);
    let rerun_ok = evs
        .0
        .iter()
        .find_map(|e| match e {
            RunEvent::Conversion { rerun_ok, state, .. } => {
                assert_eq!(*state, j.state, "the event carries the judged state");
                Some(*rerun_ok)
            }
            _ => None,
        })
        .expect("a conversion event");
    (j.state, j.findings.iter().map(|f| f.to_string()).collect(), rerun_ok)
}

#[test]
fn the_judge_tells_original_converted_neither_and_mix_apart() {
    skip_unless_tools!();
    let tmp = tempfile::tempdir().unwrap();
    let (dir, want) = database(tmp.path());
    let scratch = tmp.path().join("scratch");

    // The original in place: whole, and a rerun converts it.
    let (state, findings, rerun_ok) = judged(&dir, &scratch, &want);
    assert_eq!((state, rerun_ok), (ConversionState::Original, true), "{findings:?}");
    assert!(findings.is_empty(), "{findings:?}");

    // A package fewer than the original held: not whole.
    let mut more = want.clone();
    more.insert("0000000000000000000000000000000000000000".into());
    let (state, findings, _) = judged(&dir, &scratch, &more);
    assert_eq!(state, ConversionState::Neither, "{findings:?}");
    assert!(findings.iter().any(|f| f.contains("rpm reads")), "{findings:?}");

    // Converted by rpm: whole.
    let conv = tmp.path().join("conv");
    rpmconvert::copy_db(&dir, &conv).unwrap();
    let st = Command::new("rpmdb")
        .arg("--dbpath")
        .arg(&conv)
        .args(["--define", "_db_backend sqlite", "--rebuilddb"])
        .status()
        .unwrap();
    assert!(st.success());
    let (state, findings, rerun_ok) = judged(&conv, &scratch, &want);
    assert_eq!((state, rerun_ok), (ConversionState::Converted, true), "{findings:?}");

    // Killed between rpm's two renames: the original sits at DIRold.PID, nothing at DIR.
    let old = tmp.path().join("convold.4242");
    std::fs::rename(&conv, &old).unwrap();
    let (state, findings, rerun_ok) = judged(&conv, &scratch, &want);
    assert_eq!((state, rerun_ok), (ConversionState::Neither, false), "{findings:?}");
    assert!(findings.iter().any(|f| f.contains("convold.4242")), "names what rpm left: {findings:?}");
    std::fs::rename(&old, &conv).unwrap();

    // Both databases' files at once.
    std::fs::copy(dir.join("Packages"), conv.join("Packages")).unwrap();
    let (state, findings, _) = judged(&conv, &scratch, &want);
    assert_eq!(state, ConversionState::Mix, "{findings:?}");
    assert!(findings.iter().any(|f| f.starts_with("conversion broken: mix")), "{findings:?}");
}

/// Run conversion scenario `scenario` for `cycles` cycles (no bundles) and return its summary, having checked
/// the run passed and its `conversions` tally: every rerun finished, and every conversion — killed or not, one
/// per cycle — left the original or the converted database whole.
fn conversions_run(scenario: &str, cycles: u64, out: &Path) -> serde_json::Value {
    let o = bin()
        .args(["run", scenario, "--cycles", &cycles.to_string(), "-q", "--no-bundles", "--out"])
        .arg(out)
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let c = &s["conversions"];
    assert_eq!(c["rerun_failed"], 0, "{c}");
    let mut total = 0;
    for part in ["killed", "finished"] {
        for (state, n) in c[part].as_object().unwrap() {
            assert!(state == "original" || state == "converted", "{part} {state}: {c}");
            total += n.as_u64().unwrap();
        }
    }
    assert_eq!(total, cycles, "one conversion event per cycle: {c}");
    s
}

/// The scenario as CI runs it, shorter: every kill leaves the original or the converted database, rpm reads
/// every package of it, every rerun finishes, and the states are counted in the summary.
#[test]
fn killed_rpm_conversions_leave_the_original_or_the_converted_database() {
    skip_unless_tools!();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let s = conversions_run("scenarios/rpm-convert.toml", 12, &out);
    let c = &s["conversions"];
    assert!(s["kills"].as_u64().unwrap() >= 3, "rpm must have been killed mid-way: {s}");
    assert!(c["killed"]["original"].as_u64().unwrap_or(0) >= 1, "{c}");
    let evs = events(&out);
    assert!(
        evs.iter().any(|e| e["event"] == "conversion" && e["detail"].as_str().unwrap().contains("bdb_ro")),
        "rpm's bdb_ro fallback is exercised"
    );
}

/// The real rpm converting a real BDB rpmdb, SIGKILLed at its N-th write or fsync (the recorder over the
/// database's parent, so rpm's own renames stay inside the mount): every kill leaves the original or the
/// converted database whole, and every rerun finishes.
#[test]
fn rpm_conversions_killed_at_their_io_operations_leave_the_original_or_the_converted_database() {
    skip_unless_tools!();
    let tmp = tempfile::tempdir().unwrap();
    let s = std::fs::read_to_string(root().join("scenarios/rpm-convert.toml")).unwrap();
    let (a, b) = (s.find("[kill]").unwrap(), s.find("[timeouts]").unwrap());
    let io = "[kill]\nmode = \"none\"\n\n[io_kill]\nops = [\"write\", \"fsync\", \"rename\"]\nfirst = 60\n\
              mode = \"random\"\naction = \"kill\"\n\n";
    let sc = tmp.path().join("rpm-convert-io.toml");
    std::fs::write(&sc, format!("{}{io}{}", &s[..a], &s[b..])).unwrap();
    let out = tmp.path().join("out");
    let s = conversions_run(sc.to_str().unwrap(), 16, &out);
    let io_kills =
        events(&out).iter().filter(|e| e["event"] == "kill" && e["kill"]["trigger"].get("io-op").is_some()).count();
    assert!(io_kills >= 3, "rpm must have been killed at its I/O operations: {s}");
}
