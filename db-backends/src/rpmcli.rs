//! The real thing as a target: Debian's `rpm` binary (4.18, sqlite rpmdb) driven through its command line
//! inside a scratch root, so dbtorture can kill the real rpm in the middle of `-U`, `-e` or `--rebuilddb`.
//!
//! Why a `Backend`: the harness (workers, oracle, verifier, probe, recovery) is written once against the
//! trait. Writes go through the rpm binary: `install` and `erase` only collect the transaction, `commit` runs
//! `rpm -U` (and `rpm -e` for what the upgrade left), and an exit status of 0 is the acknowledgement. Reads
//! go straight to `rpmdb.sqlite` through [`SqliteBackend`] read-only — the same reader rpm itself would be,
//! and our full cross-check. rpm commits each package in its own sqlite transaction, so a multi-package
//! transaction is not atomic (a killed upgrade may leave both versions), but every package is.
//!
//! The root `R` holds `var/lib/rpm/` (the database, `--dbpath /var/lib/rpm` resolved inside `R`), the
//! files rpm installs, and `pkgs/SHA1HEADER.rpm`: the workload's packages, written by the scheduler.
//! Never the system's: the root is a scratch directory of the run.

use crate::backend::{Backend, BackendError, BackendKind, OpenMode, Reader};
use crate::rpmdb::{Finding, Header, IndexTag, Snapshot, tags};
use crate::sqlite::SqliteBackend;
use crate::tool::{self, ToolRun};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The database inside the root (what `--dbpath /var/lib/rpm` means with `--root R`).
pub const DBPATH: &str = "var/lib/rpm";
/// The workload's package files inside the root.
pub const PKGS: &str = "pkgs";

/// The rpm database directory of root `root`.
pub fn db_dir(root: &Path) -> PathBuf {
    root.join(DBPATH)
}

/// The package file of a header with this SHA1HEADER.
pub fn package_file(root: &Path, sha1: &str) -> PathBuf {
    root.join(PKGS).join(format!("{sha1}.rpm"))
}

static INTERRUPT: OnceLock<fn() -> bool> = OnceLock::new();

/// Tell rpm runs how to notice a Ctrl-C of the worker (the harness's SIGINT/SIGTERM flag): it is forwarded to
/// the running rpm, which finishes the package in hand and exits, as it does at a terminal.
pub fn set_interrupt_check(f: fn() -> bool) {
    let _ = INTERRUPT.set(f);
}

