//! The lock region's layout: header fields, element sizes and offsets (host byte order, pointer-width
//! links), the sizing of a fresh region, the geometry read back from a header, and the key hash.
//!
//! The offsets that follow a link move with the link width: they are [`Fields`] of a [`Layout`]. The
//! `H_*`/`LK_*`/`OB_*`/`L_*` constants of those are the native layout's (the writer's); a reader of
//! another machine's region uses the [`Fields`] its [`Geometry`] carries.
//!
//! Why apart from `lock.rs`: the verifier, `inspect` and the stale-page describer read this layout from a
//! region they do not trust; the lock table's operations (`lock.rs`) write it. Both use these names.

use super::lock::LockError;
use super::origin::Layout;
use super::shqueue::{self as sq, List, TailQ};

pub const MAGIC: u32 = 0x0004_1dbe;

/// The lock region's offsets that depend on the link width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields {
    pub lay: Layout,
    pub h_free_lockers: usize,
    pub h_free_objects: usize,
    pub h_free_locks: usize,
    pub h_inuse_lockers: usize,
    pub lk_ulinks: usize,
    pub lk_heldby: usize,
    pub ob_holders: usize,
    pub ob_waiters: usize,
    pub l_locker_links: usize,
    pub l_refcount: usize,
    pub l_mode: usize,
    pub l_obj: usize,
    pub l_status: usize,
}

impl Fields {
    /// The offsets of a region whose links are `lay`'s width (every element still fits its fixed size:
    /// lockers and objects 96 bytes, locks 64, the header 256, for 4- and 8-byte links alike).
    pub const fn of(lay: Layout) -> Fields {
        let (head, entry, w) = (lay.head_size(), lay.entry_size(), lay.word());
        let l_refcount = 8 + 2 * entry;
        Fields {
            lay,
            h_free_lockers: 96,
            h_free_objects: 96 + head,
            h_free_locks: 96 + 2 * head,
            h_inuse_lockers: 96 + 3 * head,
            lk_ulinks: 32 + entry,
            lk_heldby: 32 + 2 * entry,
            ob_holders: 32 + entry,
            ob_waiters: 32 + entry + head,
            l_locker_links: 8 + entry,
            l_refcount,
            l_mode: l_refcount + 4,
            l_obj: l_refcount + 8,
            l_status: l_refcount + 8 + w,
        }
    }
}

/// The native layout's fields (what the writer uses).
pub const NATIVE: Fields = Fields::of(Layout::NATIVE);

// Region header.
pub const H_MUTEX: usize = 0;
pub const H_MUTEX_PID: usize = 4;
pub const H_MAGIC: usize = 8;
pub const H_LOCK_ID: usize = 12;
pub const H_CUR_MAXID: usize = 16;
pub const H_NLOCKERS: usize = 20;
pub const H_NLOCKS: usize = 24;
pub const H_NOBJECTS: usize = 28;
pub const H_MAXLOCKERS: usize = 32;
pub const H_MAXLOCKS: usize = 36;
pub const H_MAXOBJECTS: usize = 40;
pub const H_HWM_LOCKERS: usize = 44;
pub const H_HWM_LOCKS: usize = 48;
pub const H_HWM_OBJECTS: usize = 52;
pub const H_LOCKER_T_SIZE: usize = 56;
pub const H_OBJECT_T_SIZE: usize = 60;
pub const H_LOCKER_TAB: usize = 64;
pub const H_OBJECT_TAB: usize = 68;
pub const H_LOCKERS: usize = 72;
pub const H_OBJECTS: usize = 76;
pub const H_LOCKS: usize = 80;
pub const H_NREQUESTS: usize = 84;
pub const H_FREE_LOCKERS: usize = NATIVE.h_free_lockers;
pub const H_FREE_OBJECTS: usize = NATIVE.h_free_objects;
pub const H_FREE_LOCKS: usize = NATIVE.h_free_locks;
pub const H_INUSE_LOCKERS: usize = NATIVE.h_inuse_lockers;
pub const HEADER_SIZE: usize = 256;

