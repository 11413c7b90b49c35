//! The lock region (`__db.003` with db 4.3's layout): lockers, lock objects and locks in preallocated pools,
//! linked by self-relative lists, found through hash tables, guarded by a region mutex that records its
//! owner's pid. Concurrent Data Store (CDB) modes and conflicts, db 4.4's error checks.
//!
//! Why a faithful re-creation: seed 000's corruption lived here. A stale page of this file breaks exactly
//! these links and counters, and the messages rpm printed ("Unknown locker ID", "Locker is not valid",
//! "Locker still has locks") come from exactly these checks. Layout (host byte order, pointer-width links):
//! see the `H_*`, `LK_*`, `OB_*`, `L_*` offsets below; `dbtorture inspect` prints it all.

use super::lock_layout::put_u32;
pub use super::lock_layout::*;
use super::mmap::Region;
use super::origin::Layout;
use super::shqueue::{BadLink, Link};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// CDB lock modes (db_lockmode_t order used by CDB's 5×5 matrix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Mode {
    N = 0,
    R = 1,
    W = 2,
    WT = 3,
    IW = 4,
}

impl Mode {
    pub fn from_u32(v: u32) -> Option<Mode> {
        Some(match v {
            0 => Mode::N,
            1 => Mode::R,
            2 => Mode::W,
            3 => Mode::WT,
            4 => Mode::IW,
            _ => return None,
        })
    }
    pub fn is_write(self) -> bool {
        matches!(self, Mode::W | Mode::WT | Mode::IW)
    }
    pub fn name(v: u32) -> &'static str {
        match Mode::from_u32(v) {
            Some(Mode::N) => "NG",
            Some(Mode::R) => "READ",
            Some(Mode::W) => "WRITE",
            Some(Mode::WT) => "WAIT",
            Some(Mode::IW) => "IWRITE",
            None => "?",
        }
    }
}

/// BDB's `db_cdb_conflicts`, [held][requested].
const CONFLICTS: [[bool; 5]; 5] = [
    [false, false, false, false, false],
    [false, false, true, false, false],
    [false, true, true, true, true],
    [false, false, false, false, false],
    [false, false, true, false, true],
];

pub fn conflicts(held: u32, requested: Mode) -> bool {
    (held as usize) < 5 && CONFLICTS[held as usize][requested as usize]
}

/// Lock status (db_status_t).
pub mod status {
    pub const ABORTED: u32 = 1;
    pub const EXPIRED: u32 = 2;
    pub const FREE: u32 = 3;
    pub const HELD: u32 = 4;
    pub const PENDING: u32 = 5;
    pub const WAITING: u32 = 6;
    pub fn name(s: u32) -> &'static str {
        match s {
            ABORTED => "ABORTED",
            EXPIRED => "EXPIRED",
            FREE => "FREE",
            HELD => "HELD",
            PENDING => "PENDING",
            WAITING => "WAITING",
            _ => "?",
        }
    }
}

/// Errors with Berkeley DB's own words (what rpm printed as "rpmdb: ...").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockError {
    #[error("Unknown locker ID: {0:x}")]
    UnknownLocker(u32),
    #[error("Locker still has locks")]
    LockerHasLocks,
    #[error("Locker is not valid")]
    LockerNotValid,
    #[error("Locker does not exist")]
    LockerDoesNotExist,
    #[error("Lock is no longer valid")]
    LockNotValid,
    #[error("Lock table is out of available {0}")]
    OutOf(&'static str),
    #[error("{0}")]
    Link(String),
    #[error("lock region is not initialised (bad magic)")]
    BadMagic,
}

impl From<BadLink> for LockError {
    fn from(b: BadLink) -> Self {
        LockError::Link(b.to_string())
    }
}

impl LockError {
    /// The errno BDB returns for it (EINVAL = 22, ENOMEM = 12).
    pub fn errno(&self) -> i32 {
        match self {
            LockError::OutOf(_) => 12,
            _ => 22,
        }
    }
}

