//! `dbtorture shrink BUNDLE`: reduce a failing cycle while the same finding persists — fewer kills, earlier
//! kill hits, fewer operations and readers, fewer and smaller packages — and write a minimal bundle.
//!
//! Greedy, like proptest's shrinking: each reduction is tried on its own and kept if the reduced cycle still
//! produces a finding of the kind the bundle recorded first. Reductions that change the package pool cannot
//! reuse the bundle's `pre/` database; they start from a freshly prepared one (same seed and cycle).

use crate::bundle::{self, BundleInfo};
use crate::scenario::Scenario;
use anyhow::{Context, Result};
use dbtorture_reports::KillRecord;
use std::path::{Path, PathBuf};

pub struct Shrunk {
    pub steps: Vec<String>,
    pub tried: usize,
    pub bundle: PathBuf,
}

struct State {
    text: String,
    kills: Vec<(KillRecord, bool)>,
    fresh: bool,
}

fn set_key(text: &str, table: &str, key: &str, value: toml::Value) -> Result<String> {
    let mut doc: toml::Table = toml::from_str(text).context("scenario text")?;
    let t = doc.entry(table).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    t.as_table_mut().context("not a table")?.insert(key.into(), value);
    Ok(toml::to_string(&doc)?)
}

fn get_int(text: &str, table: &str, key: &str, default: i64) -> i64 {
    toml::from_str::<toml::Table>(text).ok().and_then(|d| d.get(table)?.get(key)?.as_integer()).unwrap_or(default)
}

/// Where `shrink` writes by default: beside the bundle, `NAME-min.tar.gz`.
pub fn default_out(bundle: &Path) -> std::path::PathBuf {
    let name = bundle.file_name().unwrap_or_default().to_string_lossy();
    let stem = name.strip_suffix(".tar.gz").unwrap_or(&name);
    bundle.with_file_name(format!("{stem}-min.tar.gz"))
}

/// Shrink the bundle at `src` (archive or directory) into the archive `out` (`.tar.gz` is added if missing).
pub fn shrink(src: &Path, out: &Path) -> Result<Shrunk> {
    let opened = bundle::open(src)?;
    let src = opened.dir.as_path();
    let name = out.file_name().context("--out needs a file name")?.to_string_lossy().into_owned();
    let stem = name.strip_suffix(".tar.gz").unwrap_or(&name).to_string();
    let out = &out.with_file_name(format!("{stem}.tar.gz"));
    let base = crate::replay::replay(src)?;
    anyhow::ensure!(
        base.replayed == base.recorded,
        "the bundle does not replay to its verdict ({} vs {}); nothing to shrink",
        base.replayed,
        base.recorded
    );
    let info: BundleInfo = base.info.clone();
    let wanted = info.findings.first().map(|f| f.kind.clone()).context("the bundle has no finding to keep")?;
    // The shrunk scenario stays beside the archive: it is what the minimal bundle runs.
    let scenario_file = out.with_file_name(format!("{stem}.toml"));
    let mut tried = 0usize;
    let mut reproduces = |st: &State| -> Result<bool> {
        tried += 1;
        std::fs::write(&scenario_file, &st.text)?;
        let sc = Scenario::parse(&st.text, &scenario_file)?;
        let pre = (!st.fresh).then(|| src.join("pre"));
        let (_, findings) = crate::replay::replay_once(pre.as_deref(), &info, &sc, st.kills.clone(), None)?;
        Ok(findings.iter().any(|f| {
            serde_json::to_value(f).ok().and_then(|v| v["kind"].as_str().map(String::from)) == Some(wanted.clone())
        }))
    };
    let mut st = State { text: info.scenario_text.clone(), kills: base.kills.clone(), fresh: false };
    let mut steps = Vec::new();
    // 1. Fewer kills.
    let mut i = 0;
    while i < st.kills.len() {
        let mut kills = st.kills.clone();
        let k = kills.remove(i);
        let cand = State { kills, ..State { text: st.text.clone(), kills: Vec::new(), fresh: st.fresh } };
        if reproduces(&cand)? {
            steps.push(format!("dropped the kill of worker {}", k.0.worker));
            st = cand;
        } else {
            i += 1;
        }
    }
    // 2. Earlier kills: lower hits of the same point, and "at" instead of "after".
    for i in 0..st.kills.len() {
        while st.kills[i].0.last_hit.unwrap_or(1) > 1 {
            let mut kills = st.kills.clone();
            kills[i].0.last_hit = kills[i].0.last_hit.map(|h| h - 1);
            let cand = State { text: st.text.clone(), kills, fresh: st.fresh };
            if !reproduces(&cand)? {
                break;
            }
            st = cand;
            steps.push(format!(
                "worker {} killed at hit {}",
                st.kills[i].0.worker,
                st.kills[i].0.last_hit.unwrap_or(0)
            ));
        }
        if st.kills[i].1 {
            let mut kills = st.kills.clone();
            kills[i].1 = false;
            let cand = State { text: st.text.clone(), kills, fresh: st.fresh };
            if reproduces(&cand)? {
                st = cand;
                steps.push(format!("worker {} killed at its point, not after it", st.kills[i].0.worker));
            }
        }
    }
    // 3. No readers (the pool is unchanged: pre/ still fits).
    let writers = get_int(&st.text, "workload", "writers", 2);
    if get_int(&st.text, "workload", "readers", 1) > 0 {
        let kills: Vec<_> = st.kills.iter().filter(|k| i64::from(k.0.worker) < writers).cloned().collect();
        let cand =
            State { text: set_key(&st.text, "workload", "readers", toml::Value::Integer(0))?, kills, fresh: st.fresh };
        if reproduces(&cand)? {
            steps.push("no readers".into());
            st = cand;
        }
    }
    // 4. Halve the operations (pre/ still fits), then the pool itself (a new pool: a fresh database).
    for (key, floor, default, new_pool) in [
        ("txns_per_writer", 1i64, 8i64, false),
        ("queries_per_reader", 0, 200, false),
        ("packages", 2, 40, true),
        ("files_mean", 1, 12, true),
    ] {
        loop {
            let v = get_int(&st.text, "workload", key, default);
            if v <= floor {
                break;
            }
            let next = (v / 2).max(floor);
            let cand = State {
                text: set_key(&st.text, "workload", key, toml::Value::Integer(next))?,
                kills: st.kills.clone(),
                fresh: st.fresh || new_pool,
            };
            if !reproduces(&cand)? {
                break;
            }
            steps.push(format!("{key} {v} → {next}{}", if new_pool { " (fresh database)" } else { "" }));
            st = cand;
        }
    }
    // The minimal bundle: run the final cycle once more, letting it write its own bundle.
    std::fs::write(&scenario_file, &st.text)?;
    let sc = Scenario::parse(&st.text, &scenario_file)?;
    let pre = (!st.fresh).then(|| src.join("pre"));
    let staging = out.with_file_name(format!("{stem}.staging"));
    let _ = std::fs::remove_dir_all(&staging);
    crate::replay::replay_once(pre.as_deref(), &info, &sc, st.kills.clone(), Some(&staging))?;
    let written = std::fs::read_dir(&staging)
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.path())
        .context("the minimal cycle no longer fails as a whole; nothing written")?;
    let _ = std::fs::remove_file(out);
    std::fs::rename(&written, out)?;
    let _ = std::fs::remove_dir_all(&staging);
    Ok(Shrunk { steps, tried, bundle: out.to_path_buf() })
}
