//! Judging a libdb directory without joining its environment: a possibly damaged environment can block a
//! joiner for ever on a dead owner's mutex, so nothing here opens the real `__db.*` files.
//!
//! - Data: copies of the data files, read by BDB alone (no environment, a private cache) in a forked child
//!   that streams every (key, value) back through a pipe; the parent waits with a deadline and kills it.
//!   A file BDB cannot open or walk, a child that dies (a crash inside BDB) or overruns, are findings.
//!   Dirty pages that only lived in the dead environment's cache are not seen — and are lost by rpm's
//!   recovery (`rm __db.*`) too; what a commit acknowledged was synced to the files.
//! - `db5.3_verify` on the copies (one run; per file when it fails, to name the file).
//! - Environment forensics: the region files copied to a scratch directory and `db5.3_stat -N -CA` run on
//!   the copy under `timeout -s KILL` (plain db_stat blocks for ever on a dead owner's mutex); lockers of
//!   dead processes that still hold locks are stale-lock findings, with db_stat's own lines.
//!
//! Does not check: the buffer cache's contents, mutex states (db_stat -N does not look at them).

use super::engine::{Salvage, data_files, salvage_packages_within, walk_within};
use super::{DB_STAT, DB_VERIFY, ffi, region_files, tool_available};
use crate::backend::BackendError;
use crate::bdbenv::datafile::KeyValue;
use crate::rpmdb::{Finding, Snapshot};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// How long the child may take to read every data file.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Hard limit (SIGKILL) for each external tool run.
pub const TOOL_TIMEOUT_S: u32 = 3;

/// A scratch directory made with mkdtemp semantics (a fresh name no one else can have prepared), removed on
/// drop.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> std::io::Result<Scratch> {
        let t = tempfile::Builder::new()
            .prefix("dbtorture-libdb-check.")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()?;
        std::fs::create_dir(t.path().join("data"))?;
        std::fs::create_dir(t.path().join("env"))?;
        Ok(Scratch(t))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

/// Verify `dir` offline: findings plus the snapshot for the rpmdb cross-check.
pub fn check(dir: &Path) -> Result<(Vec<Finding>, Option<Snapshot>), BackendError> {
    let packages = dir.join("Packages");
    if !packages.exists() {
        return Err(BackendError::Io {
            path: packages,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no Packages file in this directory"),
        });
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackendError::Io { path, source }
    };
    let scratch = Scratch::new().map_err(io(&std::env::temp_dir()))?;
    let (data, envd) = (scratch.path().join("data"), scratch.path().join("env"));
    let mut findings = Vec::new();
    for name in data_files() {
        let src = dir.join(name);
        if src.exists() {
            std::fs::copy(&src, data.join(name)).map_err(io(&src))?;
        } else {
            findings.push(Finding::DataFileDamaged { file: name.into(), detail: "the file is missing".into() });
        }
    }
    let regions = region_files(dir);
    if !regions.is_empty() {
        for r in &regions {
            if let Some(name) = r.file_name() {
                std::fs::copy(r, envd.join(name)).map_err(io(r))?;
            }
        }
        findings.extend(env_forensics(&envd));
    }
    let (files, read_findings) = read_data(&data);
    findings.extend(read_findings);
    findings.extend(verify_files(&data));
    let snap = crate::bdbenv::check::snapshot_from(files, &mut findings);
    Ok((findings, Some(snap)))
}

/// One message of the reader child: which file, a pair, or an error on the current file.
enum Rec {
    File(usize),
    Pair(Vec<u8>, Vec<u8>),
    Error(String),
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_ne_bytes());
    out.extend_from_slice(b);
}

fn encode(r: &Rec, out: &mut Vec<u8>) {
    match r {
        Rec::File(i) => {
            out.push(b'F');
            out.extend_from_slice(&(*i as u32).to_ne_bytes());
        }
        Rec::Pair(k, v) => {
            out.push(b'R');
            put_bytes(out, k);
            put_bytes(out, v);
        }
        Rec::Error(e) => {
            out.push(b'E');
            put_bytes(out, e.as_bytes());
        }
    }
}

fn decode(buf: &[u8]) -> (Vec<Rec>, bool) {
    fn take<'a>(buf: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
        let n = u32::from_ne_bytes(buf.get(*at..*at + 4)?.try_into().ok()?) as usize;
        let s = buf.get(*at + 4..*at + 4 + n)?;
        *at += 4 + n;
        Some(s)
    }
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let tag = buf[at];
        at += 1;
        let rec = match tag {
            b'F' => buf.get(at..at + 4).and_then(|s| s.try_into().ok()).map(|s| {
                at += 4;
                Rec::File(u32::from_ne_bytes(s) as usize)
            }),
            b'R' => take(buf, &mut at)
                .map(<[u8]>::to_vec)
                .and_then(|k| take(buf, &mut at).map(|v| Rec::Pair(k, v.to_vec()))),
            b'E' => take(buf, &mut at).map(|e| Rec::Error(String::from_utf8_lossy(e).into_owned())),
            _ => None,
        };
        match rec {
            Some(r) => out.push(r),
            None => return (out, false),
        }
    }
    (out, true)
}