// Locker (DB_LOCKER).
pub const LK_ID: usize = 0;
pub const LK_PID: usize = 4;
pub const LK_TID: usize = 8;
pub const LK_NLOCKS: usize = 12;
pub const LK_NWRITES: usize = 16;
pub const LK_FLAGS: usize = 20;
pub const LK_LINKS: usize = 32;
pub const LK_ULINKS: usize = NATIVE.lk_ulinks;
pub const LK_HELDBY: usize = NATIVE.lk_heldby;
pub const LOCKER_SIZE: usize = 96;

// Lock object (DB_LOCKOBJ).
pub const OB_KEYLEN: usize = 0;
pub const OB_KEY: usize = 8;
pub const KEY_MAX: usize = 24;
pub const OB_LINKS: usize = 32;
pub const OB_HOLDERS: usize = NATIVE.ob_holders;
pub const OB_WAITERS: usize = NATIVE.ob_waiters;
pub const OBJECT_SIZE: usize = 96;

// Lock (struct __db_lock).
pub const L_HOLDER: usize = 0;
pub const L_GEN: usize = 4;
pub const L_LINKS: usize = 8;
pub const L_LOCKER_LINKS: usize = NATIVE.l_locker_links;
pub const L_REFCOUNT: usize = NATIVE.l_refcount;
pub const L_MODE: usize = NATIVE.l_mode;
pub const L_OBJ: usize = NATIVE.l_obj;
pub const L_STATUS: usize = NATIVE.l_status;
pub const LOCK_SIZE: usize = 64;

/// Sizing of a lock region.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub lockers: u32,
    pub objects: u32,
    pub locks: u32,
    pub locker_t_size: u32,
    pub object_t_size: u32,
}

impl Default for Sizes {
    /// db 4.x defaults: 1000 of each.
    fn default() -> Self {
        Sizes { lockers: 1000, objects: 1000, locks: 1000, locker_t_size: 211, object_t_size: 211 }
    }
}

pub fn region_size(s: &Sizes) -> usize {
    let tabs = (s.locker_t_size + s.object_t_size) as usize * sq::HEAD_SIZE;
    let elems = s.lockers as usize * LOCKER_SIZE + s.objects as usize * OBJECT_SIZE + s.locks as usize * LOCK_SIZE;
    (HEADER_SIZE + tabs + elems).div_ceil(4096) * 4096
}

pub fn u32_at(r: &[u8], at: usize) -> u32 {
    sq::get_u32(r, at).unwrap_or(0)
}

pub(super) fn put_u32(r: &mut [u8], at: usize, v: u32) -> Result<(), LockError> {
    sq::set_u32(r, at, v).ok_or(LockError::Link(format!("field at {at:#x} is outside the region")))
}

/// Static geometry read from a region header (trusted only as far as it is checked).
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    /// The link-width-dependent offsets of this region.
    pub f: Fields,
    pub maxlockers: u32,
    pub maxobjects: u32,
    pub maxlocks: u32,
    pub locker_t_size: u32,
    pub object_t_size: u32,
    pub locker_tab: usize,
    pub object_tab: usize,
    pub lockers: usize,
    pub objects: usize,
    pub locks: usize,
}

impl Geometry {
    /// The geometry of a region in the native layout.
    pub fn read(r: &[u8]) -> Option<Geometry> {
        Geometry::read_as(r, Layout::NATIVE)
    }

