//! `dbtorture shrink BUNDLE`: reduce a failing cycle while the same finding persists — fewer kills, earlier
//! kill hits, fewer operations and readers, fewer and smaller packages — and write a minimal bundle.
//!
//! Greedy, like proptest's shrinking: each reduction is tried on its own and kept if the reduced cycle still
//! produces a finding of the kind the bundle recorded first. Numeric dimensions (a kill's hit, operation
//! counts, pool size) are bisected, so a hit of 42 takes about 6 tries, not 41. Reductions that change the
//! package pool cannot reuse the bundle's `pre/` database; they start from a freshly prepared one (same seed
//! and cycle). The result is always a real bundle that replays to its own verdict: the reduced cycle is run
//! once more writing its bundle, that bundle is replayed, and if no reduced run holds up the input bundle is
//! written instead (and the report says so). Nothing is left beside the output but the archive.

use crate::bundle::{self, BundleInfo};
use crate::scenario::Scenario;
use anyhow::{Context, Result};
use dbtorture_reports::KillRecord;
use std::path::{Path, PathBuf};

pub struct Shrunk {
    pub steps: Vec<String>,
    pub tried: usize,
    pub bundle: PathBuf,
    /// False when no reduced cycle replayed to its verdict and the input bundle was written instead.
    pub reduced: bool,
}

#[derive(Clone)]
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
pub fn default_out(bundle: &Path) -> PathBuf {
    let name = bundle.file_name().unwrap_or_default().to_string_lossy();
    let stem = name.strip_suffix(".tar.gz").unwrap_or(&name);
    bundle.with_file_name(format!("{stem}-min.tar.gz"))
}

/// Check shrink's arguments before any work: the bundle exists, and `out` (`.tar.gz` added if missing) is in
/// a directory that exists. Returns the archive path to write. An error here is bad input (exit 2).
pub fn check_args(src: &Path, out: &Path) -> std::result::Result<PathBuf, String> {
    if !src.exists() {
        return Err(format!("{}: no such bundle", src.display()));
    }
    let name = out.file_name().ok_or_else(|| format!("--out {}: needs a file name", out.display()))?;
    let name = name.to_string_lossy();
    let out = if name.ends_with(".tar.gz") { out.to_path_buf() } else { out.with_file_name(format!("{name}.tar.gz")) };
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(format!("--out {}: directory {} does not exist", out.display(), parent.display()));
    }
    Ok(out)
}

/// The smallest value in `lo..=hi` for which `ok` holds, assuming `ok(hi)` does and `ok` is monotone;
/// bisection, so about log2(hi - lo) calls.
fn bisect(mut lo: i64, mut hi: i64, mut ok: impl FnMut(i64) -> Result<bool>) -> Result<i64> {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if ok(mid)? {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(hi)
}

struct Shrinker<'a> {
    src: &'a Path,
    info: BundleInfo,
    wanted: String,
    tried: usize,
}

impl Shrinker<'_> {
    /// Run the reduced cycle once; whether it still has the wanted finding. Progress goes to stderr.
    fn reproduces(&mut self, st: &State, what: &str) -> Result<bool> {
        self.tried += 1;
        let sc = Scenario::parse(&st.text, Path::new(&self.info.scenario_path))?;
        let pre = (!st.fresh).then(|| self.src.join("pre"));
        let started = std::time::Instant::now();
        let (_, findings) = crate::replay::replay_once(pre.as_deref(), &self.info, &sc, st.kills.clone(), None)?;
        let kept = findings.iter().any(|f| {
            serde_json::to_value(f).ok().and_then(|v| v["kind"].as_str().map(String::from)).as_deref()
                == Some(self.wanted.as_str())
        });
        eprintln!(
            "shrink: try {}: {what} → {} ({:.1}s)",
            self.tried,
            if kept { "still fails, kept" } else { "gone, rejected" },
            started.elapsed().as_secs_f64()
        );
        Ok(kept)
    }
}

