//! The backend over real Berkeley DB 5.3: rpm 4.16's environment set-up and cursor discipline, the rpmdb
//! layer's [`Store`] (Packages and index sets through CDB cursors, with crash points between the calls),
//! rpm's transaction lock and sync-on-commit.
//!
//! Why cursors everywhere: in CDB every cursor is a locker with an R or IW lock on its file, upgraded to W
//! around each put/del — exactly the locks a killed process leaves behind for failchk to judge. One cursor
//! per operation (never a read cursor open while the same process writes: that self-deadlocks in CDB).

use super::ffi::{self, Cursor, Db, DbError, DbType, Env, EnvOptions};
use super::{ENV_LOCK_FILE, TXN_LOCK_FILE};
use crate::backend::{Backend, BackendError, BackendKind, OpenMode, Reader};
pub use crate::bdbenv::datafile::data_files;
use crate::bdbenv::datafile::{KeyValue, file_no, unpack_set};
use crate::bdbstore;
use crate::crash::point;
use crate::rpmdb::{Entry, Finding, IndexTag, Snapshot, Store};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Thread slots in the environment (each worker, reader, probe and rebuild is one process).
pub const THREAD_COUNT: u32 = 64;

/// An error as rpm printed it: what BDB said on the way ("rpmdb: ..."), then "db5 error(N) from OP: TEXT".
fn db_err(op: &str, e: DbError) -> BackendError {
    let mut parts = condense(ffi::take_messages());
    parts.push(format!("db5 error({}) from {op}: {}", e.code, e.text));
    let text = parts.join("; ");
    if e.is_run_recovery() { BackendError::RunRecovery(text) } else { BackendError::Env(text) }
}

/// BDB repeats itself (failchk prints a line per dead locker): drop repeats, keep the first few lines.
fn condense(lines: Vec<String>) -> Vec<String> {
    const KEEP: usize = 6;
    let mut out: Vec<String> = Vec::new();
    for l in lines {
        if !out.contains(&l) {
            out.push(l);
        }
    }
    if out.len() > KEEP {
        let more = out.len() - KEEP;
        out.truncate(KEEP);
        out.push(format!("(and {more} more messages)"));
    }
    out
}

pub struct LibdbBackend {
    dir: PathBuf,
    writable: bool,
    /// Packages, then the indexes (dropped before the environment).
    dbs: Vec<Db>,
    env: Option<Env>,
    txn_lock: Option<File>,
    /// Data files written since the last sync (only these need DB->sync's write-back and fsync).
    dirty: Vec<bool>,
    closed: bool,
    messages: Vec<String>,
}