/// Debian's rpm refuses to install without `--force-debian` ("use Alien instead"); others do not know it.
fn debian_flag() -> &'static [&'static str] {
    static FLAG: OnceLock<bool> = OnceLock::new();
    let debian = *FLAG.get_or_init(|| {
        Command::new("rpm")
            .args(["--force-debian", "--version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if debian { &["--force-debian"] } else { &[] }
}

/// Whether an rpm binary is installed.
pub fn available() -> bool {
    Command::new("rpm").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// How long one rpm command may take: a worker's rpm is killed by the cycle timeout long before; these
/// bound the scheduler's own rpm runs (checks, recovery), which must never stop a run.
const RPM_DEADLINE: Duration = Duration::from_secs(300);

/// `program` (rpm or rpmdb) with `--root root --dbpath /var/lib/rpm` and `args`.
pub fn command(program: &str, root: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.arg("--root").arg(root).args(["--dbpath", "/var/lib/rpm"]);
    // Only rpm's install/erase modes know it (rpm hands --initdb/--rebuilddb to rpmdb, which does not).
    if program == "rpm" && args.iter().any(|a| matches!(*a, "-U" | "-i" | "-e")) {
        cmd.args(debian_flag());
    }
    cmd.args(args);
    cmd
}

/// Run [`command`] (dying with this process, bounded in time and output, Ctrl-C forwarded).
pub fn run(program: &str, root: &Path, args: &[&str]) -> std::io::Result<ToolRun> {
    tool::run(command(program, root, args), RPM_DEADLINE, INTERRUPT.get().copied())
}

fn rpm_err(program: &str, args: &[&str], r: &ToolRun) -> BackendError {
    BackendError::Other(format!(
        "`{program} {}` {}: {}",
        args.join(" "),
        r.describe(),
        r.lines().collect::<Vec<_>>().join(" | ")
    ))
}

/// Options of every write: no dependency solving (workload packages need not close over their requires), no
/// scripts.
const WRITE_FLAGS: &[&str] = &["--nodeps", "--noscripts", "--notriggers"];
/// And of installs: any arch (i686 and noarch packages on any host), packages may share file paths, and an
/// "upgrade" may go to an older version (the workload picks any other version of a name).
const INSTALL_FLAGS: &[&str] = &["--ignorearch", "--ignoreos", "--replacefiles", "--oldpackage"];
/// rpm does not wait for another rpm's transaction lock: it fails at once, before changing anything, with
/// "can't create transaction lock on … (Resource temporarily unavailable)". Two writers of one root meet it
/// all the time; retry, as a user would — for a while (other reasons, e.g. EACCES, are not retried).
const LOCK_BUSY: [&str; 2] = ["can't create transaction lock", "Resource temporarily unavailable"];
const LOCK_RETRY_FOR: Duration = Duration::from_secs(60);

/// An rpm root driven through the rpm binary.
pub struct RpmCli {
    root: PathBuf,
    /// Read view of rpm's database (opened on first read).
    read: Option<SqliteBackend>,
    installs: Vec<PathBuf>,
    /// Header numbers to erase, with their N-V-R.A.
    erases: Vec<(u32, String)>,
    in_txn: bool,
    messages: Vec<String>,
    writable: bool,
}

impl RpmCli {
    pub fn open(root: &Path, mode: OpenMode) -> Result<RpmCli, BackendError> {
        let io = |source| BackendError::Io { path: root.to_path_buf(), source };
        let mut messages = Vec::new();
        match mode {
            OpenMode::Create => {
                std::fs::create_dir_all(root.join(PKGS)).map_err(io)?;
                if !db_dir(root).join(crate::sqlite::DB_FILE).exists() {
                    let r = run("rpm", root, &["--initdb"]).map_err(io)?;
                    if !r.ok() {
                        return Err(rpm_err("rpm", &["--initdb"], &r));
                    }
                    messages.extend(r.lines().map(String::from));
                }
            }
            OpenMode::ReadWrite | OpenMode::ReadOnly => {
                let db = db_dir(root).join(crate::sqlite::DB_FILE);
                if !db.exists() {
                    return Err(BackendError::Io {
                        path: db,
                        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no rpm database in this root"),
                    });
                }
            }
        }
        Ok(RpmCli {
            root: root.to_path_buf(),
            read: None,
            installs: Vec::new(),
            erases: Vec::new(),
            in_txn: false,
            messages,
            writable: mode != OpenMode::ReadOnly,
        })
    }

    fn reader(&mut self) -> Result<&mut SqliteBackend, BackendError> {
        if self.read.is_none() {
            self.read = Some(SqliteBackend::open(&db_dir(&self.root), OpenMode::ReadOnly)?);
        }
        Ok(self.read.as_mut().expect("just opened"))
    }

    fn rpm(&mut self, args: &[&str]) -> Result<(), BackendError> {
        let mut wait = Duration::from_millis(2);
        let start = std::time::Instant::now();
        loop {
            let r =
                run("rpm", &self.root, args).map_err(|source| BackendError::Io { path: self.root.clone(), source })?;
            let busy = !r.ok() && r.stderr.lines().any(|l| LOCK_BUSY.iter().all(|p| l.contains(p)));
            if busy && start.elapsed() < LOCK_RETRY_FOR && !INTERRUPT.get().is_some_and(|f| f()) {
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_millis(50));
                continue;
            }
            self.messages.extend(r.lines().map(|l| format!("rpm: {l}")));
            // Read what rpm left through a fresh connection: rpm may have replaced the file.
            self.read = None;
            return if r.ok() { Ok(()) } else { Err(rpm_err("rpm", args, &r)) };
        }
    }
}

/// name-version-release.arch of a header, as `rpm -e` takes it.
fn nvra(h: &Header<'_>) -> String {
    let s = |t| h.string(t).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
    let arch = s(tags::ARCH);
    let base = format!("{}-{}-{}", s(tags::NAME), s(tags::VERSION), s(tags::RELEASE));
    if arch.is_empty() { base } else { format!("{base}.{arch}") }
}

impl Reader for RpmCli {
    fn kind(&self) -> BackendKind {
        BackendKind::Rpm
    }

    fn dir(&self) -> &Path {
        &self.root
    }

    fn get(&mut self, hnum: u32) -> Result<Option<Vec<u8>>, BackendError> {
        self.reader()?.get(hnum)
    }

    fn lookup(&mut self, index: IndexTag, key: &[u8]) -> Result<Vec<(u32, u32)>, BackendError> {
        self.reader()?.lookup(index, key)
    }

    fn begin_read(&mut self) -> Result<(), BackendError> {
        self.reader()?.begin_read()
    }

    fn end_read(&mut self) -> Result<(), BackendError> {
        self.reader()?.end_read()
    }

    fn hnums(&mut self) -> Result<Vec<u32>, BackendError> {
        self.reader()?.hnums()
    }

    fn snapshot(&mut self, findings: &mut Vec<Finding>) -> Result<Snapshot, BackendError> {
        self.reader()?.snapshot(findings)
    }

    fn structural_check(&mut self) -> Result<Vec<Finding>, BackendError> {
        self.reader()?.structural_check()
    }

    fn close(self: Box<Self>) -> Result<(), BackendError> {
        if let Some(r) = self.read {
            Box::new(r).close()?;
        }
        Ok(())
    }

    fn take_messages(&mut self) -> Vec<String> {
        std::mem::take(&mut self.messages)
    }
}

impl Backend for RpmCli {
    fn begin(&mut self) -> Result<(), BackendError> {
        if !self.writable {
            return Err(BackendError::ReadOnly);
        }
        if self.in_txn {
            return Err(BackendError::TransactionActive);
        }
        self.in_txn = true;
        self.installs.clear();
        self.erases.clear();
        Ok(())
    }

    fn install(&mut self, blob: &[u8]) -> Result<crate::Installed, BackendError> {
        if !self.in_txn {
            return Err(BackendError::NoTransaction);
        }
        let h = Header::parse(blob)?;
        let sha1 = h
            .string(tags::SHA1HEADER)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .ok_or_else(|| BackendError::Other("the header has no SHA1HEADER: no package file to install".into()))?;
        let file = package_file(&self.root, &sha1);
        if !file.exists() {
            return Err(BackendError::Other(format!("{}: no such package file", file.display())));
        }
        self.installs.push(file);
        // rpm assigns the header number when it commits the package.
        Ok(crate::Installed::AtCommit)
    }

    fn erase(&mut self, hnum: u32) -> Result<(), BackendError> {
        if !self.in_txn {
            return Err(BackendError::NoTransaction);
        }
        let blob = self.reader()?.get(hnum)?.ok_or(BackendError::NoSuchPackage(hnum))?;
        let name = nvra(&Header::parse(&blob)?);
        self.erases.push((hnum, name));
        Ok(())
    }

    /// `rpm -U` the new packages (which erases the other versions of their names, as an upgrade does), then
    /// `rpm -e` what is still to go. Returns when rpm exited 0: the acknowledgement.
    fn commit(&mut self) -> Result<(), BackendError> {
        if !self.in_txn {
            return Err(BackendError::NoTransaction);
        }
        self.in_txn = false;
        if !self.installs.is_empty() {
            let files: Vec<String> = self.installs.iter().map(|p| p.display().to_string()).collect();
            let mut args: Vec<&str> = vec!["-U"];
            args.extend(WRITE_FLAGS);
            args.extend(INSTALL_FLAGS);
            args.extend(files.iter().map(String::as_str));
            self.rpm(&args)?;
        }
        // Whatever the upgrade did not already erase (e.g. a version of another arch colour).
        let erases = std::mem::take(&mut self.erases);
        let mut left = Vec::new();
        for (hnum, name) in erases {
            let r = self.reader()?;
            r.begin_read()?;
            let present = r.get(hnum)?.is_some();
            r.end_read()?;
            if present {
                left.push(name);
            }
        }
        if !left.is_empty() {
            let mut args: Vec<&str> = vec!["-e"];
            args.extend(WRITE_FLAGS);
            args.extend(left.iter().map(String::as_str));
            self.rpm(&args)?;
        }
        self.installs.clear();
        Ok(())
    }

    fn rollback(&mut self) -> Result<(), BackendError> {
        self.in_txn = false;
        self.installs.clear();
        self.erases.clear();
        Ok(())
    }
}

/// rpm's own view of a root, beside our cross-check: `rpmdb --verifydb` must pass and `rpm -qa` must list
/// exactly the packages our reading of rpmdb.sqlite found (by SHA1HEADER). What rpm printed is kept in the
/// findings when it disagrees.
pub fn rpm_checks(root: &Path, snap: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    let verify = ["--verifydb"];
    match run("rpmdb", root, &verify) {
        Ok(r) if r.ok() => {}
        Ok(r) => out.push(Finding::Unopenable { detail: rpm_err("rpmdb", &verify, &r).to_string() }),
        Err(e) => out.push(Finding::Unopenable { detail: format!("rpmdb --verifydb: {e}") }),
    }
    let qa = ["-qa", "--qf", "%{SHA1HEADER}\\n"];
    match run("rpm", root, &qa) {
        Ok(r) if r.ok() => {
            // stdout only: rpm's warnings go to stderr.
            let theirs: std::collections::BTreeSet<String> =
                r.stdout.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
            let ours: std::collections::BTreeSet<String> = snap
                .packages
                .iter()
                .map(|(_, blob)| {
                    Header::parse(blob)
                        .ok()
                        .and_then(|h| h.string(tags::SHA1HEADER).map(|s| String::from_utf8_lossy(s).into_owned()))
                        // rpm prints a missing tag as "(none)".
                        .unwrap_or_else(|| "(none)".into())
                })
                .collect();
            for s in theirs.symmetric_difference(&ours) {
                out.push(Finding::UnexpectedPackage {
                    package: s.clone(),
                    detail: if theirs.contains(s) {
                        "rpm -qa lists it but rpmdb.sqlite's Packages does not hold it".into()
                    } else {
                        "in Packages but rpm -qa does not list it".into()
                    },
                });
            }
        }
        Ok(r) => out.push(Finding::ProbeFailed { detail: rpm_err("rpm", &qa, &r).to_string() }),
        Err(e) => out.push(Finding::ProbeFailed { detail: format!("rpm -qa: {e}") }),
    }
    out
}

/// `rpm --rebuilddb` in the root: rpm's own recovery.
pub fn rebuilddb(root: &Path) -> Result<ToolRun, BackendError> {
    let r =
        run("rpm", root, &["--rebuilddb"]).map_err(|source| BackendError::Io { path: root.to_path_buf(), source })?;
    if r.ok() { Ok(r) } else { Err(rpm_err("rpm", &["--rebuilddb"], &r)) }
}
