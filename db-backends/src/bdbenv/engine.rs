//! The backend itself: opening and joining the environment, rpm's cursor and lock protocol, failchk, and
//! the data-file store the rpmdb layer drives. (The region files' lifecycle is `region_files.rs`.)

use super::datafile::{DataError, DataFile, Pages, unpack_set};
use super::lock::{LockError, LockHandle, LockTable, Mode};
use super::mmap::Region;
use super::mpool::{Mpool, MpoolError, PAGE};
use super::region_files::{ENV_FILE, ENV_LOCK_FILE, LOCK_FILE, MPOOL_FILE, TXN_LOCK_FILE, create_env, is_alive};
use super::{check, datafile, env, lock};
use crate::backend::{Backend, BackendError, BackendKind, OpenMode, Reader};
use crate::bdbstore;
use crate::crash::point;
use crate::rpmdb::{Entry, Finding, IndexTag, Snapshot, Store};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// db 4.3: no thread table checks, no failchk.
    Db43,
    /// rpm ≥ 4.6 with db 4.4+: is_alive + failchk at open and before every write cursor.
    Db46,
}

impl Profile {
    pub fn version(self) -> (u32, u32, u32) {
        match self {
            Profile::Db43 => (4, 3, 29),
            Profile::Db46 => (4, 4, 20),
        }
    }
    pub fn failchk(self) -> bool {
        self == Profile::Db46
    }
}

pub use super::datafile::data_files;

fn file_id(idx: IndexTag) -> u32 {
    super::datafile::file_no(idx) as u32
}

/// The lock object of a data file: a 20-byte file id, like the one db4 derives from the file.
pub fn lock_key(file: u32) -> Vec<u8> {
    let mut k = format!("dbtorture-fileid-{file:03}").into_bytes();
    k.resize(20, 0);
    k
}

fn env_err(e: LockError) -> BackendError {
    BackendError::Env(format!("rpmdb: {e}"))
}

fn data_err(e: DataError) -> BackendError {
    BackendError::Env(format!("rpmdb: {e}"))
}

fn mpool_err(e: MpoolError) -> BackendError {
    BackendError::Env(format!("rpmdb: {e}"))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackendError + '_ {
    move |source| BackendError::Io { path: path.to_path_buf(), source }
}

/// A cursor: its locker and its lock on the file.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    locker: u32,
    lock: LockHandle,
    file: u32,
}

pub struct BdbEnv {
    dir: PathBuf,
    profile: Profile,
    kind: BackendKind,
    pid: u32,
    env: Region,
    locks: Region,
    mpool: Mpool,
    slot: usize,
    /// One locker per open database handle (rpm opens every dbi), freed at close.
    handles: Vec<u32>,
    writable: bool,
    txn_lock: Option<File>,
    closed: bool,
    /// Messages Berkeley DB would print (failchk's "Freeing read locks for locker ...").
    pub messages: Vec<String>,
}