impl LibdbBackend {
    pub fn open(dir: &Path, mode: OpenMode) -> Result<LibdbBackend, BackendError> {
        let packages = dir.join("Packages");
        match mode {
            OpenMode::Create => {
                std::fs::create_dir_all(dir).map_err(|source| BackendError::Io { path: dir.into(), source })?
            }
            _ if !packages.exists() => {
                return Err(BackendError::Io {
                    path: packages,
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "no Packages file in this directory"),
                });
            }
            _ => {}
        }
        let _ = ffi::take_messages();
        let mut messages = Vec::new();
        let env = {
            // rpm ≥ 4.12: environment open (with its failchk) serialised by an fcntl lock.
            let _env_lock = crate::lockfile::lock_file(&dir.join(ENV_LOCK_FILE))?;
            // rpm opens its environment with DB_CREATE, also for queries.
            let env = Env::open(dir, EnvOptions { create: true, failchk_on_open: false, thread_count: THREAD_COUNT })
                .map_err(|e| db_err("dbenv->open", e))?;
            // rpm 4.16 (db3.c): failchk right after opening a shared environment.
            turn(|| env.failchk()).map_err(|e| db_err("dbenv->failchk", e))?;
            messages.extend(ffi::take_messages());
            env
        };
        let writable = mode != OpenMode::ReadOnly;
        let mut dbs = Vec::new();
        for (i, name) in data_files().into_iter().enumerate() {
            let ty = if i == 0 { DbType::Hash } else { DbType::Btree };
            let exists = dir.join(name).exists();
            let db = Db::open(Some(&env), Path::new(name), ty, !exists && writable, !writable)
                .map_err(|e| db_err(&format!("db->open({name})"), e))?;
            dbs.push(db);
        }
        messages.extend(ffi::take_messages());
        point("libdb.open.after");
        Ok(LibdbBackend {
            dir: dir.to_path_buf(),
            writable,
            dbs,
            env: Some(env),
            txn_lock: None,
            dirty: vec![false; data_files().len()],
            closed: false,
            messages,
        })
    }

    fn env(&self) -> Result<&Env, BackendError> {
        self.env.as_ref().ok_or_else(|| BackendError::Other("environment is closed".into()))
    }

    /// Run `f` under one cursor on data file `file`: a read cursor, or (rpm ≥ 4.12) failchk and then a
    /// write cursor. The cursor is closed (its lock released) whatever `f` returns.
    fn with_cursor<T>(
        &mut self,
        file: usize,
        write: bool,
        f: impl FnOnce(&mut Cursor<'_>) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        if write && !self.writable {
            return Err(BackendError::ReadOnly);
        }
        if write {
            let env = self.env()?;
            turn(|| env.failchk()).map_err(|e| db_err("dbenv->failchk", e))?;
            self.messages.extend(ffi::take_messages());
        }
        let db = self.dbs.get(file).ok_or_else(|| BackendError::Other(format!("no data file #{file}")))?;
        if write {
            self.dirty[file] = true;
        }
        // Opening a cursor takes its CDB lock on the file (R, or IW for a write cursor): a turn.
        let c = turn(|| db.cursor(write));
        let mut c = c.map_err(|e| db_err("db->cursor", e))?;
        point("libdb.cursor.open.after");
        let res = f(&mut c);
        point("libdb.cursor.close.before");
        let closed = c.close().map_err(|e| db_err("dbcursor->close", e));
        point("libdb.cursor.close.after");
        let out = res?;
        closed?;
        Ok(out)
    }

    fn close_inner(&mut self) -> Result<(), BackendError> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        point("libdb.close.before");
        let mut errors = Vec::new();
        for (db, name) in std::mem::take(&mut self.dbs).into_iter().zip(data_files()) {
            if let Err(e) = db.close() {
                errors.push(db_err(&format!("db->close({name})"), e).to_string());
            }
        }
        if let Some(env) = self.env.take()
            && let Err(e) = env.close()
        {
            errors.push(db_err("dbenv->close", e).to_string());
        }
        self.txn_lock = None;
        if errors.is_empty() { Ok(()) } else { Err(BackendError::Env(errors.join("; "))) }
    }
}

fn get(c: &mut Cursor<'_>, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
    c.get(key).map_err(|e| db_err("dbcursor->get", e))
}

/// A step that takes one of BDB's locks, or (failchk) frees a dead process's, as a turn ([`crate::turns`]):
/// waited for before, taken once the call returned, whatever it returned.
///
/// Why: in CDB a cursor's open takes its R or IW lock on the file, and a put or del upgrades IW to W for the
/// call; a process that holds an R lock blocks another's W (and the reverse) *inside* the library, where no
/// crash point is. Were these free steps, a replaying reader could take its R lock early (in the recorded
/// cycle it took it later) and then wait at its next crash point for a turn that comes after a writer's put —
/// which waits in the library for that R lock: both stop, and the replay leaves its schedule (measured:
/// two-writer libdb bundles, x86 and the ARM guest). As turns, a lock is taken in the recorded order, and a
/// put, which no other turn can pass while it runs, waits only for locks released at turns before it.
/// failchk is one too: whether it finds a killed worker dead (its write locks: DB_RUNRECOVERY) or still
/// alive is then the order's — a writer that got rpm's lock the moment a killed one's exit released it ran
/// failchk before that one was gone in the recorded cycle, and after it in the replay (measured on x86).
fn turn<T>(step: impl FnOnce() -> T) -> T {
    crate::turns::wait();
    let out = step();
    crate::turns::took();
    out
}

