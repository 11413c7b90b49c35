//! The sqlite backend: rpm 4.16+'s `rpmdb.sqlite`, same schema and same behaviour.
//!
//! Why exact: users convert between this and real rpm databases, and our compatibility tests read what we
//! write with Debian's rpm 4.18 and verify what it writes. Schema (lib/backend/sqlite.c): `Packages(hnum
//! INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)`; one table per index `(key 'TEXT'|'BLOB' NOT NULL,
//! hnum INTEGER NOT NULL, idx INTEGER NOT NULL, FOREIGN KEY (hnum) REFERENCES 'Packages'(hnum))`, a key index
//! on string-class tags and an hnum index on array tags. Behaviour: WAL, `synchronous=FULL`, 10 s busy
//! timeout, `SAVEPOINT 'rwlock'` per package and one savepoint per table written (rpm's write cursors),
//! `DELETE ... WHERE hnum=?` on removal, `PRAGMA optimize` + `wal_checkpoint(TRUNCATE)` on close, and rpm's
//! transaction lock: an fcntl write lock on `.rpm.lock` held for the whole transaction.
//!
//! Where we differ on purpose: rpm commits each package on its own (the outermost savepoint); our
//! transactions wrap their packages in `BEGIN IMMEDIATE ... COMMIT`, so an upgrade (add new + remove old) is
//! atomic and the oracle can check all-or-nothing.

use crate::backend::{Backend, BackendError, BackendKind, OpenMode, Reader};
use crate::crash::point;
use crate::rpmdb::tags::{INDEXES, KeyClass};
use crate::rpmdb::{Entry, Finding, IndexTag, Snapshot, Store};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, params};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DB_FILE: &str = "rpmdb.sqlite";
pub const LOCK_FILE: &str = ".rpm.lock";
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct SqliteBackend {
    conn: Option<Connection>,
    dir: PathBuf,
    writable: bool,
    txn_lock: Option<File>,
    /// Planted bug `sqlite-savepoint-released-early`: the install under way has not yet released its
    /// package savepoint early.
    release_early: bool,
}

/// rpm's DDL for one index table, exactly as rpm writes it into sqlite_master.
pub fn index_table_sql(idx: IndexTag) -> String {
    let keytype = match idx.key_class() {
        KeyClass::String => "TEXT",
        KeyClass::Int32 | KeyClass::Bin => "BLOB",
    };
    format!(
        "CREATE TABLE IF NOT EXISTS '{}' (key '{keytype}' NOT NULL, hnum INTEGER NOT NULL, idx INTEGER NOT NULL, \
         FOREIGN KEY (hnum) REFERENCES 'Packages'(hnum))",
        idx.name()
    )
}

pub const PACKAGES_SQL: &str =
    "CREATE TABLE IF NOT EXISTS 'Packages' (hnum INTEGER PRIMARY KEY AUTOINCREMENT,blob BLOB NOT NULL)";

/// rpm's secondary indexes of one table: `<table>_key_idx` for string-class keys, `<table>_hnum_idx` for arrays.
pub fn index_index_sql(idx: IndexTag) -> Vec<String> {
    let mut v = Vec::new();
    let t = idx.name();
    if idx.key_class() == KeyClass::String {
        v.push(format!("CREATE INDEX IF NOT EXISTS '{t}_key_idx' ON '{t}'(key ASC)"));
    }
    if idx.is_array() {
        v.push(format!("CREATE INDEX IF NOT EXISTS '{t}_hnum_idx' ON '{t}'(hnum ASC)"));
    }
    v
}

fn key_value(idx: IndexTag, key: &[u8]) -> ToSqlOutput<'_> {
    match idx.key_class() {
        KeyClass::String => ToSqlOutput::Borrowed(ValueRef::Text(key)),
        KeyClass::Int32 | KeyClass::Bin => ToSqlOutput::Borrowed(ValueRef::Blob(key)),
    }
}

