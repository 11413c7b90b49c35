//! `verify` and `inspect` judge a private snapshot, never the directory they are given.
//!
//! Why: opening a database, even read-only, writes — sqlite creates `-wal`/`-shm`, rpm creates `.rpm.lock`,
//! an environment is joined — so checking a bundle's `post/` would alter the evidence, checking a read-only
//! mount would fail, and a database locked by a live process would look "locked". Copying the database's
//! regular files into a fresh `mkdtemp` directory and checking the copy avoids all three. The copy refuses
//! what is not a regular file (a FIFO would block the read for ever, `/dev/zero` never ends) and reports
//! read errors instead of treating a file as empty.
//!
//! Also here: finding the database in a root the way rpm does (`--dbpath`, or the usual locations).

use dbtorture_backends::bdbenv::origin::Origin;
use dbtorture_backends::rpmdb::Finding;
use dbtorture_backends::{BackendError, BackendKind};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Where rpm keeps its database inside a root, in the order they are tried: Fedora ≥ 36 and openSUSE,
/// Debian's and RHEL's system location, Debian's rpm default (`%_dbpath` is `~/.rpmdb` as root).
pub const ROOT_DBPATHS: &[&str] = &["usr/lib/sysimage/rpm", "var/lib/rpm", "root/.rpmdb"];

/// Files not copied: sqlite rebuilds its wal-index from the `-wal` file when it is the only user.
const SKIPPED: &[&str] = &["rpmdb.sqlite-shm"];

#[derive(Debug, thiserror::Error)]
pub enum ReadOnlyError {
    #[error("{dir}: no {backend} database here (looked in: {looked})")]
    NotFound { dir: PathBuf, backend: &'static str, looked: String },
    #[error("{path}: {what}, not a regular file; refusing to read it")]
    Special { path: PathBuf, what: &'static str },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Backend(#[from] BackendError),
}

/// The database directory to judge: `root/dbpath` with `--dbpath`; else `dir` itself when it holds the
/// backend's database; else the first of [`ROOT_DBPATHS`] inside `dir` that does. (For `--backend rpm`,
/// whose target is a root, the database directory inside it.)
pub fn locate(kind: BackendKind, dir: &Path, dbpath: Option<&Path>) -> Result<PathBuf, ReadOnlyError> {
    let holds = |d: &Path| match kind {
        BackendKind::Sqlite | BackendKind::Rpm => d.join(dbtorture_backends::sqlite::DB_FILE).exists(),
        _ => d.join("Packages").exists(),
    };
    let candidates: Vec<PathBuf> = match dbpath {
        Some(p) => vec![dir.join(p.strip_prefix("/").unwrap_or(p))],
        None => std::iter::once(dir.to_path_buf()).chain(ROOT_DBPATHS.iter().map(|p| dir.join(p))).collect(),
    };
    candidates.iter().find(|d| holds(d)).cloned().ok_or_else(|| ReadOnlyError::NotFound {
        dir: dir.to_path_buf(),
        backend: kind.name(),
        looked: candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", "),
    })
}

/// A private copy of a database directory, removed on drop.
pub struct Snapshot {
    tmp: tempfile::TempDir,
    /// What the backend's check is given: the copy of the database directory, or for `rpm` a root holding
    /// it at the place the rpm target expects.
    pub target: PathBuf,
}

impl Snapshot {
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }
}

/// Copy the regular files of `db_dir` into a fresh private directory laid out for `kind`.
pub fn snapshot(kind: BackendKind, db_dir: &Path) -> Result<Snapshot, ReadOnlyError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReadOnlyError::Io { path, source }
    };
    let tmp = crate::leftovers::scratch("verify").map_err(io(&std::env::temp_dir()))?;
    let (target, copy_to) = if kind == BackendKind::Rpm {
        let root = tmp.path().join("root");
        (root.clone(), dbtorture_backends::rpmcli::db_dir(&root))
    } else {
        (tmp.path().join("db"), tmp.path().join("db"))
    };
    std::fs::create_dir_all(&copy_to).map_err(io(&copy_to))?;
    let mut entries: Vec<_> = std::fs::read_dir(db_dir)
        .map_err(io(db_dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io(db_dir))?;
    entries.sort();
    for name in entries {
        if SKIPPED.iter().any(|s| name == *s) {
            continue;
        }
        let src = db_dir.join(&name);
        copy_regular(&src, &copy_to.join(&name))?;
    }
    Ok(Snapshot { tmp, target })
}

