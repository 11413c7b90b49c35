//! The full verify of a sqlite rpmdb (storage checks + the rpmdb cross-check), streamed.
//!
//! Why: the plain path ([`full`]) reads every index into memory and sorts it — 106 MiB and 2× the wall time
//! of `rpmdb --verifydb` on a Fedora-size database. Here one pass walks Packages and every index table at
//! once, in storage order, and compares each header's regenerated rows with the stored rows of that header
//! number only: memory is one header's rows, nothing is sorted but a header's own rows. sqlite's storage
//! check may run on a second connection in a thread beside it ([`Threads::Allowed`]: only for a process that
//! never forks afterwards, i.e. the `verify` command; the scheduler forks, so its verify stays on one thread).
//!
//! Exactness: the streamed pass only *proves a database clean*. Its merge needs each index table's rows in
//! header-number order, which every writer of this schema produces (rows of a header are inserted after
//! those of every lower, still present, header number). Anything else — a finding of any kind, a row out of
//! order, a value of an unexpected type, a read error — makes it give up, and the plain path judges the
//! database, so the findings (and their order) are exactly the plain path's. A damaged database therefore
//! costs the plain path's time and memory, plus the streamed pass up to where it gave up.

use crate::backend::{BackendError, BackendKind, OpenMode, Reader};
use crate::rpmdb::check::check_digests;
use crate::rpmdb::header::Header;
use crate::rpmdb::index::keys_for;
use crate::rpmdb::tags::{self, INDEXES, KeyClass};
use crate::rpmdb::{Finding, IndexTag, Snapshot};
use crate::sqlite::SqliteBackend;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Rows};
use std::collections::HashSet;
use std::path::Path;

/// May the verify start a thread? Only a process that never forks after it (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    No,
    Allowed,
}

/// What the check returns besides findings: the Packages rows (the installed set is computed from them), or
/// nothing (the `verify` command needs only the findings, and holding every header would cost its memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    Packages,
    Nothing,
}

/// [`BackendKind::check_lean`] (and `verify`) of a sqlite rpmdb. The returned snapshot holds Packages only (its `indexes` are
/// empty) when the streamed pass proved the database clean, and is `None` with [`Keep::Nothing`] then.
pub fn check(
    dir: &Path,
    mode: OpenMode,
    threads: Threads,
    keep: Keep,
) -> Result<(Vec<Finding>, Option<Snapshot>), BackendError> {
    let mut db = match SqliteBackend::open(dir, mode) {
        Ok(db) => db,
        Err(e @ BackendError::Io { .. }) => return Err(e),
        Err(e) => return Ok((vec![Finding::Unopenable { detail: e.to_string() }], None)),
    };
    let (structural, streamed) = if threads == Threads::Allowed {
        std::thread::scope(|s| {
            let t = s.spawn(|| {
                SqliteBackend::open(dir, OpenMode::ReadOnly).map(|mut d| {
                    // 8 MiB of page cache instead of 2: its index checks then re-read fewer pages.
                    let _ = d.connection().execute_batch("PRAGMA cache_size = -8192");
                    d.structural_check()
                })
            });
            let streamed = streamed(&db, keep);
            let structural = match t.join() {
                Ok(Ok(r)) => r,
                // The second connection could not open: judge on this one.
                Ok(Err(_)) => db.structural_check(),
                Err(p) => std::panic::resume_unwind(p),
            };
            (structural, streamed)
        })
    } else {
        let structural = db.structural_check();
        // Nothing to prove once the storage check found something.
        let streamed = match &structural {
            Ok(f) if f.is_empty() => streamed(&db, keep),
            _ => None,
        };
        (structural, streamed)
    };
    let findings = match structural {
        Ok(f) => f,
        Err(e) => vec![Finding::Unopenable { detail: format!("storage check: {e}") }],
    };
    if findings.is_empty()
        && let Some(packages) = streamed
    {
        let snap = (keep == Keep::Packages).then(|| Snapshot { packages, indexes: Vec::new() });
        return Ok((findings, snap));
    }
    Ok(plain(db, findings))
}

