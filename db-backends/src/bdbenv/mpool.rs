//! The shared buffer cache `__db.002`: data-file pages cached in a MAP_SHARED region, shared by every
//! process, written back to the data files with pwrite on sync or eviction.
//!
//! Why: like BDB's mpool, a page dirtied by one process is seen by the others from the cache, and is only
//! in the data file once written back. A process killed before the write-back leaves dirty pages in the
//! region; `rm __db.*` throws them away — one way rpm's non-transactional databases went out of step.

use super::lock::{mutex_lock, mutex_unlock, u32_at};
use super::mmap::Region;
use super::shqueue as sq;
use crate::crash::point;
use std::fs::File;
use std::os::unix::fs::FileExt;

pub const MAGIC: u32 = 0x0004_2dbe;
pub const PAGE: usize = 4096;
pub const M_MUTEX: usize = 0;
pub const M_MAGIC: usize = 8;
pub const M_PAGESIZE: usize = 12;
pub const M_NFRAMES: usize = 16;
pub const M_HAND: usize = 20;
pub const M_HITS: usize = 24;
pub const M_MISSES: usize = 28;
pub const M_WRITEBACKS: usize = 32;
pub const M_FRAMES: usize = 64;
pub const FRAME_HDR: usize = 16;
/// Frame flags.
pub const VALID: u32 = 1;
pub const DIRTY: u32 = 2;

pub fn region_size(frames: usize) -> usize {
    data_start(frames) + frames * PAGE
}

fn data_start(frames: usize) -> usize {
    (M_FRAMES + frames * FRAME_HDR).div_ceil(PAGE) * PAGE
}

pub fn init(region: &mut Region, frames: usize) {
    let r = region.bytes_mut();
    r.fill(0);
    sq::set_u32(r, M_PAGESIZE, PAGE as u32);
    sq::set_u32(r, M_NFRAMES, frames as u32);
    sq::set_u32(r, M_MAGIC, MAGIC);
}

