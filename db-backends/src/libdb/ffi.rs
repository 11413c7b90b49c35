//! The only `unsafe` of the libdb backend: declarations of our C shim over Berkeley DB 5.3 (`shim.c`) and
//! safe handles around them — an environment, a database, a cursor — that own their BDB handles, close
//! them on drop, and copy every value BDB hands out into Rust memory.
//!
//! Why a shim and not `extern` declarations of BDB itself: BDB's API is function pointers inside the
//! `DB_ENV`/`DB`/`DBC` structs, whose layout differs between x86_64 and 32-bit ARM; the shim is compiled
//! against the target's own `<db.h>`, so Rust needs no struct layout at all.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;
use std::rc::Rc;

#[repr(C)]
struct RawEnv {
    _private: [u8; 0],
}
#[repr(C)]
struct RawDb {
    _private: [u8; 0],
}
#[repr(C)]
struct RawCursor {
    _private: [u8; 0],
}

unsafe extern "C" {
    fn dbt_take_messages() -> *mut c_char;
    fn dbt_strerror(err: c_int) -> *const c_char;
    fn dbt_version(major: *mut c_int, minor: *mut c_int, patch: *mut c_int) -> *const c_char;
    fn dbt_env_open(home: *const c_char, flags: c_uint, thread_count: c_uint, out: *mut *mut RawEnv) -> c_int;
    fn dbt_env_failchk(env: *mut RawEnv) -> c_int;
    fn dbt_env_close(env: *mut RawEnv) -> c_int;
    fn dbt_db_open(env: *mut RawEnv, file: *const c_char, ty: c_int, flags: c_uint, out: *mut *mut RawDb) -> c_int;
    fn dbt_db_sync(db: *mut RawDb) -> c_int;
    fn dbt_db_close(db: *mut RawDb) -> c_int;
    fn dbt_cursor(db: *mut RawDb, write: c_int, out: *mut *mut RawCursor) -> c_int;
    fn dbt_cursor_close(c: *mut RawCursor) -> c_int;
    fn dbt_cursor_get(
        c: *mut RawCursor,
        key: *const c_void,
        klen: usize,
        data: *mut *mut c_void,
        dlen: *mut usize,
    ) -> c_int;
    fn dbt_cursor_next(
        c: *mut RawCursor,
        key: *mut *mut c_void,
        klen: *mut usize,
        data: *mut *mut c_void,
        dlen: *mut usize,
    ) -> c_int;
    fn dbt_cursor_put(c: *mut RawCursor, key: *const c_void, klen: usize, data: *const c_void, dlen: usize) -> c_int;
    fn dbt_cursor_del(c: *mut RawCursor, key: *const c_void, klen: usize) -> c_int;
    fn dbt_const_notfound() -> c_int;
    fn dbt_const_runrecovery() -> c_int;
}

/// An error code of Berkeley DB (or errno), with `db_strerror`'s text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError {
    pub code: i32,
    pub text: String,
}

impl DbError {
    fn of(code: c_int) -> DbError {
        // SAFETY: db_strerror returns a pointer to a static or thread-local NUL-terminated string for any
        // code; we copy it at once.
        let text = unsafe { CStr::from_ptr(dbt_strerror(code)) }.to_string_lossy().into_owned();
        DbError { code, text }
    }

    /// DB_RUNRECOVERY: the environment panicked (or failchk found a dead writer).
    pub fn is_run_recovery(&self) -> bool {
        // SAFETY: returns a constant from <db.h>; no arguments, no state.
        self.code == unsafe { dbt_const_runrecovery() }
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.text, self.code)
    }
}

fn check(code: c_int) -> Result<(), DbError> {
    if code == 0 { Ok(()) } else { Err(DbError::of(code)) }
}

fn notfound() -> c_int {
    // SAFETY: returns a constant from <db.h>; no arguments, no state.
    unsafe { dbt_const_notfound() }
}

/// The largest key or value taken from BDB: far above any rpm header (rpm 4.18's are a few MiB), far below
/// what a damaged page can claim (an overflow item's length is whatever its bytes say; BDB mallocs it).
pub const MAX_VALUE: usize = 64 << 20;