/// The plain path: every index read into memory, then [`crate::rpmdb::cross_check`].
pub fn full(dir: &Path, mode: OpenMode) -> Result<(Vec<Finding>, Option<Snapshot>), BackendError> {
    let mut db = match SqliteBackend::open(dir, mode) {
        Ok(db) => db,
        Err(e @ BackendError::Io { .. }) => return Err(e),
        Err(e) => return Ok((vec![Finding::Unopenable { detail: e.to_string() }], None)),
    };
    let findings = match db.structural_check() {
        Ok(f) => f,
        Err(e) => vec![Finding::Unopenable { detail: format!("storage check: {e}") }],
    };
    Ok(plain(db, findings))
}

fn plain(mut db: SqliteBackend, mut findings: Vec<Finding>) -> (Vec<Finding>, Option<Snapshot>) {
    let snap = match db.snapshot(&mut findings) {
        Ok(snap) => snap,
        Err(e) => {
            findings.push(Finding::Unopenable { detail: format!("read: {e}") });
            return (findings, None);
        }
    };
    findings.extend(crate::rpmdb::cross_check(&snap));
    (findings, Some(snap))
}

/// The streamed pass in one read transaction: `Some(Packages rows, if kept)` when the database is clean by
/// the cross-check, `None` when the plain path must judge it.
fn streamed(db: &SqliteBackend, keep: Keep) -> Option<Packages> {
    let conn = db.connection();
    conn.execute_batch("BEGIN").ok()?;
    let r = walk(conn, keep).ok().flatten();
    let _ = conn.execute_batch("COMMIT");
    r
}

/// Packages rows: (header number, blob).
type Packages = Vec<(u32, Vec<u8>)>;

/// One index table's rows in storage order, with the one row read ahead.
struct Cursor<'s> {
    idx: IndexTag,
    rows: Rows<'s>,
    /// (header number, tag index) of the row read ahead; its key is in `key`.
    ahead: Option<(u32, u32)>,
    key: Vec<u8>,
    done: bool,
    /// The last header number seen, to prove storage order is header-number order.
    last: u32,
    /// This header's rows: key bytes, and (start, end, tag index) into them.
    bytes: Vec<u8>,
    batch: Vec<(usize, usize, u32)>,
}

/// Why the streamed pass gave up (the plain path then judges). Never shown: the plain path says why.
struct GiveUp;

impl From<rusqlite::Error> for GiveUp {
    fn from(_: rusqlite::Error) -> GiveUp {
        GiveUp
    }
}

impl Cursor<'_> {
    /// Read the next row ahead; a key of the wrong type, or a row out of header-number order, gives up.
    fn advance(&mut self) -> Result<(), GiveUp> {
        let Some(r) = self.rows.next()? else {
            self.done = true;
            self.ahead = None;
            return Ok(());
        };
        let want_text = self.idx.key_class() == KeyClass::String;
        match r.get_ref(0)? {
            ValueRef::Text(b) if want_text => {
                self.key.clear();
                self.key.extend_from_slice(b);
            }
            ValueRef::Blob(b) if !want_text => {
                self.key.clear();
                self.key.extend_from_slice(b);
            }
            _ => return Err(GiveUp),
        }
        let hnum = r.get::<_, i64>(1)? as u32;
        let tagnum = r.get::<_, i64>(2)? as u32;
        if hnum < self.last {
            return Err(GiveUp);
        }
        self.last = hnum;
        self.ahead = Some((hnum, tagnum));
        Ok(())
    }

    /// Collect the rows of header number `hnum` into `batch`; a row of a lower number (no header) gives up.
    fn take(&mut self, hnum: u32) -> Result<(), GiveUp> {
        self.bytes.clear();
        self.batch.clear();
        loop {
            if self.ahead.is_none() && !self.done {
                self.advance()?;
            }
            match self.ahead {
                Some((h, _)) if h < hnum => return Err(GiveUp),
                Some((h, t)) if h == hnum => {
                    let start = self.bytes.len();
                    self.bytes.extend_from_slice(&self.key);
                    self.batch.push((start, self.bytes.len(), t));
                    self.ahead = None;
                }
                _ => return Ok(()),
            }
        }
    }
}

