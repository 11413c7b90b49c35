//! `verify` and `inspect` only read: the checked directory has the same files, bytes and mtimes afterwards,
//! for every backend; a read-only mount and a database locked by a live process are judged clean; the
//! database is found in a root where rpm keeps it; special files are refused at once.

mod common;

use common::{bin, root, text};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `cmd` runs here (Berkeley DB's tools answer `-V`, rpm `--version`).
fn have(cmd: &str) -> bool {
    let flag = if cmd.starts_with("db5.3_") { "-V" } else { "--version" };
    Command::new(cmd).arg(flag).output().is_ok_and(|o| o.status.success())
}

fn skip_or_fail(why: &str) {
    assert!(std::env::var_os("CI").is_none(), "CI must run this test: {why}");
    eprintln!("SKIPPED: {why}");
}

/// One clean cycle (no kills) of each backend available here: `work/BACKEND/db`.
fn databases(tmp: &Path) -> (PathBuf, Vec<&'static str>) {
    let mut backends = vec!["sqlite", "bdbenv"];
    if cfg!(feature = "libdb") && have("db5.3_stat") {
        backends.push("libdb");
    } else {
        skip_or_fail("libdb (db5.3-util) not installed: libdb not checked");
    }
    if have("rpm") {
        backends.push("rpm");
    } else {
        skip_or_fail("rpm not installed: --backend rpm not checked");
    }
    let mut s = std::fs::read_to_string(root().join("scenarios/bdbenv-kill.toml")).unwrap();
    let list = backends.iter().map(|b| format!("{b:?}")).collect::<Vec<_>>().join(", ");
    s = s.replace("backends = [\"bdbenv\"]", &format!("backends = [{list}]"));
    s = s.replace("mode = \"mixed\"", "mode = \"none\"");
    let expect: String = backends.iter().map(|b| format!("{b} = [\"clean\"]\n")).collect();
    let at = s.find("bdbenv = [\"clean\"").unwrap();
    let end = at + s[at..].find('\n').unwrap() + 1;
    s.replace_range(at..end, &expect);
    let sc = tmp.join("db.toml");
    std::fs::write(&sc, s).unwrap();
    let work = tmp.join("work");
    let o = bin().args(["run", sc.to_str().unwrap(), "--cycles", "1", "-q", "--workdir"]).arg(&work).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    (work, backends)
}

/// Every entry under `dir`: (type, size, mtime, contents).
fn fingerprint(dir: &Path) -> BTreeMap<PathBuf, (u32, u64, i64, i64, Vec<u8>)> {
    let mut all = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let bytes = if m.is_file() { std::fs::read(&p).unwrap() } else { Vec::new() };
            if m.is_dir() {
                todo.push(p.clone());
            }
            all.insert(p, (m.mode(), m.len(), m.mtime(), m.mtime_nsec(), bytes));
        }
    }
    all
}

fn run(args: &[&str], dir: &Path) -> (Option<i32>, String) {
    let o = bin().args(args).arg(dir).output().unwrap();
    (o.status.code(), text(&o))
}

#[test]
fn verify_and_inspect_change_nothing_in_what_they_check() {
    let tmp = tempfile::tempdir().unwrap();
    let (work, backends) = databases(tmp.path());
    let before = fingerprint(&work);
    for b in &backends {
        let (code, out) = run(&["verify", "--backend", b], &work.join(b).join("db"));
        assert_eq!(code, Some(0), "{b}: {out}");
    }
    // The rpm root, judged as a root by every way of naming it.
    if backends.contains(&"rpm") {
        let r = work.join("rpm/db");
        assert_eq!(run(&["verify", "--backend", "sqlite"], &r), (Some(0), format!("{}: clean\n", r.display())));
        let (code, out) = run(&["verify", "--backend", "sqlite", "--dbpath", "/var/lib/rpm"], &r);
        assert_eq!(code, Some(0), "{out}");
        let (code, out) = run(&["verify", "--backend", "sqlite", "--dbpath", "/nowhere"], &r);
        assert_eq!(code, Some(2), "{out}");
        assert!(out.contains("no sqlite database"), "{out}");
    }
    let (code, out) = run(&["inspect", "--json"], &work.join("bdbenv/db"));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("\"dir\": \"{}\"", work.join("bdbenv/db").display())), "names the original: {out}");
    let after = fingerprint(&work);
    let changed: Vec<_> = after
        .iter()
        .filter(|(p, v)| before.get(*p) != Some(v))
        .map(|(p, _)| p.display().to_string())
        .chain(before.keys().filter(|p| !after.contains_key(*p)).map(|p| format!("removed {}", p.display())))
        .collect();
    assert!(changed.is_empty(), "verify/inspect changed: {changed:?}");
}

