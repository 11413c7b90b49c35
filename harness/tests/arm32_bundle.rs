//! A real bundle of the armv5tel qemu guest (32-bit ARM; tests/data/README.md says how it was made), read on
//! this machine: `inspect` shows the lockers, objects and locks the guest's own `inspect` showed (its
//! `inspect.json`) and the same findings, `verify` judges it (the dead writer's locks, the index entries a
//! kill left short) with no lock-region damage, and `replay` refuses it naming `dbtorture qemu --replay`.

mod common;
use common::*;

use serde_json::Value;
use std::path::{Path, PathBuf};

/// The fixture unpacked into `tmp`: the bundle directory.
fn unpack(tmp: &Path) -> PathBuf {
    let archive = root().join("harness/tests/data/arm32-bdbenv-cycle.tar.gz");
    let st = std::process::Command::new("tar").arg("xzf").arg(&archive).arg("-C").arg(tmp).status().unwrap();
    assert!(st.success(), "tar xzf {}", archive.display());
    tmp.join("cycle-00006-bdbenv")
}

fn json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Lockers as (id, offset, pid, nlocks, nwrites, [(offset, holder, mode, status, generation)]).
fn lockers(lock_region: &Value) -> Vec<Value> {
    lock_region["lockers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let locks: Vec<Value> = l["locks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| serde_json::json!([x["offset"], x["holder"], x["mode"], x["status"], x["generation"]]))
                .collect();
            serde_json::json!([l["id"], l["offset"], l["pid"], l["nlocks"], l["nwrites"], locks, l["problems"]])
        })
        .collect()
}

#[test]
fn inspect_on_this_machine_shows_what_the_guest_s_inspect_showed() {
    assert_eq!(usize::BITS, 64, "this test reads a 32-bit bundle on a 64-bit machine");
    let tmp = tempfile::tempdir().unwrap();
    let b = unpack(tmp.path());
    let info = json(&b.join("bundle.json"));
    assert_eq!(info["written_on"]["pointer_width"], 32);
    assert_eq!(info["written_on"]["arch"], "arm");
    let guest = json(&b.join("inspect.json"));
    let o = bin().args(["inspect", "--json"]).arg(b.join("post")).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "findings (stale locks): {}", text(&o));
    let here: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("4-byte links"), "says how it reads it: {}", text(&o));
    let (g, h) = (&guest["lock_region"], &here["lock_region"]);
    assert_eq!(lockers(h), lockers(g));
    assert_eq!(h["objects"], g["objects"]);
    assert_eq!(h["counters"], g["counters"]);
    for k in ["free_lockers", "free_objects", "free_locks", "problems", "magic_ok"] {
        assert_eq!(h[k], g[k], "{k}");
    }
    // The killed writer's IWRITE lock, read through 4-byte links.
    let holder = lockers(h).into_iter().find(|l| l[0] == 0xc7).expect("locker 0xc7");
    assert_eq!(holder[5], serde_json::json!([[195632, 199, "IWRITE", "HELD", 98]]));
    // The same verdict, word for word: the guest's processes were dead then, and are nobody's here.
    assert_eq!(here["findings"], guest["findings"]);
    assert!(here["findings"].as_array().unwrap().iter().all(|f| f["kind"] == "stale-lock"), "{}", here["findings"]);
    assert!(here["environment"]["threads"].as_array().unwrap().iter().all(|t| t["alive"] == false));
}

#[test]
fn verify_on_this_machine_judges_the_guest_s_database_without_false_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let b = unpack(tmp.path());
    let o = bin().args(["verify", "--backend", "bdbenv", "--json"]).arg(b.join("post")).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let kinds: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["kind"].as_str().unwrap().to_string())
        .collect();
    // What the guest recorded for the cycle, less what only the harness sees (a worker's run-recovery).
    let info = json(&b.join("bundle.json"));
    let mut recorded: Vec<String> = info["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_string())
        .filter(|k| k != "run-recovery")
        .collect();
    let mut got = kinds.clone();
    recorded.sort();
    got.sort();
    assert_eq!(got, recorded, "{}", text(&o));
    assert!(!kinds.iter().any(|k| k.contains("region")), "no region damage: {kinds:?}");
}

#[test]
fn the_guest_s_region_read_with_this_machine_s_words_would_be_damage() {
    // Why the bundle's machine decides the layout: the same bytes read natively are broken lists.
    let tmp = tempfile::tempdir().unwrap();
    let b = unpack(tmp.path());
    let l = std::fs::read(b.join("post/__db.003")).unwrap();
    let mut native = Vec::new();
    dbtorture_backends::bdbenv::check::lock_region(&l, &mut native);
    assert!(native.iter().any(|f| f.name() == "lock region damage"), "{native:?}");
}

#[test]
fn replay_refuses_it_and_names_the_guest_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let b = unpack(tmp.path());
    let o = bin().arg("replay").arg(&b).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("dbtorture qemu --replay"), "{}", text(&o));
}
