//! After a real power cut: the SD card as the rebooted machine would find it, and the databases on it judged.
//!
//! Why on a copy, with e2fsck and debugfs: the card qemu left is the evidence and stays as it was; on a copy,
//! `e2fsck -fy` replays the ext4 journal (what mounting after a reboot does) and repairs what it must — its
//! exit status says whether the file system itself came through (0–3: whole; 4 and up: it could not, a
//! finding of its own). `debugfs rdump` then copies the database directories out without mounting anything,
//! so this runs as an ordinary user and in a container without loop devices. The databases are judged as
//! a modelled crash image is (`fault::powerloss::judge`): the reboot (`__db.*` removed), the verifier, the
//! oracle against the engine's power-loss promise, and recovery (rebuilddb) when they fail.

use super::disk::DiskError;
use crate::fault::powerloss::judge;
use crate::finding::{Finding, HarnessFinding};
use crate::oracle::{self, WriterLog};
use crate::verify;
use crate::workload::Pool;
use dbtorture_backends::BackendKind;
use dbtorture_reports::Outcome;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What `e2fsck -fy` made of the card.
#[derive(Debug, Clone)]
pub struct Fsck {
    pub exit: i32,
    /// Its output, stdout then stderr.
    pub log: String,
}

impl Fsck {
    /// e2fsck's exit status 4 and up: errors left uncorrected (4), an operational error (8) or worse.
    pub fn finding(&self) -> Option<Finding> {
        (self.exit >= 4).then(|| {
            let tail: Vec<&str> = self.log.lines().rev().take(3).collect();
            Finding::from(HarnessFinding::FilesystemDamaged {
                fsck_exit: self.exit,
                detail: tail.into_iter().rev().collect::<Vec<_>>().join(" / "),
            })
        })
    }
}

/// e2fsprogs' tools live in /sbin, which an ordinary user's PATH may lack.
fn tool(name: &str) -> PathBuf {
    let on_path =
        std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|p| p.is_file()));
    on_path
        .or_else(|| ["/usr/sbin", "/sbin"].iter().map(|d| Path::new(d).join(name)).find(|p| p.is_file()))
        .unwrap_or_else(|| PathBuf::from(name))
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> DiskError {
    move |source| DiskError::Io { what, source }
}

/// Copy `image` (sparse) to `copy` and run `e2fsck -fy` on the copy: the journal replayed, the file system
/// checked in full and repaired as far as it can be.
pub fn fsck_copy(image: &Path, copy: &Path) -> Result<Fsck, DiskError> {
    let _ = std::fs::remove_file(copy);
    let cp = Command::new("cp")
        .args(["--sparse=always".as_ref(), image.as_os_str(), copy.as_os_str()])
        .output()
        .map_err(io("running cp".into()))?;
    if !cp.status.success() {
        return Err(DiskError::Tool {
            tool: "cp",
            image: image.into(),
            stderr: String::from_utf8_lossy(&cp.stderr).trim().into(),
        });
    }
    let out = Command::new(tool("e2fsck"))
        .args(["-f".as_ref(), "-y".as_ref(), copy.as_os_str()])
        .env("E2FSCK_CONFIG", "/dev/null")
        .output()
        .map_err(io("running e2fsck (install e2fsprogs)".into()))?;
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // Killed by a signal: no status; as bad as an operational error.
    Ok(Fsck { exit: out.status.code().unwrap_or(8), log })
}

