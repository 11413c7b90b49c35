//! Judging one crash image: write it out, "reboot" (what the machine does before anyone opens the database
//! again), then the same verifier and oracle as after a kill — against the engine's power-loss promise.
//!
//! Why the oracle is cut too: a commit counts as acknowledged for a cut at P only if the worker saw `commit`
//! return at or before P (the recorder's sequence number it reported); the worker's first transaction not
//! acknowledged by P is the in-flight one (all-or-nothing if the engine promises atomicity); its later ones
//! had not happened.
//!
//! Not done per image (for throughput): the operability probe, and recovery unless the image fails.

use super::model::{self, Choices, Cut, Image};
use super::oplog::Log;
use crate::finding::{Class as FindingClass, Finding, HarnessFinding};
use crate::oracle::{self, TxnState, WriterLog};
use crate::verify;
use crate::workload::Pool;
use dbtorture_backends::{BackendKind, Promises};
use dbtorture_reports::Outcome;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What a power cut may cost, per engine — declared apart from what a process kill may cost
/// (`BackendKind::promises`): a kill never loses what the kernel holds, a power cut loses all it has not
/// written to the disk.
pub fn promise(kind: BackendKind) -> Promises {
    match kind {
        // WAL with synchronous=FULL: the commit fdatasyncs the WAL before it returns; a torn or missing WAL
        // tail fails its checksum and is ignored, so the in-flight transaction is all or nothing.
        BackendKind::Sqlite => Promises { atomic: true, durable: true, isolated: true },
        // Commit syncs every data file (DB->sync / msync+fsync); nothing is atomic across files, so an
        // in-flight transaction may be half there (indexes then disagree with Packages: rebuilddb mends it).
        BackendKind::Bdbenv | BackendKind::BdbenvDb43 | BackendKind::Libdb => {
            Promises { atomic: false, durable: true, isolated: false }
        }
        // rpm 4.18 on sqlite: every package its own transaction, synchronous=FULL while installing.
        BackendKind::Rpm => Promises { atomic: false, durable: true, isolated: true },
    }
}

/// Everything one recorded cycle leaves for its images: the directory at mount time, the log, and what the
/// workers acknowledged (with the sequence number of each acknowledgement).
pub struct Recorded {
    pub kind: BackendKind,
    pub pre: BTreeMap<String, Vec<u8>>,
    pub log: Log,
    pub writers: Vec<WriterLog>,
    /// (worker, txn) → the recorder's count when the worker saw `commit` return.
    pub acks: BTreeMap<(u32, u64), u64>,
    pub before: BTreeSet<u32>,
}

#[derive(Debug, Clone)]
pub struct Verdict {
    pub cut: Cut,
    pub outcome: Outcome,
    pub findings: Vec<Finding>,
    pub choices: Choices,
    /// Commits acknowledged before the cut.
    pub acked: usize,
    /// For a failing image: whether the engine's recovery (rebuilddb) brought it back to clean.
    pub recovered: Option<bool>,
}

/// The writers' logs as the oracle must see them for a cut at `at`.
pub fn logs_at(writers: &[WriterLog], acks: &BTreeMap<(u32, u64), u64>, at: u64) -> Vec<WriterLog> {
    writers
        .iter()
        .enumerate()
        .map(|(w, log)| {
            let mut out = WriterLog::default();
            for (txn, body, _) in &log.txns {
                match acks.get(&(w as u32, *txn)) {
                    Some(&seq) if seq <= at => out.txns.push((*txn, body.clone(), TxnState::Committed)),
                    _ => {
                        // The first transaction not acknowledged by the cut is in flight; the rest never began.
                        out.txns.push((*txn, body.clone(), TxnState::Begun));
                        break;
                    }
                }
            }
            out
        })
        .collect()
}

/// Write `img` into `dir` (emptied first).
pub fn materialize(img: &Image, dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    for d in &img.dirs {
        std::fs::create_dir_all(dir.join(d))?;
    }
    for (p, bytes) in &img.files {
        std::fs::write(dir.join(p), bytes)?;
    }
    Ok(())
}