/// Copy a malloc'd buffer BDB returned into a Vec and free it; a buffer over [`MAX_VALUE`] is freed without
/// a copy and is an error (a damaged length), so a corrupt file never costs twice its claim in memory.
fn take_malloced(p: *mut c_void, len: usize) -> Result<Vec<u8>, DbError> {
    if p.is_null() {
        return Ok(Vec::new());
    }
    // SAFETY: BDB returned `p` with DB_DBT_MALLOC: `len` initialised bytes allocated by libc malloc, owned
    // by us from now on. We copy them (or not), then free the buffer exactly once.
    unsafe {
        let v = (len <= MAX_VALUE).then(|| std::slice::from_raw_parts(p as *const u8, len).to_vec());
        libc::free(p);
        v.ok_or_else(|| DbError {
            code: libc::EFBIG,
            text: format!("an item of {len} bytes: over the {} MiB any rpmdb item can be", MAX_VALUE >> 20),
        })
    }
}

fn cpath(p: &Path) -> Result<CString, DbError> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| DbError { code: libc::EINVAL, text: format!("{}: path contains NUL", p.display()) })
}

/// Messages Berkeley DB printed in this process since the last call (errcall and msgcall), one per line.
pub fn take_messages() -> Vec<String> {
    // SAFETY: returns NULL or a malloc'd NUL-terminated string that we own; copied, then freed once.
    unsafe {
        let p = dbt_take_messages();
        if p.is_null() {
            return Vec::new();
        }
        let s = CStr::from_ptr(p).to_string_lossy().into_owned();
        libc::free(p as *mut c_void);
        s.lines().map(str::to_string).collect()
    }
}

/// The linked library's version string and numbers.
pub fn version() -> (String, (i32, i32, i32)) {
    let (mut a, mut b, mut c) = (0, 0, 0);
    // SAFETY: db_version writes three ints through valid pointers and returns a static string.
    let s = unsafe { CStr::from_ptr(dbt_version(&mut a, &mut b, &mut c)) };
    (s.to_string_lossy().into_owned(), (a, b, c))
}

struct EnvInner {
    ptr: NonNull<RawEnv>,
}

impl Drop for EnvInner {
    fn drop(&mut self) {
        // SAFETY: the pointer came from a successful dbt_env_open and is closed exactly once, here; every
        // database handle holds an Rc of this and is therefore closed before.
        unsafe {
            dbt_env_close(self.ptr.as_ptr());
        }
    }
}

/// An open environment (`DB_ENV`). Databases opened in it keep it alive.
#[derive(Clone)]
pub struct Env {
    inner: Rc<EnvInner>,
}

/// Options of [`Env::open`].
#[derive(Debug, Clone, Copy)]
pub struct EnvOptions {
    pub create: bool,
    /// Pass DB_FAILCHK to `DB_ENV->open`.
    pub failchk_on_open: bool,
    pub thread_count: u32,
}

impl Env {
    pub fn open(home: &Path, opts: EnvOptions) -> Result<Env, DbError> {
        let home = cpath(home)?;
        let flags = u32::from(opts.create) | (u32::from(opts.failchk_on_open) << 1);
        let mut out = std::ptr::null_mut();
        // SAFETY: `home` is a valid C string for the call; `out` is a valid out-pointer, set to a live
        // handle on success and NULL on failure (the shim closes a handle that failed to open).
        check(unsafe { dbt_env_open(home.as_ptr(), flags, opts.thread_count, &mut out) })?;
        let ptr = NonNull::new(out).ok_or_else(|| DbError { code: libc::EINVAL, text: "no handle".into() })?;
        Ok(Env { inner: Rc::new(EnvInner { ptr }) })
    }

    /// `DB_ENV->failchk`: free dead readers' locks; DB_RUNRECOVERY for a dead writer or a thread that died
    /// inside the library.
    pub fn failchk(&self) -> Result<(), DbError> {
        // SAFETY: the handle is open (owned by `inner`), and BDB handles are used from one thread only
        // (Env is !Send through Rc).
        check(unsafe { dbt_env_failchk(self.inner.ptr.as_ptr()) })
    }

    /// Close now (`DB_ENV->close`), reporting its error; fails if databases are still open.
    pub fn close(self) -> Result<(), DbError> {
        match Rc::try_unwrap(self.inner) {
            Ok(inner) => {
                let p = inner.ptr.as_ptr();
                std::mem::forget(inner);
                // SAFETY: we own the only reference; `forget` above keeps Drop from closing it twice.
                check(unsafe { dbt_env_close(p) })
            }
            Err(_) => Err(DbError { code: libc::EBUSY, text: "databases of this environment are still open".into() }),
        }
    }
}

/// Access method of a data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbType {
    Hash,
    Btree,
    /// Whatever the file is (read-only opening of an existing file).
    Unknown,
}

/// An open database (`DB`).
pub struct Db {
    ptr: Option<NonNull<RawDb>>,
    _env: Option<Env>,
}