impl BdbEnv {
    pub fn open(dir: &Path, mode: OpenMode, kind: BackendKind, profile: Profile) -> Result<BdbEnv, BackendError> {
        let packages = dir.join("Packages");
        match mode {
            OpenMode::Create => std::fs::create_dir_all(dir).map_err(io(dir))?,
            _ if !packages.exists() => {
                return Err(BackendError::Io {
                    path: packages,
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "no Packages file in this directory"),
                });
            }
            _ => {}
        }
        let pid = std::process::id();
        let _env_lock = crate::lockfile::lock_file(&dir.join(ENV_LOCK_FILE))?;
        if !dir.join(ENV_FILE).exists() {
            // rpm opens its environment with DB_CREATE, also for queries.
            create_env(dir, profile)?;
        }
        let (maj, min, _) = profile.version();
        let mut envr = env::attach(&dir.join(ENV_FILE), (maj, min)).map_err(|e| match e {
            env::EnvError::Panic => BackendError::RunRecovery(format!("rpmdb: {e}")),
            other => BackendError::Env(format!("rpmdb: {other}")),
        })?;
        let mreg =
            Region::map(&dir.join(MPOOL_FILE)).map_err(|e| BackendError::Env(format!("rpmdb: buffer cache: {e}")))?;
        let lreg =
            Region::map(&dir.join(LOCK_FILE)).map_err(|e| BackendError::Env(format!("rpmdb: lock region: {e}")))?;
        let mut files = Vec::new();
        for name in data_files() {
            let p = dir.join(name);
            let exists = p.exists();
            let f = OpenOptions::new()
                .read(true)
                .write(mode != OpenMode::ReadOnly || !exists)
                .create(mode == OpenMode::Create)
                .truncate(false)
                .open(&p)
                .map_err(io(&p))?;
            if f.metadata().map_err(io(&p))?.len() == 0 {
                f.write_all_at(&datafile::meta_page(), 0).map_err(io(&p))?;
            }
            files.push(f);
        }
        let slot = env::register(&mut envr, pid).map_err(|e| BackendError::Env(format!("rpmdb: {e}")))?;
        let mut db = BdbEnv {
            dir: dir.to_path_buf(),
            profile,
            kind,
            pid,
            env: envr,
            locks: lreg,
            mpool: Mpool { region: mreg, files, pid, writable: mode != OpenMode::ReadOnly },
            slot,
            handles: Vec::new(),
            writable: mode != OpenMode::ReadOnly,
            txn_lock: None,
            closed: false,
            messages: Vec::new(),
        };
        if profile.failchk() {
            db.failchk()?;
        }
        for _ in 0..data_files().len() {
            let id = db.lt(|t| t.locker_alloc(pid))?;
            db.handles.push(id);
        }
        point("bdbenv.open.after");
        Ok(db)
    }

    fn panic_check(&self) -> Result<(), BackendError> {
        if lock::u32_at(self.env.bytes(), env::E_PANIC) != 0 {
            return Err(BackendError::RunRecovery("rpmdb: PANIC: fatal region error detected; run recovery".into()));
        }
        Ok(())
    }

    /// Run `f` on the lock table under the region mutex, with this process's thread slot ACTIVE (a kill in
    /// here is a process that "died in the Berkeley DB library").
    fn lt<T>(&mut self, f: impl FnOnce(&mut LockTable<'_>) -> Result<T, LockError>) -> Result<T, BackendError> {
        self.lt_poll(f, |_| true)
    }

    /// [`Self::lt`] for a poll: a result `decided` rejects (the lock is still taken) changed nothing, so the
    /// section is not a turn (`crate::turns`) — how often a process polls is timing, not order.
    fn lt_poll<T>(
        &mut self,
        f: impl FnOnce(&mut LockTable<'_>) -> Result<T, LockError>,
        decided: impl FnOnce(&T) -> bool,
    ) -> Result<T, BackendError> {
        self.panic_check()?;
        env::set_state(&mut self.env, self.slot, env::thread::ACTIVE);
        lock::mutex_lock(&self.locks, lock::H_MUTEX, self.pid);
        let res = LockTable::new(self.locks.bytes_mut()).and_then(|mut t| f(&mut t));
        if res.as_ref().is_ok_and(|v| !decided(v)) {
            lock::mutex_unlock_unseen(&self.locks, lock::H_MUTEX);
        } else {
            lock::mutex_unlock(&self.locks, lock::H_MUTEX);
        }
        env::set_state(&mut self.env, self.slot, env::thread::OUT);
        res.map_err(env_err)
    }

    /// Wait (for ever, like db4 without lock timeouts) until a waiting lock is granted.
    fn wait_granted(&mut self, h: LockHandle) -> Result<(), BackendError> {
        env::set_state(&mut self.env, self.slot, env::thread::BLOCKED);
        loop {
            let st = self.lt_poll(|t| t.lock_status(h), |&st| st != lock::status::WAITING)?;
            if st == lock::status::HELD {
                return Ok(());
            }
            if st != lock::status::WAITING {
                return Err(BackendError::Env(format!(
                    "rpmdb: lock wait ended with status {}",
                    lock::status::name(st)
                )));
            }
            std::thread::sleep(Duration::from_micros(300));
        }
    }

    fn cursor(&mut self, file: u32, write: bool) -> Result<Cursor, BackendError> {
        if write && self.profile.failchk() {
            // rpm ≥ 4.12 runs failchk before every write cursor.
            self.failchk()?;
        }
        let pid = self.pid;
        let locker = self.lt(|t| t.locker_alloc(pid))?;
        point("bdbenv.cursor.locker.after");
        let mode = if write { Mode::IW } else { Mode::R };
        let key = lock_key(file);
        let (lock, granted) = self.lt(|t| t.lock_get(locker, &key, mode))?;
        if !granted {
            self.wait_granted(lock)?;
        }
        point("bdbenv.lock.get.after");
        Ok(Cursor { locker, lock, file })
    }

    fn cursor_close(&mut self, c: Cursor) -> Result<(), BackendError> {
        // PLANTED BUG (off by default): free the locker first, skipping db4's "Locker still has locks" check.
        if crate::planted::active("bdbenv-unchecked-locker-free") {
            let freed = self.lt(|t| t.locker_free_unchecked(c.locker));
            let put = self.lt(|t| t.lock_put(c.lock));
            return freed.and(put);
        }
        point("bdbenv.lock.put.before");
        let put = self.lt(|t| t.lock_put(c.lock));
        point("bdbenv.lock.put.after");
        let free = self.lt(|t| t.locker_free(c.locker));
        point("bdbenv.locker.free.after");
        put.and(free)
    }

    fn upgrade(&mut self, c: &Cursor) -> Result<(), BackendError> {
        while !self.lt_poll(|t| t.try_upgrade(c.lock), |&up| up)? {
            std::thread::sleep(Duration::from_micros(300));
        }
        point("bdbenv.lock.upgrade.after");
        Ok(())
    }

    fn downgrade(&mut self, c: &Cursor) -> Result<(), BackendError> {
        self.lt(|t| t.downgrade(c.lock, Mode::IW))?;
        point("bdbenv.lock.downgrade.after");
        Ok(())
    }

    /// Run `f` on a data file under a cursor (read: R lock; write: IW, upgraded to W around `f`).
    fn with_file<T>(
        &mut self,
        file: u32,
        write: bool,
        f: impl FnOnce(&mut DataFile<'_, CachePages<'_>>) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        if write && !self.writable {
            return Err(BackendError::ReadOnly);
        }
        let c = self.cursor(file, write)?;
        let res = (|| {
            if write {
                self.upgrade(&c)?;
            }
            let mut pages = CachePages { mp: &mut self.mpool, env: &mut self.env, slot: self.slot };
            let mut df = DataFile::new(&mut pages, c.file);
            let out = f(&mut df);
            if write {
                self.downgrade(&c)?;
            }
            out
        })();
        let closed = self.cursor_close(c);
        let out = res?;
        closed?;
        Ok(out)
    }

    /// failchk (rpm ≥ 4.6): threads that died inside the library, or dead lockers with write locks, need
    /// recovery (the environment panics); dead lockers with only read locks are cleaned up.
    pub fn failchk(&mut self) -> Result<(), BackendError> {
        self.panic_check()?;
        // Hold the environment mutex while judging thread slots: a process that exits normally releases its
        // slot under this mutex, so a dead process whose slot still says ACTIVE really died in the library.
        lock::mutex_lock(&self.env, env::E_MUTEX, self.pid);
        let died = env::threads(self.env.bytes())
            .into_iter()
            .find(|&(_, pid, st)| st == env::thread::ACTIVE && !is_alive(pid));
        lock::mutex_unlock(&self.env, env::E_MUTEX);
        if let Some((_, pid, _)) = died {
            env::set_panic(&mut self.env);
            return Err(BackendError::RunRecovery(format!(
                "rpmdb: Thread/process {pid}/0 failed: Thread died in Berkeley DB library; \
                 DB_RUNRECOVERY: Fatal error, run database recovery"
            )));
        }
        lock::mutex_lock(&self.locks, lock::H_MUTEX, self.pid);
        let res = (|| -> Result<Result<Vec<String>, String>, LockError> {
            let mut t = LockTable::new(self.locks.bytes_mut())?;
            let mut msgs = Vec::new();
            for (off, id, pid, _nlocks, nwrites) in t.lockers()? {
                if is_alive(pid) {
                    continue;
                }
                if nwrites != 0 {
                    return Ok(Err(format!(
                        "rpmdb: locker {id:#x} of dead process {pid} has write locks; \
                         DB_RUNRECOVERY: Fatal error, run database recovery"
                    )));
                }
                msgs.push(format!("rpmdb: Freeing read locks for locker {id:#x}"));
                // Planted bug: failchk says it frees the dead locker's read locks, and frees nothing.
                if crate::planted::active("bdbenv-failchk-frees-nothing") {
                    continue;
                }
                for h in t.locks_of(off)? {
                    t.lock_put(h)?;
                }
                t.locker_free(id)?;
            }
            Ok(Ok(msgs))
        })();
        lock::mutex_unlock(&self.locks, lock::H_MUTEX);
        match res.map_err(env_err)? {
            Ok(msgs) => {
                self.messages.extend(msgs);
                Ok(())
            }
            Err(msg) => {
                env::set_panic(&mut self.env);
                Err(BackendError::RunRecovery(msg))
            }
        }
    }

    fn close_inner(&mut self) -> Result<(), BackendError> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        point("bdbenv.close.before");
        let mut errors = Vec::new();
        if self.writable
            && let Err(e) = self.mpool.sync()
        {
            errors.push(format!("rpmdb: {e}"));
        }
        for id in std::mem::take(&mut self.handles) {
            if let Err(e) = self.lt(|t| t.locker_free(id)) {
                // What rpm printed when db4's lock region was damaged under it.
                errors.push(format!("{e}"));
                errors.push("db4 error(22) from db->close: Invalid argument".into());
            }
        }
        env::unregister(&mut self.env, self.slot, self.pid);
        self.txn_lock = None;
        if errors.is_empty() { Ok(()) } else { Err(BackendError::Env(errors.join("; "))) }
    }

    /// The region files as they are now (for the verifier and inspect).
    pub fn region_bytes(&self) -> (&[u8], &[u8], &[u8]) {
        (self.env.bytes(), self.mpool.region.bytes(), self.locks.bytes())
    }
}