fn put(c: &mut Cursor<'_>, key: &[u8], value: &[u8]) -> Result<(), BackendError> {
    turn(|| c.put(key, value)).map_err(|e| db_err("dbcursor->put", e))
}

fn del(c: &mut Cursor<'_>, key: &[u8]) -> Result<bool, BackendError> {
    turn(|| c.del(key)).map_err(|e| db_err("dbcursor->del", e))
}

/// Every (key, value) of one cursor's file.
fn scan(c: &mut Cursor<'_>) -> Result<Vec<KeyValue>, BackendError> {
    let mut out = Vec::new();
    while let Some(kv) = c.next_pair().map_err(|e| db_err("dbcursor->get(DB_NEXT)", e))? {
        out.push(kv);
    }
    Ok(out)
}

/// What [`salvage_packages`] got out of Packages.
#[derive(Debug, Default)]
pub struct Salvage {
    pub rows: Vec<KeyValue>,
    /// Header numbers whose lookup failed, with BDB's error.
    pub bad: Vec<(u32, String)>,
    /// Why the cursor walk stopped early, if it did.
    pub walk_error: Option<String>,
}

/// Most header numbers probed one by one when a walk of Packages fails.
const PROBE_MAX: u32 = 1 << 20;

/// Every (key, value) a cursor walk of `db` returns, and why the walk stopped early, if it did.
pub fn walk(db: &Db) -> Salvage {
    walk_within(db, usize::MAX)
}

/// [`walk`], stopping once the rows hold more than `budget` bytes: a file cannot hold more than its size, so
/// a walk over budget is reading a damaged length or a loop (bounded memory on any bytes).
pub fn walk_within(db: &Db, budget: usize) -> Salvage {
    let mut out = Salvage::default();
    let mut bytes = 0usize;
    let walk = (|| {
        let mut c = db.cursor(false).map_err(|e| ("db->cursor", e))?;
        while let Some(kv) = c.next_pair().map_err(|e| ("dbcursor->get(DB_NEXT)", e))? {
            bytes = bytes.saturating_add(kv.0.len() + kv.1.len());
            if bytes > budget {
                let text = format!("the walk returned over {budget} bytes, more than the file holds");
                return Err(("dbcursor->get(DB_NEXT)", ffi::DbError { code: libc::EFBIG, text }));
            }
            out.rows.push(kv);
        }
        Ok(())
    })();
    if let Err((op, e)) = walk {
        let mut msgs = condense(ffi::take_messages());
        msgs.push(format!("db5 error({}) from {op}: {}", e.code, e.text));
        out.walk_error = Some(msgs.join("; "));
    }
    out
}

/// Every (key, value) of Packages, also from a damaged file: a cursor walk, and if it fails (a killed
/// writer's half-written pages: "DB_PAGE_NOTFOUND"), point lookups of every header number up to the last one
/// handed out (key 0) or the highest seen — what rebuilddb and the verifier need to get every readable
/// header out, like `db_dump -r`.
pub fn salvage_packages(db: &Db) -> Salvage {
    salvage_packages_within(db, usize::MAX)
}