#[test]
fn a_read_only_mount_is_verified_clean() {
    if !nix::unistd::Uid::effective().is_root() {
        return skip_or_fail("not root: cannot make a read-only bind mount");
    }
    let tmp = tempfile::tempdir().unwrap();
    let (work, backends) = databases(tmp.path());
    let mut script =
        format!("set -u\nmount --bind {w} {w} && mount -o remount,bind,ro {w} || exit 90\n", w = work.display());
    script.push_str(&format!("touch {}/x 2>/dev/null && exit 91\n", work.display()));
    for b in &backends {
        script.push_str(&format!(
            "{bin} verify --backend {b} {w}/{b}/db; echo \"RC {b} $?\"\n",
            bin = env!("CARGO_BIN_EXE_dbtorture"),
            w = work.display()
        ));
    }
    let o = Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-c", &script]).output().unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    for b in &backends {
        assert!(out.contains(&format!("RC {b} 0")), "{b} on a read-only mount: {out}");
    }
}

#[test]
fn a_database_locked_by_a_live_process_is_judged_from_a_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let db = dbtorture_backends::sqlite::SqliteBackend::open(&dir, dbtorture_backends::OpenMode::Create).unwrap();
    dbtorture_backends::Reader::close(Box::new(db)).unwrap();
    // An exclusive lock held for as long as this test runs (as a stuck rpm transaction would).
    let conn = rusqlite::Connection::open(dir.join("rpmdb.sqlite")).unwrap();
    conn.execute_batch("PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE; CREATE TABLE held(x);").unwrap();
    let (code, out) = run(&["verify", "--backend", "sqlite"], &dir);
    assert_eq!(code, Some(0), "{out}");
    conn.execute_batch("ROLLBACK").unwrap();
}

/// Spawn `verify`/`inspect` on `dir` and require it to end within 20 s with exit 2 and `needle` said.
fn refused_quickly(args: &[&str], dir: &Path, needle: &str) {
    let mut child = bin().args(args).arg(dir).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{args:?} {} hung", dir.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
    assert!(text(&o).contains(needle), "{args:?}: {}", text(&o));
}

#[test]
fn special_files_are_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o600);
    for (backend, file) in [("sqlite", "rpmdb.sqlite"), ("bdbenv", "Packages"), ("libdb", "Packages")] {
        let d = tmp.path().join(format!("fifo-{backend}"));
        std::fs::create_dir_all(&d).unwrap();
        nix::unistd::mkfifo(&d.join(file), mode).unwrap();
        refused_quickly(&["verify", "--backend", backend], &d, "a FIFO");
    }
    let d = tmp.path().join("fifo-env");
    std::fs::create_dir_all(&d).unwrap();
    nix::unistd::mkfifo(&d.join("__db.001"), mode).unwrap();
    refused_quickly(&["inspect"], &d, "a FIFO");
    let d = tmp.path().join("zero");
    std::fs::create_dir_all(&d).unwrap();
    std::os::unix::fs::symlink("/dev/zero", d.join("Packages")).unwrap();
    refused_quickly(&["verify", "--backend", "bdbenv"], &d, "a character device");
}