/// Open `dir` and hold a cursor lock on Packages (R, or IW with `write`) until the process is killed:
/// prints "held" on stdout once the lock is granted. Used to reproduce stale locks of killed processes.
pub fn hold(kind: BackendKind, dir: &Path, write: bool) -> Result<std::convert::Infallible, BackendError> {
    let profile = kind.profile().ok_or_else(|| BackendError::Other("hold is for the bdbenv backends".into()))?;
    let mut env = BdbEnv::open(dir, OpenMode::ReadWrite, kind, profile)?;
    let _cursor = env.cursor(0, write)?;
    println!("held");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Pages through the shared cache, with the thread slot ACTIVE while inside it.
pub struct CachePages<'a> {
    mp: &'a mut Mpool,
    env: &'a mut Region,
    slot: usize,
}

impl Pages for CachePages<'_> {
    fn read(&mut self, file: u32, pgno: u32) -> Result<Vec<u8>, DataError> {
        env::set_state(self.env, self.slot, env::thread::ACTIVE);
        let r = self.mp.with_page(file, pgno, false, |b| b.to_vec());
        env::set_state(self.env, self.slot, env::thread::OUT);
        r.map_err(|e| DataError::Source(e.to_string()))
    }

    fn write(&mut self, file: u32, pgno: u32, page: &[u8]) -> Result<(), DataError> {
        if page.len() != PAGE {
            return Err(DataError::Source("short page".into()));
        }
        env::set_state(self.env, self.slot, env::thread::ACTIVE);
        let r = self.mp.with_page(file, pgno, true, |b| b.copy_from_slice(page));
        env::set_state(self.env, self.slot, env::thread::OUT);
        r.map_err(|e| DataError::Source(e.to_string()))
    }
}

