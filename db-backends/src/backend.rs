//! The `Backend` trait: one database implementation behind one interface, and what it promises.
//!
//! Why a trait: the harness (workload, scheduler, verifier) is written once against it; backends differ in
//! storage and in what they promise, and the promise is what lets the harness tell an expected failure from a
//! bug. Index maintenance is not here: backends implement [`crate::rpmdb::Store`] and call the rpmdb layer.

use crate::rpmdb::{Finding, IndexTag, Snapshot};
use std::path::{Path, PathBuf};

/// What survives a crash, by contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Promises {
    /// A transaction is all-or-nothing after a crash at any point.
    pub atomic: bool,
    /// Once `commit` has returned, the transaction survives a process crash.
    pub durable: bool,
    /// Readers see a consistent state while writers work (no half-written transaction is visible).
    pub isolated: bool,
}

/// How to open a database directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the directory and database if missing (as rpm --initdb would).
    Create,
    /// Open an existing database for reading and writing.
    ReadWrite,
    /// Open an existing database without writing anything (safe on a system rpmdb).
    ReadOnly,
}

/// The backends this build knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    Sqlite,
    /// The BDB-style environment as rpm ≥ 4.6 used it (failchk).
    Bdbenv,
    /// The same with db 4.3: no failchk.
    BdbenvDb43,
    /// The real rpm binary (Debian's rpm 4.18, sqlite rpmdb) in a scratch root.
    Rpm,
    /// Real Berkeley DB 5.3 (Debian's libdb-5.3) configured as rpm 4.16 used it.
    Libdb,
}

