//! Region files mapped MAP_SHARED into every process (as Berkeley DB maps `__db.00N`), and the one
//! cross-process primitive that needs atomics on that memory: the region mutex word.
//!
//! Why its own module: this is the only `unsafe` in the backend. Everything else reads and writes the
//! mapping as a byte slice, through bounds-checked helpers, so corrupt offsets become errors, never UB.
#![allow(unsafe_code)]

use memmap2::{MmapMut, MmapOptions};
use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

/// A region file mapped shared, read-write.
pub struct Region {
    map: MmapMut,
    _file: File,
}

impl Region {
    /// Map an existing file of exactly its current length (never longer: a mapping beyond the end of the
    /// file is SIGBUS on access).
    pub fn map(path: &Path) -> std::io::Result<Region> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len() as usize;
        if len == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "region file is empty"));
        }
        // SAFETY: the mapping is MAP_SHARED over a file other processes also map and modify; we never create
        // Rust references with aliasing guarantees into it except the byte slices below (plain bytes, any
        // value valid) and atomics for mutex words. Truncation by another process while mapped would SIGBUS;
        // region files are only created (sized before the magic is written) and removed, never truncated.
        let map = unsafe { MmapOptions::new().len(len).map_mut(&file)? };
        Ok(Region { map, _file: file })
    }

    /// Create (or replace) a region file of `len` zero bytes and map it. The file's blocks are allocated
    /// here (as Berkeley DB writes its regions out before mapping them): on a full filesystem this is an
    /// ENOSPC error, where a sparse file would be SIGBUS at the first store into an unbacked page.
    pub fn create(path: &Path, len: usize) -> std::io::Result<Region> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
        let reserved = nix::libc::off_t::try_from(len)
            .map_err(std::io::Error::other)
            .and_then(|n| nix::fcntl::posix_fallocate(&file, 0, n).map_err(std::io::Error::from));
        if let Err(e) = reserved {
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        drop(file);
        Self::map(path)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.map
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The u32 at `off` as an atomic, for mutex words. `None` if out of bounds or misaligned.
    pub fn atomic_u32(&self, off: usize) -> Option<&AtomicU32> {
        if !off.is_multiple_of(4) || off.checked_add(4)? > self.map.len() {
            return None;
        }
        // SAFETY: in bounds and 4-byte aligned (the mapping is page-aligned); AtomicU32 has the layout of
        // u32 and any bit pattern is valid; other processes access this word only atomically too.
        Some(unsafe { AtomicU32::from_ptr(self.map.as_ptr().add(off) as *mut u32) })
    }

    /// msync the whole region (used before removing or after creating, not on hot paths).
    pub fn flush(&self) -> std::io::Result<()> {
        self.map.flush()
    }
}

/// Load with acquire ordering (helper for callers that only hold `&Region`).
pub fn load(a: &AtomicU32) -> u32 {
    a.load(Ordering::Acquire)
}