/// [`salvage_packages`] within a budget of bytes (see [`walk_within`]).
pub fn salvage_packages_within(db: &Db, budget: usize) -> Salvage {
    let mut out = walk_within(db, budget);
    let mut bytes: usize = out.rows.iter().map(|(k, v)| k.len() + v.len()).sum();
    if out.walk_error.is_none() {
        return out;
    }
    let key_of = |k: &[u8]| <[u8; 4]>::try_from(k).ok().map(u32::from_ne_bytes);
    let mut seen: std::collections::BTreeSet<u32> = out.rows.iter().filter_map(|(k, _)| key_of(k)).collect();
    let Ok(mut c) = db.cursor(false) else { return out };
    let last = c.get(&0u32.to_ne_bytes()).ok().flatten().and_then(|v| key_of(&v));
    let top = last.unwrap_or(0).max(seen.last().copied().unwrap_or(0)).min(PROBE_MAX);
    for h in 0..=top {
        if seen.contains(&h) {
            continue;
        }
        match c.get(&h.to_ne_bytes()) {
            Ok(Some(v)) => {
                bytes = bytes.saturating_add(4 + v.len());
                if bytes > budget {
                    out.bad.push((h, format!("lookups returned over {budget} bytes, more than the file holds")));
                    break;
                }
                seen.insert(h);
                out.rows.push((h.to_ne_bytes().to_vec(), v));
            }
            Ok(None) => {}
            Err(e) => {
                let _ = ffi::take_messages();
                out.bad.push((h, format!("db5 error({}) from dbcursor->get: {}", e.code, e.text)));
            }
        }
    }
    out
}

/// libdb's crash points around rpm's BDB layout writes ([`crate::bdbstore`]).
const POINTS: bdbstore::Points = bdbstore::Points {
    packages_put: ("libdb.packages.put.before", "libdb.packages.put.after"),
    packages_del: ("libdb.packages.del.before", "libdb.packages.del.after"),
    index_put: ("libdb.index.put.before", "libdb.index.put.after"),
    index_del: ("libdb.index.del.before", "libdb.index.del.after"),
};

impl bdbstore::Kv for Cursor<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        get(self, key)
    }
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), BackendError> {
        put(self, key, value)
    }
    fn del(&mut self, key: &[u8]) -> Result<bool, BackendError> {
        del(self, key)
    }
}

impl Store for LibdbBackend {
    type Error = BackendError;

    fn put_package(&mut self, blob: &[u8]) -> Result<u32, BackendError> {
        // Header numbers are host byte order, as rpm's BDB backend stored them.
        self.with_cursor(0, true, |c| bdbstore::put_package(c, &POINTS, blob))
    }

    fn del_package(&mut self, hnum: u32) -> Result<(), BackendError> {
        self.with_cursor(0, true, |c| bdbstore::del_package(c, &POINTS, hnum))
    }

    fn get_package(&mut self, hnum: u32) -> Result<Option<Vec<u8>>, BackendError> {
        self.get(hnum)
    }

    fn index_add(&mut self, idx: IndexTag, hnum: u32, entries: &[Entry]) -> Result<(), BackendError> {
        self.with_cursor(file_no(idx), true, |c| bdbstore::index_add(c, &POINTS, hnum, entries))
    }

    fn index_remove(&mut self, idx: IndexTag, hnum: u32, entries: &[Entry]) -> Result<(), BackendError> {
        self.with_cursor(file_no(idx), true, |c| bdbstore::index_remove(c, &POINTS, hnum, entries))
    }
}

impl Reader for LibdbBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Libdb
    }

    fn dir(&self) -> &Path {
        &self.dir
    }

    fn get(&mut self, hnum: u32) -> Result<Option<Vec<u8>>, BackendError> {
        self.with_cursor(0, false, |c| get(c, &hnum.to_ne_bytes()))
    }

    fn lookup(&mut self, idx: IndexTag, key: &[u8]) -> Result<Vec<(u32, u32)>, BackendError> {
        self.with_cursor(file_no(idx), false, |c| Ok(get(c, key)?.and_then(|v| unpack_set(&v)).unwrap_or_default()))
    }

    fn hnums(&mut self) -> Result<Vec<u32>, BackendError> {
        // Salvage: rebuilddb must get every readable header out of a damaged file (and name the others).
        let s = salvage_packages(&self.dbs[0]);
        if let Some(e) = s.walk_error {
            self.messages.push(format!("rpmdb: Packages cannot be walked ({e}); header numbers probed one by one"));
        }
        let mut v: Vec<u32> = s
            .rows
            .into_iter()
            .filter_map(|(k, _)| <[u8; 4]>::try_from(k.as_slice()).ok().map(u32::from_ne_bytes))
            .chain(s.bad.into_iter().map(|(h, _)| h))
            .filter(|&h| h != 0)
            .collect();
        v.sort_unstable();
        Ok(v)
    }

    fn snapshot(&mut self, findings: &mut Vec<Finding>) -> Result<Snapshot, BackendError> {
        let mut files = Vec::new();
        for file in 0..self.dbs.len() {
            files.push(self.with_cursor(file, false, scan)?);
        }
        Ok(crate::bdbenv::check::snapshot_from(files, findings))
    }

    fn structural_check(&mut self) -> Result<Vec<Finding>, BackendError> {
        // Judged offline (never through a joined environment): see `super::offline`.
        Ok(Vec::new())
    }

    fn close(mut self: Box<Self>) -> Result<(), BackendError> {
        self.close_inner()
    }

    fn take_messages(&mut self) -> Vec<String> {
        let mut v = std::mem::take(&mut self.messages);
        v.extend(ffi::take_messages());
        v
    }
}

