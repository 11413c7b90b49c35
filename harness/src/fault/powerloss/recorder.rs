//! The recorder: a passthrough FUSE filesystem mounted over a cycle's database directory that logs every
//! mutating operation with a global sequence number — for any process, ours or not (the real `rpm`, libdb),
//! since it is a filesystem and not a wrapper inside an engine.
//!
//! Shape: [`Recorder::start`] renames the directory to a hidden sibling (the backing store), mounts the
//! recorder on the now-empty original path from a forked daemon process (fork happens while the scheduler is
//! single-threaded; the daemon may start threads, it never forks again), and waits until the mount answers.
//! [`Recorder::stop`] unmounts, waits for the daemon to write its log, and puts the directory back.
//!
//! Acknowledgements: the daemon bumps a counter in a MAP_SHARED page before it answers each logged operation;
//! a worker reads it right after `commit` returned ([`ack_seq`]) and reports it. Every operation of that
//! commit, its fsync included, was answered before `commit` returned, so it lies below the number: a cut at
//! or after it must show the commit. (Operations of other workers answered in between make the number at
//! most a little late — a commit is then judged in flight for those few cuts; never early.)
//!
//! What FUSE lets it see, and not:
//! - Every `write(2)` arrives as a WRITE (no writeback cache: the mount is write-through). Writes through a
//!   MAP_SHARED mapping (sqlite's `-shm`, bdbenv's and libdb's `__db.*`) arrive only when the kernel writes
//!   the dirty pages back — on `msync`, `fsync`, `munmap`/close or memory pressure — with the page's bytes
//!   at that moment, not the individual stores. So region files are logged coarsely; the model treats them
//!   as data like any other and recovery after the reboot discards them anyway.
//! - `fsync`/`fdatasync` arrive as FSYNC (datasync flag), `msync(MS_SYNC)` as FSYNC of the file, a
//!   directory's fsync as FSYNCDIR. They are logged and answered at once without syncing the backing store:
//!   the backing store is only the page cache of the simulation; what a power cut keeps is the model's call.
//! - POSIX and flock locks are left to the kernel (the recorder does not implement them, so FUSE keeps them
//!   local to the mount — every process of the cycle uses the mount).
//! - Not supported: hard links, creating symlinks, xattrs (refused), `O_DIRECT` semantics.

