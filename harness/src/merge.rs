//! `dbtorture merge DIR… --out OUT`: several runs' outputs (shards of one run, or x86 and guest runs of one
//! scenario) become one summary.json, junit.xml, report.html and events.jsonl.
//!
//! Why it reads events and not summaries: the summary is a fold over events (`dbtorture_reports::fold`), so
//! folding the shards' events gives exactly what the unsharded run's events give. The merged events.jsonl is
//! the concatenation (bundle paths rewritten), so a merged directory can be merged again.

use anyhow::{Context, Result, bail};
use dbtorture_reports::{Aggregate, EventLog, RunEvent, Summary, read_events, write_reports};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A short, unique folder name for each source directory inside the merged output.
fn names(dirs: &[PathBuf]) -> Vec<String> {
    let mut used = BTreeSet::new();
    dirs.iter()
        .enumerate()
        .map(|(i, d)| {
            let base = d
                .canonicalize()
                .ok()
                .and_then(|c| c.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| format!("run-{i}"));
            let mut name = base.clone();
            let mut k = 1;
            while !used.insert(name.clone()) {
                k += 1;
                name = format!("{base}-{k}");
            }
            name
        })
        .collect()
}

pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<Summary> {
    for d in dirs {
        if let (Ok(a), Ok(b)) = (d.canonicalize(), out.canonicalize())
            && a == b
        {
            bail!("{}: --out must not be one of the inputs", d.display());
        }
        if !d.join("events.jsonl").exists() {
            bail!("{}: no events.jsonl here (not the output directory of `dbtorture run --out`)", d.display());
        }
    }
    let created = !out.exists();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    // The merged events go to a temporary file that becomes events.jsonl only when the merge is accepted: a
    // refused merge leaves nothing behind (and an OUT it created is removed again).
    let tmp = out.join(".events.jsonl.merging");
    let res = merge_into(dirs, out, &tmp);
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
        if created {
            let _ = std::fs::remove_dir_all(out);
        }
    }
    res
}

fn merge_into(dirs: &[PathBuf], out: &Path, tmp: &Path) -> Result<Summary> {
    let mut log = EventLog::create(tmp)?;
    let mut agg = Aggregate::new();
    let mut write_err = None;
    for (dir, name) in dirs.iter().zip(names(dirs)) {
        let before = agg.runs().len();
        let mut copy_err = None;
        read_events(&dir.join("events.jsonl"), |mut ev| {
            if let RunEvent::Bundle { path, .. } = &mut ev {
                // Copy the bundle the event names (a merged input keeps them below its own sub-folders).
                let (from, to) = (dir.join(&*path), out.join(&name).join(&*path));
                let copied = to.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|_| {
                    if from.is_dir() {
                        crate::bundle::copy_dir(&from, &to)
                    } else {
                        std::fs::copy(&from, &to).map(|_| ())
                    }
                });
                if let Err(e) = copied {
                    copy_err.get_or_insert(format!("copying {} to {}: {e}", from.display(), to.display()));
                }
                *path = format!("{name}/{path}");
            }
            if let Err(e) = log.emit(&ev) {
                write_err.get_or_insert(e);
            }
            agg.push(&ev);
        })?;
        if let Some(e) = copy_err {
            bail!(e);
        }
        anyhow::ensure!(agg.runs().len() > before, "{}: events.jsonl holds no run-start event", dir.display());
        agg.set_source(before, &dir.display().to_string());
    }
    if let Some(e) = write_err {
        return Err(e.into());
    }
    check_runs(&agg)?;
    drop(log);
    std::fs::rename(tmp, out.join("events.jsonl")).context("writing events.jsonl")?;
    let mut summary = agg.summary();
    crate::run_text::anchor_replays(&mut summary, out);
    write_reports(out, &summary, agg.timeline())?;
    Ok(summary)
}

/// Runs of different scenarios do not add up; the same cycles twice would be counted twice. A missing shard
/// is only a warning (a nightly job may have failed to upload).
fn check_runs(agg: &Aggregate) -> Result<()> {
    let runs = agg.runs();
    let first = &runs[0];
    for r in &runs[1..] {
        if r.scenario_hash != first.scenario_hash {
            bail!(
                "{} ran scenario {:?} (sha256 {}…) but {} ran {:?} (sha256 {}…): only runs of the same scenario merge",
                r.source.as_deref().unwrap_or("?"),
                r.scenario,
                r.scenario_hash.get(..12).unwrap_or(""),
                first.source.as_deref().unwrap_or("?"),
                first.scenario,
                first.scenario_hash.get(..12).unwrap_or("")
            );
        }
    }
    for (i, a) in runs.iter().enumerate() {
        for b in &runs[i + 1..] {
            let overlap = a.seed == b.seed
                && a.backends.iter().any(|x| b.backends.contains(x))
                && a.environment.arch == b.environment.arch
                && a.environment.guest == b.environment.guest
                && match (a.shard, b.shard) {
                    (Some(x), Some(y)) => x == y,
                    _ => true,
                };
            if overlap {
                bail!(
                    "{} and {} ran the same cycles (seed {}, shard {}, same backends) on the same kind of machine; \
                     merging would count them twice",
                    a.source.as_deref().unwrap_or("?"),
                    b.source.as_deref().unwrap_or("?"),
                    a.seed,
                    a.shard.map(|s| s.to_string()).unwrap_or_else(|| "none".into())
                );
            }
        }
    }
    let mut seen: BTreeSet<(u64, u32, u32)> = BTreeSet::new();
    for r in runs {
        if let Some(s) = r.shard {
            seen.insert((r.seed, s.index, s.count));
        }
    }
    for &(seed, _, count) in &seen {
        let missing: Vec<u32> = (1..=count).filter(|i| !seen.contains(&(seed, *i, count))).collect();
        if !missing.is_empty() {
            eprintln!(
                "warning: seed {seed}: shards {} of {count} are missing",
                missing.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
            );
        }
    }
    Ok(())
}