/// What a reboot does before the database is opened again: shared-memory regions do not survive it. The
/// environment backends' `__db.*` files are removed (as rpm's `db_recover`/`rm __db.*` would after a crash);
/// sqlite's `-shm` stays — sqlite itself rebuilds it from the WAL when the first connection opens.
pub fn reboot(kind: BackendKind, dir: &Path) -> std::io::Result<()> {
    if matches!(kind, BackendKind::Bdbenv | BackendKind::BdbenvDb43 | BackendKind::Libdb) {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            if e.file_name().to_string_lossy().starts_with("__db.") {
                std::fs::remove_file(e.path())?;
            }
        }
    }
    Ok(())
}

/// What judging an image's bytes alone gives (no cut involved): the verifier's report, and — computed the
/// first time an image needs it — whether the engine's recovery made it verify clean.
pub struct Judged {
    data: verify::DataReport,
    recovered: Option<bool>,
}

/// Images already judged in one recorded cycle, by their contents: many cuts leave the same bytes (nothing
/// the model keeps changed between them), and the verifier's verdict depends on the bytes only. The oracle,
/// which depends on the cut (what was acknowledged by then), still runs for every cut.
#[derive(Default)]
pub struct Seen {
    by_bytes: std::collections::HashMap<[u8; 32], Judged>,
    pub hits: usize,
}

fn digest(img: &Image) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for (p, b) in &img.files {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    }
    for d in &img.dirs {
        h.update(b"\0dir\0");
        h.update(d.as_bytes());
    }
    h.finalize().into()
}

/// Build, write, reboot and judge the image for `cut`. `scratch` is a directory this may empty and reuse.
pub fn judge(rec: &Recorded, pool: &Pool, cut: Cut, scratch: &Path) -> Result<Verdict, anyhow::Error> {
    judge_seen(rec, pool, cut, scratch, &mut Seen::default())
}

