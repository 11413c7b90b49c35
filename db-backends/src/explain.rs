//! Which findings each recorded fault can cause, per backend, as data — and what an engine's own messages
//! must mean.
//!
//! Why: a scenario's expect list says which *outcomes* it allows, but an allowed outcome can hide a finding
//! no fault of the cycle could have caused (a bucket page that was never written, after nothing but a kill;
//! a failchk that says "Freeing" and frees nothing, under a `hang`). The harness checks each finding of a
//! cycle against the faults it recorded; a finding no recorded fault explains is a bug of the system under
//! test, whatever the outcome. A backend without a table here is not checked (every finding counts as
//! explained); every shipped backend has one.
//!
//! The tables were drawn from what each fault does to each engine, and checked against unplanted runs of the
//! shipped scenarios (no finding of those runs is unexplained).

use crate::backend::BackendKind;
use crate::rpmdb::Finding;
use std::collections::BTreeMap;
use std::path::Path;

/// A fault the harness recorded in a cycle (serialized kebab-case: a bundle records those carried into its
/// cycle, so that a replay judges with them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// A process of the cycle was killed (at a random time, at a crash point, by the OOM killer), or
    /// ended in the middle of its work on an error it reported.
    Kill,
    /// A stale page was written into a shared region (the lost-write hypothesis).
    StalePage,
    /// The scenario's memory pressure (a balloon in the workers' cgroup): allocations and mappings fail.
    Memory,
}

impl Cause {
    pub fn name(self) -> &'static str {
        match self {
            Cause::Kill => "kill",
            Cause::StalePage => "stale page",
            Cause::Memory => "memory pressure",
        }
    }
}

/// The pseudo-kind of a cycle that overran its timeout: it needs a dead lock holder (a kill) or a region
/// fault; a live deadlock is a bug.
pub const HANG: &str = "hang";

/// What a kill can leave in a non-transactional BDB-style environment: indexes out of step with Packages
/// (a kill between the Packages put and the index puts), the killed process's lockers, locks and thread
/// slots, and the lock-region damage of a list operation cut in half; the next process's errors and a
/// probe blocked by a dead lock holder. Never: a data page that is not what its link says (every page is
/// written before the page that links it), an unreadable header, a lost commit.
const BDB_KILL: &[&str] = &[
    HANG,
    "missing-index-entry",
    "stale-index-entry",
    "dangling-header-number",
    "duplicate-entry",
    "wrong-tag-index",
    "stale-lock",
    "run-recovery",
    "lock-region",
    "env-region",
    "environment-error",
    "probe-failed",
    // rpm's own rebuild of the indexes disagrees with the ones a kill left short.
    "rpm-disagrees",
];

/// A stale page of a shared region is arbitrary damage to what the processes share: anything but a lost
/// commit (the data files are not regions) may follow.
const BDB_STALE: &[&str] = &[
    HANG,
    "missing-index-entry",
    "stale-index-entry",
    "dangling-header-number",
    "duplicate-entry",
    "wrong-tag-index",
    "stale-lock",
    "run-recovery",
    "lock-region",
    "env-region",
    "environment-error",
    "probe-failed",
    "data-file-damaged",
    "unreadable-header",
    "engine-message",
    "unopenable",
];

/// Memory pressure ends processes in the middle of their work (the OOM killer; a failed allocation or
/// mapping makes a worker exit without closing): what a kill leaves, plus the errors themselves.
const BDB_MEMORY: &[&str] = &[
    HANG,
    "missing-index-entry",
    "stale-index-entry",
    "dangling-header-number",
    "duplicate-entry",
    "wrong-tag-index",
    "stale-lock",
    "run-recovery",
    "lock-region",
    "env-region",
    "environment-error",
    "probe-failed",
    "worker-error",
    "unopenable",
];

/// Real Berkeley DB 5.3 as rpm 4.16 ran it (Concurrent Data Store, no transactions, no logging): a kill
/// leaves what it leaves in our BDB-style environment, and more. Without a log nothing orders the buffer
/// cache's writes to the data files, so a process killed while the cache holds half of a page split can
/// leave a data file that `db_verify` or a read rejects (seen: "overflow refcount 1, referenced 0 times" —
/// an overflow chain written, the item that was to link it never put; 1 cycle of 100 of libdb-kill). A
/// Packages item whose overflow chain was cut that way reads as an unreadable header ("overflow item
/// incomplete"; libdb-kill cycle 74 of 300 unplanted).
const LIBDB_KILL: &[&str] = &[
    HANG,
    "missing-index-entry",
    "stale-index-entry",
    "dangling-header-number",
    "duplicate-entry",
    "wrong-tag-index",
    "stale-lock",
    "run-recovery",
    "env-region",
    "environment-error",
    "probe-failed",
    "data-file-damaged",
    "unreadable-header",
    // rpm's own rebuild of the indexes disagrees with the ones a kill left short (the same damage, seen by
    // the second opinion).
    "rpm-disagrees",
];

