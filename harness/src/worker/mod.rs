//! Workers: forked children that run seeded transactions (writers) or queries (readers) against one
//! database directory and report every step to the scheduler before and after doing it.
//!
//! A worker never decides whether it did well; it reports what it acknowledged and what it saw, and the
//! scheduler's verifier judges.

pub mod events;

use crate::workload::ops::{self, Query};
use crate::workload::{Pool, Step, Txn};
use dbtorture_backends::child::ChildExit;
use dbtorture_backends::rpmdb::{Header, IndexTag, tags};
use dbtorture_backends::{Backend, BackendKind, OpenMode};
pub use dbtorture_reports::Role;
use events::WorkerMsg;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

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
}

struct Reporter<W: Write> {
    out: W,
}

impl<W: Write> Reporter<W> {
    fn send(&mut self, m: &WorkerMsg) -> Result<(), i32> {
        self.out.write_all(m.encode().as_bytes()).map_err(|_| ChildExit::PipeBroken.code())
    }
}

static PANIC_MESSAGE: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Run `body` as a cycle's child: planted bugs (if one is switched on) act here and only here, and a panic
/// is caught with its message and location, sent up the pipe, and ends the child as `Panicked`.
fn as_child<W: Write>(rep: &mut Reporter<W>, body: impl FnOnce(&mut Reporter<W>) -> i32) -> i32 {
    dbtorture_backends::planted::arm_in_this_process();
    std::panic::set_hook(Box::new(|info| {
        let msg = match (info.payload().downcast_ref::<&str>(), info.payload().downcast_ref::<String>()) {
            (Some(s), _) => s.to_string(),
            (_, Some(s)) => s.clone(),
            _ => "(no message)".to_string(),
        };
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("dbtorture worker panicked: {msg}{at}");
        if let Ok(mut m) = PANIC_MESSAGE.lock() {
            *m = Some(format!("{msg}{at}"));
        }
    }));
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(rep))) {
        Ok(code) => code,
        Err(_) => {
            let message = PANIC_MESSAGE.lock().ok().and_then(|mut m| m.take()).unwrap_or_default();
            let _ = rep.send(&WorkerMsg::Panic { message });
            ChildExit::Panicked.code()
        }
    }
}

/// Run a worker to completion; returns its exit code.
pub fn run(spec: WorkerSpec<'_>, pool: &Pool, out: impl Write) -> i32 {
    let mut rep = Reporter { out };
    // Like rpm: a Ctrl-C lets the current operation finish, then the database is closed and we exit.
    crate::sys::catch_terminate();
    dbtorture_backends::rpmcli::set_interrupt_check(crate::sys::terminate_requested);
    as_child(&mut rep, |rep| {
        let res = match spec.role {
            Role::Writer => writer(&spec, pool, rep),
            Role::Reader => reader(&spec, pool, rep),
            // Conversions run in `convert`; a role added later is refused, not run as something else.
            _ => Err(fail(rep, format!("a worker cannot play {}", spec.role))),
        };
        if crate::sys::terminate_requested() && res.is_ok() {
            return ChildExit::Interrupted.code();
        }
        match res {
            Ok(()) => ChildExit::Ok.code(),
            Err(code) => code,
        }
    })
}

/// The child of a conversion cycle: rebuilddb from `from` into `to` in `dir`. For the real rpm this child
/// becomes `rpm --rebuilddb` (or, converting a Berkeley DB rpmdb, `rpmdb --rebuilddb`), so the kill hits rpm
/// itself.
pub fn convert(from: BackendKind, to: BackendKind, by: crate::scenario::Converter, dir: &Path, out: impl Write) -> i32 {
    let mut rep = Reporter { out };
    as_child(&mut rep, |rep| {
        if by == crate::scenario::Converter::Rpm {
            use std::os::unix::process::CommandExt;
            let err = dbtorture_backends::rpmconvert::command(dir).exec();
            let _ = rep.send(&WorkerMsg::Error { error: format!("exec rpmdb --rebuilddb: {err}") });
            return ChildExit::ExecFailed.code();
        }
        if from.rebuilds_itself() && from == to {
            use std::os::unix::process::CommandExt;
            let err = dbtorture_backends::rpmcli::command("rpm", dir, &["--rebuilddb"]).exec();
            let _ = rep.send(&WorkerMsg::Error { error: format!("exec rpm --rebuilddb: {err}") });
            return ChildExit::ExecFailed.code();
        }
        match dbtorture_backends::rebuild::rebuilddb(from, to, dir) {
            Ok(_) => {
                // Under the power-loss recorder: where in the recording the rebuild returned.
                // A lost acknowledgement would judge every image as "before the rebuild returned": the
                // child says it could not tell (PipeBroken, a typed worker end), never Ok.
                if let Some(seq) = crate::fault::powerloss::ack_seq()
                    && rep.send(&WorkerMsg::Acked { txn: 0, seq }).is_err()
                {
                    return ChildExit::PipeBroken.code();
                }
                ChildExit::Ok.code()
            }
            Err(e) => fail(rep, format!("rebuilddb {} → {}: {e}", from.name(), to.name())),
        }
    })
}

fn fail<W: Write>(rep: &mut Reporter<W>, error: String) -> i32 {
    let _ = rep.send(&WorkerMsg::Error { error });
    ChildExit::BackendError.code()
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
        // Read before anything else happens: the power-loss oracle needs where in the recording it returned.
        let acked_at = crate::fault::powerloss::ack_seq();
        for line in db.take_messages() {
            rep.send(&WorkerMsg::Log { line })?;
        }
        match res {
            Ok(()) => {
                rep.send(&WorkerMsg::Commit { txn: txn_no })?;
                if let Some(seq) = acked_at {
                    rep.send(&WorkerMsg::Acked { txn: txn_no, seq })?;
                }
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
    let mut db = spec.backend.open_reader(spec.dir).map_err(|e| fail(rep, format!("open: {e}")))?;
    // A reader's open runs failchk too: what it says is judged like a writer's.
    for line in db.take_messages() {
        rep.send(&WorkerMsg::Log { line })?;
    }
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
