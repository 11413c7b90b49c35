//! A cycle's findings: what the database's own checks found (`dbtorture_backends::rpmdb::Finding`) and what
//! only the harness can find — a commit it saw acknowledged is missing, a worker died or failed, a reader saw
//! a torn state, the harness itself lost its grip.
//!
//! Why here and not in `db-backends`: those findings are about workers, kills, acknowledgements and the
//! harness's own plumbing; the backends know none of them. Both kinds serialize the same way (an object
//! tagged by `kind`, kebab-case), so reports carry one list and cannot tell where a finding was made.

use dbtorture_backends::rpmdb::{self, FindingClass as DbClass};
use serde::Serialize;
use std::fmt;

/// How a finding bears on a cycle's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Storage engine damage (sqlite integrity, unreadable file).
    Corrupt,
    /// Indexes disagree with Packages, or a transaction was applied in part.
    Inconsistent,
    /// An acknowledged commit is missing.
    LostCommit,
    /// Shared-environment damage (lock region).
    Environment,
    /// The database could not be opened, read or written.
    Inoperable,
    /// Locks, lockers or thread slots of dead processes remain (or the environment demands recovery).
    StaleLocks,
    /// The system under test died on its own: a signal nobody sent, a panic, an exit with an error it never
    /// reported.
    Crash,
    /// The harness itself failed (lost a child, a pipe broke, a check could not run): not a verdict on the
    /// database.
    Harness,
}

impl From<DbClass> for Class {
    fn from(c: DbClass) -> Class {
        match c {
            DbClass::Corrupt => Class::Corrupt,
            DbClass::Inconsistent => Class::Inconsistent,
            DbClass::Environment => Class::Environment,
            DbClass::Inoperable => Class::Inoperable,
            DbClass::StaleLocks => Class::StaleLocks,
        }
    }
}

/// What only the harness can find.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum HarnessFinding {
    LostCommit {
        worker: u32,
        txn: u64,
        package: String,
        op: String,
    },
    PartialTransaction {
        worker: u32,
        txn: u64,
        detail: String,
    },
    /// An acknowledged change the shared buffer cache held but the data files alone do not: it is gone once
    /// the cache is (`rm __db.*`, a reboot). Reported apart from a commit lost outright.
    CacheOnlyCommit {
        package: String,
        detail: String,
    },
    /// A finding none of the cycle's recorded faults can cause (per the backend's table in `explain`).
    Unexplained {
        finding: String,
        faults: String,
    },
    /// A cycle whose faults had the shape of an `[[expect_when]]` rule ended in an outcome the rule does not
    /// allow (`rule` names it, `allowed` lists its outcomes).
    ExpectationUnmet {
        rule: String,
        outcome: String,
        allowed: String,
    },
    WorkerError {
        worker: u32,
        role: String,
        detail: String,
    },
    ReaderSawInconsistency {
        worker: u32,
        detail: String,
    },
    WorkerCrashed {
        worker: u32,
        role: String,
        detail: String,
    },
    /// A worker's code panicked (in the engine or in the code driving it).
    WorkerPanicked {
        worker: u32,
        role: String,
        message: String,
    },
    /// A worker exited non-zero without reporting an error first.
    WorkerExited {
        worker: u32,
        role: String,
        code: i32,
    },
    /// After a real power cut (`qemu --power-cut`), e2fsck could not make the guest's file system whole
    /// (exit status 4 or more): the kernel or the card lost more than the database's own writes.
    FilesystemDamaged {
        fsck_exit: i32,
        detail: String,
    },
    /// The recovery a damaged cycle needed failed: the procedure returned an error, or the database it left
    /// still does not verify clean. Recovery must always bring the database back, so no fault explains it.
    RecoveryFailed {
        procedure: String,
        detail: String,
    },
    /// The harness could not do its part (lost a child, a report pipe broke): says nothing of the database.
    HarnessFault {
        detail: String,
    },
}

impl HarnessFinding {
    /// The user-facing name of the kind, e.g. "lost commit".
    pub fn name(&self) -> &'static str {
        match self {
            HarnessFinding::LostCommit { .. } => "lost commit",
            HarnessFinding::PartialTransaction { .. } => "partial transaction",
            HarnessFinding::CacheOnlyCommit { .. } => "commit held only in the cache",
            HarnessFinding::Unexplained { .. } => "unexplained finding",
            HarnessFinding::ExpectationUnmet { .. } => "expectation unmet",
            HarnessFinding::WorkerError { .. } => "worker error",
            HarnessFinding::ReaderSawInconsistency { .. } => "reader saw inconsistency",
            HarnessFinding::WorkerCrashed { .. } => "worker crashed",
            HarnessFinding::WorkerPanicked { .. } => "worker panicked",
            HarnessFinding::WorkerExited { .. } => "worker exited unreported",
            HarnessFinding::FilesystemDamaged { .. } => "file system damaged",
            HarnessFinding::RecoveryFailed { .. } => "recovery failed",
            HarnessFinding::HarnessFault { .. } => "harness fault",
        }
    }

    pub fn class(&self) -> Class {
        match self {
            HarnessFinding::LostCommit { .. } | HarnessFinding::CacheOnlyCommit { .. } => Class::LostCommit,
            // Added after the outcome is decided: it changes whether the cycle was expected, not its outcome.
            HarnessFinding::Unexplained { .. } | HarnessFinding::ExpectationUnmet { .. } => Class::Inconsistent,
            HarnessFinding::PartialTransaction { .. } | HarnessFinding::ReaderSawInconsistency { .. } => {
                Class::Inconsistent
            }
            HarnessFinding::WorkerError { .. } => Class::Inoperable,
            HarnessFinding::WorkerCrashed { .. }
            | HarnessFinding::WorkerPanicked { .. }
            | HarnessFinding::WorkerExited { .. } => Class::Crash,
            HarnessFinding::FilesystemDamaged { .. } => Class::Corrupt,
            HarnessFinding::RecoveryFailed { .. } => Class::Inoperable,
            HarnessFinding::HarnessFault { .. } => Class::Harness,
        }
    }
}