/// The child's work: open each copy alone, read-only, walk it with a cursor, stream the pairs.
fn reader_child(data: &Path, out: &mut std::fs::File) -> i32 {
    let mut buf = Vec::new();
    for (i, name) in data_files().into_iter().enumerate() {
        encode(&Rec::File(i), &mut buf);
        let path = data.join(name);
        if path.exists() {
            let db = match ffi::Db::open(None, &path, ffi::DbType::Unknown, false, true) {
                Ok(db) => db,
                Err(e) => {
                    let mut msg = ffi::take_messages();
                    msg.push(format!("db5 error({}) from db->open: {}", e.code, e.text));
                    encode(&Rec::Error(msg.join("; ")), &mut buf);
                    if out.write_all(&std::mem::take(&mut buf)).is_err() {
                        return 4;
                    }
                    continue;
                }
            };
            // Every row comes from the file: twice its size (plus slack for keys) bounds an honest walk.
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let budget = usize::try_from(size.saturating_mul(2).saturating_add(1 << 20)).unwrap_or(usize::MAX);
            let s = salvage_packages_or_walk(&db, i == 0, budget);
            for (k, v) in s.rows {
                encode(&Rec::Pair(k, v), &mut buf);
                if buf.len() > 1 << 16 && out.write_all(&std::mem::take(&mut buf)).is_err() {
                    return 4;
                }
            }
            if let Some(e) = s.walk_error {
                encode(&Rec::Error(e), &mut buf);
            }
            for (h, e) in s.bad.iter().take(8) {
                encode(&Rec::Error(format!("header #{h}: {e}")), &mut buf);
            }
            if s.bad.len() > 8 {
                encode(&Rec::Error(format!("... and {} more unreadable header numbers", s.bad.len() - 8)), &mut buf);
            }
            let _ = db.close();
        }
        if out.write_all(&std::mem::take(&mut buf)).is_err() {
            return 4;
        }
    }
    0
}

/// Packages is salvaged (a failed walk falls back to lookups of every header number); an index is walked.
fn salvage_packages_or_walk(db: &ffi::Db, packages: bool, budget: usize) -> Salvage {
    if packages { salvage_packages_within(db, budget) } else { walk_within(db, budget) }
}

/// Read every data file copy in `data` through BDB, in a child with a deadline.
fn read_data(data: &Path) -> (Vec<Vec<KeyValue>>, Vec<Finding>) {
    let names = data_files();
    let mut files: Vec<Vec<KeyValue>> = vec![Vec::new(); names.len()];
    let mut findings = Vec::new();
    let (bytes, ended) = match ffi::run_in_child(READ_TIMEOUT, |out| reader_child(data, out)) {
        Ok(r) => r,
        Err(e) => {
            findings.push(Finding::Unopenable { detail: format!("could not start the BDB reader: {e}") });
            return (files, findings);
        }
    };
    let (recs, whole) = decode(&bytes);
    let mut cur = 0usize;
    for r in recs {
        match r {
            Rec::File(i) => cur = i.min(names.len() - 1),
            Rec::Pair(k, v) => files[cur].push((k, v)),
            Rec::Error(e) => findings.push(Finding::DataFileDamaged { file: names[cur].into(), detail: e }),
        }
    }
    match ended {
        ffi::ChildEnd::Exited(0) if whole => {}
        ffi::ChildEnd::TimedOut => findings.push(Finding::Unopenable {
            detail: format!(
                "reading {} with Berkeley DB did not finish within {} s (killed)",
                names[cur],
                READ_TIMEOUT.as_secs()
            ),
        }),
        other => findings.push(Finding::DataFileDamaged {
            file: names[cur].into(),
            detail: format!("the Berkeley DB reader ended reading it: {other:?}"),
        }),
    }
    (files, findings)
}

/// How an external tool run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolEnd {
    Exited(i32),
    /// `timeout -s KILL` had to kill it (blocked, e.g. on a dead owner's mutex).
    Killed,
    /// It printed more than [`OUTPUT_MAX`] bytes: we stopped reading and it died of SIGPIPE (a walk that
    /// loops for ever on a damaged list prints the same lines for ever).
    Overflow,
}

/// At most this much of a tool's output is read.
pub const OUTPUT_MAX: usize = 1 << 20;