impl Backend for LibdbBackend {
    fn begin(&mut self) -> Result<(), BackendError> {
        crate::lockfile::begin_txn(self.writable, &mut self.txn_lock, &self.dir.join(TXN_LOCK_FILE))
    }

    fn install(&mut self, blob: &[u8]) -> Result<crate::Installed, BackendError> {
        crate::lockfile::in_txn(&self.txn_lock)?;
        Ok(crate::Installed::As(crate::rpmdb::add_header(self, blob)?))
    }

    fn erase(&mut self, hnum: u32) -> Result<(), BackendError> {
        crate::lockfile::in_txn(&self.txn_lock)?;
        Ok(crate::rpmdb::remove_header(self, hnum)?)
    }

    fn commit(&mut self) -> Result<(), BackendError> {
        crate::lockfile::in_txn(&self.txn_lock)?;
        // Non-transactional (CDB): "commit" is rpm's sync — every file's dirty cache pages written and fsynced.
        point("libdb.sync.before");
        for ((db, name), dirty) in self.dbs.iter().zip(data_files()).zip(self.dirty.iter_mut()) {
            if *dirty {
                db.sync().map_err(|e| db_err(&format!("db->sync({name})"), e))?;
                *dirty = false;
            }
        }
        point("libdb.sync.after");
        self.txn_lock = None;
        Ok(())
    }

    fn rollback(&mut self) -> Result<(), BackendError> {
        // Nothing can be undone without transactions; only the lock is released.
        self.txn_lock = None;
        Ok(())
    }
}

impl Drop for LibdbBackend {
    fn drop(&mut self) {
        let _ = self.close_inner();
    }
}

pub fn open(dir: &Path, mode: OpenMode) -> Result<Box<dyn Backend>, BackendError> {
    Ok(Box::new(LibdbBackend::open(dir, mode)?))
}

/// Remove one key from an index file with BDB itself, behind the rpmdb layer's back (how the tests plant
/// an index inconsistency in a real btree). Returns whether the key was there.
pub fn remove_index_key(dir: &Path, index: IndexTag, key: &[u8]) -> Result<bool, BackendError> {
    let mut db = LibdbBackend::open(dir, OpenMode::ReadWrite)?;
    let found = db.with_cursor(file_no(index), true, |c| del(c, key))?;
    db.dbs[file_no(index)].sync().map_err(|e| db_err("db->sync", e))?;
    db.close_inner()?;
    Ok(found)
}

/// Open `dir` and hold a cursor on Packages (a read cursor, or a write cursor: an IW lock) until the
/// process is killed; prints "held" once the cursor is open. Reproduces stale locks of killed processes.
pub fn hold(dir: &Path, write: bool) -> Result<std::convert::Infallible, BackendError> {
    let db = LibdbBackend::open(dir, OpenMode::ReadWrite)?;
    let _cursor = db.dbs[0].cursor(write).map_err(|e| db_err("db->cursor", e))?;
    println!("held");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