    /// The geometry of a region whose links are `lay`'s width.
    pub fn read_as(r: &[u8], lay: Layout) -> Option<Geometry> {
        let g = Geometry {
            f: Fields::of(lay),
            maxlockers: u32_at(r, H_MAXLOCKERS),
            maxobjects: u32_at(r, H_MAXOBJECTS),
            maxlocks: u32_at(r, H_MAXLOCKS),
            locker_t_size: u32_at(r, H_LOCKER_T_SIZE),
            object_t_size: u32_at(r, H_OBJECT_T_SIZE),
            locker_tab: u32_at(r, H_LOCKER_TAB) as usize,
            object_tab: u32_at(r, H_OBJECT_TAB) as usize,
            lockers: u32_at(r, H_LOCKERS) as usize,
            objects: u32_at(r, H_OBJECTS) as usize,
            locks: u32_at(r, H_LOCKS) as usize,
        };
        let fits = |off: usize, n: u32, size: usize| {
            (n as usize).checked_mul(size).and_then(|b| b.checked_add(off)).is_some_and(|end| end <= r.len())
        };
        let ok = g.locker_t_size > 0
            && g.object_t_size > 0
            && fits(g.locker_tab, g.locker_t_size, lay.head_size())
            && fits(g.object_tab, g.object_t_size, lay.head_size())
            && fits(g.lockers, g.maxlockers, LOCKER_SIZE)
            && fits(g.objects, g.maxobjects, OBJECT_SIZE)
            && fits(g.locks, g.maxlocks, LOCK_SIZE)
            && [g.locker_tab, g.object_tab, g.lockers, g.objects, g.locks].iter().all(|o| o.is_multiple_of(lay.word()));
        ok.then_some(g)
    }

    pub fn free_lockers(&self) -> TailQ {
        TailQ { lay: self.f.lay, head: self.f.h_free_lockers, link: LK_LINKS, elem_size: LOCKER_SIZE }
    }
    pub fn free_objects(&self) -> TailQ {
        TailQ { lay: self.f.lay, head: self.f.h_free_objects, link: OB_LINKS, elem_size: OBJECT_SIZE }
    }
    pub fn free_locks(&self) -> TailQ {
        TailQ { lay: self.f.lay, head: self.f.h_free_locks, link: L_LINKS, elem_size: LOCK_SIZE }
    }
    pub fn inuse_lockers(&self) -> TailQ {
        TailQ { lay: self.f.lay, head: self.f.h_inuse_lockers, link: self.f.lk_ulinks, elem_size: LOCKER_SIZE }
    }
    pub fn locker_bucket(&self, i: u32) -> TailQ {
        TailQ {
            lay: self.f.lay,
            head: self.locker_tab + i as usize * self.f.lay.head_size(),
            link: LK_LINKS,
            elem_size: LOCKER_SIZE,
        }
    }
    pub fn object_bucket(&self, i: u32) -> TailQ {
        TailQ {
            lay: self.f.lay,
            head: self.object_tab + i as usize * self.f.lay.head_size(),
            link: OB_LINKS,
            elem_size: OBJECT_SIZE,
        }
    }
    pub fn holders(&self, obj: usize) -> TailQ {
        TailQ { lay: self.f.lay, head: obj + self.f.ob_holders, link: L_LINKS, elem_size: LOCK_SIZE }
    }
    pub fn waiters(&self, obj: usize) -> TailQ {
        TailQ { lay: self.f.lay, head: obj + self.f.ob_waiters, link: L_LINKS, elem_size: LOCK_SIZE }
    }
    pub fn heldby(&self, locker: usize) -> List {
        List { lay: self.f.lay, head: locker + self.f.lk_heldby, link: self.f.l_locker_links, elem_size: LOCK_SIZE }
    }
    /// Which pool an offset belongs to, and its index, if it is an element start.
    pub fn classify(&self, off: usize) -> Option<(&'static str, usize)> {
        let within = |base: usize, n: u32, size: usize| {
            (off >= base && off < base + n as usize * size && (off - base).is_multiple_of(size))
                .then(|| (off - base) / size)
        };
        within(self.lockers, self.maxlockers, LOCKER_SIZE)
            .map(|i| ("locker", i))
            .or_else(|| within(self.objects, self.maxobjects, OBJECT_SIZE).map(|i| ("object", i)))
            .or_else(|| within(self.locks, self.maxlocks, LOCK_SIZE).map(|i| ("lock", i)))
    }
}

/// BDB's key hash (a simple FNV-like mix; any stable function would do).
pub fn hash_key(key: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in key {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}