/// A lock held (or waited for): region offset and generation, like BDB's DB_LOCK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockHandle {
    pub off: usize,
    pub generation: u32,
}

/// Lay out a fresh lock region: every element on its free list, empty hash tables, zero counters. The magic
/// is written last.
pub fn init(region: &mut Region, s: &Sizes) -> Result<(), LockError> {
    init_as(region.bytes_mut(), s, Layout::NATIVE)
}

/// [`init`] of a region laid out with `lay`'s link width (tests and tools write another machine's layout
/// with it; the environment's writer always uses the native one).
pub fn init_as(r: &mut [u8], s: &Sizes, lay: Layout) -> Result<(), LockError> {
    r.fill(0);
    let mut off = HEADER_SIZE;
    let mut take = |n: usize| {
        let o = off;
        off += n;
        o
    };
    let locker_tab = take(s.locker_t_size as usize * lay.head_size());
    let object_tab = take(s.object_t_size as usize * lay.head_size());
    let lockers = take(s.lockers as usize * LOCKER_SIZE);
    let objects = take(s.objects as usize * OBJECT_SIZE);
    let locks = take(s.locks as usize * LOCK_SIZE);
    for (at, v) in [
        (H_CUR_MAXID, 0x7fff_ffff),
        (H_MAXLOCKERS, s.lockers),
        (H_MAXOBJECTS, s.objects),
        (H_MAXLOCKS, s.locks),
        (H_LOCKER_T_SIZE, s.locker_t_size),
        (H_OBJECT_T_SIZE, s.object_t_size),
        (H_LOCKER_TAB, locker_tab as u32),
        (H_OBJECT_TAB, object_tab as u32),
        (H_LOCKERS, lockers as u32),
        (H_OBJECTS, objects as u32),
        (H_LOCKS, locks as u32),
    ] {
        put_u32(r, at, v)?;
    }
    let g = Geometry::read_as(r, lay).ok_or(LockError::BadMagic)?;
    for q in [g.free_lockers(), g.free_objects(), g.free_locks(), g.inuse_lockers()] {
        q.init(r)?;
    }
    for i in 0..s.locker_t_size {
        g.locker_bucket(i).init(r)?;
    }
    for i in 0..s.object_t_size {
        g.object_bucket(i).init(r)?;
    }
    // Free lists are LIFO; insert in reverse so element 0 is handed out first.
    for i in (0..s.lockers as usize).rev() {
        g.free_lockers().insert_head(r, lockers + i * LOCKER_SIZE)?;
    }
    for i in (0..s.objects as usize).rev() {
        g.free_objects().insert_head(r, objects + i * OBJECT_SIZE)?;
    }
    for i in (0..s.locks as usize).rev() {
        let l = locks + i * LOCK_SIZE;
        put_u32(r, l + g.f.l_status, status::FREE)?;
        g.free_locks().insert_head(r, l)?;
    }
    put_u32(r, H_MAGIC, MAGIC)?;
    Ok(())
}

/// The region mutex: a CAS word in the region plus the owner's pid. A process that dies holding it leaves
/// it held; waiters then wait for ever, exactly as with BDB's region mutex (the harness times them out).
/// Each critical section is a turn (`crate::turns`): waited for before the mutex is taken, and taken
/// ([`mutex_unlock`]) before it is released, so the order of turns is the order of critical sections.
pub fn mutex_lock(region: &Region, at: usize, pid: u32) {
    crate::turns::wait();
    let (word, owner) = (region.atomic_u32(at).expect("mutex word"), region.atomic_u32(at + 4).expect("owner"));
    let mut spins = 0u32;
    loop {
        if word.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            owner.store(pid, Ordering::Release);
            return;
        }
        spins += 1;
        if spins < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::sleep(Duration::from_micros(u64::from(spins.min(1000))));
        }
    }
}