/// Shrink the bundle at `src` (archive or directory) into the archive `out` (see [`check_args`]).
pub fn shrink(src: &Path, out: &Path) -> Result<Shrunk> {
    let out = check_args(src, out).map_err(anyhow::Error::msg)?;
    let opened = bundle::open(src)?;
    let src_dir = opened.dir.as_path();
    eprintln!("shrink: replaying {} …", src.display());
    let base = crate::replay::replay(src_dir)?;
    anyhow::ensure!(
        base.replayed == base.recorded,
        "the bundle does not replay to its verdict ({} vs {}); nothing to shrink",
        base.replayed,
        base.recorded
    );
    let info: BundleInfo = base.info.clone();
    let wanted = info.findings.first().map(|f| f.kind.clone()).context("the bundle has no finding to keep")?;
    let mut sh = Shrinker { src: src_dir, info: info.clone(), wanted, tried: 0 };
    let mut st = State { text: info.scenario_text.clone(), kills: base.kills.clone(), fresh: false };
    let mut steps = Vec::new();
    // 1. Fewer kills.
    let mut i = 0;
    while i < st.kills.len() {
        let mut cand = st.clone();
        let k = cand.kills.remove(i);
        let what = format!("drop the kill of worker {}", k.0.worker);
        if sh.reproduces(&cand, &what)? {
            steps.push(what);
            st = cand;
        } else {
            i += 1;
        }
    }
    // 2. Earlier kills: the lowest hit of the same point (bisected), and "at" instead of "after".
    for i in 0..st.kills.len() {
        let hit = i64::try_from(st.kills[i].0.last_hit.unwrap_or(1)).unwrap_or(i64::MAX);
        if hit > 1 {
            let worker = st.kills[i].0.worker;
            let low = bisect(1, hit, |h| {
                let mut cand = st.clone();
                cand.kills[i].0.last_hit = Some(h as u64);
                sh.reproduces(&cand, &format!("kill worker {worker} at hit {h}"))
            })?;
            if low < hit {
                st.kills[i].0.last_hit = Some(low as u64);
                steps.push(format!("worker {worker} killed at hit {low} (was {hit})"));
            }
        }
        if st.kills[i].1 {
            let mut cand = st.clone();
            cand.kills[i].1 = false;
            let what = format!("kill worker {} at its point, not after it", st.kills[i].0.worker);
            if sh.reproduces(&cand, &what)? {
                st = cand;
                steps.push(what);
            }
        }
    }
    // 3. No readers (the pool is unchanged: pre/ still fits).
    let writers = get_int(&st.text, "workload", "writers", 2);
    if get_int(&st.text, "workload", "readers", 1) > 0 {
        let kills: Vec<_> = st.kills.iter().filter(|k| i64::from(k.0.worker) < writers).cloned().collect();
        let cand =
            State { text: set_key(&st.text, "workload", "readers", toml::Value::Integer(0))?, kills, fresh: st.fresh };
        if sh.reproduces(&cand, "no readers")? {
            steps.push("no readers".into());
            st = cand;
        }
    }
    // 4. Bisect the operations (pre/ still fits), then the pool itself (a new pool: a fresh database).
    for (key, floor, default, new_pool) in [
        ("txns_per_writer", 1i64, 8i64, false),
        ("queries_per_reader", 0, 200, false),
        ("packages", 2, 40, true),
        ("files_mean", 1, 12, true),
    ] {
        let v = get_int(&st.text, "workload", key, default);
        if v <= floor {
            continue;
        }
        let base = st.clone();
        let cand = |n: i64| -> Result<State> {
            Ok(State {
                text: set_key(&base.text, "workload", key, toml::Value::Integer(n))?,
                kills: base.kills.clone(),
                fresh: base.fresh || new_pool,
            })
        };
        let low = bisect(floor, v, |n| sh.reproduces(&cand(n)?, &format!("{key} {n}")))?;
        if low < v {
            st = cand(low)?;
            steps.push(format!("{key} {v} → {low}{}", if new_pool { " (fresh database)" } else { "" }));
        }
    }
    let tried = sh.tried;
    // The minimal bundle: run the reduced cycle once more writing its own bundle, and keep it only if it
    // replays to its verdict. Concurrency makes a run now and then differ; three attempts, then the input.
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    for attempt in 1..=3 {
        let staging = tempfile::Builder::new().prefix(".dbtorture-shrink-").tempdir_in(parent)?;
        let sc = Scenario::parse(&st.text, Path::new(&info.scenario_path))?;
        let pre = (!st.fresh).then(|| src_dir.join("pre"));
        crate::replay::replay_once(pre.as_deref(), &info, &sc, st.kills.clone(), Some(staging.path()))?;
        let written = std::fs::read_dir(staging.path())?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.is_file() && p.to_string_lossy().ends_with(".tar.gz"));
        let Some(written) = written else {
            eprintln!("shrink: writing the minimal bundle, attempt {attempt}: the cycle had no finding this time");
            continue;
        };
        let r = crate::replay::replay(&written)?;
        if r.replayed == r.recorded {
            bundle::repack(&written, &out)?;
            return Ok(Shrunk { steps, tried, bundle: out, reduced: true });
        }
        eprintln!(
            "shrink: writing the minimal bundle, attempt {attempt}: it replayed to {} (recorded {})",
            r.replayed, r.recorded
        );
    }
    eprintln!("shrink: no reduced cycle replayed to its own verdict; writing the input bundle unreduced");
    bundle::repack(src, &out)?;
    Ok(Shrunk { steps: Vec::new(), tried, bundle: out, reduced: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bisect_finds_the_smallest_passing_value_in_log_steps() {
        let mut calls = 0;
        let low = bisect(1, 42, |h| {
            calls += 1;
            Ok(h >= 17)
        })
        .unwrap();
        assert_eq!(low, 17);
        assert!(calls <= 6, "{calls} calls");
        assert_eq!(bisect(1, 1, |_| Ok(false)).unwrap(), 1);
    }

    #[test]
    fn out_in_a_missing_directory_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let b = tmp.path().join("b.tar.gz");
        std::fs::write(&b, b"").unwrap();
        let e = check_args(&b, &tmp.path().join("nope/min")).unwrap_err();
        assert!(e.contains("does not exist") && e.contains("nope"), "{e}");
        assert_eq!(check_args(&b, &tmp.path().join("min")).unwrap(), tmp.path().join("min.tar.gz"));
        assert!(check_args(&tmp.path().join("missing.tar.gz"), &b).unwrap_err().contains("no such bundle"));
    }
}