/// Copy the directory `rel` of the image (e.g. `work/sqlite/db`) to `dest/<its last component>`.
pub fn extract(image: &Path, rel: &str, dest: &Path) -> Result<PathBuf, DiskError> {
    std::fs::create_dir_all(dest).map_err(io(format!("creating {}", dest.display())))?;
    let name = Path::new(rel).file_name().map(|n| n.to_owned()).unwrap_or_default();
    let got = dest.join(&name);
    let _ = std::fs::remove_dir_all(&got);
    let req = format!("rdump \"/{rel}\" \"{}\"", dest.display());
    let out = Command::new(tool("debugfs"))
        .args(["-R".as_ref(), req.as_ref(), image.as_os_str()])
        .output()
        .map_err(io("running debugfs (install e2fsprogs)".into()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("debugfs ") && !l.trim().is_empty()).collect();
    if !out.status.success() || !errors.is_empty() || !got.is_dir() {
        return Err(DiskError::Tool { tool: "debugfs", image: image.into(), stderr: errors.join(" / ") });
    }
    Ok(got)
}

/// One backend's database after the cut.
#[derive(Debug, Clone)]
pub struct Judged {
    pub kind: BackendKind,
    pub outcome: Outcome,
    pub findings: Vec<Finding>,
    /// Whether recovery ran, and whether the database then verified clean.
    pub recovered: Option<bool>,
    /// Commits acknowledged before the cut, over the backend's writers.
    pub acked: usize,
}

/// Judge the database in `dir` (a copy off the card; this changes it) after the cut: `logs` are its writers'
/// transactions as the console reported them (acknowledged, then at most one in flight each), `before` the
/// installed set the guest started from, `extra` findings known before looking (the worker's own errors,
/// a damaged file system).
pub fn judge_db(
    kind: BackendKind,
    dir: &Path,
    pool: &Pool,
    logs: &[WriterLog],
    before: &BTreeSet<u32>,
    extra: Vec<Finding>,
) -> Judged {
    let acked = logs.iter().map(WriterLog::committed).sum();
    let mut findings = extra;
    if let Err(e) = judge::reboot(kind, dir) {
        findings.push(Finding::from(HarnessFinding::HarnessFault { detail: format!("rm __db.*: {e}") }));
    }
    let data = verify::data(kind, dir, pool);
    findings.extend(crate::finding::from_db(data.findings));
    if let Some(after) = &data.installed {
        findings.extend(oracle::check(pool, logs, before, after, judge::promise(kind), &Default::default()));
    }
    let mut outcome = crate::scheduler::verdict::classify(&findings, false);
    let mut recovered = None;
    if outcome != Outcome::Clean && outcome != Outcome::HarnessError {
        let ok = kind.recover(dir).is_ok() && verify::data(kind, dir, pool).findings.is_empty();
        recovered = Some(ok);
        // Rebuilding the database mends neither a lost commit nor the file system it sits on.
        if ok && judge::mendable(&findings) && !findings.iter().any(damaged_fs) {
            outcome = Outcome::Recovered;
        }
    }
    Judged { kind, outcome, findings, recovered, acked }
}

/// Whether `f` says the file system itself did not come through the cut (the cut is then unexpected,
/// whatever the scenario allows the database).
pub fn damaged_fs(f: &Finding) -> bool {
    matches!(f, Finding::Harness(HarnessFinding::FilesystemDamaged { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::TxnState;
    use crate::workload::{PoolSpec, Step, Txn, TxnKind};
    use dbtorture_backends::OpenMode;

    #[test]
    fn e2fsck_below_four_is_a_whole_file_system_and_four_up_a_finding() {
        for exit in [0, 1, 2, 3] {
            assert!(Fsck { exit, log: String::new() }.finding().is_none());
        }
        let f = Fsck { exit: 4, log: "a\nb\nc\nd\n".into() }.finding().expect("a finding");
        assert_eq!(f.class(), crate::finding::Class::Corrupt);
        assert!(f.to_string().contains("exited 4") && f.to_string().contains("b / c / d"), "{f}");
        assert!(Fsck { exit: 8, log: String::new() }.finding().is_some());
    }

    fn setup(kind: BackendKind, installed: &[u32]) -> (tempfile::TempDir, Pool) {
        let pool = Pool::build(PoolSpec { names: 6, versions: 2, files_mean: 2, seed: 3 }).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let mut db = kind.open(tmp.path(), OpenMode::Create).unwrap();
        db.begin().unwrap();
        for &p in installed {
            db.install(&pool.get(p).installed_blob(1)).unwrap();
        }
        db.commit().unwrap();
        db.close().unwrap();
        (tmp, pool)
    }

    #[test]
    fn an_acknowledged_commit_missing_after_the_cut_is_a_lost_commit_and_one_present_is_clean() {
        let (tmp, pool) = setup(BackendKind::Sqlite, &[0, 2]);
        let txn = |steps| Txn { kind: TxnKind::Install, steps };
        // Acknowledged: +2 (on the card). In flight: +4 (not there: allowed).
        let good = WriterLog {
            txns: vec![
                (1, txn(vec![Step::Add(2)]), TxnState::Committed),
                (2, txn(vec![Step::Add(4)]), TxnState::Begun),
            ],
        };
        let j = judge_db(BackendKind::Sqlite, tmp.path(), &pool, &[good], &BTreeSet::from([0]), Vec::new());
        assert_eq!((j.outcome, j.acked, j.recovered), (Outcome::Clean, 1, None), "{:?}", j.findings);
        // Acknowledged +4 as well, but the card lacks it.
        let lost = WriterLog {
            txns: vec![
                (1, txn(vec![Step::Add(2)]), TxnState::Committed),
                (2, txn(vec![Step::Add(4)]), TxnState::Committed),
            ],
        };
        let j = judge_db(BackendKind::Sqlite, tmp.path(), &pool, &[lost], &BTreeSet::from([0]), Vec::new());
        assert_eq!(j.outcome, Outcome::LostCommit, "{:?}", j.findings);
        assert_eq!(j.recovered, Some(true), "rebuilddb makes it verify, but cannot bring the commit back");
    }

    #[test]
    fn a_damaged_file_system_fails_the_cut_even_when_the_database_is_whole() {
        let (tmp, pool) = setup(BackendKind::Sqlite, &[0]);
        let fsck = Fsck { exit: 4, log: "UNEXPECTED INCONSISTENCY".into() };
        let j = judge_db(
            BackendKind::Sqlite,
            tmp.path(),
            &pool,
            &[WriterLog::default()],
            &BTreeSet::from([0]),
            Vec::from_iter(fsck.finding()),
        );
        assert_eq!(j.outcome, Outcome::Inconsistent, "{:?}", j.findings);
    }
}
