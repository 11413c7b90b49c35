//! Workers: forked children that run seeded transactions (writers) or queries (readers) against one
//! database directory and report every step to the scheduler before and after doing it.
//!
//! A worker never decides whether it did well; it reports what it acknowledged and what it saw, and the
//! scheduler's verifier judges.

pub mod events;

use crate::workload::ops::{self, Query};
use crate::workload::{Pool, Step, Txn};
use dbtorture_backends::rpmdb::{Header, IndexTag, tags};
use dbtorture_backends::{Backend, BackendKind, OpenMode};
use events::WorkerMsg;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

/// Exit codes of a worker process.
pub mod exit {
    pub const OK: i32 = 0;
    /// A backend operation failed (reported on the pipe).
    pub const BACKEND_ERROR: i32 = 3;
    /// The pipe to the scheduler broke.
    pub const PIPE: i32 = 4;
    /// SIGINT/SIGTERM arrived; the worker closed the database cleanly and stopped.
    pub const INTERRUPTED: i32 = 130;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Writer,
    Reader,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Writer => "writer",
            Role::Reader => "reader",
        }
    }
}

pub struct WorkerSpec<'a> {
    pub index: u32,
    pub role: Role,
    pub writers: u32,
    pub backend: BackendKind,
    pub dir: &'a Path,
    pub seed: u64,
    /// Transactions (writer) or queries (reader) to run.
    pub ops: u32,
    /// First transaction number; also the base of INSTALLTID.
    pub txn_base: u64,
    /// The installed pool ids of this worker's slice when the cycle started.
    pub installed: BTreeSet<u32>,
    /// MADV_PAGEOUT the shared regions now and then (memory pressure).
    pub pageout: bool,
    /// mlock() the shared regions.
    pub mlock: bool,
}

struct Reporter<W: Write> {
    out: W,
}

impl<W: Write> Reporter<W> {
    fn send(&mut self, m: &WorkerMsg) -> Result<(), i32> {
        self.out.write_all(m.encode().as_bytes()).map_err(|_| exit::PIPE)
    }
}

/// Run a worker to completion; returns its exit code.
pub fn run(spec: WorkerSpec<'_>, pool: &Pool, out: impl Write) -> i32 {
    let mut rep = Reporter { out };
    // Like rpm: a Ctrl-C lets the current operation finish, then the database is closed and we exit.
    crate::sys::catch_terminate();
    dbtorture_backends::rpmcli::set_interrupt_check(crate::sys::terminate_requested);
    dbtorture_backends::bdbenv::set_pageout(spec.pageout);
    dbtorture_backends::bdbenv::set_mlock(spec.mlock);
    let res = match spec.role {
        Role::Writer => writer(&spec, pool, &mut rep),
        Role::Reader => reader(&spec, pool, &mut rep),
    };
    if crate::sys::terminate_requested() && res.is_ok() {
        return exit::INTERRUPTED;
    }
    match res {
        Ok(()) => exit::OK,
        Err(code) => code,
    }
}

fn fail<W: Write>(rep: &mut Reporter<W>, error: String) -> i32 {
    let _ = rep.send(&WorkerMsg::Error { error });
    exit::BACKEND_ERROR
}

fn writer<W: Write>(spec: &WorkerSpec<'_>, pool: &Pool, rep: &mut Reporter<W>) -> Result<(), i32> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut db = spec.backend.open(spec.dir, OpenMode::ReadWrite).map_err(|e| fail(rep, format!("open: {e}")))?;
    for line in db.take_messages() {
        rep.send(&WorkerMsg::Log { line })?;
    }
    let mut installed = spec.installed.clone();
    for t in 0..u64::from(spec.ops) {
        if crate::sys::terminate_requested() {
            break;
        }
        let Some(txn) = ops::next_txn(&mut rng, pool, &installed, spec.index, spec.writers) else {
            break;
        };
        let txn_no = spec.txn_base + t;
        rep.send(&WorkerMsg::Begin { txn: txn_no, body: txn.clone() })?;
        let res = run_txn(db.as_mut(), pool, &txn, txn_no);
        for line in db.take_messages() {
            rep.send(&WorkerMsg::Log { line })?;
        }
        match res {
            Ok(()) => {
                rep.send(&WorkerMsg::Commit { txn: txn_no })?;
                txn.apply(&mut installed);
            }
            Err(e) => {
                let _ = db.rollback();
                rep.send(&WorkerMsg::Abort { txn: txn_no, error: e.clone() })?;
                if crate::sys::terminate_requested() {
                    // Ctrl-C reached the engine (the rpm binary gets it forwarded) and stopped it mid-way: the
                    // transaction is in flight, as after a kill, not a failure of the worker.
                    break;
                }
                return Err(fail(rep, format!("transaction {txn_no}: {e}")));
            }
        }
    }
    db.close().map_err(|e| fail(rep, format!("close: {e}")))?;
    Ok(())
}