impl BackendKind {
    pub const ALL: &'static [BackendKind] =
        &[BackendKind::Sqlite, BackendKind::Bdbenv, BackendKind::BdbenvDb43, BackendKind::Libdb, BackendKind::Rpm];

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Sqlite => "sqlite",
            BackendKind::Bdbenv => "bdbenv",
            BackendKind::BdbenvDb43 => "bdbenv-db43",
            BackendKind::Rpm => "rpm",
            BackendKind::Libdb => "libdb",
        }
    }

    /// Whether the target needs the workload's `.rpm` files in its directory (see [`crate::rpmcli`]).
    pub fn needs_package_files(self) -> bool {
        self == BackendKind::Rpm
    }

    /// Whether a database of this backend is in `dir`.
    pub fn present(self, dir: &Path) -> bool {
        match self {
            BackendKind::Sqlite => dir.join(crate::sqlite::DB_FILE).exists(),
            BackendKind::Bdbenv | BackendKind::BdbenvDb43 | BackendKind::Libdb => dir.join("Packages").exists(),
            BackendKind::Rpm => crate::rpmcli::db_dir(dir).join(crate::sqlite::DB_FILE).exists(),
        }
    }

    /// Whether the engine is someone else's code (real Berkeley DB): a crash inside it under an injected
    /// fault is the fault's effect; a crash inside one of ours is a bug.
    pub fn is_foreign(self) -> bool {
        self == BackendKind::Libdb
    }

    /// The prefix of this backend's crash points.
    pub fn point_prefix(self) -> &'static str {
        match self {
            BackendKind::Sqlite => "sqlite",
            BackendKind::Bdbenv | BackendKind::BdbenvDb43 => "bdbenv",
            // No crash points inside a foreign binary: rpm is killed at random times.
            BackendKind::Rpm => "rpm",
            BackendKind::Libdb => "libdb",
        }
    }

    pub fn profile(self) -> Option<crate::bdbenv::Profile> {
        match self {
            BackendKind::Sqlite | BackendKind::Rpm | BackendKind::Libdb => None,
            BackendKind::Bdbenv => Some(crate::bdbenv::Profile::Db46),
            BackendKind::BdbenvDb43 => Some(crate::bdbenv::Profile::Db43),
        }
    }

    /// The recovery procedures `dbtorture recover --procedure` can run on this backend.
    pub fn procedures(self) -> &'static [&'static str] {
        match self {
            BackendKind::Bdbenv | BackendKind::BdbenvDb43 => &["rebuilddb", "db_recover"],
            BackendKind::Sqlite | BackendKind::Rpm | BackendKind::Libdb => &["rebuilddb"],
        }
    }

    /// Whether the engine's files hold native machine words (pointer-width offsets in the shared regions,
    /// host byte order): a database written on another kind of machine reads as damage here.
    pub fn native_layout(self) -> bool {
        match self {
            BackendKind::Bdbenv | BackendKind::BdbenvDb43 | BackendKind::Libdb => true,
            BackendKind::Sqlite | BackendKind::Rpm => false,
        }
    }

    /// Whether the engine rebuilds its own database (the rpm binary's `--rebuilddb`): a conversion into or
    /// out of it is not ours to run.
    pub fn rebuilds_itself(self) -> bool {
        match self {
            BackendKind::Rpm => true,
            BackendKind::Sqlite | BackendKind::Bdbenv | BackendKind::BdbenvDb43 | BackendKind::Libdb => false,
        }
    }

    /// The named recovery procedure the harness runs when a cycle needs one.
    pub fn recovery_name(self) -> &'static str {
        match self {
            BackendKind::Sqlite => "rebuilddb",
            BackendKind::Bdbenv | BackendKind::BdbenvDb43 | BackendKind::Libdb => "rm __db.* + rebuilddb",
            BackendKind::Rpm => "rpm --rebuilddb",
        }
    }

    /// Recover a database directory: sqlite — rebuilddb; bdbenv — db_recover (panic + remove the region
    /// files, as `rm __db.*`) then rebuilddb from Packages; libdb — rpm's answer for a CDB environment
    /// (db_recover needs logs): `rm __db.*`, then rebuilddb.
    pub fn recover(self, dir: &Path) -> Result<crate::rebuild::RebuildReport, BackendError> {
        if self == BackendKind::Rpm {
            crate::rpmcli::rebuilddb(dir)?;
            let n = crate::sqlite::SqliteBackend::open(&crate::rpmcli::db_dir(dir), OpenMode::ReadOnly)?.hnums()?.len();
            return Ok(crate::rebuild::RebuildReport { copied: n, skipped: Vec::new() });
        }
        if self.profile().is_some() {
            crate::bdbenv::db_recover(dir).map_err(|source| BackendError::Io { path: dir.to_path_buf(), source })?;
        }
        if self == BackendKind::Libdb {
            crate::libdb::remove_regions(dir).map_err(|source| BackendError::Io { path: dir.to_path_buf(), source })?;
        }
        crate::rebuild::rebuilddb(self, self, dir)
    }

    /// Open `dir` and hold a cursor on Packages (read, or a write cursor) until the process is killed;
    /// prints "held" once it holds it. For the environment backends (stale locks of killed processes).
    pub fn hold(self, dir: &Path, write: bool) -> Result<std::convert::Infallible, BackendError> {
        match self {
            BackendKind::Libdb => crate::libdb::hold(dir, write),
            _ => crate::bdbenv::hold(self, dir, write),
        }
    }

    pub fn from_name(s: &str) -> Option<BackendKind> {
        Self::ALL.iter().copied().find(|k| k.name() == s)
    }

    pub fn description(self) -> &'static str {
        match self {
            BackendKind::Sqlite => "rpm 4.16+ rpmdb.sqlite: WAL, synchronous=FULL, one SAVEPOINT per package",
            BackendKind::Bdbenv => {
                "BDB-style shared environment (__db.001-003, CDB locks) as rpm 4.6+ used it, with failchk"
            }
            BackendKind::BdbenvDb43 => "the same environment as db 4.3 had it: no failchk, stale locks block for ever",
            BackendKind::Rpm => {
                "the real rpm binary (rpm -U/-e/--rebuilddb) in a scratch root; checked in rpmdb.sqlite"
            }
            BackendKind::Libdb => {
                "real Berkeley DB 5.3 as rpm 4.16 used it: CDB + mpool, is_alive + failchk, hash Packages, btree indexes"
            }
        }
    }

    pub fn promises(self) -> Promises {
        match self {
            BackendKind::Sqlite => Promises { atomic: true, durable: true, isolated: true },
            // Non-transactional: a kill between page writes leaves Packages and indexes out of step; what was
            // synced before the acknowledgement stays.
            BackendKind::Bdbenv | BackendKind::BdbenvDb43 | BackendKind::Libdb => {
                Promises { atomic: false, durable: true, isolated: false }
            }
            // rpm commits every package in its own sqlite transaction: a killed upgrade may leave both
            // versions, but no reader ever sees half a package.
            BackendKind::Rpm => Promises { atomic: false, durable: true, isolated: true },
        }
    }

    /// Open in the writer's role ([`OpenMode::Create`] or [`OpenMode::ReadWrite`]; a process that only
    /// reads uses [`BackendKind::open_reader`]).
    pub fn open(self, dir: &Path, mode: OpenMode) -> Result<Box<dyn Backend>, BackendError> {
        match self {
            BackendKind::Sqlite => Ok(Box::new(crate::sqlite::SqliteBackend::open(dir, mode)?)),
            BackendKind::Rpm => Ok(Box::new(crate::rpmcli::RpmCli::open(dir, mode)?)),
            BackendKind::Bdbenv | BackendKind::BdbenvDb43 => {
                let p = self.profile().expect("bdbenv kinds have a profile");
                Ok(Box::new(crate::bdbenv::BdbEnv::open(dir, mode, self, p)?))
            }
            BackendKind::Libdb => crate::libdb::open(dir, mode),
        }
    }

    /// Open an existing database in the reader's role, writing nothing ([`OpenMode::ReadOnly`]): the object
    /// has no writing method to call.
    pub fn open_reader(self, dir: &Path) -> Result<Box<dyn Reader>, BackendError> {
        let db: Box<dyn Reader> = self.open(dir, OpenMode::ReadOnly)?;
        Ok(db)
    }

    /// Full verification of a database directory: storage checks plus the rpmdb cross-check.
    ///
    /// A database that exists but cannot be opened or read is a finding, not an error: only a missing
    /// database (or one we may not read) is an `Err`.
    pub fn verify(self, dir: &Path, mode: OpenMode) -> Result<Vec<Finding>, BackendError> {
        if crate::sqlite_verify::applies(self) {
            use crate::sqlite_verify::{Keep, Threads};
            return Ok(crate::sqlite_verify::check(dir, mode, Threads::No, Keep::Nothing)?.0);
        }
        Ok(self.check(dir, mode)?.0)
    }

    /// [`BackendKind::verify`] in a process that never forks afterwards (the `verify` command): the engine's
    /// storage check may run in a thread beside the cross-check (`sqlite_verify.rs`).
    pub fn verify_threaded(self, dir: &Path, mode: OpenMode) -> Result<Vec<Finding>, BackendError> {
        if crate::sqlite_verify::applies(self) {
            use crate::sqlite_verify::{Keep, Threads};
            return Ok(crate::sqlite_verify::check(dir, mode, Threads::Allowed, Keep::Nothing)?.0);
        }
        self.verify(dir, mode)
    }

    /// What survives losing the engine's shared cache (`rm __db.*`), for the engines whose offline check lays
    /// a cache over the data files; None for the others (what they check is already the files alone).
    pub fn data_files_alone(self, dir: &Path) -> Option<Result<(Vec<Finding>, Snapshot), BackendError>> {
        self.profile().map(|_| crate::bdbenv::durable::data_files_alone(dir))
    }

    /// [`BackendKind::check`] for a caller that needs the findings and Packages, not the index rows (the
    /// per-cycle verify): sqlite's is streamed (`sqlite_verify.rs`), and its snapshot then holds Packages only.
    pub fn check_lean(self, dir: &Path, mode: OpenMode) -> Result<(Vec<Finding>, Option<Snapshot>), BackendError> {
        if crate::sqlite_verify::applies(self) {
            use crate::sqlite_verify::{Keep, Threads};
            return crate::sqlite_verify::check(dir, mode, Threads::No, Keep::Packages);
        }
        self.check(dir, mode)
    }

    /// [`BackendKind::verify`], also returning what was read (if the database could be read).
    pub fn check(self, dir: &Path, mode: OpenMode) -> Result<(Vec<Finding>, Option<Snapshot>), BackendError> {
        if let Some(p) = self.profile() {
            // Never join a possibly damaged environment to judge it: read copies of its files.
            return crate::bdbenv::check::full_as(dir, p, crate::bdbenv::origin::Origin::HERE);
        }
        if self == BackendKind::Libdb {
            // Likewise: copies of the data files read by BDB in a child under a deadline, db5.3_verify, and
            // db5.3_stat -N on a copy of the region files.
            let (mut findings, snap) = crate::libdb::check(dir)?;
            if let Some(s) = &snap {
                findings.extend(crate::rpmdb::cross_check(s));
            }
            return Ok((findings, snap));
        }
        let mut db = match self.open(dir, mode) {
            Ok(db) => db,
            Err(e @ BackendError::Io { .. }) => return Err(e),
            Err(e) => return Ok((vec![Finding::Unopenable { detail: e.to_string() }], None)),
        };
        let mut findings = match db.structural_check() {
            Ok(f) => f,
            Err(e) => vec![Finding::Unopenable { detail: format!("storage check: {e}") }],
        };
        let snap = match db.snapshot(&mut findings) {
            Ok(snap) => snap,
            Err(e) => {
                findings.push(Finding::Unopenable { detail: format!("read: {e}") });
                return Ok((findings, None));
            }
        };
        findings.extend(crate::rpmdb::cross_check(&snap));
        if self == BackendKind::Rpm {
            findings.extend(crate::rpmcli::rpm_checks(dir, &snap));
        }
        Ok((findings, Some(snap)))
    }
}

