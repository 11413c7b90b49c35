//! The real rpm converting a Berkeley DB rpmdb to sqlite: `rpmdb --dbpath D --define '_db_backend sqlite'
//! --rebuilddb` (Fedora 33's first-boot conversion), and what a kill of it can leave in `D`.
//!
//! Why its own module: the harness kills the real program, so everything about it — the command line, which
//! files say which database is in place, where rpm 4.18 puts its half-built database (`Drebuilddb.PID`, a
//! sibling of `D`) and the original while it swaps (`Dold.PID`), and what rpm itself reads back — is rpm's
//! behaviour, measured (see `toolchain-notes.md`), not ours. rpm renames `D` → `Dold.PID`, then
//! `Drebuilddb.PID` → `D`, then deletes the old files: a kill between the two renames leaves no database at
//! `D` at all, the one window where "the original or the converted one" does not hold.
//!
//! Every read here runs on a private copy: rpm may create files (`.rpm.lock`, an empty `rpmdb.sqlite`) in
//! what it opens.

use crate::backend::BackendKind;
use crate::tool::{self, ToolRun};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The backend rpm converts from (written by our real Berkeley DB 5.3 backend, read by rpm's `bdb_ro`)…
pub const FROM: BackendKind = BackendKind::Libdb;
/// … and into.
pub const TO: BackendKind = BackendKind::Sqlite;

/// How long one of the harness's own rpm runs (a read, a rerun) may take.
const DEADLINE: Duration = Duration::from_secs(120);

/// What rpm prints when it falls back from the configured sqlite backend to a BDB database it finds.
pub const FOUND_BDB: &str = "Found bdb_ro Packages database while attempting sqlite backend";

/// Which database a directory holds after a (possibly killed) conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InPlace {
    /// Only the Berkeley DB files (`Packages`, …).
    Original,
    /// Only rpm's `rpmdb.sqlite`.
    Converted,
    /// Neither: the directory is missing or holds no database.
    Neither,
    /// Both at once.
    Mix,
}

impl InPlace {
    pub fn of(dir: &Path) -> InPlace {
        match (FROM.present(dir), TO.present(dir)) {
            (true, false) => InPlace::Original,
            (false, true) => InPlace::Converted,
            (false, false) => InPlace::Neither,
            (true, true) => InPlace::Mix,
        }
    }
}

/// rpm needs an absolute `--dbpath`.
fn absolute(dir: &Path) -> PathBuf {
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// `rpmdb --dbpath DIR --define '_db_backend sqlite' --rebuilddb`: the conversion itself, its output discarded
/// (it says "Converting database from bdb_ro to sqlite backend" each time; the harness's rerun keeps it).
pub fn command(dir: &Path) -> Command {
    let mut c = Command::new("rpmdb");
    c.arg("--dbpath").arg(absolute(dir)).args(["--define", "_db_backend sqlite", "--rebuilddb"]);
    c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    c
}

/// rpm's scratch directories beside `dir` (`DIRrebuilddb.PID`, `DIRold.PID`): what a killed conversion left.
pub fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
    let mut out: Vec<PathBuf> = std::fs::read_dir(parent)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_prefix(name).is_some_and(|rest| {
                ["rebuilddb.", "old."]
                    .iter()
                    .any(|p| rest.strip_prefix(p).is_some_and(|pid| pid.parse::<u32>().is_ok()))
            })
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Copy the regular files of `src` into a fresh `dst` (no environment regions: rpm's bdb_ro ignores them).
pub fn copy_db(src: &Path, dst: &Path) -> std::io::Result<()> {
    if dst.exists() {
        std::fs::remove_dir_all(dst)?;
    }
    std::fs::create_dir_all(dst)?;
    for e in std::fs::read_dir(src)? {
        let e = e?;
        let name = e.file_name();
        if e.file_type()?.is_file() && !name.to_string_lossy().starts_with("__db.") {
            std::fs::copy(e.path(), dst.join(&name))?;
        }
    }
    Ok(())
}

/// What rpm read from a database: the SHA1HEADER of every package `rpm -qa` lists, and what it said.
#[derive(Debug, Clone, Default)]
pub struct RpmRead {
    pub sha1s: BTreeSet<String>,
    /// rpm fell back to bdb_ro ([`FOUND_BDB`]).
    pub found_bdb: bool,
    pub stderr: Vec<String>,
}

/// `rpm -qa` (sqlite configured, as after the conversion) on a copy of `dir` made in `scratch`.
pub fn rpm_reads(dir: &Path, scratch: &Path) -> Result<RpmRead, String> {
    copy_db(dir, scratch).map_err(|e| format!("copying {} to {}: {e}", dir.display(), scratch.display()))?;
    let mut c = Command::new("rpm");
    c.arg("--dbpath").arg(absolute(scratch)).args([
        "--define",
        "_db_backend sqlite",
        "-qa",
        "--qf",
        "%{SHA1HEADER}\\n",
    ]);
    let r = tool::run(c, DEADLINE, None).map_err(|e| format!("rpm -qa: {e}"))?;
    if !r.ok() {
        return Err(format!("rpm -qa {}: {}", r.describe(), r.stderr.trim()));
    }
    Ok(RpmRead {
        sha1s: r.stdout.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect(),
        found_bdb: r.stderr.contains(FOUND_BDB),
        stderr: r.stderr.lines().filter(|l| !l.trim().is_empty()).map(String::from).collect(),
    })
}

/// Run the conversion again, unkilled, on a copy of `dir` in `scratch`; then what rpm reads from the result.
/// Err when rpm does not finish (non-zero, a signal, its deadline) or leaves no sqlite database.
pub fn rerun(dir: &Path, scratch: &Path) -> Result<(ToolRun, RpmRead), String> {
    let db = scratch.join("db");
    copy_db(dir, &db).map_err(|e| format!("copying {} to {}: {e}", dir.display(), db.display()))?;
    let r = tool::run(command(&db), DEADLINE, None).map_err(|e| format!("rpmdb --rebuilddb: {e}"))?;
    if !r.ok() {
        return Err(format!("rpmdb --rebuilddb {}: {}", r.describe(), r.lines().collect::<Vec<_>>().join(" | ")));
    }
    if InPlace::of(&db) != InPlace::Converted {
        return Err(format!("rpmdb --rebuilddb exited 0 but left {:?} in place", InPlace::of(&db)));
    }
    let read = rpm_reads(&db, &scratch.join("read"))?;
    Ok((r, read))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_place_tells_the_four_states_apart() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("db");
        assert_eq!(InPlace::of(&d), InPlace::Neither);
        std::fs::create_dir(&d).unwrap();
        assert_eq!(InPlace::of(&d), InPlace::Neither);
        std::fs::write(d.join("Packages"), b"").unwrap();
        assert_eq!(InPlace::of(&d), InPlace::Original);
        std::fs::write(d.join(crate::sqlite::DB_FILE), b"").unwrap();
        assert_eq!(InPlace::of(&d), InPlace::Mix);
        std::fs::remove_file(d.join("Packages")).unwrap();
        assert_eq!(InPlace::of(&d), InPlace::Converted);
    }

    #[test]
    fn leftovers_are_rpms_sibling_directories_only() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("db");
        for n in ["db", "dbrebuilddb.123", "dbold.45", "dbold.x", "db.rebuilddb.1", "other"] {
            std::fs::create_dir(t.path().join(n)).unwrap();
        }
        let names: Vec<String> =
            leftovers(&d).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["dbold.45", "dbrebuilddb.123"]);
    }
}