impl Db {
    /// Open `file` (a path, or a name relative to the environment's home) in `env`, or alone with a private
    /// cache when `env` is `None`.
    pub fn open(env: Option<&Env>, file: &Path, ty: DbType, create: bool, read_only: bool) -> Result<Db, DbError> {
        let name = cpath(file)?;
        let t = match ty {
            DbType::Hash => 1,
            DbType::Btree => 2,
            DbType::Unknown => 0,
        };
        let flags = u32::from(create) | (u32::from(read_only) << 1);
        let raw_env = env.map(|e| e.inner.ptr.as_ptr()).unwrap_or(std::ptr::null_mut());
        let mut out = std::ptr::null_mut();
        // SAFETY: `raw_env` is NULL or an open environment kept alive by the Env clone stored below; `name`
        // lives across the call; `out` is a valid out-pointer, NULL on failure.
        check(unsafe { dbt_db_open(raw_env, name.as_ptr(), t, flags, &mut out) })?;
        Ok(Db { ptr: NonNull::new(out), _env: env.cloned() })
    }

    fn raw(&self) -> Result<*mut RawDb, DbError> {
        self.ptr.map(|p| p.as_ptr()).ok_or_else(|| DbError { code: libc::EINVAL, text: "database is closed".into() })
    }

    /// A cursor: `write` makes it a CDB write cursor (IW lock; puts upgrade to W).
    pub fn cursor(&self, write: bool) -> Result<Cursor<'_>, DbError> {
        let db = self.raw()?;
        let mut out = std::ptr::null_mut();
        // SAFETY: `db` is open; `out` is a valid out-pointer.
        check(unsafe { dbt_cursor(db, c_int::from(write), &mut out) })?;
        let ptr = NonNull::new(out).ok_or_else(|| DbError { code: libc::EINVAL, text: "no cursor".into() })?;
        Ok(Cursor { ptr: Some(ptr), _db: std::marker::PhantomData })
    }

    /// `DB->sync`: write the cache's dirty pages of this file and fsync it.
    pub fn sync(&self) -> Result<(), DbError> {
        let db = self.raw()?;
        // SAFETY: `db` is open and used from this thread only.
        check(unsafe { dbt_db_sync(db) })
    }

    pub fn close(mut self) -> Result<(), DbError> {
        match self.ptr.take() {
            // SAFETY: the handle is open and closed exactly once (ptr is taken, so Drop skips it).
            Some(p) => check(unsafe { dbt_db_close(p.as_ptr()) }),
            None => Ok(()),
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(p) = self.ptr.take() {
            // SAFETY: the handle is open and closed exactly once; cursors borrow the Db, so none is open.
            unsafe {
                dbt_db_close(p.as_ptr());
            }
        }
    }
}

/// A cursor (`DBC`) on one database; closed on drop (releasing its CDB lock).
pub struct Cursor<'a> {
    ptr: Option<NonNull<RawCursor>>,
    _db: std::marker::PhantomData<&'a Db>,
}

impl Cursor<'_> {
    fn raw(&self) -> Result<*mut RawCursor, DbError> {
        self.ptr.map(|p| p.as_ptr()).ok_or_else(|| DbError { code: libc::EINVAL, text: "cursor is closed".into() })
    }

    /// The value of `key`, if present.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, DbError> {
        let c = self.raw()?;
        let (mut data, mut len) = (std::ptr::null_mut(), 0usize);
        // SAFETY: `c` is open; `key` is valid for `key.len()` bytes during the call; data/len are valid
        // out-pointers, and the value returned is malloc'd memory we take over.
        let r = unsafe { dbt_cursor_get(c, key.as_ptr().cast(), key.len(), &mut data, &mut len) };
        if r == notfound() {
            return Ok(None);
        }
        check(r)?;
        Ok(Some(take_malloced(data, len)?))
    }

    /// The next (key, value) pair in the file's order.
    pub fn next_pair(&mut self) -> Result<Option<crate::bdbenv::datafile::KeyValue>, DbError> {
        let c = self.raw()?;
        let (mut k, mut kl, mut d, mut dl) = (std::ptr::null_mut(), 0usize, std::ptr::null_mut(), 0usize);
        // SAFETY: `c` is open; all four are valid out-pointers; key and value come back malloc'd.
        let r = unsafe { dbt_cursor_next(c, &mut k, &mut kl, &mut d, &mut dl) };
        if r == notfound() {
            return Ok(None);
        }
        check(r)?;
        let key = take_malloced(k, kl);
        let value = take_malloced(d, dl);
        Ok(Some((key?, value?)))
    }

    /// Store `key` → `value`, replacing a value already there.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), DbError> {
        let c = self.raw()?;
        // SAFETY: `c` is open; key and value are valid for their lengths during the call (BDB copies them).
        check(unsafe { dbt_cursor_put(c, key.as_ptr().cast(), key.len(), value.as_ptr().cast(), value.len()) })
    }

    /// Delete `key`; false if it was not there.
    pub fn del(&mut self, key: &[u8]) -> Result<bool, DbError> {
        let c = self.raw()?;
        // SAFETY: `c` is open; `key` is valid for its length during the call.
        let r = unsafe { dbt_cursor_del(c, key.as_ptr().cast(), key.len()) };
        if r == notfound() {
            return Ok(false);
        }
        check(r).map(|()| true)
    }

    /// Close now, reporting the error (`DBC->close` releases the cursor's lock).
    pub fn close(mut self) -> Result<(), DbError> {
        match self.ptr.take() {
            // SAFETY: the cursor is open and closed exactly once (ptr is taken, so Drop skips it).
            Some(p) => check(unsafe { dbt_cursor_close(p.as_ptr()) }),
            None => Ok(()),
        }
    }
}