/// Where an installed header got its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// Numbered now (our engines allocate it when the header is added).
    As(u32),
    /// The engine numbers it when the transaction commits (the rpm binary): no number is known yet.
    AtCommit,
}

impl Installed {
    pub fn number(self) -> Option<u32> {
        match self {
            Installed::As(h) => Some(h),
            Installed::AtCommit => None,
        }
    }
}

/// A database opened by one process, in the reader's role: everything a process that only reads may do.
/// Not shared across fork.
///
/// The durability contract of each writing method is on [`Backend`], the writer's role. A reader opened with
/// [`BackendKind::open_reader`] holds only this trait, so it cannot call a writing method; the engine was
/// also opened [`OpenMode::ReadOnly`] and refuses writes at run time ([`BackendError::ReadOnly`]).
pub trait Reader {
    fn kind(&self) -> BackendKind;
    fn dir(&self) -> &Path;
    /// Read one header blob.
    fn get(&mut self, hnum: u32) -> Result<Option<Vec<u8>>, BackendError>;
    /// Look a key up in an index: (header number, tag index) pairs.
    fn lookup(&mut self, index: IndexTag, key: &[u8]) -> Result<Vec<(u32, u32)>, BackendError>;
    /// Start a read view: lookups and reads until `end_read` see one consistent state (with
    /// [`Promises::isolated`]; backends without isolation have nothing to do).
    fn begin_read(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
    fn end_read(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
    /// Header numbers in Packages.
    fn hnums(&mut self) -> Result<Vec<u32>, BackendError>;
    /// Read everything out for the cross-check; storage-level problems met while reading go to `findings`.
    fn snapshot(&mut self, findings: &mut Vec<Finding>) -> Result<Snapshot, BackendError>;
    /// Storage-engine checks (e.g. sqlite integrity_check, foreign_key_check, schema).
    fn structural_check(&mut self) -> Result<Vec<Finding>, BackendError>;
    /// Close as rpm does (sqlite: optimize + checkpoint). Promises nothing beyond what `commit` did.
    fn close(self: Box<Self>) -> Result<(), BackendError>;
    /// Messages the engine printed (e.g. failchk's "Freeing read locks for locker 0x3"), for the log.
    fn take_messages(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// A database opened by one process, in the writer's role (which includes the reader's). Not shared across
/// fork.
///
/// The durability contract of each method is stated against [`Promises`]: "durable" means it survives a
/// process kill (SIGKILL of any process, at any instruction) — a power cut is a stronger fault, judged
/// separately. Nothing a method does before `commit` returns `Ok` is promised to anyone.
pub trait Backend: Reader {
    /// Start a transaction: take rpm's transaction lock and the database write lock. Promises nothing on
    /// disk; a kill here leaves at most a stale lock (an engine without failchk may need recovery).
    fn begin(&mut self) -> Result<(), BackendError>;
    /// Add one header (blob without magic) with all its index entries, inside the transaction. Nothing is
    /// promised until `commit`: an atomic backend shows none of it after a kill, a non-atomic one may show
    /// the header without some index entries (a finding recovery must repair).
    fn install(&mut self, blob: &[u8]) -> Result<Installed, BackendError>;
    /// Remove one header number and its index entries, inside the transaction (same contract as `install`).
    fn erase(&mut self, hnum: u32) -> Result<(), BackendError>;
    /// Make the transaction durable (per [`Promises::durable`]: every change of it survives any later kill)
    /// and release the locks. Once this returns `Ok`, the transaction is acknowledged; with
    /// [`Promises::atomic`], a kill before it returns leaves all of it or none.
    fn commit(&mut self) -> Result<(), BackendError>;
    /// Abandon the transaction: with [`Promises::atomic`] none of it remains; otherwise what was written
    /// stays as written (the oracle treats it as in flight).
    fn rollback(&mut self) -> Result<(), BackendError>;
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Header(#[from] crate::rpmdb::header::HeaderError),
    #[error("no package with header number {0}")]
    NoSuchPackage(u32),
    #[error("no transaction is active")]
    NoTransaction,
    #[error("a transaction is already active")]
    TransactionActive,
    #[error("database is read-only")]
    ReadOnly,
    /// An error of the shared environment, in Berkeley DB's words (e.g. "rpmdb: Locker is not valid").
    #[error("{0}")]
    Env(String),
    /// The environment must be recovered before use (DB_RUNRECOVERY).
    #[error("{0}")]
    RunRecovery(String),
    #[error("{0}")]
    Other(String),
}

impl<E: Into<BackendError>> From<crate::rpmdb::index::AddError<E>> for BackendError {
    fn from(e: crate::rpmdb::index::AddError<E>) -> Self {
        match e {
            crate::rpmdb::index::AddError::Header(h) => BackendError::Header(h),
            crate::rpmdb::index::AddError::NoSuchPackage(n) => BackendError::NoSuchPackage(n),
            crate::rpmdb::index::AddError::Store(s) => s.into(),
        }
    }
}