#[derive(Debug, thiserror::Error)]
pub enum MpoolError {
    #[error("buffer cache region is damaged: {0}")]
    Damaged(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A process's handle on the cache: the region plus the data files it writes back to.
pub struct Mpool {
    pub region: Region,
    pub files: Vec<File>,
    pub pid: u32,
    /// Whether this process opened the data files for writing. A read-only process never evicts a dirty
    /// page (it could not write it back); it takes the next clean frame instead.
    pub writable: bool,
}

impl Mpool {
    fn nframes(&self) -> usize {
        u32_at(self.region.bytes(), M_NFRAMES) as usize
    }

    fn check(&self) -> Result<usize, MpoolError> {
        let r = self.region.bytes();
        let n = self.nframes();
        if u32_at(r, M_MAGIC) != MAGIC || n == 0 || region_size(n) > r.len() {
            return Err(MpoolError::Damaged(format!("magic {:#x}, {} frames", u32_at(r, M_MAGIC), n)));
        }
        Ok(n)
    }

    fn frame(&self, i: usize) -> (u32, u32, u32) {
        let r = self.region.bytes();
        let at = M_FRAMES + i * FRAME_HDR;
        (u32_at(r, at), u32_at(r, at + 4), u32_at(r, at + 8))
    }

    fn write_back(&mut self, n: usize, i: usize) -> Result<(), MpoolError> {
        let (file, pgno, flags) = self.frame(i);
        if flags & (VALID | DIRTY) == VALID | DIRTY {
            point("bdbenv.mpool.writeback.before");
            let f =
                self.files.get(file as usize).ok_or_else(|| MpoolError::Damaged(format!("frame {i}: file {file}")))?;
            let start = data_start(n) + i * PAGE;
            f.write_all_at(&self.region.bytes()[start..start + PAGE], pgno as u64 * PAGE as u64)?;
            let r = self.region.bytes_mut();
            sq::set_u32(r, M_FRAMES + i * FRAME_HDR + 8, VALID);
            let wb = u32_at(r, M_WRITEBACKS).wrapping_add(1);
            sq::set_u32(r, M_WRITEBACKS, wb);
            point("bdbenv.mpool.writeback.after");
        }
        Ok(())
    }

    /// Find or load page `pgno` of `file` into a frame (mutex held). Returns the frame index.
    fn fetch(&mut self, n: usize, file: u32, pgno: u32) -> Result<usize, MpoolError> {
        for i in 0..n {
            let (f, p, flags) = self.frame(i);
            if flags & VALID != 0 && f == file && p == pgno {
                let r = self.region.bytes_mut();
                let h = u32_at(r, M_HITS).wrapping_add(1);
                sq::set_u32(r, M_HITS, h);
                return Ok(i);
            }
        }
        // Miss: take the next frame on the clock (writing it back if dirty) and read the page.
        let mut hand = u32_at(self.region.bytes(), M_HAND) as usize % n;
        if !self.writable {
            let clean = (0..n).map(|k| (hand + k) % n).find(|&i| self.frame(i).2 & DIRTY == 0);
            hand = clean
                .ok_or_else(|| MpoolError::Damaged("every frame is dirty and this process cannot write".into()))?;
        }
        self.write_back(n, hand)?;
        let start = data_start(n) + hand * PAGE;
        let f = self.files.get(file as usize).ok_or_else(|| MpoolError::Damaged(format!("no data file {file}")))?;
        let mut buf = [0u8; PAGE];
        let len = f.metadata()?.len();
        if (pgno as u64 + 1) * PAGE as u64 <= len {
            f.read_exact_at(&mut buf, pgno as u64 * PAGE as u64)?;
        }
        let evicting = self.frame(hand).2 & VALID != 0;
        let r = self.region.bytes_mut();
        let at = M_FRAMES + hand * FRAME_HDR;
        // Off the cache before its bytes change (BDB takes a buffer off its hash chain before reusing it): a
        // process killed while loading (it holds the cache mutex) leaves an empty frame, never one whose header
        // names the page it held over the bytes of the page it was loading. The old page is in its file.
        sq::set_u32(r, at + 8, 0);
        r[start..start + PAGE].copy_from_slice(&buf);
        if evicting {
            point("bdbenv.mpool.evict.reload");
        }
        sq::set_u32(r, at, file);
        sq::set_u32(r, at + 4, pgno);
        sq::set_u32(r, at + 8, VALID);
        sq::set_u32(r, M_HAND, ((hand + 1) % n) as u32);
        let m = u32_at(r, M_MISSES).wrapping_add(1);
        sq::set_u32(r, M_MISSES, m);
        Ok(hand)
    }

    /// Run `f` on page `pgno` of `file`, under the cache mutex; marks the page dirty if `write`.
    pub fn with_page<T>(
        &mut self,
        file: u32,
        pgno: u32,
        write: bool,
        f: impl FnOnce(&mut [u8]) -> T,
    ) -> Result<T, MpoolError> {
        let n = self.check()?;
        mutex_lock(&self.region, M_MUTEX, self.pid);
        let res = self.fetch(n, file, pgno).map(|i| {
            let start = data_start(n) + i * PAGE;
            let r = self.region.bytes_mut();
            let out = f(&mut r[start..start + PAGE]);
            if write {
                sq::set_u32(r, M_FRAMES + i * FRAME_HDR + 8, VALID | DIRTY);
            }
            out
        });
        mutex_unlock(&self.region, M_MUTEX);
        res
    }

    /// memp_sync: write back every dirty page, then fdatasync the data files.
    pub fn sync(&mut self) -> Result<(), MpoolError> {
        let n = self.check()?;
        mutex_lock(&self.region, M_MUTEX, self.pid);
        let mut res = Ok(());
        // Planted bug: the sync skips the last dirty frame of Packages (file 0), which stays in the cache only.
        let skip = crate::planted::active("bdbenv-mpool-skip-frame")
            .then(|| (0..n).rev().find(|&i| matches!(self.frame(i), (0, _, f) if f & (VALID | DIRTY) == VALID | DIRTY)))
            .flatten();
        for i in (0..n).filter(|&i| Some(i) != skip) {
            if let Err(e) = self.write_back(n, i) {
                res = Err(e);
                break;
            }
        }
        mutex_unlock(&self.region, M_MUTEX);
        res?;
        // Planted bug: the pages are written back (a kill cannot tell) but never reach the disk.
        if !crate::planted::active("bdbenv-no-fsync") {
            for f in &self.files {
                f.sync_data()?;
            }
        }
        Ok(())
    }

    /// Dirty frames: (file, pgno).
    pub fn dirty(r: &[u8]) -> Vec<(u32, u32)> {
        let n = u32_at(r, M_NFRAMES) as usize;
        if region_size(n) > r.len() {
            return Vec::new();
        }
        (0..n)
            .filter_map(|i| {
                let at = M_FRAMES + i * FRAME_HDR;
                (u32_at(r, at + 8) == VALID | DIRTY).then(|| (u32_at(r, at), u32_at(r, at + 4)))
            })
            .collect()
    }
}