pub fn mutex_unlock(region: &Region, at: usize) {
    crate::turns::took();
    mutex_unlock_unseen(region, at);
}

/// Release after a critical section that changed nothing and decided nothing (a poll that found a lock
/// still waiting): no turn taken.
pub fn mutex_unlock_unseen(region: &Region, at: usize) {
    region.atomic_u32(at + 4).expect("owner").store(0, Ordering::Release);
    region.atomic_u32(at).expect("mutex word").store(0, Ordering::Release);
}

/// A locker in use: (region offset, id, pid, nlocks, nwrites).
pub type LockerInfo = (usize, u32, u32, u32, u32);

/// Operations on a mapped lock region. Callers hold the region mutex around each call.
pub struct LockTable<'a> {
    pub r: &'a mut [u8],
    pub g: Geometry,
}

impl<'a> LockTable<'a> {
    pub fn new(r: &'a mut [u8]) -> Result<LockTable<'a>, LockError> {
        LockTable::new_as(r, Layout::NATIVE)
    }

    /// A lock table over a region laid out with `lay`'s link width.
    pub fn new_as(r: &'a mut [u8], lay: Layout) -> Result<LockTable<'a>, LockError> {
        if u32_at(r, H_MAGIC) != MAGIC {
            return Err(LockError::BadMagic);
        }
        let g = Geometry::read_as(r, lay).ok_or(LockError::BadMagic)?;
        Ok(LockTable { r, g })
    }

    fn get(&self, at: usize) -> u32 {
        u32_at(self.r, at)
    }

    fn set(&mut self, at: usize, v: u32) -> Result<(), LockError> {
        put_u32(self.r, at, v)
    }

    fn bump(&mut self, at: usize, hwm: Option<usize>) -> Result<(), LockError> {
        let v = self.get(at).wrapping_add(1);
        self.set(at, v)?;
        if let Some(h) = hwm
            && v > self.get(h)
        {
            self.set(h, v)?;
        }
        Ok(())
    }

    fn drop1(&mut self, at: usize) -> Result<(), LockError> {
        // u32 like BDB: a double decrement wraps, and the verifier reports it as a negative count.
        let v = self.get(at).wrapping_sub(1);
        self.set(at, v)
    }

    /// Find a locker by id in its hash bucket (bounded walk).
    pub fn find_locker(&self, id: u32) -> Result<Option<usize>, LockError> {
        let q = self.g.locker_bucket(id % self.g.locker_t_size);
        let mut cur = q.first(self.r)?;
        let mut steps = 0;
        while let Some(l) = cur {
            if self.get(l + LK_ID) == id {
                return Ok(Some(l));
            }
            steps += 1;
            if steps > self.g.maxlockers {
                return Err(LockError::Link(format!(
                    "locker bucket {} does not end (cycle)",
                    id % self.g.locker_t_size
                )));
            }
            cur = q.next(self.r, l)?;
        }
        Ok(None)
    }

    /// `lock_id`: allocate a locker for `pid`.
    pub fn locker_alloc(&mut self, pid: u32) -> Result<u32, LockError> {
        let free = self.g.free_lockers();
        let l = free.first(self.r)?.ok_or(LockError::OutOf("lockers"))?;
        free.remove(self.r, l)?;
        let mut id = self.get(H_LOCK_ID).wrapping_add(1);
        if id == 0 || id > self.get(H_CUR_MAXID) {
            id = 1;
        }
        self.set(H_LOCK_ID, id)?;
        for (at, v) in [(LK_ID, id), (LK_PID, pid), (LK_TID, 0), (LK_NLOCKS, 0), (LK_NWRITES, 0), (LK_FLAGS, 0)] {
            self.set(l + at, v)?;
        }
        self.g.heldby(l).init(self.r)?;
        self.g.locker_bucket(id % self.g.locker_t_size).insert_head(self.r, l)?;
        self.g.inuse_lockers().insert_tail(self.r, l)?;
        self.bump(H_NLOCKERS, Some(H_HWM_LOCKERS))?;
        Ok(id)
    }

    /// `lock_id_free`, with db 4.4's checks.
    pub fn locker_free(&mut self, id: u32) -> Result<(), LockError> {
        let l = self.find_locker(id)?.ok_or(LockError::UnknownLocker(id))?;
        if self.get(l + LK_NLOCKS) != 0 {
            return Err(LockError::LockerHasLocks);
        }
        self.unlink_locker(id, l)
    }

    /// `lock_id_free` without the nlocks check (only the planted bug uses it).
    pub fn locker_free_unchecked(&mut self, id: u32) -> Result<(), LockError> {
        let l = self.find_locker(id)?.ok_or(LockError::UnknownLocker(id))?;
        self.unlink_locker(id, l)
    }

    fn unlink_locker(&mut self, id: u32, l: usize) -> Result<(), LockError> {
        self.g.locker_bucket(id % self.g.locker_t_size).remove(self.r, l)?;
        self.g.inuse_lockers().remove(self.r, l)?;
        self.g.free_lockers().insert_head(self.r, l)?;
        self.drop1(H_NLOCKERS)
    }

    fn find_object(&self, key: &[u8]) -> Result<Option<usize>, LockError> {
        let q = self.g.object_bucket(hash_key(key) % self.g.object_t_size);
        let mut cur = q.first(self.r)?;
        let mut steps = 0;
        while let Some(o) = cur {
            let len = self.get(o + OB_KEYLEN) as usize;
            if len == key.len() && self.r.get(o + OB_KEY..o + OB_KEY + len) == Some(key) {
                return Ok(Some(o));
            }
            steps += 1;
            if steps > self.g.maxobjects {
                return Err(LockError::Link("object bucket does not end (cycle)".into()));
            }
            cur = q.next(self.r, o)?;
        }
        Ok(None)
    }

    fn object_for(&mut self, key: &[u8]) -> Result<usize, LockError> {
        if let Some(o) = self.find_object(key)? {
            return Ok(o);
        }
        let free = self.g.free_objects();
        let o = free.first(self.r)?.ok_or(LockError::OutOf("lock objects"))?;
        free.remove(self.r, o)?;
        let key = &key[..key.len().min(KEY_MAX)];
        self.set(o + OB_KEYLEN, key.len() as u32)?;
        self.r[o + OB_KEY..o + OB_KEY + KEY_MAX].fill(0);
        self.r[o + OB_KEY..o + OB_KEY + key.len()].copy_from_slice(key);
        self.g.holders(o).init(self.r)?;
        self.g.waiters(o).init(self.r)?;
        self.g.object_bucket(hash_key(key) % self.g.object_t_size).insert_head(self.r, o)?;
        self.bump(H_NOBJECTS, Some(H_HWM_OBJECTS))?;
        Ok(o)
    }

    /// Whether a holder of another locker conflicts with `mode` on object `o`.
    pub fn conflicting_holder(
        &self,
        o: usize,
        locker: u32,
        mode: Mode,
        except: Option<usize>,
    ) -> Result<bool, LockError> {
        let q = self.g.holders(o);
        let mut cur = q.first(self.r)?;
        let mut steps = 0;
        while let Some(l) = cur {
            if Some(l) != except && self.get(l + L_HOLDER) != locker && conflicts(self.get(l + self.g.f.l_mode), mode) {
                return Ok(true);
            }
            steps += 1;
            if steps > self.g.maxlocks {
                return Err(LockError::Link("holders list does not end (cycle)".into()));
            }
            cur = q.next(self.r, l)?;
        }
        Ok(false)
    }

    /// `lock_get`: returns the handle and whether it was granted (false: it waits on the waiters list).
    pub fn lock_get(&mut self, locker: u32, key: &[u8], mode: Mode) -> Result<(LockHandle, bool), LockError> {
        self.bump(H_NREQUESTS, None)?;
        let lk = self.find_locker(locker)?.ok_or(LockError::LockerDoesNotExist)?;
        // The free lock is found before the object is taken, so running out of locks leaves no object
        // behind (object_for does not touch the free-lock list, so `l` stays first on it).
        let free = self.g.free_locks();
        let l = free.first(self.r)?.ok_or(LockError::OutOf("locks"))?;
        let o = self.object_for(key)?;
        let conflict = self.conflicting_holder(o, locker, mode, None)? || self.g.waiters(o).first(self.r)?.is_some();
        free.remove(self.r, l)?;
        let generation = self.get(l + L_GEN);
        self.set(l + L_HOLDER, locker)?;
        self.set(l + self.g.f.l_refcount, 1)?;
        self.set(l + self.g.f.l_mode, mode as u32)?;
        self.g.f.lay.set(self.r, l + self.g.f.l_obj, (o as Link).wrapping_sub(l as Link))?;
        if conflict {
            self.set(l + self.g.f.l_status, status::WAITING)?;
            self.g.waiters(o).insert_tail(self.r, l)?;
        } else {
            self.set(l + self.g.f.l_status, status::HELD)?;
            self.g.holders(o).insert_tail(self.r, l)?;
        }
        self.g.heldby(lk).insert_head(self.r, l)?;
        self.bump(lk + LK_NLOCKS, None)?;
        if mode.is_write() {
            self.bump(lk + LK_NWRITES, None)?;
        }
        self.bump(H_NLOCKS, Some(H_HWM_LOCKS))?;
        Ok((LockHandle { off: l, generation }, !conflict))
    }

    fn check_handle(&self, h: LockHandle) -> Result<(), LockError> {
        let st = self.get(h.off + self.g.f.l_status);
        if self.g.classify(h.off) != Some(("lock", (h.off - self.g.locks) / LOCK_SIZE))
            || self.get(h.off + L_GEN) != h.generation
            || st == status::FREE
        {
            return Err(LockError::LockNotValid);
        }
        Ok(())
    }

    pub fn lock_status(&self, h: LockHandle) -> Result<u32, LockError> {
        self.check_handle(h)?;
        Ok(self.get(h.off + self.g.f.l_status))
    }

    fn object_of(&self, l: usize) -> Result<usize, LockError> {
        let rel = self.g.f.lay.get(self.r, l + self.g.f.l_obj)?;
        Ok(self.g.f.lay.resolve(self.r, l + self.g.f.l_obj, l, rel, OBJECT_SIZE)?)
    }

    /// `lock_put`: release (or stop waiting for) a lock; frees the object when nothing refers to it and
    /// grants waiters that no longer conflict.
    pub fn lock_put(&mut self, h: LockHandle) -> Result<(), LockError> {
        self.check_handle(h)?;
        let l = h.off;
        let o = self.object_of(l)?;
        let holder = self.get(l + L_HOLDER);
        let lk = self.find_locker(holder)?.ok_or(LockError::LockerNotValid)?;
        let st = self.get(l + self.g.f.l_status);
        if st == status::WAITING {
            self.g.waiters(o).remove(self.r, l)?;
        } else {
            self.g.holders(o).remove(self.r, l)?;
        }
        self.g.heldby(lk).remove(self.r, l)?;
        self.drop1(lk + LK_NLOCKS)?;
        if Mode::from_u32(self.get(l + self.g.f.l_mode)).is_some_and(Mode::is_write) {
            self.drop1(lk + LK_NWRITES)?;
        }
        self.set(l + self.g.f.l_status, status::FREE)?;
        let next_gen = self.get(l + L_GEN).wrapping_add(1);
        self.set(l + L_GEN, next_gen)?;
        self.g.free_locks().insert_head(self.r, l)?;
        self.drop1(H_NLOCKS)?;
        self.after_release(o)
    }

    fn after_release(&mut self, o: usize) -> Result<(), LockError> {
        if self.g.holders(o).first(self.r)?.is_none() && self.g.waiters(o).first(self.r)?.is_none() {
            let len = (self.get(o + OB_KEYLEN) as usize).min(KEY_MAX);
            let key = self.r[o + OB_KEY..o + OB_KEY + len].to_vec();
            self.g.object_bucket(hash_key(&key) % self.g.object_t_size).remove(self.r, o)?;
            self.g.free_objects().insert_head(self.r, o)?;
            return self.drop1(H_NOBJECTS);
        }
        self.promote(o)
    }

    /// Grant waiters in order while they do not conflict with the holders.
    fn promote(&mut self, o: usize) -> Result<(), LockError> {
        let mut steps = 0;
        while let Some(w) = self.g.waiters(o).first(self.r)? {
            let mode = Mode::from_u32(self.get(w + self.g.f.l_mode)).unwrap_or(Mode::W);
            if self.conflicting_holder(o, self.get(w + L_HOLDER), mode, None)? {
                break;
            }
            self.g.waiters(o).remove(self.r, w)?;
            self.g.holders(o).insert_tail(self.r, w)?;
            self.set(w + self.g.f.l_status, status::HELD)?;
            steps += 1;
            if steps > self.g.maxlocks {
                return Err(LockError::Link("waiters list does not end (cycle)".into()));
            }
        }
        Ok(())
    }

    /// Try to upgrade a held lock to W (CDB's IW → W for a put). False: a conflicting holder remains.
    pub fn try_upgrade(&mut self, h: LockHandle) -> Result<bool, LockError> {
        self.check_handle(h)?;
        let o = self.object_of(h.off)?;
        let holder = self.get(h.off + L_HOLDER);
        self.find_locker(holder)?.ok_or(LockError::LockerNotValid)?;
        if self.conflicting_holder(o, holder, Mode::W, Some(h.off))? {
            return Ok(false);
        }
        self.set(h.off + self.g.f.l_mode, Mode::W as u32)?;
        Ok(true)
    }

    /// Downgrade a W lock back to `mode` and let waiters in.
    pub fn downgrade(&mut self, h: LockHandle, mode: Mode) -> Result<(), LockError> {
        self.check_handle(h)?;
        let holder = self.get(h.off + L_HOLDER);
        self.find_locker(holder)?.ok_or(LockError::LockerNotValid)?;
        self.set(h.off + self.g.f.l_mode, mode as u32)?;
        let o = self.object_of(h.off)?;
        self.promote(o)
    }

    /// Lockers in use (bounded walk of the in-use list): (offset, id, pid, nlocks, nwrites).
    pub fn lockers(&self) -> Result<Vec<LockerInfo>, LockError> {
        let q = self.g.inuse_lockers();
        let mut out = Vec::new();
        let mut cur = q.first(self.r)?;
        while let Some(l) = cur {
            out.push((l, self.get(l + LK_ID), self.get(l + LK_PID), self.get(l + LK_NLOCKS), self.get(l + LK_NWRITES)));
            if out.len() > self.g.maxlockers as usize {
                return Err(LockError::Link("in-use locker list does not end (cycle)".into()));
            }
            cur = q.next(self.r, l)?;
        }
        Ok(out)
    }

    /// The locks a locker holds or waits for (bounded walk of `heldby`).
    pub fn locks_of(&self, locker_off: usize) -> Result<Vec<LockHandle>, LockError> {
        let q = self.g.heldby(locker_off);
        let mut out = Vec::new();
        let mut cur = q.first(self.r)?;
        while let Some(l) = cur {
            out.push(LockHandle { off: l, generation: self.get(l + L_GEN) });
            if out.len() > self.g.maxlocks as usize {
                return Err(LockError::Link("heldby list does not end (cycle)".into()));
            }
            cur = q.next(self.r, l)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "lock_tests.rs"]
mod tests;