use super::oplog::{self, Ino, Op, ROOT};
use crate::sys::{self, AtomicU64, SharedWords};
use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, MountOption,
    OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, Request, WriteFlags,
};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error("recorder: {what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("recorder: {0}")]
    Fork(#[from] sys::ForkError),
    #[error("recorder: the FUSE mount on {path} failed: {detail}")]
    Mount { path: PathBuf, detail: String },
    #[error("recorder: the daemon did not end within {0:?} after the unmount")]
    Stuck(Duration),
    #[error("recorder: the daemon ended with {0:?}")]
    Daemon(WaitStatus),
    #[error("recorder: {0}")]
    Log(#[from] oplog::DecodeError),
    #[error("recorder: shared counter page: {0}")]
    Shared(nix::Error),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RecorderError + 'a {
    move |source| RecorderError::Io { what, path: path.to_path_buf(), source }
}

/// In a worker: how many operations the recorder has answered so far (`None` when no recorder runs). The
/// counter is published (`sys::publish_word`) before the workers are forked, so they inherit it.
pub fn ack_seq() -> Option<u64> {
    sys::published_word().map(|w| w.load(Ordering::SeqCst))
}

/// A mounted recorder.
pub struct Recorder {
    pid: Pid,
    mount: PathBuf,
    backing: PathBuf,
    log_path: PathBuf,
    counter: SharedWords,
    pub started: Duration,
    stopped: bool,
}

impl Drop for Recorder {
    /// A recorder abandoned on an error path (the cycle failed between start and stop): unmount, end the
    /// daemon, put the directory back — never leave a mount or a published counter behind.
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        sys::publish_word(None);
        let _ = nix::mount::umount2(&self.mount, nix::mount::MntFlags::MNT_DETACH);
        let _ = kill(self.pid, Signal::SIGKILL);
        let _ = waitpid(self.pid, None);
        let _ = restore(&self.mount, &self.backing);
    }
}

/// The hidden sibling that holds a recorded directory's files.
pub fn backing_of(dir: &Path) -> PathBuf {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dir.with_file_name(format!(".{name}.recorded"))
}

impl Recorder {
    /// Mount a recorder over `dir`; its log goes to `log_path` when stopped.
    pub fn start(dir: &Path, log_path: &Path) -> Result<Recorder, RecorderError> {
        let t0 = Instant::now();
        let backing = backing_of(dir);
        if backing.exists() {
            // Left by a run that died mid-cycle: the backing copy is the database.
            let _ = nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir_all(dir);
            std::fs::rename(&backing, dir).map_err(io("restoring", &backing))?;
        }
        std::fs::rename(dir, &backing).map_err(io("moving aside", dir))?;
        std::fs::create_dir(dir).map_err(io("creating the mount point", dir))?;
        let counter = SharedWords::new(1).map_err(RecorderError::Shared)?;
        let (rd, wr) = nix::unistd::pipe().map_err(|e| RecorderError::Fork(sys::ForkError::Fork(e)))?;
        let (b, m, l) = (backing.clone(), dir.to_path_buf(), log_path.to_path_buf());
        let words = &counter;
        let wr_ref = &wr;
        let pid = sys::fork_child(move || {
            let ready = wr_ref.try_clone().map(File::from);
            daemon(&b, &m, &l, &words.child_static()[0], ready.ok())
        });
        drop(wr);
        let pid = match pid {
            Ok(p) => p,
            Err(e) => {
                let _ = restore(dir, &backing);
                return Err(e.into());
            }
        };
        // The daemon writes "ok\n" once mounted, or an error line; EOF means it died. (Its copy of the
        // pipe's write end stays open while it serves: read one line, not to EOF.)
        let answer = read_line(File::from(rd), Duration::from_secs(10));
        if answer.trim() != "ok" {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            let _ = nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH);
            let _ = restore(dir, &backing);
            return Err(RecorderError::Mount { path: dir.to_path_buf(), detail: answer.trim().to_string() });
        }
        sys::publish_word(Some(&counter));
        Ok(Recorder {
            pid,
            mount: dir.to_path_buf(),
            backing,
            log_path: log_path.to_path_buf(),
            counter,
            started: t0.elapsed(),
            stopped: false,
        })
    }

    /// Operations answered so far.
    pub fn seq(&self) -> u64 {
        self.counter.words()[0].load(Ordering::SeqCst)
    }

    /// Unmount, collect the daemon and its log, and put the directory back.
    pub fn stop(mut self) -> Result<oplog::Log, RecorderError> {
        self.stopped = true;
        sys::publish_word(None);
        let umount = nix::mount::umount2(&self.mount, nix::mount::MntFlags::MNT_DETACH);
        let limit = Duration::from_secs(20);
        let t0 = Instant::now();
        let status = loop {
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) if t0.elapsed() < limit => std::thread::sleep(Duration::from_millis(1)),
                Ok(WaitStatus::StillAlive) => {
                    let _ = kill(self.pid, Signal::SIGKILL);
                    let _ = waitpid(self.pid, None);
                    restore(&self.mount, &self.backing)?;
                    return Err(RecorderError::Stuck(limit));
                }
                Ok(s) => break s,
                Err(e) => break WaitStatus::Signaled(self.pid, Signal::SIGKILL, e == nix::errno::Errno::ECHILD),
            }
        };
        restore(&self.mount, &self.backing)?;
        if let Err(e) = umount {
            return Err(RecorderError::Mount { path: self.mount.clone(), detail: format!("umount: {e}") });
        }
        if status != WaitStatus::Exited(self.pid, 0) {
            return Err(RecorderError::Daemon(status));
        }
        let bytes = std::fs::read(&self.log_path).map_err(io("reading the log", &self.log_path))?;
        Ok(oplog::Log::decode(&bytes)?)
    }
}