/// Judge every cut, in cut order. Engines whose judging never forks (sqlite: the verifier reads the file
/// in-process, and so does its recovery) are judged on several threads — each with its own scratch
/// directory, a contiguous share of the cuts (neighbours often share bytes) and its own [`Seen`] — all
/// joined before this returns, so the scheduler is single-threaded again before it forks the next
/// cycle's workers. The verdicts do not depend on the thread count; the count of reused verdicts does.
/// Returns the verdicts and how many images reused an earlier verdict.
pub fn judge_all(
    rec: &Recorded,
    pool: &Pool,
    cuts: &[Cut],
    scratch: &Path,
) -> Result<(Vec<Verdict>, usize), anyhow::Error> {
    let threads = match rec.kind {
        BackendKind::Sqlite => std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4),
        // libdb is read through a forked child, bdbenv's and rpm's recovery fork: one thread.
        _ => 1,
    };
    let threads = threads.min(cuts.len().max(1));
    if threads == 1 {
        let mut seen = Seen::default();
        let v = cuts.iter().map(|&c| judge_seen(rec, pool, c, scratch, &mut seen)).collect::<Result<Vec<_>, _>>()?;
        return Ok((v, seen.hits));
    }
    let per = cuts.len().div_ceil(threads);
    let results = std::thread::scope(|sc| {
        let handles: Vec<_> = cuts
            .chunks(per)
            .enumerate()
            .map(|(i, chunk)| {
                let dir = scratch.join(format!("t{i}"));
                sc.spawn(move || {
                    let mut seen = Seen::default();
                    let v =
                        chunk.iter().map(|&c| judge_seen(rec, pool, c, &dir, &mut seen)).collect::<Result<Vec<_>, _>>();
                    v.map(|v| (v, seen.hits))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a crash-image judging thread panicked"))))
            .collect::<Vec<_>>()
    });
    let (mut all, mut hits) = (Vec::with_capacity(cuts.len()), 0);
    for r in results {
        let (v, h) = r?;
        all.extend(v);
        hits += h;
    }
    Ok((all, hits))
}

/// [`judge`], reusing the verifier's work on an image whose bytes `seen` already judged.
pub fn judge_seen(
    rec: &Recorded,
    pool: &Pool,
    cut: Cut,
    scratch: &Path,
    seen: &mut Seen,
) -> Result<Verdict, anyhow::Error> {
    let img = model::image(&rec.pre, &rec.log, cut)?;
    let key = digest(&img);
    let write = |img: &Image| -> Result<(), anyhow::Error> {
        materialize(img, scratch)?;
        reboot(rec.kind, &db_dir(rec.kind, scratch))?;
        Ok(())
    };
    let mut written = false;
    let j = match seen.by_bytes.entry(key) {
        std::collections::hash_map::Entry::Occupied(e) => {
            seen.hits += 1;
            e.into_mut()
        }
        std::collections::hash_map::Entry::Vacant(e) => {
            write(&img)?;
            written = true;
            e.insert(Judged { data: verify::data(rec.kind, scratch, pool), recovered: None })
        }
    };
    let logs = logs_at(&rec.writers, &rec.acks, cut.at);
    let acked = logs.iter().map(|l| l.committed()).sum();
    let mut findings = crate::finding::from_db(j.data.findings.clone());
    if let Some(after) = &j.data.installed {
        findings.extend(oracle::check(pool, &logs, &rec.before, after, promise(rec.kind), &Default::default()));
    }
    let mut outcome = crate::scheduler::verdict::classify(&findings, false);
    let mut recovered = None;
    if outcome != Outcome::Clean {
        // As the harness does after a kill: recovery, then clean again? Only corruption and inconsistency
        // can be mended; a lost commit or half a transaction cannot.
        let mendable = mendable(&findings);
        let ok = match j.recovered {
            Some(ok) => ok,
            None => {
                if !written {
                    write(&img)?;
                }
                let ok = rec.kind.recover(scratch).is_ok() && verify::data(rec.kind, scratch, pool).findings.is_empty();
                j.recovered = Some(ok);
                ok
            }
        };
        recovered = Some(ok);
        if ok && mendable {
            outcome = Outcome::Recovered;
        }
    }
    Ok(Verdict { cut, outcome, findings, choices: img.choices, acked, recovered })
}

/// Whether recovery may turn an image with these findings into `recovered`: corruption and inconsistency
/// can be mended; a lost commit or half a transaction cannot.
pub fn mendable(findings: &[Finding]) -> bool {
    findings.iter().all(|f| {
        matches!(f.class(), FindingClass::Corrupt | FindingClass::Inconsistent | FindingClass::Inoperable)
            && !matches!(f, Finding::Harness(HarnessFinding::PartialTransaction { .. }))
    })
}

/// The directory holding the engine's own files (the rpm target keeps its database inside a root).
fn db_dir(kind: BackendKind, dir: &Path) -> std::path::PathBuf {
    if kind == BackendKind::Rpm { dbtorture_backends::rpmcli::db_dir(dir) } else { dir.to_path_buf() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Step, Txn, TxnKind};

    #[test]
    fn oracle_sees_only_what_was_acknowledged_before_the_cut() {
        let t = |p| Txn { kind: TxnKind::Install, steps: vec![Step::Add(p)] };
        let w = WriterLog {
            txns: vec![
                (10, t(0), TxnState::Committed),
                (11, t(2), TxnState::Committed),
                (12, t(4), TxnState::Committed),
            ],
        };
        let acks = BTreeMap::from([((0, 10), 5), ((0, 11), 9), ((0, 12), 20)]);
        let at = |c| logs_at(std::slice::from_ref(&w), &acks, c).remove(0).txns;
        assert!(matches!(at(4).as_slice(), [(10, _, TxnState::Begun)]), "nothing acked yet, first in flight");
        let l = at(5);
        assert_eq!((l.len(), l[0].2.clone(), l[1].2.clone()), (2, TxnState::Committed, TxnState::Begun));
        let l = at(9);
        assert_eq!(l.len(), 3);
        assert_eq!((l[1].2.clone(), l[2].2.clone()), (TxnState::Committed, TxnState::Begun));
        assert!(at(100).iter().all(|t| t.2 == TxnState::Committed));
        // A commit the worker never reported a number for is never taken as acknowledged.
        let none = logs_at(std::slice::from_ref(&w), &BTreeMap::new(), 100).remove(0).txns;
        assert_eq!(none.len(), 1);
    }
}