impl SqliteBackend {
    pub fn open(dir: &Path, mode: OpenMode) -> Result<SqliteBackend, BackendError> {
        let io = |source| BackendError::Io { path: dir.to_path_buf(), source };
        let path = dir.join(DB_FILE);
        let flags = match mode {
            OpenMode::Create => {
                std::fs::create_dir_all(dir).map_err(io)?;
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
            }
            OpenMode::ReadWrite => OpenFlags::SQLITE_OPEN_READ_WRITE,
            OpenMode::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
        } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if mode != OpenMode::Create && !path.exists() {
            return Err(BackendError::Io {
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no rpmdb.sqlite in this directory"),
            });
        }
        let conn = Connection::open_with_flags(&path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // rpm declares the foreign key but never enables enforcement (sqlite's default); rusqlite's bundled
        // sqlite turns it on by default, so turn it off explicitly to behave like rpm.
        conn.execute_batch("PRAGMA foreign_keys = OFF; PRAGMA secure_delete = OFF")?;
        // Deprecated in new sqlite but still honoured; rpm sets it for its LIKE queries.
        let _ = conn.execute_batch("PRAGMA case_sensitive_like = ON");
        let writable = mode != OpenMode::ReadOnly;
        if writable {
            let _: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            conn.execute_batch("PRAGMA wal_autocheckpoint = 10000; PRAGMA synchronous = FULL")?;
            if crate::planted::active("sqlite-sync-off") {
                // Planted bug: nothing is ever synced; a process kill cannot tell, a power cut can.
                conn.execute_batch("PRAGMA synchronous = OFF")?;
            }
            Self::init_schema(&conn)?;
        }
        point("sqlite.open.after");
        Ok(SqliteBackend { conn: Some(conn), dir: dir.to_path_buf(), writable, txn_lock: None, release_early: false })
    }

    fn init_schema(conn: &Connection) -> Result<(), BackendError> {
        let mut sql = String::from("BEGIN;");
        sql.push_str(PACKAGES_SQL);
        sql.push(';');
        for idx in INDEXES {
            sql.push_str(&index_table_sql(idx));
            sql.push(';');
            for s in index_index_sql(idx) {
                sql.push_str(&s);
                sql.push(';');
            }
        }
        sql.push_str("COMMIT;");
        conn.execute_batch(&sql)?;
        Ok(())
    }

    fn conn(&self) -> &Connection {
        self.conn.as_ref().expect("connection is open until close")
    }

    /// The open connection, for the streamed verify (`sqlite_verify.rs`).
    pub(crate) fn connection(&self) -> &Connection {
        self.conn()
    }

    fn in_txn(&self) -> bool {
        !self.conn().is_autocommit()
    }

    /// rpm's transaction lock: fcntl F_SETLKW write lock on `.rpm.lock` (blocks while another writer holds it).
    fn lock_txn(&mut self) -> Result<(), BackendError> {
        self.txn_lock = Some(crate::lockfile::lock_file(&self.dir.join(LOCK_FILE))?);
        Ok(())
    }

    fn with_savepoint<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut Self) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        self.conn().execute_batch(&format!("SAVEPOINT '{name}'"))?;
        match f(self) {
            Ok(v) => {
                self.conn().execute_batch(&format!("RELEASE '{name}'"))?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn().execute_batch(&format!("ROLLBACK TO '{name}'; RELEASE '{name}'"));
                Err(e)
            }
        }
    }

    fn read_index(&self, idx: IndexTag, findings: &mut Vec<Finding>) -> Result<Vec<Entry>, BackendError> {
        let mut stmt = self.conn().prepare(&format!("SELECT key, hnum, idx FROM '{}'", idx.name()))?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        let want_text = idx.key_class() == KeyClass::String;
        let mut wrong_type = 0u64;
        while let Some(r) = rows.next()? {
            let key = match r.get_ref(0)? {
                ValueRef::Text(b) => {
                    wrong_type += u64::from(!want_text);
                    b.to_vec()
                }
                ValueRef::Blob(b) => {
                    wrong_type += u64::from(want_text);
                    b.to_vec()
                }
                other => {
                    wrong_type += 1;
                    format!("{other:?}").into_bytes()
                }
            };
            let hnum: i64 = r.get(1)?;
            let tagnum: i64 = r.get(2)?;
            out.push(Entry { key, hnum: hnum as u32, tagnum: tagnum as u32 });
        }
        if wrong_type > 0 {
            findings.push(Finding::SchemaMismatch {
                detail: format!(
                    "{idx}: {wrong_type} keys stored with the wrong type (expected {}); rpm cannot find them",
                    if want_text { "TEXT" } else { "BLOB" }
                ),
            });
        }
        Ok(out)
    }
}