/// Run `timeout -s KILL N tool args…` with stdout and stderr on one pipe, reading at most [`OUTPUT_MAX`].
fn run_tool(tool: &str, args: &[&str], cwd: &Path) -> std::io::Result<(ToolEnd, String)> {
    use std::io::Read;
    let (rd, wr) = nix::unistd::pipe()?;
    let wr2 = wr.try_clone()?;
    let mut child = Command::new("timeout")
        .args(["-s", "KILL", &TOOL_TIMEOUT_S.to_string(), tool])
        .args(args)
        .current_dir(cwd)
        .env_remove("DB_HOME")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(wr))
        .stderr(std::process::Stdio::from(wr2))
        .spawn()?;
    // The tool's own deadline is timeout(1)'s; EOF comes when it exits or is killed.
    let mut f = std::fs::File::from(rd);
    let mut out = Vec::new();
    let mut buf = [0u8; 1 << 16];
    let mut overflow = false;
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() > OUTPUT_MAX {
                    overflow = true;
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    drop(f);
    let status = child.wait()?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let end = match status.code() {
        _ if overflow => ToolEnd::Overflow,
        // timeout(1) exits 137 when it had to SIGKILL the tool.
        Some(137) | None => ToolEnd::Killed,
        Some(c) => ToolEnd::Exited(c),
    };
    Ok((end, text))
}

/// `db5.3_verify` over the data file copies; findings name the file and quote the tool.
pub fn verify_files(data: &Path) -> Vec<Finding> {
    if !tool_available(DB_VERIFY) {
        return Vec::new();
    }
    let names: Vec<&str> = data_files().into_iter().filter(|n| data.join(n).exists()).collect();
    let home = data.to_string_lossy().into_owned();
    let mut args = vec!["-h", home.as_str()];
    args.extend(names.iter().copied());
    match run_tool(DB_VERIFY, &args, data) {
        Ok((ToolEnd::Exited(0), _)) => return Vec::new(),
        Ok(_) => {}
        Err(e) => {
            return vec![Finding::Unopenable { detail: format!("could not run {DB_VERIFY}: {e}") }];
        }
    }
    let mut out = Vec::new();
    for name in names {
        match run_tool(DB_VERIFY, &["-h", &home, name], data) {
            Ok((ToolEnd::Exited(0), _)) => {}
            Ok((end, text)) => {
                let lines: Vec<&str> = text.lines().take(4).collect();
                let end = match end {
                    ToolEnd::Exited(c) => format!("exit {c}"),
                    ToolEnd::Killed => format!("killed after {TOOL_TIMEOUT_S} s"),
                    ToolEnd::Overflow => format!("more than {OUTPUT_MAX} bytes of output"),
                };
                out.push(Finding::DataFileDamaged {
                    file: name.into(),
                    detail: format!("{DB_VERIFY} ({end}): {}", lines.join(" | ")),
                });
            }
            Err(e) => out.push(Finding::Unopenable { detail: format!("could not run {DB_VERIFY}: {e}") }),
        }
    }
    out
}

/// `db5.3_stat -N -CA` on a copy of the region files: stale lockers of dead processes.
pub fn env_forensics(envd: &Path) -> Vec<Finding> {
    if !tool_available(DB_STAT) {
        return Vec::new();
    }
    let home = envd.to_string_lossy().into_owned();
    let region = |detail: String| Finding::EnvRegion { region: "__db.001".into(), detail };
    match run_tool(DB_STAT, &["-N", "-CA", "-h", &home], envd) {
        Ok((ToolEnd::Exited(0), text)) => stale_lockers(&text),
        // With -N db_stat takes no region mutex: not finishing means it walks a damaged list for ever.
        Ok((ToolEnd::Overflow, text)) => vec![region(format!(
            "{DB_STAT} -N -CA loops walking the lock region (over {} MiB of output; it ends with {:?})",
            OUTPUT_MAX >> 20,
            last_line(&text)
        ))],
        Ok((ToolEnd::Killed, text)) => vec![region(format!(
            "{DB_STAT} -N -CA did not finish within {TOOL_TIMEOUT_S} s on a copy of the environment (killed; \
             last line {:?})",
            last_line(&text)
        ))],
        Ok((ToolEnd::Exited(c), text)) => vec![region(format!(
            "{DB_STAT} -N -CA failed (exit {c}): {}",
            text.lines().take(3).collect::<Vec<_>>().join(" | ")
        ))],
        Err(e) => vec![Finding::Unopenable { detail: format!("could not run {DB_STAT}: {e}") }],
    }
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// One locker line of db_stat -CA's "Locks grouped by lockers" section, e.g.
/// `66 dd= 0 locks held 1    write locks 1    pid/thread 2499/139921938899136 flags 0    priority 100`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockerLine {
    pub id: String,
    pub held: u32,
    pub writes: u32,
    pub pid: u32,
    pub line: String,
}