/// sqlite (ours and the one inside the real rpm) commits atomically through its journal, and a dead
/// process's fcntl locks die with it: a kill explains no finding at all, nor a hang.
const SQLITE_KILL: &[&str] = &[];

/// A stale page of sqlite's shared memory (`-shm`, the WAL index) misleads every process about which WAL
/// frames are valid: any damage may follow, and a reader may see it.
const SQLITE_STALE: &[&str] = &[
    HANG,
    "integrity-check",
    "foreign-key-violation",
    "schema-mismatch",
    "missing-index-entry",
    "stale-index-entry",
    "dangling-header-number",
    "duplicate-entry",
    "duplicate-package",
    "wrong-tag-index",
    "unreadable-header",
    "digest-mismatch",
    "unexpected-package",
    "unopenable",
    "probe-failed",
    "worker-error",
    "reader-saw-inconsistency",
];

/// Memory pressure makes sqlite's allocations fail (SQLITE_NOMEM): the worker reports the error, and the
/// transaction it was in rolls back.
const SQLITE_MEMORY: &[&str] = &["worker-error"];

/// The finding kinds each cause can explain on `kind`; None: this backend declares no table.
pub fn table(kind: BackendKind) -> Option<&'static [(Cause, &'static [&'static str])]> {
    match kind {
        BackendKind::Bdbenv | BackendKind::BdbenvDb43 => {
            Some(&[(Cause::Kill, BDB_KILL), (Cause::StalePage, BDB_STALE), (Cause::Memory, BDB_MEMORY)])
        }
        BackendKind::Libdb => {
            Some(&[(Cause::Kill, LIBDB_KILL), (Cause::StalePage, BDB_STALE), (Cause::Memory, BDB_MEMORY)])
        }
        BackendKind::Sqlite | BackendKind::Rpm => {
            Some(&[(Cause::Kill, SQLITE_KILL), (Cause::StalePage, SQLITE_STALE), (Cause::Memory, SQLITE_MEMORY)])
        }
    }
}

/// Whether one of `causes` explains a finding of `finding_kind` on `kind`.
pub fn explained(kind: BackendKind, causes: &[Cause], finding_kind: &str) -> bool {
    match table(kind) {
        None => true,
        Some(t) => t.iter().any(|(c, kinds)| causes.contains(c) && kinds.contains(&finding_kind)),
    }
}

/// Judge an engine's messages of one cycle (every process's, in order), in `dir` as the cycle left it (before
/// anything else opens it). failchk frees a dead locker's read locks and the locker itself, so a locker it
/// says it freed is never "freed" again and is no longer in the lock table.
pub fn judge_messages<'a>(kind: BackendKind, dir: &Path, messages: impl IntoIterator<Item = &'a str>) -> Vec<Finding> {
    if kind.profile().is_none() {
        return Vec::new();
    }
    let mut freed: BTreeMap<&str, u32> = BTreeMap::new();
    for m in messages {
        if let Some(locker) = m.split("Freeing read locks for locker ").nth(1) {
            *freed.entry(locker.trim()).or_default() += 1;
        }
    }
    let message = |locker: &str| format!("rpmdb: Freeing read locks for locker {locker}");
    let mut out: Vec<Finding> = freed
        .iter()
        .filter(|&(_, n)| *n > 1)
        .map(|(locker, n)| Finding::EngineMessage {
            message: message(locker),
            detail: format!("printed {n} times in one cycle: failchk freed nothing the first time"),
        })
        .collect();
    if freed.is_empty() {
        return out;
    }
    let in_table = lockers_in(dir);
    for locker in freed.keys() {
        let id = u32::from_str_radix(locker.trim_start_matches("0x"), 16).ok();
        if id.is_some_and(|id| in_table.contains(&id)) {
            out.push(Finding::EngineMessage {
                message: message(locker),
                detail: "but the locker is still in the lock table: failchk freed nothing".into(),
            });
        }
    }
    out
}