impl Store for SqliteBackend {
    type Error = BackendError;

    fn put_package(&mut self, blob: &[u8]) -> Result<u32, BackendError> {
        point("sqlite.packages.put.before");
        let hnum = self.with_savepoint("Packages", |s| {
            s.conn()
                .prepare_cached("INSERT OR REPLACE INTO 'Packages' VALUES(?, ?)")?
                .execute(params![Option::<i64>::None, blob])?;
            Ok(s.conn().last_insert_rowid())
        })?;
        point("sqlite.packages.put.after");
        u32::try_from(hnum).map_err(|_| BackendError::Other(format!("header number {hnum} out of range")))
    }

    fn del_package(&mut self, hnum: u32) -> Result<(), BackendError> {
        point("sqlite.packages.del.before");
        self.with_savepoint("Packages", |s| {
            s.conn().prepare_cached("DELETE FROM 'Packages' WHERE hnum=?")?.execute([hnum])?;
            Ok(())
        })?;
        point("sqlite.packages.del.after");
        Ok(())
    }

    fn get_package(&mut self, hnum: u32) -> Result<Option<Vec<u8>>, BackendError> {
        self.get(hnum)
    }

    fn index_add(&mut self, idx: IndexTag, hnum: u32, entries: &[Entry]) -> Result<(), BackendError> {
        if std::mem::take(&mut self.release_early) {
            // PLANTED BUG (off by default): the package's savepoint is released — as the outermost one, which
            // commits, as it is in rpm's own code where 'rwlock' is the transaction — once the header is in
            // Packages, to let readers see it sooner; a new one is taken for the index rows. An error in the
            // index rows then rolls back only those: the header stays, its indexes partly or never written.
            self.conn().execute_batch("RELEASE 'rwlock'; COMMIT; BEGIN IMMEDIATE; SAVEPOINT 'rwlock'")?;
        }
        point("sqlite.index.put.before");
        self.with_savepoint(idx.name(), |s| {
            let mut stmt = s.conn().prepare_cached(&format!("INSERT INTO '{}' VALUES(?, ?, ?)", idx.name()))?;
            // PLANTED BUG (off by default): drop the last row of larger index updates.
            let entries = if crate::planted::active("sqlite-skip-index-row") && entries.len() > 3 {
                &entries[..entries.len() - 1]
            } else {
                entries
            };
            for e in entries {
                stmt.execute(params![key_value(idx, &e.key), hnum, e.tagnum])?;
            }
            Ok(())
        })?;
        point("sqlite.index.put.after");
        Ok(())
    }

    fn index_remove(&mut self, idx: IndexTag, hnum: u32, _entries: &[Entry]) -> Result<(), BackendError> {
        point("sqlite.index.del.before");
        self.with_savepoint(idx.name(), |s| {
            s.conn().prepare_cached(&format!("DELETE FROM '{}' WHERE hnum=?", idx.name()))?.execute([hnum])?;
            Ok(())
        })?;
        point("sqlite.index.del.after");
        Ok(())
    }
}