fn walk(conn: &Connection, keep: Keep) -> Result<Option<Packages>, GiveUp> {
    let mut stmts = Vec::with_capacity(INDEXES.len());
    for idx in INDEXES {
        stmts.push((idx, conn.prepare(&format!("SELECT key, hnum, idx FROM '{}'", idx.name()))?));
    }
    let mut cursors = Vec::with_capacity(stmts.len());
    for (idx, stmt) in stmts.iter_mut() {
        cursors.push(Cursor {
            idx: *idx,
            rows: stmt.query([])?,
            ahead: None,
            key: Vec::new(),
            done: false,
            last: 0,
            bytes: Vec::new(),
            batch: Vec::new(),
        });
    }
    let mut kept = Vec::new();
    let mut sha1s: HashSet<Vec<u8>> = HashSet::new();
    let mut digests = Vec::new();
    let mut pkgs = conn.prepare("SELECT hnum, blob FROM 'Packages'")?;
    let mut rows = pkgs.query([])?;
    let mut last: Option<u32> = None;
    while let Some(r) = rows.next()? {
        let hnum = r.get::<_, i64>(0)? as u32;
        if last.is_some_and(|l| hnum <= l) {
            return Err(GiveUp);
        }
        last = Some(hnum);
        let ValueRef::Blob(blob) = r.get_ref(1)? else { return Err(GiveUp) };
        let h = Header::parse(blob).map_err(|_| GiveUp)?;
        check_digests(hnum, &h, &mut digests);
        if !digests.is_empty() {
            return Err(GiveUp);
        }
        if let Some(s) = h.string(tags::SHA1HEADER)
            && !sha1s.insert(s.to_vec())
        {
            return Err(GiveUp);
        }
        for c in cursors.iter_mut() {
            c.take(hnum)?;
            if !same_rows(c, keys_for(&h, c.idx)) {
                return Err(GiveUp);
            }
        }
        if keep == Keep::Packages {
            kept.push((hnum, blob.to_vec()));
        }
    }
    // Rows past the last header have no header.
    for c in cursors.iter_mut() {
        if c.ahead.is_none() && !c.done {
            c.advance()?;
        }
        if !c.done {
            return Err(GiveUp);
        }
    }
    Ok(Some(kept))
}

/// The stored rows of one header (in `c.batch`) are exactly the regenerated ones, as multisets of
/// (key, tag index) — what the plain cross-check accepts without a finding.
fn same_rows(c: &mut Cursor<'_>, expected: Vec<(std::borrow::Cow<'_, [u8]>, u32)>) -> bool {
    if expected.len() != c.batch.len() {
        return false;
    }
    let bytes = &c.bytes;
    // Rows are stored in the order they were written, which is regeneration's: then no sort is needed.
    if expected.iter().zip(&c.batch).all(|((k, t), (s, e, g))| k.as_ref() == &bytes[*s..*e] && t == g) {
        return true;
    }
    let mut exp: Vec<(&[u8], u32)> = expected.iter().map(|(k, t)| (k.as_ref(), *t)).collect();
    exp.sort_unstable();
    c.batch.sort_unstable_by(|a, b| (&bytes[a.0..a.1], a.2).cmp(&(&bytes[b.0..b.1], b.2)));
    exp.iter().zip(&c.batch).all(|((k, t), (s, e, g))| *k == &bytes[*s..*e] && t == g)
}

/// Whether the streamed pass alone proves the database in `dir` clean (no plain path needed): for tests
/// that the fast path is taken at all.
pub fn streamed_proves_clean(dir: &Path) -> bool {
    SqliteBackend::open(dir, OpenMode::ReadOnly).ok().and_then(|db| streamed(&db, Keep::Nothing)).is_some()
}

/// For [`BackendKind`]'s dispatch: is this the engine this module verifies?
pub fn applies(kind: BackendKind) -> bool {
    kind == BackendKind::Sqlite
}