/// bdbenv's crash points around rpm's BDB layout writes ([`crate::bdbstore`]).
const POINTS: bdbstore::Points = bdbstore::Points {
    packages_put: ("bdbenv.packages.put.before", "bdbenv.packages.put.after"),
    packages_del: ("bdbenv.packages.del.before", "bdbenv.packages.del.after"),
    index_put: ("bdbenv.index.put.before", "bdbenv.index.put.after"),
    index_del: ("bdbenv.index.del.before", "bdbenv.index.del.after"),
};

impl<P: Pages> bdbstore::Kv for DataFile<'_, P> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        DataFile::get(self, key).map_err(data_err)
    }
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), BackendError> {
        DataFile::put(self, key, value).map_err(data_err)
    }
    fn del(&mut self, key: &[u8]) -> Result<bool, BackendError> {
        DataFile::del(self, key).map_err(data_err)
    }
}

impl Store for BdbEnv {
    type Error = BackendError;

    fn put_package(&mut self, blob: &[u8]) -> Result<u32, BackendError> {
        self.with_file(0, true, |df| bdbstore::put_package(df, &POINTS, blob))
    }

    fn del_package(&mut self, hnum: u32) -> Result<(), BackendError> {
        self.with_file(0, true, |df| bdbstore::del_package(df, &POINTS, hnum))
    }

