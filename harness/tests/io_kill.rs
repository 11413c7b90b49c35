//! I/O kill points end to end: the recorder holds the real rpm (and our sqlite) at the cycle's N-th write or
//! fsync, the scheduler SIGKILLs it there, the kill is recorded with its operation, the coverage table counts
//! the operations passed and armed, and a bundle's replay kills at the same operation.
//!
//! Needs /dev/fuse and the right to mount; the rpm test needs Debian's rpm (ci/deps.sh). Without them a test
//! prints why it is skipped — under `CI`, fails.

mod common;
use common::{bin, events, root, text};
use serde_json::Value;

use common::fuse_missing as skip;

macro_rules! skip_unless {
    ($tools:expr) => {
        if let Some(why) = skip($tools) {
            assert!(std::env::var_os("CI").is_none(), "CI must run the I/O kill tests: {why}");
            eprintln!("skipped: {why}");
            return;
        }
    };
}

/// Per cycle: its kills.
fn kills(out: &std::path::Path) -> Vec<(u64, Value)> {
    events(out)
        .into_iter()
        .filter(|e| e["event"] == "kill")
        .map(|e| (e["cycle"].as_u64().unwrap(), e["kill"].clone()))
        .collect()
}

#[test]
fn a_sweep_over_the_first_writes_of_rpm_kills_at_each_and_a_bundle_replays_at_the_same_write() {
    skip_unless!(&["rpm"]);
    let tmp = tempfile::tempdir().unwrap();
    // The shipped sweep, but expecting only `recovered`: every clean cycle is then "unexpected" and leaves a
    // bundle, which is what the replay half of this test needs.
    let shipped = std::fs::read_to_string(root().join("scenarios/rpm-io-sweep.toml")).unwrap();
    let text_sc = shipped.replace("rpm = [\"clean\", \"recovered\"]", "rpm = [\"recovered\"]");
    assert_ne!(text_sc, shipped);
    let sc = tmp.path().join("sweep.toml");
    std::fs::write(&sc, text_sc).unwrap();
    let out = tmp.path().join("out");
    const K: u64 = 5;
    let o = bin()
        .args(["run", sc.to_str().unwrap(), "--cycles", &K.to_string(), "-q", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", text(&o));
    let ks = kills(&out);
    assert_eq!(ks.len() as u64, K, "one kill per cycle: {ks:#?}");
    for (cycle, k) in &ks {
        assert_eq!(k["trigger"]["io-op"]["op"], "write", "{k}");
        assert_eq!(
            k["trigger"]["io-op"]["nth"].as_u64(),
            Some(cycle + 1),
            "cycle {cycle} kills at write #{}",
            cycle + 1
        );
        assert_eq!(k["role"], "writer");
    }
    // The operation it was held at was counted, and none after it (the process died there).
    for e in events(&out).iter().filter(|e| e["event"] == "cycle-end") {
        let c = e["cycle"].as_u64().unwrap();
        assert_eq!(e["armed"], "io:write", "{e}");
        assert_eq!(e["hits"]["io:write"].as_u64(), Some(c + 1), "{e}");
    }
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let cov = &summary["coverage"]["io:write"];
    assert_eq!((cov["armed"].as_u64(), cov["kills"].as_u64()), (Some(K), Some(K)), "{cov}");
    assert!(cov["hits"].as_u64().unwrap() >= K * (K + 1) / 2, "{cov}");

    // A bundle of one of those cycles replays with its kill at the same write.
    let bundles: Vec<_> = std::fs::read_dir(out.join("bundles")).unwrap().map(|e| e.unwrap().path()).collect();
    let b = bundles.iter().find(|b| b.to_string_lossy().ends_with(".tar.gz")).expect("a bundle");
    let r = bin().args(["replay"]).arg(b).output().unwrap();
    let said = text(&r);
    let re = regex_lite(&said);
    assert!(re.is_some(), "the replay names the I/O kill it re-placed: {said}");
    let (nth, hit) = re.unwrap();
    assert!(hit, "the replay's kill landed on the same write: {said}");
    assert!((1..=K).contains(&nth), "{said}");
    assert!(said.contains("— recorded clean") && said.contains(": clean —"), "same verdict on replay: {said}");
}

/// "at io-op write#N (hit again)" → (N, hit again?).
fn regex_lite(s: &str) -> Option<(u64, bool)> {
    let i = s.find("at io-op write#")? + "at io-op write#".len();
    let rest = &s[i..];
    let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((n.parse().ok()?, rest[n.len()..].starts_with(" (hit again)")))
}

#[test]
fn our_sqlite_killed_at_each_of_its_first_fsyncs_stays_consistent() {
    skip_unless!(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let sc = tmp.path().join("sqlite-io.toml");
    std::fs::write(
        &sc,
        r#"
name = "sqlite-io"
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
ops = ["fsync", "write"]
first = 4
[expect]
sqlite = ["clean", "recovered"]
"#,
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = bin().args(["run", sc.to_str().unwrap(), "--cycles", "8", "--out"]).arg(&out).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // The summary counts the I/O points apart from the crash points.
    let said = text(&o);
    assert!(
        said.contains("2 of 2 armed points killed at") && said.contains("I/O operations passed: io:fsync "),
        "{said}"
    );
    let ks = kills(&out);
    let got: Vec<(String, u64)> = ks
        .iter()
        .map(|(_, k)| {
            let io = &k["trigger"]["io-op"];
            (io["op"].as_str().unwrap().to_string(), io["nth"].as_u64().unwrap())
        })
        .collect();
    let want: Vec<(String, u64)> =
        ["fsync", "write"].iter().flat_map(|op| (1..=4).map(move |n| (op.to_string(), n))).collect();
    assert_eq!(got, want, "the sweep: fsync #1..4, then write #1..4, one kill each");
    // Our sqlite passes crash points too: its fsyncs are its commits', so every fsync kill lands inside one.
    for (_, k) in ks.iter().filter(|(_, k)| k["trigger"]["io-op"]["op"] == "fsync") {
        assert_eq!(k["last_point"], "sqlite.commit.before", "{k}");
    }
}