/// Find the header number of a pool package by its SHA1HEADER (the Sha1header index).
fn hnum_of(db: &mut dyn Backend, sha1: &str) -> Result<Option<u32>, String> {
    let hits = db.lookup(IndexTag(tags::SHA1HEADER), sha1.as_bytes()).map_err(|e| e.to_string())?;
    Ok(hits.first().map(|h| h.0))
}

fn run_txn(db: &mut dyn Backend, pool: &Pool, txn: &Txn, txn_no: u64) -> Result<(), String> {
    let tid = 1_700_000_000u32.wrapping_add(txn_no as u32);
    db.begin().map_err(|e| format!("begin: {e}"))?;
    for s in &txn.steps {
        match *s {
            Step::Add(p) => {
                db.install(&pool.get(p).installed_blob(tid))
                    .map_err(|e| format!("install {}: {e}", pool.get(p).nevra))?;
            }
            Step::Remove(p) => {
                let pkg = pool.get(p);
                let h = hnum_of(db, &pkg.sha1)?.ok_or_else(|| format!("erase {}: not installed", pkg.nevra))?;
                db.erase(h).map_err(|e| format!("erase {}: {e}", pkg.nevra))?;
            }
        }
    }
    db.commit().map_err(|e| format!("commit: {e}"))
}

fn reader<W: Write>(spec: &WorkerSpec<'_>, pool: &Pool, rep: &mut Reporter<W>) -> Result<(), i32> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut db = spec.backend.open(spec.dir, OpenMode::ReadOnly).map_err(|e| fail(rep, format!("open: {e}")))?;
    let mut n = 0u64;
    for _ in 0..spec.ops {
        if crate::sys::terminate_requested() {
            break;
        }
        let q = ops::next_query(&mut rng, pool);
        let (idx, key) = match &q {
            Query::Name(s) => (tags::NAME, s),
            Query::Provides(s) => (tags::PROVIDENAME, s),
            Query::File(s) => (tags::BASENAMES, s),
        };
        if let Err(e) = db.begin_read() {
            return Err(fail(rep, format!("read view: {e}")));
        }
        let hits = match db.lookup(IndexTag(idx), key.as_bytes()) {
            Ok(h) => h,
            Err(e) => return Err(fail(rep, format!("query {q:?}: {e}"))),
        };
        for (hnum, tagnum) in hits {
            // Every index entry must point at a header whose tag holds the key at the tag index.
            let blob = match db.get(hnum) {
                Ok(b) => b,
                Err(e) => return Err(fail(rep, format!("read #{hnum}: {e}"))),
            };
            let detail = match blob.as_deref().map(Header::parse) {
                None => Some(format!("{} entry {key:?} -> #{hnum}: no such package", IndexTag(idx))),
                Some(Err(e)) => Some(format!("#{hnum} unreadable: {e}")),
                Some(Ok(h)) => {
                    let vals = h.strings(idx).unwrap_or_default();
                    (vals.get(tagnum as usize) != Some(&key.as_bytes())).then(|| {
                        format!("{} entry {key:?} -> #{hnum}[{tagnum}] does not match the header", IndexTag(idx))
                    })
                }
            };
            if let Some(detail) = detail {
                rep.send(&WorkerMsg::Inconsistent { detail })?;
            }
        }
        if let Err(e) = db.end_read() {
            return Err(fail(rep, format!("read view: {e}")));
        }
        n += 1;
    }
    rep.send(&WorkerMsg::Queries { n })?;
    db.close().map_err(|e| fail(rep, format!("close: {e}")))?;
    Ok(())
}