impl Drop for Cursor<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.ptr.take() {
            // SAFETY: the cursor is open and closed exactly once, before its database (it borrows it).
            unsafe {
                dbt_cursor_close(p.as_ptr());
            }
        }
    }
}

/// How a child of [`run_in_child`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildEnd {
    Exited(i32),
    Signaled(String),
    TimedOut,
    Other(String),
}

/// Fork a child that runs `f` with the write end of a pipe, collect everything it writes until it exits or
/// `timeout` passes (then SIGKILL it). For reading possibly damaged files through BDB: a crash or a hang in
/// the library ends the child, never the caller.
///
/// Call only from a single-threaded process (the harness's scheduler, a worker, a test's own process): the
/// child of a threaded parent may inherit locks (malloc's) held by threads that no longer exist.
pub fn run_in_child(
    timeout: std::time::Duration,
    f: impl FnOnce(&mut std::fs::File) -> i32,
) -> std::io::Result<(Vec<u8>, ChildEnd)> {
    use nix::sys::wait::{WaitStatus, waitpid};
    use std::io::Read;
    use std::os::fd::AsFd;
    let (rd, wr) = nix::unistd::pipe()?;
    let parent = nix::unistd::getpid();
    // SAFETY: fork in a process whose other threads (if any) we do not rely on in the child: the child
    // only runs `f` (BDB calls on its own handles and writes to the pipe) and leaves with _exit, never
    // returning into the caller's stack or running destructors or atexit handlers of the parent's state.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => {
            // Die with the process that asked (a reader stuck in a damaged environment must not outlive it).
            let _ = nix::sys::prctl::set_pdeathsig(Some(nix::sys::signal::Signal::SIGKILL));
            if nix::unistd::getppid() != parent {
                // SAFETY: _exit ends the child at once without unwinding or running the parent's exit handlers.
                unsafe { libc::_exit(crate::child::ChildExit::Orphaned.code()) }
            }
            drop(rd);
            let mut out = std::fs::File::from(wr);
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut out)))
                .unwrap_or(crate::child::ChildExit::Panicked as i32);
            let _ = std::io::Write::flush(&mut out);
            // SAFETY: _exit ends the child at once without unwinding or running the parent's exit handlers.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(wr);
            let deadline = std::time::Instant::now() + timeout;
            let mut file = std::fs::File::from(rd);
            let mut bytes = Vec::new();
            let mut timed_out = false;
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    timed_out = true;
                    break;
                }
                let ms = left.as_millis().clamp(1, 1000) as u16;
                let mut fds = [nix::poll::PollFd::new(file.as_fd(), nix::poll::PollFlags::POLLIN)];
                match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
                    Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                    Ok(_) => {}
                    Err(e) => return Err(e.into()),
                }
                let mut buf = [0u8; 1 << 16];
                match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => bytes.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            if timed_out {
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
            }
            let end = match waitpid(child, None) {
                _ if timed_out => ChildEnd::TimedOut,
                Ok(WaitStatus::Exited(_, c)) => ChildEnd::Exited(c),
                Ok(WaitStatus::Signaled(_, s, _)) => ChildEnd::Signaled(s.to_string()),
                Ok(other) => ChildEnd::Other(format!("{other:?}")),
                Err(e) => ChildEnd::Other(format!("waitpid: {e}")),
            };
            Ok((bytes, end))
        }
    }
}