pub fn locker_lines(text: &str) -> Vec<LockerLine> {
    let num_after = |l: &str, pat: &str| -> Option<u32> {
        let rest = &l[l.find(pat)? + pat.len()..];
        rest.split_whitespace().next()?.split('/').next()?.parse().ok()
    };
    text.lines()
        .filter(|l| l.contains("locks held") && l.contains("pid/thread"))
        .filter_map(|l| {
            Some(LockerLine {
                id: l.split_whitespace().next()?.to_string(),
                held: num_after(l, "locks held")?,
                writes: num_after(l, "write locks")?,
                pid: num_after(l, "pid/thread")?,
                line: l.split_whitespace().collect::<Vec<_>>().join(" "),
            })
        })
        .collect()
}

/// Stale-lock findings from db_stat -CA's output: per dead process holding locks one finding (with a
/// db_stat line of a write locker, if any, else of a reader).
pub fn stale_lockers(text: &str) -> Vec<Finding> {
    let mut by_pid: std::collections::BTreeMap<u32, Vec<LockerLine>> = Default::default();
    for l in locker_lines(text) {
        if l.held > 0 && !crate::bdbenv::is_alive(l.pid) {
            by_pid.entry(l.pid).or_default().push(l);
        }
    }
    by_pid
        .into_iter()
        .map(|(pid, ls)| {
            let locks: u32 = ls.iter().map(|l| l.held).sum();
            let writes: u32 = ls.iter().map(|l| l.writes).sum();
            let example = ls.iter().find(|l| l.writes > 0).unwrap_or(&ls[0]);
            Finding::StaleLock {
                detail: format!(
                    "dead process {pid} left {} lockers holding {locks} locks ({writes} write) \
                     [{DB_STAT} -N -CA: \"{}\"]",
                    ls.len(),
                    example.line
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_stat_locker_lines_name_pid_and_lock_counts() {
        let text = "Locks grouped by lockers:\n\
            Locker   Mode      Count Status  ----------------- Object ---------------\n      \
            66 dd= 0 locks held 1    write locks 1    pid/thread 2499/139921938899136 flags 0    priority 100\n      \
            66 IWRITE        1 HELD    0x1bee0 len:  20 data: 0ae0990000fe0000fdf6f3f05809000000000000\n";
        let l = locker_lines(text);
        assert_eq!(l.len(), 1);
        assert_eq!((l[0].id.as_str(), l[0].held, l[0].writes, l[0].pid), ("66", 1, 1, 2499));
    }

    #[test]
    fn a_live_process_s_lockers_are_not_stale() {
        let me = std::process::id();
        let text = format!("1 dd= 0 locks held 3 write locks 1 pid/thread {me}/1 flags 0 priority 100\n");
        assert!(stale_lockers(&text).is_empty());
        let dead = "1 dd= 0 locks held 3 write locks 1 pid/thread 2147483000/1 flags 0 priority 100\n";
        let f = stale_lockers(dead);
        assert_eq!(f.len(), 1);
        assert!(f[0].to_string().contains("holding 3 locks (1 write)"), "{}", f[0]);
    }

    #[test]
    fn the_reader_stream_round_trips_and_a_cut_stream_is_noticed() {
        let mut buf = Vec::new();
        for r in [Rec::File(0), Rec::Pair(b"k".to_vec(), vec![1, 2, 3]), Rec::Error("bad page".into()), Rec::File(3)] {
            encode(&r, &mut buf);
        }
        let (recs, whole) = decode(&buf);
        assert!(whole);
        assert_eq!(recs.len(), 4);
        assert!(matches!(&recs[1], Rec::Pair(k, v) if k == b"k" && v == &[1, 2, 3]));
        assert!(matches!(&recs[2], Rec::Error(e) if e == "bad page"));
        let (recs, whole) = decode(&buf[..buf.len() - 2]);
        assert!(!whole, "a child killed mid-record leaves a cut stream");
        assert_eq!(recs.len(), 3);
    }

    #[test]
    fn scratch_dirs_are_fresh_private_and_leave_others_alone() {
        use std::os::unix::fs::PermissionsExt;
        // What the predictable name of before would have been: someone else's directory there survives.
        let planted: Vec<_> = (0..4)
            .map(|n| std::env::temp_dir().join(format!("dbtorture-libdb-check.{}.{n}", std::process::id())))
            .collect();
        for p in &planted {
            std::fs::create_dir_all(p).unwrap();
            std::fs::write(p.join("keep"), b"x").unwrap();
        }
        let (a, b) = (Scratch::new().unwrap(), Scratch::new().unwrap());
        assert_ne!(a.path(), b.path());
        assert_eq!(std::fs::metadata(a.path()).unwrap().permissions().mode() & 0o777, 0o700);
        drop((a, b));
        for p in &planted {
            assert!(p.join("keep").exists(), "{} was left alone", p.display());
            std::fs::remove_dir_all(p).unwrap();
        }
    }
}