impl Reader for SqliteBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Sqlite
    }

    fn dir(&self) -> &Path {
        &self.dir
    }

    fn get(&mut self, hnum: u32) -> Result<Option<Vec<u8>>, BackendError> {
        let mut stmt = self.conn().prepare_cached("SELECT blob FROM 'Packages' WHERE hnum=?")?;
        let mut rows = stmt.query([hnum])?;
        Ok(match rows.next()? {
            Some(r) => Some(r.get(0)?),
            None => None,
        })
    }

    fn lookup(&mut self, idx: IndexTag, key: &[u8]) -> Result<Vec<(u32, u32)>, BackendError> {
        let mut stmt = self.conn().prepare_cached(&format!("SELECT hnum, idx FROM '{}' WHERE key=?", idx.name()))?;
        let rows =
            stmt.query_map([key_value(idx, key)], |r| Ok((r.get::<_, i64>(0)? as u32, r.get::<_, i64>(1)? as u32)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn begin_read(&mut self) -> Result<(), BackendError> {
        self.conn().execute_batch("BEGIN")?;
        Ok(())
    }

    fn end_read(&mut self) -> Result<(), BackendError> {
        if self.in_txn() {
            self.conn().execute_batch("COMMIT")?;
        }
        Ok(())
    }

    fn hnums(&mut self) -> Result<Vec<u32>, BackendError> {
        let mut stmt = self.conn().prepare_cached("SELECT hnum FROM 'Packages' ORDER BY hnum")?;
        let rows = stmt.query_map([], |r| Ok(r.get::<_, i64>(0)? as u32))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn snapshot(&mut self, findings: &mut Vec<Finding>) -> Result<Snapshot, BackendError> {
        // One read transaction so Packages and the indexes are one consistent view.
        self.conn().execute_batch("BEGIN")?;
        let res = (|| {
            let mut snap = Snapshot::default();
            let mut stmt = self.conn().prepare("SELECT hnum, blob FROM 'Packages'")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let hnum: i64 = r.get(0)?;
                let blob = match r.get_ref(1)? {
                    ValueRef::Blob(b) | ValueRef::Text(b) => b.to_vec(),
                    _ => Vec::new(),
                };
                snap.packages.push((hnum as u32, blob));
            }
            drop(rows);
            drop(stmt);
            for idx in INDEXES {
                let rows = self.read_index(idx, findings)?;
                snap.indexes.push((idx, rows));
            }
            Ok(snap)
        })();
        let _ = self.conn().execute_batch("COMMIT");
        res
    }

    fn structural_check(&mut self) -> Result<Vec<Finding>, BackendError> {
        let mut out = Vec::new();
        {
            let mut stmt = self.conn().prepare("PRAGMA integrity_check")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            for row in rows {
                let row = row?;
                if row != "ok" {
                    out.push(Finding::IntegrityCheck { detail: row });
                }
            }
        }
        {
            let mut stmt = self.conn().prepare("PRAGMA foreign_key_check")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let table: String = r.get(0)?;
                let rowid: Option<i64> = r.get(1)?;
                let rowid = rowid.unwrap_or(-1);
                let hnum = self
                    .conn()
                    .query_row(&format!("SELECT hnum FROM '{table}' WHERE rowid=?"), [rowid], |r| r.get(0))
                    .unwrap_or(-1);
                out.push(Finding::ForeignKeyViolation { table, rowid, hnum });
            }
        }
        let mut stmt = self.conn().prepare("SELECT name FROM sqlite_master WHERE type='table'")?;
        let tables: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        for t in std::iter::once("Packages").chain(INDEXES.iter().map(|i| i.name())) {
            if !tables.iter().any(|x| x == t) {
                out.push(Finding::SchemaMismatch { detail: format!("table {t} is missing") });
            }
        }
        Ok(out)
    }

    fn close(mut self: Box<Self>) -> Result<(), BackendError> {
        self.close_inner()
    }
}

impl Backend for SqliteBackend {
    fn begin(&mut self) -> Result<(), BackendError> {
        if !self.writable {
            return Err(BackendError::ReadOnly);
        }
        if self.in_txn() {
            return Err(BackendError::TransactionActive);
        }
        point("sqlite.begin.before");
        self.lock_txn()?;
        if let Err(e) = self.conn().execute_batch("BEGIN IMMEDIATE") {
            self.txn_lock = None;
            return Err(e.into());
        }
        point("sqlite.begin.after");
        Ok(())
    }

    fn install(&mut self, blob: &[u8]) -> Result<crate::Installed, BackendError> {
        if !self.in_txn() {
            return Err(BackendError::NoTransaction);
        }
        self.conn().execute_batch("SAVEPOINT 'rwlock'")?;
        point("sqlite.savepoint.after");
        self.release_early = crate::planted::active("sqlite-savepoint-released-early");
        let added = crate::rpmdb::add_header(self, blob);
        self.release_early = false;
        match added {
            Ok(h) => {
                // PLANTED BUG (off by default): a panic mid-transaction, as an index-out-of-bounds would.
                if crate::planted::active("sqlite-panic-mid-transaction") && h.is_multiple_of(7) {
                    panic!("index out of bounds: header number {h} is past the end of the row cache");
                }
                point("sqlite.savepoint.release.before");
                self.conn().execute_batch("RELEASE 'rwlock'")?;
                point("sqlite.savepoint.release.after");
                // PLANTED BUG (off by default): commit every package on its own.
                if crate::planted::active("sqlite-commit-per-package") {
                    self.conn().execute_batch("COMMIT; BEGIN IMMEDIATE")?;
                }
                Ok(crate::Installed::As(h))
            }
            Err(e) => {
                let _ = self.conn().execute_batch("ROLLBACK TO 'rwlock'; RELEASE 'rwlock'");
                Err(e.into())
            }
        }
    }

    fn erase(&mut self, hnum: u32) -> Result<(), BackendError> {
        if !self.in_txn() {
            return Err(BackendError::NoTransaction);
        }
        self.conn().execute_batch("SAVEPOINT 'rwlock'")?;
        point("sqlite.savepoint.after");
        match crate::rpmdb::remove_header(self, hnum) {
            Ok(()) => {
                point("sqlite.savepoint.release.before");
                self.conn().execute_batch("RELEASE 'rwlock'")?;
                point("sqlite.savepoint.release.after");
                Ok(())
            }
            Err(e) => {
                let _ = self.conn().execute_batch("ROLLBACK TO 'rwlock'; RELEASE 'rwlock'");
                Err(e.into())
            }
        }
    }

    fn commit(&mut self) -> Result<(), BackendError> {
        if !self.in_txn() {
            return Err(BackendError::NoTransaction);
        }
        point("sqlite.commit.before");
        self.conn().execute_batch("COMMIT")?;
        point("sqlite.commit.after");
        self.txn_lock = None;
        Ok(())
    }

    fn rollback(&mut self) -> Result<(), BackendError> {
        if self.in_txn() {
            self.conn().execute_batch("ROLLBACK")?;
        }
        self.txn_lock = None;
        Ok(())
    }
}

impl SqliteBackend {
    fn close_inner(&mut self) -> Result<(), BackendError> {
        let Some(conn) = self.conn.take() else {
            return Ok(());
        };
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        self.txn_lock = None;
        if self.writable {
            point("sqlite.close.checkpoint.before");
            conn.execute_batch("PRAGMA optimize")?;
            conn.query_row("PRAGMA wal_checkpoint = TRUNCATE", [], |_| Ok(()))?;
            point("sqlite.close.checkpoint.after");
        }
        conn.close().map_err(|(_, e)| e)?;
        Ok(())
    }
}

impl Drop for SqliteBackend {
    fn drop(&mut self) {
        let _ = self.close_inner();
    }
}
