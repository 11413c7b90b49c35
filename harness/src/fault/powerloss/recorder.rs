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

use super::passthrough::{Fs, State};
use super::{iogate, oplog};
use crate::sys::{self, SharedWords};
use fuser::{Config, MountOption};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    #[error("recorder: the daemon ended with {status:?}: {said}")]
    Daemon { status: WaitStatus, said: String },
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
    /// Read end of the daemon's "a process is held" pipe (non-blocking).
    notify: File,
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
        let counter = SharedWords::new(iogate::WORDS).map_err(RecorderError::Shared)?;
        let pipe = || nix::unistd::pipe().map_err(|e| RecorderError::Fork(sys::ForkError::Fork(e)));
        let (rd, wr) = pipe()?;
        let (nrd, nwr) = pipe()?;
        nix::fcntl::fcntl(&nrd, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK))
            .map_err(|e| RecorderError::Fork(sys::ForkError::Fork(e)))?;
        let (b, m, l) = (backing.clone(), dir.to_path_buf(), log_path.to_path_buf());
        let words = &counter;
        let (wr_ref, nwr_ref) = (&wr, &nwr);
        let harness = std::process::id();
        let pid = sys::fork_child(move || {
            let ready = wr_ref.try_clone().map(File::from);
            let gate = iogate::Counter::new(words.child_static(), nwr_ref.try_clone().map(File::from).ok(), harness);
            daemon(&b, &m, &l, gate, ready.ok())
        });
        drop(wr);
        drop(nwr);
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
            notify: File::from(nrd),
            started: t0.elapsed(),
            stopped: false,
        })
    }

    /// Operations answered so far.
    pub fn seq(&self) -> u64 {
        self.counter.words()[0].load(Ordering::SeqCst)
    }

    /// The I/O kill points and errors of this recording (`iogate.rs`).
    pub fn gate(&self) -> iogate::GateHandle<'_> {
        iogate::GateHandle { words: self.counter.words(), notify: &self.notify }
    }

    /// Unmount, collect the daemon and its log, and put the directory back.
    pub fn stop(mut self) -> Result<oplog::Log, RecorderError> {
        self.stopped = true;
        sys::publish_word(None);
        iogate::set_stopping(self.counter.words());
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
            let said = std::fs::read_to_string(said_path(&self.log_path)).unwrap_or_default();
            let said =
                if said.trim().is_empty() { "(it said nothing)".to_string() } else { said.trim().replace('\n', "; ") };
            return Err(RecorderError::Daemon { status, said });
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

/// Where the daemon writes why it ended badly: its own error and fuser's `log` errors.
fn said_path(log_path: &Path) -> PathBuf {
    let mut p = log_path.as_os_str().to_owned();
    p.push(".said");
    PathBuf::from(p)
}

/// fuser's `error!`/`warn!` lines, kept for [`RecorderError::Daemon`] (in the daemon process only).
struct SaidLogger(Mutex<Option<File>>);

impl log::Log for SaidLogger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record<'_>) {
        use std::io::Write;
        if let Some(f) = self.0.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            let _ = writeln!(f, "{} {}: {}", r.level(), r.target(), r.args());
        }
    }
    fn flush(&self) {}
}

/// The daemon's body: mount, say "ok", serve until unmounted, write the log. Returns the exit code.
fn daemon(backing: &Path, mount: &Path, log_path: &Path, gate: iogate::Counter, ready: Option<File>) -> i32 {
    use std::io::Write;
    let mut ready = ready;
    let said = said_path(log_path);
    let _ = std::fs::remove_file(&said);
    let said_file = File::options().create(true).append(true).open(&said).ok();
    let logger: &'static SaidLogger = Box::leak(Box::new(SaidLogger(Mutex::new(said_file))));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let mut say = |s: &str| {
        if let Some(r) = ready.as_mut() {
            let _ = r.write_all(s.as_bytes());
        }
    };
    let state = match State::new(backing, gate) {
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
    if let Err(e) = std::fs::write(log_path, &st.log) {
        log::error!("writing the log {}: {e}", log_path.display());
        return 3;
    }
    match res {
        Ok(()) => {
            let _ = std::fs::remove_file(&said);
            0
        }
        // Once the harness is unmounting, every process of the cycle has ended and the log is whole: how the
        // kernel ends the session then (ENODEV, or ECONNABORTED for an aborted connection) changes nothing.
        Err(e) if st.gate.stopping() => {
            log::warn!("the FUSE session ended after the unmount with: {e}");
            0
        }
        Err(e) => {
            log::error!("the FUSE session ended while the cycle ran: {e}");
            4
        }
    }
}