    fn get_package(&mut self, hnum: u32) -> Result<Option<Vec<u8>>, BackendError> {
        self.get(hnum)
    }

    fn index_add(&mut self, idx: IndexTag, hnum: u32, entries: &[Entry]) -> Result<(), BackendError> {
        self.with_file(file_id(idx), true, |df| bdbstore::index_add(df, &POINTS, hnum, entries))
    }

    fn index_remove(&mut self, idx: IndexTag, hnum: u32, entries: &[Entry]) -> Result<(), BackendError> {
        self.with_file(file_id(idx), true, |df| bdbstore::index_remove(df, &POINTS, hnum, entries))
    }
}

impl Reader for BdbEnv {
    fn kind(&self) -> BackendKind {
        self.kind
    }

    fn dir(&self) -> &Path {
        &self.dir
    }

    fn get(&mut self, hnum: u32) -> Result<Option<Vec<u8>>, BackendError> {
        self.with_file(0, false, |df| df.get(&hnum.to_ne_bytes()).map_err(data_err))
    }

    fn lookup(&mut self, idx: IndexTag, key: &[u8]) -> Result<Vec<(u32, u32)>, BackendError> {
        self.with_file(file_id(idx), false, |df| {
            Ok(df.get(key).map_err(data_err)?.and_then(|v| unpack_set(&v)).unwrap_or_default())
        })
    }

    fn hnums(&mut self) -> Result<Vec<u32>, BackendError> {
        self.with_file(0, false, |df| {
            // Salvage: rebuilddb must get every readable header out of a damaged file.
            let mut v: Vec<u32> = df
                .salvage()
                .map_err(data_err)?
                .0
                .into_iter()
                .filter_map(|(k, _)| k.try_into().ok().map(u32::from_ne_bytes))
                .filter(|&h| h != 0)
                .collect();
            v.sort_unstable();
            Ok(v)
        })
    }

    fn snapshot(&mut self, findings: &mut Vec<Finding>) -> Result<Snapshot, BackendError> {
        let mut files = Vec::new();
        for file in 0..data_files().len() as u32 {
            files.push(self.with_file(file, false, |df| df.scan().map_err(data_err))?);
        }
        Ok(check::snapshot_from(files, findings))
    }

    fn structural_check(&mut self) -> Result<Vec<Finding>, BackendError> {
        let (e, m, l) = self.region_bytes();
        Ok(check::environment(e, m, l, self.profile))
    }

    fn close(mut self: Box<Self>) -> Result<(), BackendError> {
        self.close_inner()
    }

    fn take_messages(&mut self) -> Vec<String> {
        std::mem::take(&mut self.messages)
    }
}

impl Backend for BdbEnv {
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
        // Non-transactional: "commit" is rpm's sync — write the cache back and fsync.
        point("bdbenv.sync.before");
        self.mpool.sync().map_err(mpool_err)?;
        point("bdbenv.sync.after");
        self.txn_lock = None;
        Ok(())
    }

    fn rollback(&mut self) -> Result<(), BackendError> {
        // Nothing can be undone without transactions; only the lock is released.
        self.txn_lock = None;
        Ok(())
    }
}

impl Drop for BdbEnv {
    fn drop(&mut self) {
        let _ = self.close_inner();
    }
}