/// One line from `f`, waiting at most `limit` in all.
fn read_line(mut f: File, limit: Duration) -> String {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let t0 = Instant::now();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while line.len() < 4096 && !line.ends_with(b"\n") {
        let left = limit.saturating_sub(t0.elapsed());
        if left.is_zero() {
            line.extend_from_slice(b"(timed out waiting for the mount)");
            break;
        }
        let ms = left.as_millis().min(1000) as u16;
        let mut fds = [PollFd::new(f.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(_) => break,
        }
        match f.read(&mut b) {
            Ok(1) => line.push(b[0]),
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&line).into_owned()
}

fn restore(dir: &Path, backing: &Path) -> Result<(), RecorderError> {
    std::fs::remove_dir(dir).map_err(io("removing the mount point", dir))?;
    std::fs::rename(backing, dir).map_err(io("putting back", backing))
}

/// The daemon's body: mount, say "ok", serve until unmounted, write the log. Returns the exit code.
fn daemon(backing: &Path, mount: &Path, log_path: &Path, counter: &'static AtomicU64, ready: Option<File>) -> i32 {
    use std::io::Write;
    let mut ready = ready;
    let mut say = |s: &str| {
        if let Some(r) = ready.as_mut() {
            let _ = r.write_all(s.as_bytes());
        }
    };
    let state = match State::new(backing, counter) {
        Ok(s) => Arc::new(Mutex::new(s)),
        Err(e) => {
            say(&format!("binding {}: {e}\n", backing.display()));
            return 2;
        }
    };
    let mut config = Config::default();
    config.mount_options = vec![MountOption::FSName("dbtorture-recorder".into()), MountOption::RW];
    let session = match fuser::Session::new(Fs { s: state.clone() }, mount, &config) {
        Ok(s) => s,
        Err(e) => {
            say(&format!("{e}\n"));
            return 2;
        }
    };
    say("ok\n");
    drop(ready);
    let res = session.run();
    let st = state.lock().unwrap_or_else(|p| p.into_inner());
    if std::fs::write(log_path, &st.log).is_err() {
        return 3;
    }
    if res.is_err() { 4 } else { 0 }
}

struct State {
    root: PathBuf,
    paths: HashMap<Ino, PathBuf>,
    inos: HashMap<PathBuf, Ino>,
    next_ino: Ino,
    files: HashMap<u64, (Ino, File)>,
    next_fh: u64,
    log: Vec<u8>,
    counter: &'static AtomicU64,
}

const TTL: Duration = Duration::from_secs(60);

impl State {
    /// Bind every path under `root` to an inode, in sorted order, and log the bindings.
    fn new(root: &Path, counter: &'static AtomicU64) -> std::io::Result<State> {
        let mut s = State {
            root: root.to_path_buf(),
            paths: HashMap::new(),
            inos: HashMap::new(),
            next_ino: ROOT + 1,
            files: HashMap::new(),
            next_fh: 1,
            log: oplog::header().to_vec(),
            counter,
        };
        s.paths.insert(ROOT, PathBuf::new());
        s.inos.insert(PathBuf::new(), ROOT);
        oplog::encode_pre(&mut s.log, "", ROOT, true);
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let mut names: Vec<(String, bool)> = std::fs::read_dir(root.join(&rel))?
                .filter_map(|e| e.ok())
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.file_type().is_ok_and(|t| t.is_dir())))
                .collect();
            names.sort();
            for (name, dir) in names {
                let p = rel.join(&name);
                let ino = s.bind(&p);
                oplog::encode_pre(&mut s.log, &p.to_string_lossy(), ino, dir);
                if dir {
                    stack.push(p);
                }
            }
        }
        Ok(s)
    }

    fn bind(&mut self, rel: &Path) -> Ino {
        if let Some(i) = self.inos.get(rel) {
            return *i;
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.paths.insert(ino, rel.to_path_buf());
        self.inos.insert(rel.to_path_buf(), ino);
        ino
    }

    fn record(&mut self, op: &Op) {
        oplog::encode_op(&mut self.log, op);
        self.counter.fetch_add(1, Ordering::SeqCst);
    }

    fn rel(&self, ino: Ino) -> Result<&PathBuf, Errno> {
        self.paths.get(&ino).ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: Ino, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.rel(parent)?.join(name))
    }

    fn attr(&self, ino: Ino, md: &std::fs::Metadata) -> FileAttr {
        let t =
            |s: i64, ns: i64| SystemTime::UNIX_EPOCH + Duration::new(s.max(0) as u64, ns.clamp(0, 999_999_999) as u32);
        FileAttr {
            ino: INodeNo(ino),
            size: md.size(),
            blocks: md.blocks(),
            atime: t(md.atime(), md.atime_nsec()),
            mtime: t(md.mtime(), md.mtime_nsec()),
            ctime: t(md.ctime(), md.ctime_nsec()),
            crtime: SystemTime::UNIX_EPOCH,
            kind: if md.is_dir() {
                FileType::Directory
            } else if md.file_type().is_symlink() {
                FileType::Symlink
            } else {
                FileType::RegularFile
            },
            perm: (md.mode() & 0o7777) as u16,
            nlink: md.nlink() as u32,
            uid: md.uid(),
            gid: md.gid(),
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn stat(&self, ino: Ino) -> Result<FileAttr, Errno> {
        let md = match self.paths.get(&ino) {
            Some(rel) => std::fs::symlink_metadata(self.root.join(rel)),
            // Unlinked but still open: fstat an open handle.
            None => match self.files.values().find(|(i, _)| *i == ino) {
                Some((_, f)) => f.metadata(),
                None => return Err(Errno::ENOENT),
            },
        };
        md.map(|md| self.attr(ino, &md)).map_err(Errno::from)
    }

    fn open_fh(&mut self, ino: Ino, file: File) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.files.insert(fh, (ino, file));
        fh
    }

    /// Move the bindings of `from` (and everything under it) to `to`.
    fn rebind(&mut self, from: &Path, to: &Path) {
        if let Some(old) = self.inos.remove(to) {
            self.paths.remove(&old);
        }
        let moved: Vec<(PathBuf, Ino)> =
            self.inos.iter().filter(|(p, _)| p.starts_with(from)).map(|(p, i)| (p.clone(), *i)).collect();
        for (p, i) in moved {
            self.inos.remove(&p);
            let np = to.join(p.strip_prefix(from).expect("prefix"));
            self.paths.insert(i, np.clone());
            self.inos.insert(np, i);
        }
    }

    fn unbind(&mut self, rel: &Path) {
        if let Some(i) = self.inos.remove(rel) {
            self.paths.remove(&i);
        }
    }
}