impl fmt::Display for HarnessFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.name())?;
        match self {
            HarnessFinding::LostCommit { worker, txn, package, op } => {
                write!(f, "worker {worker} transaction {txn} was acknowledged but its {op} of {package} is missing")
            }
            HarnessFinding::PartialTransaction { worker, txn, detail } => {
                write!(f, "worker {worker} transaction {txn} is applied in part: {detail}")
            }
            HarnessFinding::CacheOnlyCommit { package, detail } => {
                write!(f, "{package}: {detail}; the data files alone (what survives rm __db.*) lack it")
            }
            HarnessFinding::Unexplained { finding, faults } => {
                write!(f, "no fault of this cycle ({faults}) can cause it: {finding}")
            }
            HarnessFinding::ExpectationUnmet { rule, outcome, allowed } => {
                write!(f, "{rule} allows {allowed}; the cycle was {outcome}")
            }
            HarnessFinding::WorkerError { worker, role, detail } => write!(f, "{role} {worker}: {detail}"),
            HarnessFinding::ReaderSawInconsistency { worker, detail } => write!(f, "reader {worker}: {detail}"),
            HarnessFinding::WorkerCrashed { worker, role, detail } => write!(f, "{role} {worker}: {detail}"),
            HarnessFinding::WorkerPanicked { worker, role, message } => {
                write!(f, "{role} {worker} panicked: {message}")
            }
            HarnessFinding::WorkerExited { worker, role, code } => {
                write!(f, "{role} {worker} exited with status {code} without reporting an error")
            }
            HarnessFinding::FilesystemDamaged { fsck_exit, detail } => {
                write!(f, "e2fsck -fy exited {fsck_exit} after the power cut: {detail}")
            }
            HarnessFinding::RecoveryFailed { procedure, detail } => write!(f, "{procedure}: {detail}"),
            HarnessFinding::HarnessFault { detail } => f.write_str(detail),
        }
    }
}

/// One finding of a cycle, made by the database's checks or by the harness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Finding {
    Db(rpmdb::Finding),
    Harness(HarnessFinding),
}

impl Finding {
    /// The user-facing name of the kind, e.g. "missing index entry".
    pub fn name(&self) -> &'static str {
        match self {
            Finding::Db(f) => f.name(),
            Finding::Harness(f) => f.name(),
        }
    }

    pub fn class(&self) -> Class {
        match self {
            Finding::Db(f) => f.class().into(),
            Finding::Harness(f) => f.class(),
        }
    }

    /// The package concerned, if one is known.
    pub fn package(&self) -> Option<&str> {
        match self {
            Finding::Db(f) => f.package(),
            Finding::Harness(
                HarnessFinding::LostCommit { package, .. } | HarnessFinding::CacheOnlyCommit { package, .. },
            ) => Some(package),
            Finding::Harness(_) => None,
        }
    }

    /// A harness finding of this kind?
    pub fn harness(&self) -> Option<&HarnessFinding> {
        match self {
            Finding::Harness(h) => Some(h),
            Finding::Db(_) => None,
        }
    }
}

impl From<rpmdb::Finding> for Finding {
    fn from(f: rpmdb::Finding) -> Finding {
        Finding::Db(f)
    }
}

impl From<HarnessFinding> for Finding {
    fn from(f: HarnessFinding) -> Finding {
        Finding::Harness(f)
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Db(x) => x.fmt(f),
            Finding::Harness(x) => x.fmt(f),
        }
    }
}

/// The database's findings as a cycle's.
pub fn from_db(fs: Vec<rpmdb::Finding>) -> Vec<Finding> {
    fs.into_iter().map(Finding::Db).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reports cannot tell where a finding was made: both serialize as an object tagged by its kind.
    #[test]
    fn both_kinds_serialize_tagged_by_kind_as_before() {
        let lost: Finding =
            HarnessFinding::LostCommit { worker: 1, txn: 2, package: "a-1".into(), op: "install".into() }.into();
        let v = serde_json::to_value(&lost).unwrap();
        assert_eq!(v["kind"], "lost-commit");
        assert_eq!(v["txn"], 2);
        assert_eq!(lost.package(), Some("a-1"));
        assert_eq!(lost.class(), Class::LostCommit);
        let crashed: Finding =
            HarnessFinding::WorkerPanicked { worker: 0, role: "writer".into(), message: "x".into() }.into();
        assert_eq!(serde_json::to_value(&crashed).unwrap()["kind"], "worker-panicked");
        assert_eq!(crashed.class(), Class::Crash);
        let db: Finding = rpmdb::Finding::ProbeFailed { detail: "no".into() }.into();
        assert_eq!(serde_json::to_value(&db).unwrap()["kind"], "probe-failed");
        assert_eq!(db.to_string(), "operability probe failed: no");
        assert_eq!(db.class(), Class::Inoperable);
        let failed: Finding =
            HarnessFinding::RecoveryFailed { procedure: "rebuilddb".into(), detail: "ENOSPC".into() }.into();
        assert_eq!(serde_json::to_value(&failed).unwrap()["kind"], "recovery-failed");
        assert_eq!(failed.to_string(), "recovery failed: rebuilddb: ENOSPC");
        assert_eq!(failed.class(), Class::Inoperable, "a database recovery could not bring back");
    }
}
