//! What each engine does when a file operation fails under it (EIO, ENOSPC) or writes short, as data: whether
//! the harness can judge it, the engine's own words for such an error, and what its documentation promises.
//!
//! Why data: an injected error is a fault like a kill, and a worker that fails with the engine's error for
//! it is what should happen, not a finding — but only an error the engine documents for it. A worker that
//! fails with anything else, or a database left inconsistent, stays a finding. An engine whose documented
//! answer is "panic, run recovery" is said so here rather than judged as failing.

use crate::BackendKind;

/// One engine's reaction to an injected I/O error.
#[derive(Debug, Clone, Copy)]
pub struct IoErrorRules {
    /// Whether cycles with injected errors are judged on this backend (a scenario may arm them).
    pub judged: bool,
    /// Substrings of the engine's error message for a failed or short write/fsync (any one matches).
    pub messages: &'static [&'static str],
    /// What the engine promises, in a sentence (the scenario reference and the report quote it).
    pub promise: &'static str,
}

/// sqlite's messages for SQLITE_IOERR (and its extended codes) and SQLITE_FULL.
const SQLITE_MESSAGES: &[&str] = &["disk I/O error", "database or disk is full"];

pub fn rules(kind: BackendKind) -> IoErrorRules {
    match kind {
        BackendKind::Sqlite => IoErrorRules {
            judged: true,
            messages: SQLITE_MESSAGES,
            promise: "sqlite (\"Response To Errors Within A Transaction\", lang_transaction.html): SQLITE_IOERR or \
                      SQLITE_FULL in a write transaction rolls it back — the statement or, when the pager failed \
                      (a WAL write or fsync), the whole transaction; the database stays consistent and the next \
                      connection needs no recovery; the unix VFS writes the rest of a short write again",
        },
        BackendKind::Libdb => IoErrorRules {
            judged: false,
            messages: &[],
            promise: "Berkeley DB 5.3 as rpm configures it (no log, no transactions): a failed write may return \
                      DB_RUNRECOVERY and leave a page half written; with no log there is nothing to recover \
                      from — rpm's answer is --rebuilddb. Not judged: that is the engine's documented limit",
        },
        BackendKind::Rpm => IoErrorRules {
            judged: false,
            messages: &[],
            promise: "the real rpm: its sqlite rolls back as sqlite does, but rpm goes on with the transaction's \
                      other packages and files outside the database; not judged yet",
        },
        BackendKind::Bdbenv | BackendKind::BdbenvDb43 => IoErrorRules {
            judged: false,
            messages: &[],
            promise: "bdbenv (our BDB 4.x environment) has no log either: an error mid-write is the same limit as \
                      libdb's; not judged",
        },
    }
}

/// Whether `said` (a worker's error) is one the engine gives for an injected I/O error.
pub fn is_engine_io_error(kind: BackendKind, said: &str) -> bool {
    rules(kind).messages.iter().any(|m| said.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sqlite_is_judged_and_only_its_io_errors_match() {
        assert!(rules(BackendKind::Sqlite).judged);
        for k in [BackendKind::Libdb, BackendKind::Rpm, BackendKind::Bdbenv, BackendKind::BdbenvDb43] {
            assert!(!rules(k).judged && !rules(k).promise.is_empty(), "{k:?}");
        }
        assert!(is_engine_io_error(BackendKind::Sqlite, "transaction 3: commit: sqlite: disk I/O error"));
        assert!(is_engine_io_error(BackendKind::Sqlite, "open: sqlite: database or disk is full"));
        assert!(!is_engine_io_error(BackendKind::Sqlite, "install a-1: UNIQUE constraint failed"));
        assert!(!is_engine_io_error(BackendKind::Libdb, "disk I/O error"));
    }
}
