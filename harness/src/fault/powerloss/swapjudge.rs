//! Judging a crash image of a rebuild or conversion (`rebuilddb` from one backend into another, or into the
//! same one) recorded with the recorder mounted over the database's *parent* directory, so the swap's
//! renames and the directory fsyncs are in the log.
//!
//! Why apart from [`super::judge`]: there is no writer's log to hold the image to, only one promise — the
//! rebuild's. Before `rebuilddb` returned (the child's acknowledgement, the recorder's count read right
//! after), the name holds the original database or the rebuilt one, each whole (every package the original
//! held, verifying clean); never neither, never a mix. From the acknowledgement on, it holds the rebuilt one:
//! an image that brings the original back has lost the acknowledged rebuild (`lost-commit`). Which one is
//! in place is told by the inode bound at the name (the original's, or another), not guessed from its
//! files, so a same-backend rebuild is judged as strictly as a conversion.

use super::judge::{Recorded, Verdict, materialize, reboot};
use super::model::{self, Cut};
use crate::finding::{Finding, HarnessFinding};
use crate::verify;
use crate::workload::Pool;
use dbtorture_backends::BackendKind;
use std::collections::HashMap;
use std::path::Path;

/// What a recorded rebuild cycle was: the database's name in the mount root, the backends, and the
/// recorder's count when `rebuilddb` returned (None: it never returned).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Swap {
    pub name: String,
    pub from: BackendKind,
    pub to: BackendKind,
    pub acked: Option<u64>,
}

/// Which database an image has at the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InPlace {
    Original,
    Rebuilt,
    Neither,
}

/// Judge every cut, in order (one thread: libdb's and bdbenv's checks fork). Returns the verdicts and how
/// many images reused an earlier one's verify (same backend, same bytes).
pub fn judge_all(
    rec: &Recorded,
    swap: &Swap,
    pool: &Pool,
    cuts: &[Cut],
    scratch: &Path,
) -> Result<(Vec<Verdict>, usize), anyhow::Error> {
    let mut seen: HashMap<[u8; 32], verify::DataReport> = HashMap::new();
    let mut hits = 0;
    let mut out = Vec::with_capacity(cuts.len());
    for &cut in cuts {
        out.push(judge_one(rec, swap, pool, cut, scratch, &mut seen, &mut hits)?);
    }
    Ok((out, hits))
}

fn judge_one(
    rec: &Recorded,
    swap: &Swap,
    pool: &Pool,
    cut: Cut,
    scratch: &Path,
    seen: &mut HashMap<[u8; 32], verify::DataReport>,
    hits: &mut usize,
) -> Result<Verdict, anyhow::Error> {
    let img = model::image(&rec.pre, &rec.log, cut)?;
    let acked = swap.acked.is_some_and(|a| a <= cut.at);
    let place = in_place(&img, rec, &swap.name);
    let mut findings = Vec::new();
    let kind = match place {
        InPlace::Original => swap.from,
        InPlace::Rebuilt => swap.to,
        InPlace::Neither => {
            findings.push(Finding::from(HarnessFinding::PartialTransaction {
                worker: 0,
                txn: 0,
                detail: format!(
                    "no database at {} after the power cut: the swap left neither the original nor the rebuilt one \
                     in place",
                    swap.name
                ),
            }));
            return Ok(verdict(cut, findings, img.choices, acked));
        }
    };
    if acked && place == InPlace::Original {
        findings.push(Finding::from(HarnessFinding::LostCommit {
            worker: 0,
            txn: 0,
            package: format!(
                "{} → {} (the power cut brought the original database back to {})",
                swap.from.name(),
                swap.to.name(),
                swap.name
            ),
            op: "rebuilddb".into(),
        }));
    }
    let key = digest(kind, &img, &swap.name);
    let data = match seen.get(&key) {
        Some(d) => {
            *hits += 1;
            d
        }
        None => {
            materialize(&img, scratch)?;
            let db = scratch.join(&swap.name);
            reboot(kind, &db)?;
            seen.entry(key).or_insert(verify::data(kind, &db, pool))
        }
    };
    findings.extend(crate::finding::from_db(data.findings.clone()));
    if let Some(after) = &data.installed
        && *after != rec.before
    {
        findings.push(Finding::from(HarnessFinding::PartialTransaction {
            worker: 0,
            txn: 0,
            detail: format!(
                "the {} database in place ({}) after the power cut holds {} packages, the original held {}",
                kind.name(),
                if place == InPlace::Original { "the original" } else { "the rebuilt one" },
                after.len(),
                rec.before.len()
            ),
        }));
    }
    Ok(verdict(cut, findings, img.choices, acked))
}

fn verdict(cut: Cut, findings: Vec<Finding>, choices: model::Choices, acked: bool) -> Verdict {
    let outcome = crate::scheduler::verdict::classify(&findings, false);
    Verdict { cut, outcome, findings, choices, acked: usize::from(acked), recovered: None }
}

/// The inode at `name` in the image against the one the recorder bound there at mount time.
pub fn in_place(img: &model::Image, rec: &Recorded, name: &str) -> InPlace {
    match (img.inos.get(name), rec.log.pre.get(name)) {
        (None, _) => InPlace::Neither,
        (Some(now), Some((orig, _))) if now == orig => InPlace::Original,
        (Some(_), _) => InPlace::Rebuilt,
    }
}

/// The verifier's verdict depends on the backend and the bytes under `name` only.
fn digest(kind: BackendKind, img: &model::Image, name: &str) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(kind.name().as_bytes());
    let prefix = format!("{name}/");
    for (p, b) in img.files.iter().filter(|(p, _)| p.starts_with(&prefix)) {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::powerloss::oplog::{Log, Op, ROOT};
    use std::collections::{BTreeMap, BTreeSet};

    fn rec(ops: Vec<Op>) -> Recorded {
        let mut log = Log::default();
        log.pre.insert(String::new(), (ROOT, true));
        log.pre.insert("db".into(), (10, true));
        log.ops = ops;
        Recorded {
            kind: BackendKind::Sqlite,
            pre: BTreeMap::new(),
            log,
            writers: Vec::new(),
            acks: BTreeMap::new(),
            before: BTreeSet::new(),
        }
    }

    #[test]
    fn the_inode_at_the_name_tells_which_database_is_in_place() {
        let r = rec(vec![
            Op::Mkdir { parent: ROOT, name: "db.new".into(), ino: 20 },
            Op::Exchange { parent: ROOT, name: "db".into(), newparent: ROOT, newname: "db.new".into() },
            Op::Rmdir { parent: ROOT, name: "db.new".into() },
            Op::Rmdir { parent: ROOT, name: "db".into() },
        ]);
        let at = |n: u64| {
            let img = model::image(&r.pre, &r.log, Cut { at: n, seed: 0, keep_per_mille: 1000, torn: false }).unwrap();
            in_place(&img, &r, "db")
        };
        assert_eq!(
            [at(0), at(1), at(2), at(3), at(4)],
            [InPlace::Original, InPlace::Original, InPlace::Rebuilt, InPlace::Rebuilt, InPlace::Neither]
        );
    }
}