struct Fs {
    s: Arc<Mutex<State>>,
}

impl Fs {
    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.s.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn name_str(name: &OsStr) -> String {
    name.to_string_lossy().into_owned()
}

impl Filesystem for Fs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut s = self.st();
        let res = (|| {
            let rel = s.child(parent.0, name)?;
            let md = std::fs::symlink_metadata(s.root.join(&rel)).map_err(Errno::from)?;
            let ino = s.bind(&rel);
            Ok::<_, Errno>(s.attr(ino, &md))
        })();
        match res {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.st().stat(ino.0) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut s = self.st();
        let res = (|| {
            if let Some(len) = size {
                let r = match fh.and_then(|h| s.files.get(&h.0)) {
                    Some((_, f)) => f.set_len(len),
                    None => {
                        let p = s.root.join(s.rel(ino.0)?);
                        std::fs::OpenOptions::new().write(true).open(p).and_then(|f| f.set_len(len))
                    }
                };
                r.map_err(Errno::from)?;
                s.record(&Op::Truncate { ino: ino.0, len });
            }
            if let Some(m) = mode {
                use std::os::unix::fs::PermissionsExt;
                let p = s.root.join(s.rel(ino.0)?);
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(m & 0o7777)).map_err(Errno::from)?;
            }
            s.stat(ino.0)
        })();
        match res {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let s = self.st();
        match s.rel(ino.0).and_then(|r| std::fs::read_link(s.root.join(r)).map_err(Errno::from)) {
            Ok(t) => reply.data(t.as_os_str().as_encoded_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let mut s = self.st();
        let res = (|| {
            let rel = s.child(parent.0, name)?;
            let p = s.root.join(&rel);
            std::fs::create_dir(&p).map_err(Errno::from)?;
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode & !umask & 0o7777));
            let ino = s.bind(&rel);
            s.record(&Op::Mkdir { parent: parent.0, name: name_str(name), ino });
            s.stat(ino)
        })();
        match res {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut s = self.st();
        let res = (|| {
            let rel = s.child(parent.0, name)?;
            std::fs::remove_file(s.root.join(&rel)).map_err(Errno::from)?;
            s.unbind(&rel);
            s.record(&Op::Unlink { parent: parent.0, name: name_str(name) });
            Ok::<_, Errno>(())
        })();
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut s = self.st();
        let res = (|| {
            let rel = s.child(parent.0, name)?;
            std::fs::remove_dir(s.root.join(&rel)).map_err(Errno::from)?;
            s.unbind(&rel);
            s.record(&Op::Rmdir { parent: parent.0, name: name_str(name) });
            Ok::<_, Errno>(())
        })();
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut s = self.st();
        let res = (|| {
            if flags.bits() != 0 {
                return Err(Errno::EINVAL);
            }
            let from = s.child(parent.0, name)?;
            let to = s.child(newparent.0, newname)?;
            std::fs::rename(s.root.join(&from), s.root.join(&to)).map_err(Errno::from)?;
            s.rebind(&from, &to);
            s.record(&Op::Rename {
                parent: parent.0,
                name: name_str(name),
                newparent: newparent.0,
                newname: name_str(newname),
            });
            Ok::<_, Errno>(())
        })();
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut s = self.st();
        let res = (|| {
            let p = s.root.join(s.rel(ino.0)?);
            let acc = flags.0 & libc::O_ACCMODE;
            let f = std::fs::OpenOptions::new()
                .read(acc != libc::O_WRONLY)
                .write(acc != libc::O_RDONLY)
                .open(&p)
                .map_err(Errno::from)?;
            if flags.0 & libc::O_TRUNC != 0 && acc != libc::O_RDONLY {
                f.set_len(0).map_err(Errno::from)?;
                s.record(&Op::Truncate { ino: ino.0, len: 0 });
            }
            Ok::<_, Errno>(s.open_fh(ino.0, f))
        })();
        match res {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut s = self.st();
        let res = (|| {
            let rel = s.child(parent.0, name)?;
            let p = s.root.join(&rel);
            let existed = p.exists();
            if existed && flags & libc::O_EXCL != 0 {
                return Err(Errno::EEXIST);
            }
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(flags & libc::O_TRUNC != 0)
                .mode(mode & !umask & 0o7777)
                .open(&p)
                .map_err(Errno::from)?;
            let ino = s.bind(&rel);
            if !existed {
                s.record(&Op::Create { parent: parent.0, name: name_str(name), ino });
            } else if flags & libc::O_TRUNC != 0 {
                s.record(&Op::Truncate { ino, len: 0 });
            }
            let a = s.stat(ino)?;
            Ok::<_, Errno>((a, s.open_fh(ino, f)))
        })();
        match res {
            Ok((a, fh)) => reply.created(&TTL, &a, Generation(0), FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let s = self.st();
        let Some((_, f)) = s.files.get(&fh.0) else { return reply.error(Errno::EBADF) };
        let mut buf = vec![0u8; size as usize];
        let mut got = 0;
        while got < buf.len() {
            match f.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return reply.error(Errno::from(e)),
            }
        }
        reply.data(&buf[..got]);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut s = self.st();
        let Some((_, f)) = s.files.get(&fh.0) else { return reply.error(Errno::EBADF) };
        if let Err(e) = f.write_all_at(data, offset) {
            return reply.error(Errno::from(e));
        }
        s.record(&Op::Write { ino: ino.0, off: offset, data: data.to_vec() });
        reply.written(data.len() as u32);
    }

    fn flush(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        self.st().record(&Op::Flush { ino: ino.0 });
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.st().files.remove(&fh.0);
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        self.st().record(&Op::Fsync { ino: ino.0, datasync });
        reply.ok();
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let mut s = self.st();
        let res = (|| {
            let rel = s.rel(ino.0)?.clone();
            let mut names: Vec<(String, FileType)> = std::fs::read_dir(s.root.join(&rel))
                .map_err(Errno::from)?
                .filter_map(|e| e.ok())
                .map(|e| {
                    let t = match e.file_type() {
                        Ok(t) if t.is_dir() => FileType::Directory,
                        Ok(t) if t.is_symlink() => FileType::Symlink,
                        _ => FileType::RegularFile,
                    };
                    (e.file_name().to_string_lossy().into_owned(), t)
                })
                .collect();
            names.sort_by(|a, b| a.0.cmp(&b.0));
            let mut all = vec![(ino.0, FileType::Directory, ".".to_string()), (ROOT, FileType::Directory, "..".into())];
            for (n, t) in names {
                let i = s.bind(&rel.join(&n));
                all.push((i, t, n));
            }
            Ok::<_, Errno>(all)
        })();
        match res {
            Ok(all) => {
                for (k, (i, t, n)) in all.into_iter().enumerate().skip(offset as usize) {
                    if reply.add(INodeNo(i), k as u64 + 1, t, n) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        self.st().record(&Op::FsyncDir { ino: ino.0 });
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let root = self.st().root.clone();
        match nix::sys::statvfs::statvfs(&root) {
            Ok(v) => reply.statfs(
                v.blocks(),
                v.blocks_free(),
                v.blocks_available(),
                v.files(),
                v.files_free(),
                v.block_size() as u32,
                v.name_max() as u32,
                v.fragment_size() as u32,
            ),
            Err(e) => reply.error(Errno::from_i32(e as i32)),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        match self.st().stat(ino.0) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let mut s = self.st();
        if mode != 0 {
            // Punching holes, zero ranges, keep-size: not something the engines here do; refuse loudly.
            return reply.error(Errno::EOPNOTSUPP);
        }
        let Some((_, f)) = s.files.get(&fh.0) else { return reply.error(Errno::EBADF) };
        let res = f.metadata().and_then(|md| {
            let end = offset + length;
            if end > md.size() { f.set_len(end).map(|_| Some(end)) } else { Ok(None) }
        });
        match res {
            Ok(grown) => {
                if let Some(len) = grown {
                    s.record(&Op::Truncate { ino: ino.0, len });
                }
                reply.ok()
            }
            Err(e) => reply.error(Errno::from(e)),
        }
    }
}
