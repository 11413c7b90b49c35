//! Errors in the middle of a transaction, end to end: the recorder (FUSE) answers the armed write of our
//! sqlite workers with EIO, ENOSPC or a short write; sqlite's own error for it reaches the worker, whose
//! transaction fails (or, for a short write, sqlite writes the rest again); every cycle is still judged
//! clean. The planted `sqlite-savepoint-released-early` is caught by the shipped scenario; unplanted it is
//! clean. Validation refuses injected errors on an engine that is not judged.
//!
//! Needs /dev/fuse and the right to mount: without them a test prints why it is skipped — under `CI`, fails.

mod common;
use common::{bin, events, root, text};
use serde_json::Value;

macro_rules! skip_unless_fuse {
    () => {
        if let Some(why) = common::fuse_missing(&[]) {
            assert!(std::env::var_os("CI").is_none(), "CI must run the I/O error tests: {why}");
            eprintln!("skipped: {why}");
            return;
        }
    };
}

/// A small one-writer sqlite scenario, every cycle an error of `action` at a seeded one of its first 150
/// writes (past the open, into the transactions' WAL writes).
fn scenario(action: &str) -> String {
    format!(
        r#"
name = "io-{action}"
seed = 5
backends = ["sqlite"]
[workload]
packages = 20
versions = 2
files_mean = 4
writers = 1
readers = 0
txns_per_writer = 4
[kill]
mode = "none"
[io_kill]
ops = ["write"]
first = 150
mode = "random"
action = "{action}"
[expect]
sqlite = ["clean"]
"#
    )
}

/// Run `text` for `cycles` cycles (with `plant`, if any): (exit code, output, events).
fn run(sc_text: &str, cycles: u32, plant: Option<&str>) -> (Option<i32>, String, Vec<Value>) {
    let tmp = tempfile::tempdir().unwrap();
    let sc = tmp.path().join("s.toml");
    std::fs::write(&sc, sc_text).unwrap();
    let out = tmp.path().join("out");
    let mut cmd = bin();
    cmd.args(["run", sc.to_str().unwrap(), "--cycles", &cycles.to_string(), "-q", "--jobs", "1", "--out"]).arg(&out);
    match plant {
        Some(p) => cmd.env("DBTORTURE_PLANT", p),
        None => cmd.env_remove("DBTORTURE_PLANT"),
    };
    let o = cmd.output().unwrap();
    (o.status.code(), text(&o), events(&out))
}

fn io_events(evs: &[Value]) -> Vec<&Value> {
    evs.iter().filter(|e| e["event"] == "io-error").map(|e| &e["io"]).collect()
}

#[test]
fn enospc_and_eio_reach_sqlite_as_its_own_errors_and_fail_the_transaction_cleanly() {
    skip_unless_fuse!();
    for (action, said) in [("enospc", "database or disk is full"), ("eio", "disk I/O error")] {
        let (code, out, evs) = run(&scenario(action), 16, None);
        assert_eq!(code, Some(0), "{action}: every cycle clean: {out}");
        let ios = io_events(&evs);
        assert_eq!(ios.len(), 16, "one io-error event per cycle: {out}");
        assert!(ios.iter().all(|i| i["error"] == action && i["op"] == "write"), "{ios:?}");
        // The armed write was answered with the error and a transaction failed with sqlite's word for it —
        // at commit (its WAL write), not only at the open.
        let failed: Vec<&str> = ios
            .iter()
            .filter(|i| i["effect"]["kind"] == "failed")
            .map(|i| i["effect"]["said"].as_str().unwrap())
            .collect();
        assert!(
            failed.iter().any(|s| s.contains("commit") && s.contains(said)),
            "{action}: a commit failed with {said:?}: {failed:?}"
        );
        // No worker-error finding is left for those, and the summary tallies them.
        assert!(!evs.iter().any(|e| e["event"] == "finding"), "{action}: {out}");
        assert!(out.contains("I/O errors, sqlite: ") && out.contains(&format!("{action} ")), "{out}");
    }
}

#[test]
fn a_short_write_writes_half_rounded_to_a_sector_and_sqlite_writes_the_rest_again() {
    skip_unless_fuse!();
    let (code, out, evs) = run(&scenario("short"), 16, None);
    assert_eq!(code, Some(0), "{out}");
    let reached: Vec<&Value> = io_events(&evs).into_iter().filter(|i| i["effect"]["kind"] != "not-reached").collect();
    assert!(reached.len() >= 10, "the armed writes were reached: {reached:?}");
    for i in &reached {
        let (asked, written) = (i["asked"].as_u64().unwrap(), i["written"].as_u64().unwrap());
        let half = asked / 2;
        let want = if half & !511 == 0 { half } else { half & !511 };
        assert_eq!(written, want, "{i}");
        assert!(written < asked, "{i}");
        // sqlite's unix VFS loops on a short write: nothing fails.
        assert_eq!(i["effect"]["kind"], "absorbed", "{i}");
    }
    // A short write that was retried leaves commits, all acknowledged and there.
    let commits: u64 = evs.iter().filter(|e| e["event"] == "cycle-end").map(|e| e["commits"].as_u64().unwrap()).sum();
    assert!(commits >= 16 * 3, "{commits}");
}

#[test]
fn the_savepoint_released_early_is_caught_and_the_shipped_scenario_is_clean_without_it() {
    skip_unless_fuse!();
    let shipped = std::fs::read_to_string(root().join("scenarios/io-errors.toml")).unwrap();
    let (code, out, evs) = run(&shipped, 60, Some("sqlite-savepoint-released-early"));
    assert_eq!(code, Some(1), "{out}");
    let kinds: Vec<&str> =
        evs.iter().filter(|e| e["event"] == "finding").map(|e| e["finding"]["kind"].as_str().unwrap()).collect();
    assert!(
        kinds.iter().any(|k| *k == "missing-index-entry" || *k == "partial-transaction"),
        "caught by its declared findings: {kinds:?}"
    );
    let (code, out, evs) = run(&shipped, 60, None);
    assert_eq!(code, Some(0), "unplanted: every cycle clean: {out}");
    let failed = io_events(&evs).iter().filter(|i| i["effect"]["kind"] == "failed").count();
    assert!(failed >= 10, "errors really failed transactions: {failed}");
}

#[test]
fn injected_errors_are_refused_on_an_engine_that_is_not_judged() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = tmp.path().join("s.toml");
    std::fs::write(&sc, scenario("eio").replace("[\"sqlite\"]", "[\"libdb\"]").replace("sqlite = ", "libdb = "))
        .unwrap();
    let o = bin().args(["run", sc.to_str().unwrap(), "--cycles", "1", "-q"]).output().unwrap();
    let said = text(&o);
    assert_eq!(o.status.code(), Some(2), "{said}");
    assert!(
        said.contains("io_kill.action") && said.contains("not on libdb") && said.contains("DB_RUNRECOVERY"),
        "{said}"
    );
}