/// The ids of the lockers in use in a copy of `dir`'s lock region (none if it is missing or damaged: that
/// is the environment check's finding).
fn lockers_in(dir: &Path) -> Vec<u32> {
    let Ok(mut r) = std::fs::read(dir.join(crate::bdbenv::LOCK_FILE)) else { return Vec::new() };
    let Ok(t) = crate::bdbenv::lock::LockTable::new(&mut r) else { return Vec::new() };
    t.lockers().map(|ls| ls.into_iter().map(|l| l.1).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locker_freed_twice_is_a_finding_once_is_not() {
        let k = BackendKind::Bdbenv;
        let dir = tempfile::tempdir().unwrap();
        let once = ["rpmdb: Freeing read locks for locker 0x5", "rpmdb: Freeing read locks for locker 0x6"];
        assert!(judge_messages(k, dir.path(), once).is_empty());
        let twice = ["rpmdb: Freeing read locks for locker 0x5", "x", "rpmdb: Freeing read locks for locker 0x5"];
        let f = judge_messages(k, dir.path(), twice);
        assert!(matches!(f.as_slice(), [Finding::EngineMessage { .. }]), "{f:?}");
        assert!(judge_messages(BackendKind::Sqlite, dir.path(), twice).is_empty(), "not bdbenv's message there");
    }

    #[test]
    fn a_kill_never_explains_an_unwritten_page_and_no_fault_explains_anything() {
        let k = BackendKind::Bdbenv;
        assert!(explained(k, &[Cause::Kill], "missing-index-entry"));
        assert!(explained(k, &[Cause::Kill], HANG));
        assert!(!explained(k, &[Cause::Kill], "data-file-damaged"));
        assert!(explained(k, &[Cause::Kill, Cause::StalePage], "data-file-damaged"));
        assert!(!explained(k, &[], "stale-lock"));
        assert!(!explained(k, &[], HANG));
    }

    #[test]
    fn every_shipped_backend_has_a_table_and_a_finding_outside_it_is_unexplained() {
        for &k in BackendKind::ALL {
            assert!(table(k).is_some(), "{} has no table", k.name());
            assert!(!explained(k, &[Cause::Kill, Cause::StalePage, Cause::Memory], "lost-commit"), "{}", k.name());
        }
        // rpm's second opinion on the indexes: a kill explains it only where a kill can leave an index short.
        assert!(!explained(BackendKind::Sqlite, &[Cause::Kill, Cause::StalePage, Cause::Memory], "rpm-disagrees"));
        assert!(!explained(BackendKind::Rpm, &[Cause::Kill, Cause::Memory], "rpm-disagrees"));
        assert!(explained(BackendKind::Libdb, &[Cause::Kill], "rpm-disagrees"));
        assert!(!explained(BackendKind::Libdb, &[], "rpm-disagrees"), "with no fault it is a finding");
        for k in [BackendKind::Sqlite, BackendKind::Rpm] {
            assert!(!explained(k, &[Cause::Kill], "missing-index-entry"), "sqlite commits atomically");
            assert!(!explained(k, &[Cause::Kill], HANG), "a dead process's fcntl locks die with it");
            assert!(explained(k, &[Cause::Memory], "worker-error"));
            assert!(explained(k, &[Cause::StalePage], "integrity-check"));
        }
        let l = BackendKind::Libdb;
        assert!(explained(l, &[Cause::Kill], "missing-index-entry"), "no transactions across rpm's databases");
        assert!(explained(l, &[Cause::Kill], HANG));
        assert!(explained(l, &[Cause::Kill], "unreadable-header"), "an overflow chain cut by a kill (no log)");
        assert!(!explained(l, &[Cause::Kill], "integrity-check"), "sqlite's check, not BDB's");
        assert!(!explained(l, &[], "stale-lock"));
    }

    #[test]
    fn causes_serialize_as_a_bundle_records_them() {
        let s = serde_json::to_string(&[Cause::Kill, Cause::StalePage, Cause::Memory]).unwrap();
        assert_eq!(s, r#"["kill","stale-page","memory"]"#);
        assert_eq!(serde_json::from_str::<Vec<Cause>>(&s).unwrap(), [Cause::Kill, Cause::StalePage, Cause::Memory]);
    }
}