/// Copy one file if it is a regular file (symlinks followed); directories are skipped (not part of a
/// database); anything else is refused. Never blocks on a FIFO: opened with O_NONBLOCK, judged by fstat.
fn copy_regular(src: &Path, dst: &Path) -> Result<(), ReadOnlyError> {
    let io = |source| ReadOnlyError::Io { path: src.to_path_buf(), source };
    let meta = std::fs::metadata(src).map_err(io)?;
    if meta.is_dir() {
        return Ok(());
    }
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(src).map_err(io)?;
    let meta = f.metadata().map_err(io)?;
    check_regular(src, &meta)?;
    let mut out = std::fs::File::create(dst).map_err(|source| ReadOnlyError::Io { path: dst.to_path_buf(), source })?;
    // A file that grows while it is copied (a live writer) is copied as it was when opened, give or take
    // what was appended meanwhile: the bound is its size then, plus what a busy writer adds in a moment.
    let bound = meta.len().saturating_add(64 << 20);
    // std::io::copy copies File to File in the kernel (copy_file_range), not through a buffer here.
    let done = std::io::copy(&mut Read::take(&f, bound + 1), &mut out).map_err(io)?;
    if done > bound {
        return Err(io(std::io::Error::other("the file kept growing while it was copied")));
    }
    let _ = std::fs::set_permissions(dst, std::os::unix::fs::PermissionsExt::from_mode(0o600));
    Ok(())
}

/// `Err` naming what `meta` is unless it is a regular file.
pub fn check_regular(path: &Path, meta: &std::fs::Metadata) -> Result<(), ReadOnlyError> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_dir() {
        "a directory"
    } else {
        "a special file"
    };
    Err(ReadOnlyError::Special { path: path.to_path_buf(), what })
}

/// `verify`: locate the database, snapshot it, check the snapshot — a BDB-style environment's region files
/// in the layout of the machine that wrote them (`origin`; see `bundle::origin`).
pub fn verify(
    kind: BackendKind,
    dir: &Path,
    dbpath: Option<&Path>,
    origin: Origin,
) -> Result<Vec<Finding>, ReadOnlyError> {
    let db_dir = locate(kind, dir, dbpath)?;
    let snap = snapshot(kind, &db_dir)?;
    match kind.profile() {
        Some(p) if origin != Origin::HERE => Ok(dbtorture_backends::bdbenv::check::full_as(&snap.target, p, origin)?.0),
        _ => Ok(kind.verify_threaded(&snap.target, dbtorture_backends::OpenMode::ReadOnly)?),
    }
}

/// `verify --oracle rpm`: the real rpm regenerates the indexes of a private copy and they are compared with
/// what the (snapshot of the) database stores (see `dbtorture_backends::rpmoracle`). Err(String) when rpm
/// cannot judge this backend or could not run.
pub fn rpm_oracle(
    kind: BackendKind,
    dir: &Path,
    dbpath: Option<&Path>,
) -> Result<Result<dbtorture_backends::rpmoracle::OracleReport, String>, ReadOnlyError> {
    let db_dir = locate(kind, dir, dbpath)?;
    let snap = snapshot(kind, &db_dir)?;
    Ok(dbtorture_backends::rpmoracle::check(kind, &snap.target, &snap.path().join("rpm-oracle")))
}

/// `inspect`: the same for a BDB-style environment's region files; the report names the original directory.
pub fn inspect(
    dir: &Path,
    profile: dbtorture_backends::bdbenv::Profile,
    origin: Origin,
) -> Result<dbtorture_backends::bdbenv::inspect::Inspection, ReadOnlyError> {
    let snap = snapshot(BackendKind::Bdbenv, dir)?;
    let mut i = dbtorture_backends::bdbenv::inspect::inspect_as(&snap.target, profile, origin)
        .map_err(|source| ReadOnlyError::Io { path: dir.to_path_buf(), source })?;
    i.dir = dir.display().to_string();
    Ok(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(&d.path().join("Packages"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = snapshot(BackendKind::Bdbenv, d.path()).err().unwrap();
        assert!(e.to_string().contains("a FIFO"), "{e}");
    }

    #[test]
    fn a_symlink_to_dev_zero_is_refused() {
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/zero", d.path().join("Packages")).unwrap();
        let e = snapshot(BackendKind::Bdbenv, d.path()).err().unwrap();
        assert!(e.to_string().contains("a character device"), "{e}");
    }

    #[test]
    fn locate_follows_rpm_s_places_in_a_root_and_dbpath() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        assert!(locate(BackendKind::Sqlite, r, None).is_err());
        for p in ROOT_DBPATHS.iter().rev() {
            std::fs::create_dir_all(r.join(p)).unwrap();
            std::fs::write(r.join(p).join("rpmdb.sqlite"), b"").unwrap();
            assert_eq!(locate(BackendKind::Sqlite, r, None).unwrap(), r.join(p), "{p}");
        }
        std::fs::create_dir_all(r.join("opt/db")).unwrap();
        std::fs::write(r.join("opt/db/rpmdb.sqlite"), b"").unwrap();
        assert_eq!(locate(BackendKind::Sqlite, r, Some(Path::new("/opt/db"))).unwrap(), r.join("opt/db"));
        assert!(locate(BackendKind::Sqlite, r, Some(Path::new("/opt/none"))).is_err());
        assert!(locate(BackendKind::Bdbenv, r, None).is_err());
    }
}
