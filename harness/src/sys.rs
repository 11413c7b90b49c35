//! The few operating-system operations that need `unsafe`: fork, a MAP_SHARED anonymous page shared with
//! the workers, and the child-side set-up. Everything else in the harness is safe code.
//!
//! Why here: fork() is only sound from a single-threaded process, so [`fork_child`] checks that first
//! instead of trusting its callers; the shared page is the only memory two processes touch.
#![allow(unsafe_code)]

use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous, munmap};
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::{ForkResult, Pid};
use std::num::NonZeroUsize;
use std::ptr::NonNull;

/// 64-bit atomics for the memory shared with the workers: std's where the target has them; on ARMv5TE
/// (armel, the qemu guest: no 64-bit atomic instructions) portable-atomic's, which uses the kernel's
/// `__kuser_cmpxchg64` helper — lock-free, so still atomic between processes.
#[cfg(not(target_has_atomic = "64"))]
pub use portable_atomic::AtomicU64;
#[cfg(target_has_atomic = "64")]
pub use std::sync::atomic::AtomicU64;

/// Number of threads of this process, from /proc/self/status (Linux).
pub fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Threads:").and_then(|v| v.trim().parse().ok())))
        .unwrap_or(1)
}

#[derive(Debug, thiserror::Error)]
pub enum ForkError {
    #[error("refusing to fork: this process has {0} threads (fork is only safe single-threaded)")]
    Threaded(usize),
    #[error("fork: {0}")]
    Fork(#[from] nix::Error),
}

/// Exit status of a child that found its parent already gone before it could ask to die with it.
pub const ORPHANED: i32 = 111;

/// Fork; in the child run `child` and `_exit` with its return value — the child never returns into the
/// caller. The child gets PR_SET_PDEATHSIG(SIGKILL) (dies with the scheduler), stays in the caller's process
/// group, and has the signals the scheduler blocked unblocked again.
pub fn fork_child(child: impl FnOnce() -> i32) -> Result<Pid, ForkError> {
    // A thread just joined may still be counted for a moment (the kernel clears its id, which join waits
    // for, before it leaves the thread group): look again for up to 100 ms before refusing.
    let mut threads = thread_count();
    for _ in 0..100 {
        if threads <= 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
        threads = thread_count();
    }
    if threads > 1 {
        return Err(ForkError::Threaded(threads));
    }
    let parent = nix::unistd::getpid();
    // SAFETY: the process is single-threaded (checked above), so the child's copy of every lock and
    // allocator state is consistent; the child only runs `child` and then `_exit`s.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            let _ = nix::sys::prctl::set_pdeathsig(Some(Signal::SIGKILL));
            if nix::unistd::getppid() != parent {
                exit_now(ORPHANED);
            }
            let _ = SigSet::all().thread_unblock();
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(112);
            exit_now(code)
        }
    }
}

/// Make this process the reaper of its descendants' orphans (PR_SET_CHILD_SUBREAPER).
pub fn become_subreaper() -> nix::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
}

/// Kill and wait for every remaining child: at the points this is called, any child is an orphan
/// re-parented here whose worker was killed (e.g. an rpm, already on its way out through PR_SET_PDEATHSIG),
/// and nothing may still write while the database is judged. Err if one outlives `limit` (stuck in the
/// kernel, e.g. an fsync on a stalled disk): the caller must not judge then.
pub fn reap_orphans(limit: std::time::Duration) -> Result<(), String> {
    for pid in children() {
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
    }
    let start = std::time::Instant::now();
    loop {
        match nix::sys::wait::waitpid(Pid::from_raw(-1), Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) => {
                if start.elapsed() >= limit {
                    let left: Vec<String> = children().iter().map(|p| p.to_string()).collect();
                    return Err(format!("orphaned processes {} did not die within {limit:?}", left.join(", ")));
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Ok(_) => {}
            Err(_) => return Ok(()), // ECHILD: none left
        }
    }
}

/// Children of this process, from /proc.
fn children() -> Vec<Pid> {
    let me = nix::unistd::getpid().as_raw();
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().is_some_and(|st| {
                // pid (comm) state ppid …: comm may hold spaces, so split after the last ')'.
                st.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok())
                    == Some(me)
            })
        })
        .map(Pid::from_raw)
        .collect()
}

/// End this (child) process at once: no atexit handlers, no flushing of stdio buffers copied from the parent.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` has no preconditions; it never returns.
    unsafe { libc::_exit(code) }
}

/// Anonymous memory shared (MAP_SHARED) between the scheduler and the workers it forks after creating it,
/// viewed as 64-bit atomic words.
pub struct SharedWords {
    ptr: NonNull<AtomicU64>,
    len: usize,
}

impl SharedWords {
    pub fn new(words: usize) -> nix::Result<SharedWords> {
        let bytes = NonZeroUsize::new(words.max(1) * 8).expect("non-zero");
        // SAFETY: a fresh anonymous mapping; no existing memory is affected.
        let p =
            unsafe { mmap_anonymous(None, bytes, ProtFlags::PROT_READ | ProtFlags::PROT_WRITE, MapFlags::MAP_SHARED) }?;
        Ok(SharedWords { ptr: p.cast(), len: words.max(1) })
    }

    pub fn words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is `len` u64 words, page-aligned, zero-initialised, valid until drop, and only
        // ever accessed through atomics (also by other processes sharing it).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for SharedWords {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the region mapped in `new`; no references outlive `self`.
        let _ = unsafe { munmap(self.ptr.cast(), self.len * 8) };
    }
}

impl SharedWords {
    /// In a forked child: the same words with a `'static` lifetime, for the crash-point hook.
    pub fn child_static(&self) -> &'static [AtomicU64] {
        // SAFETY: only called in a forked worker, which never drops `self` or unmaps the region: it ends with
        // `_exit` (see `fork_child`), so the mapping outlives every use of the returned slice.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

/// A word of a [`SharedWords`] mapping published process-wide: children forked while it is published find it
/// through [`published_word`] (the power-loss recorder's operation counter, read by workers after `commit`).
static PUBLISHED: std::sync::atomic::AtomicPtr<AtomicU64> = std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

/// Publish word 0 of `words` (or, with `None`, withdraw it: before the mapping is dropped).
pub fn publish_word(words: Option<&SharedWords>) {
    let p = words.map_or(std::ptr::null_mut(), |w| w.ptr.as_ptr());
    PUBLISHED.store(p, std::sync::atomic::Ordering::SeqCst);
}

/// The published word, if one is.
pub fn published_word() -> Option<&'static AtomicU64> {
    let p = PUBLISHED.load(std::sync::atomic::Ordering::SeqCst);
    // SAFETY: `p` is null or word 0 of a live `SharedWords` mapping (aligned, initialised, only accessed
    // atomically): the owner withdraws it before dropping the mapping, and forked workers that inherited it
    // end with `_exit` while the mapping is still theirs.
    unsafe { p.as_ref() }
}

static TERMINATE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_terminate(_: libc::c_int) {
    TERMINATE.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// In a worker: catch SIGINT and SIGTERM the way rpm does — note them, finish the current database
/// operation, close cleanly and exit — instead of dying on the spot.
pub fn catch_terminate() {
    let act = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(on_terminate),
        nix::sys::signal::SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let _ = unsafe { nix::sys::signal::sigaction(sig, &act) };
    }
}

/// Whether SIGINT or SIGTERM arrived since [`catch_terminate`].
pub fn terminate_requested() -> bool {
    TERMINATE.load(std::sync::atomic::Ordering::SeqCst)
}
