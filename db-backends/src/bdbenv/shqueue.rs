//! Self-relative shared-memory lists, as Berkeley DB's shqueue.h lays them out, over a byte region.
//!
//! Every link is a signed pointer-width offset from a base: 0 means "self", -1 means "none". A head's `first`
//! is relative to the head; an element's `next` is relative to the element's start; an element's `prev`
//! is relative to the element's start but points at the *predecessor's `next` field* (or the head's
//! `first`). A tail-queue head's `last` points (relative to the head) at the last element's `next` field, or
//! at the head's own `first` when empty. Remove does not clear the removed element's links.
//!
//! All arithmetic wraps and every access is bounds- and alignment-checked: a corrupt link is an error the
//! caller reports, never a panic. Byte order: host (regions are host-specific, like BDB's). Link width: the [`Layout`] each list
//! carries — the writer's is always native; a reader may take another machine's (a 32-bit guest's region).

use super::origin::Layout;
use std::fmt;

/// A link value: BDB's `ssize_t` offsets, read from a region of either width (see [`Layout`]) and held
/// as 64 bits whatever the host.
pub type Link = i64;
pub const NONE: Link = -1;
/// The native link width (the writer's).
pub const W: usize = Layout::NATIVE.word();

/// Crash points between the link writes of an insert or remove: a kill here leaves a half-linked element,
/// exactly what a process dying inside BDB's list macros leaves in the region.
fn step_insert() {
    crate::crash::point("bdbenv.list.insert.step");
}

fn step_remove() {
    crate::crash::point("bdbenv.list.remove.step");
}

/// A link that points outside the region, misaligned, or at something that is not a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadLink {
    /// Region offset of the field that held the bad value.
    pub at: usize,
    pub value: Link,
}

impl fmt::Display for BadLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid offset {} in the link at region offset {:#x}", self.value, self.at)
    }
}

impl Layout {
    /// Read the link at `at` (aligned to the link width, inside the region).
    #[inline]
    pub fn get(self, r: &[u8], at: usize) -> Result<Link, BadLink> {
        let w = self.word();
        let s = r.get(at..at.wrapping_add(w)).filter(|_| at.is_multiple_of(w)).ok_or(BadLink { at, value: 0 })?;
        Ok(match w {
            4 => Link::from(i32::from_ne_bytes(s.try_into().expect("4 bytes"))),
            _ => i64::from_ne_bytes(s.try_into().expect("8 bytes")),
        })
    }

    /// Write the link at `at`; a value the width cannot hold is a bad link.
    #[inline]
    pub fn set(self, r: &mut [u8], at: usize, v: Link) -> Result<(), BadLink> {
        let w = self.word();
        let s = r.get_mut(at..at.wrapping_add(w)).filter(|_| at.is_multiple_of(w)).ok_or(BadLink { at, value: v })?;
        match w {
            4 => s.copy_from_slice(&i32::try_from(v).map_err(|_| BadLink { at, value: v })?.to_ne_bytes()),
            _ => s.copy_from_slice(&v.to_ne_bytes()),
        }
        Ok(())
    }

    /// Resolve `base + rel` to a region offset, checking it lies inside the region (with room for `size`
    /// bytes) and is aligned to the link width.
    #[inline]
    pub fn resolve(self, r: &[u8], field_at: usize, base: usize, rel: Link, size: usize) -> Result<usize, BadLink> {
        let target = (base as Link).wrapping_add(rel);
        if target < 0
            || usize::try_from(target).ok().and_then(|t| t.checked_add(size)).is_none_or(|end| end > r.len())
            || !(target as usize).is_multiple_of(self.word())
        {
            return Err(BadLink { at: field_at, value: rel });
        }
        Ok(target as usize)
    }

    /// Field offsets of a tail-queue head: `first` (0), then `last`.
    pub const fn head_last(self) -> usize {
        self.word()
    }
    pub const fn head_size(self) -> usize {
        2 * self.word()
    }
    /// Field offsets of an entry (relative to the entry field): `next` (0), then `prev`.
    pub const fn entry_prev(self) -> usize {
        self.word()
    }
    pub const fn entry_size(self) -> usize {
        2 * self.word()
    }
}

/// [`Layout::get`] in the native layout.
pub fn get(r: &[u8], at: usize) -> Result<Link, BadLink> {
    Layout::NATIVE.get(r, at)
}

/// [`Layout::set`] in the native layout.
pub fn set(r: &mut [u8], at: usize, v: Link) -> Result<(), BadLink> {
    Layout::NATIVE.set(r, at, v)
}

pub fn get_u32(r: &[u8], at: usize) -> Option<u32> {
    r.get(at..at.checked_add(4)?).map(|s| u32::from_ne_bytes(s.try_into().expect("4 bytes")))
}

pub fn set_u32(r: &mut [u8], at: usize, v: u32) -> Option<()> {
    r.get_mut(at..at.checked_add(4)?)?.copy_from_slice(&v.to_ne_bytes());
    Some(())
}

/// [`Layout::resolve`] in the native layout.
pub fn resolve(r: &[u8], field_at: usize, base: usize, rel: Link, size: usize) -> Result<usize, BadLink> {
    Layout::NATIVE.resolve(r, field_at, base, rel, size)
}

/// Native field offsets of a tail-queue head and an entry (see the [`Layout`] methods for other widths).
pub const HEAD_FIRST: usize = 0;
pub const HEAD_LAST: usize = Layout::NATIVE.head_last();
pub const HEAD_SIZE: usize = Layout::NATIVE.head_size();
pub const ENTRY_NEXT: usize = 0;
pub const ENTRY_PREV: usize = Layout::NATIVE.entry_prev();
pub const ENTRY_SIZE: usize = Layout::NATIVE.entry_size();

/// A tail queue whose elements are `elem_size` bytes and carry their entry at `link` within the element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailQ {
    pub lay: Layout,
    pub head: usize,
    pub link: usize,
    pub elem_size: usize,
}

impl TailQ {
    pub fn init(&self, r: &mut [u8]) -> Result<(), BadLink> {
        self.lay.set(r, self.head + HEAD_FIRST, NONE)?;
        // Empty: `last` points at the head's own `first` field, relative to the head.
        self.lay.set(r, self.head + self.lay.head_last(), HEAD_FIRST as Link)
    }

    pub fn first(&self, r: &[u8]) -> Result<Option<usize>, BadLink> {
        let f = self.lay.get(r, self.head + HEAD_FIRST)?;
        if f == NONE {
            return Ok(None);
        }
        self.lay.resolve(r, self.head + HEAD_FIRST, self.head, f, self.elem_size).map(Some)
    }

    pub fn next(&self, r: &[u8], elem: usize) -> Result<Option<usize>, BadLink> {
        let at = elem + self.link + ENTRY_NEXT;
        let n = self.lay.get(r, at)?;
        if n == NONE {
            return Ok(None);
        }
        self.lay.resolve(r, at, elem, n, self.elem_size).map(Some)
    }

    /// The region offset `elem.prev` points at (a `next` field or the head's `first`).
    pub fn prev_field(&self, r: &[u8], elem: usize) -> Result<usize, BadLink> {
        let at = elem + self.link + self.lay.entry_prev();
        let p = self.lay.get(r, at)?;
        self.lay.resolve(r, at, elem, p, self.lay.word())
    }

    pub fn insert_head(&self, r: &mut [u8], elem: usize) -> Result<(), BadLink> {
        let h = self.head;
        let first = self.lay.get(r, h + HEAD_FIRST)?;
        let next_at = elem + self.link + ENTRY_NEXT;
        if first != NONE {
            let old = self.lay.resolve(r, h + HEAD_FIRST, h, first, self.elem_size)?;
            self.lay.set(r, next_at, (old as Link).wrapping_sub(elem as Link))?;
            step_insert();
            // old.prev -> elem.next field
            self.lay.set(r, old + self.link + self.lay.entry_prev(), (next_at as Link).wrapping_sub(old as Link))?;
        } else {
            self.lay.set(r, next_at, NONE)?;
            self.lay.set(r, h + self.lay.head_last(), (next_at as Link).wrapping_sub(h as Link))?;
        }
        step_insert();
        self.lay.set(r, h + HEAD_FIRST, (elem as Link).wrapping_sub(h as Link))?;
        self.lay.set(r, elem + self.link + self.lay.entry_prev(), ((h + HEAD_FIRST) as Link).wrapping_sub(elem as Link))
    }

    pub fn insert_tail(&self, r: &mut [u8], elem: usize) -> Result<(), BadLink> {
        let h = self.head;
        let last = self.lay.get(r, h + self.lay.head_last())?;
        let last_field = self.lay.resolve(r, h + self.lay.head_last(), h, last, self.lay.word())?;
        let next_at = elem + self.link + ENTRY_NEXT;
        self.lay.set(r, next_at, NONE)?;
        self.lay.set(r, elem + self.link + self.lay.entry_prev(), (last_field as Link).wrapping_sub(elem as Link))?;
        step_insert();
        if last_field == h + HEAD_FIRST {
            self.lay.set(r, h + HEAD_FIRST, (elem as Link).wrapping_sub(h as Link))?;
        } else {
            // The last element's `next` is relative to that element's start.
            let last_elem = last_field - self.link - ENTRY_NEXT;
            self.lay.set(r, last_field, (elem as Link).wrapping_sub(last_elem as Link))?;
        }
        step_insert();
        self.lay.set(r, h + self.lay.head_last(), (next_at as Link).wrapping_sub(h as Link))
    }

    /// BDB's SH_TAILQ_REMOVE. Trusts `elem.prev` and `elem.next` exactly as BDB does: a stale `prev` writes
    /// into the wrong slot — that is the failure the stale-page injector provokes and the verifier names.
    pub fn remove(&self, r: &mut [u8], elem: usize) -> Result<(), BadLink> {
        let h = self.head;
        let next = self.lay.get(r, elem + self.link + ENTRY_NEXT)?;
        let prev = self.lay.get(r, elem + self.link + self.lay.entry_prev())?;
        let prev_field = self.lay.resolve(r, elem + self.link + self.lay.entry_prev(), elem, prev, self.lay.word())?;
        if next != NONE {
            let n = self.lay.resolve(r, elem + self.link + ENTRY_NEXT, elem, next, self.elem_size)?;
            // PLANTED BUG (off by default): leave the successor's prev pointing at the removed element.
            if !crate::planted::active("bdbenv-stale-prev") {
                self.lay.set(r, n + self.link + self.lay.entry_prev(), prev.wrapping_sub(next))?;
            }
            step_remove();
            let v = self.lay.get(r, prev_field)?;
            self.lay.set(r, prev_field, v.wrapping_add(next))?;
        } else {
            self.lay.set(r, h + self.lay.head_last(), prev.wrapping_add(elem as Link).wrapping_sub(h as Link))?;
            step_remove();
            self.lay.set(r, prev_field, NONE)?;
        }
        Ok(())
    }
}

/// A singly-headed list (SH_LIST): head `first`; entries `next` (relative to the element) and `prev`
/// (relative to the element, pointing at the predecessor's `next` field or the head).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct List {
    pub lay: Layout,
    pub head: usize,
    pub link: usize,
    pub elem_size: usize,
}

impl List {
    pub fn init(&self, r: &mut [u8]) -> Result<(), BadLink> {
        self.lay.set(r, self.head, NONE)
    }

    pub fn first(&self, r: &[u8]) -> Result<Option<usize>, BadLink> {
        let f = self.lay.get(r, self.head)?;
        if f == NONE {
            return Ok(None);
        }
        self.lay.resolve(r, self.head, self.head, f, self.elem_size).map(Some)
    }

    pub fn next(&self, r: &[u8], elem: usize) -> Result<Option<usize>, BadLink> {
        let at = elem + self.link + ENTRY_NEXT;
        let n = self.lay.get(r, at)?;
        if n == NONE {
            return Ok(None);
        }
        self.lay.resolve(r, at, elem, n, self.elem_size).map(Some)
    }

    pub fn prev_field(&self, r: &[u8], elem: usize) -> Result<usize, BadLink> {
        let at = elem + self.link + self.lay.entry_prev();
        self.lay.resolve(r, at, elem, self.lay.get(r, at)?, self.lay.word())
    }

    pub fn insert_head(&self, r: &mut [u8], elem: usize) -> Result<(), BadLink> {
        let h = self.head;
        let first = self.lay.get(r, h)?;
        let next_at = elem + self.link + ENTRY_NEXT;
        if first != NONE {
            let old = self.lay.resolve(r, h, h, first, self.elem_size)?;
            self.lay.set(r, next_at, (old as Link).wrapping_sub(elem as Link))?;
            self.lay.set(r, old + self.link + self.lay.entry_prev(), (next_at as Link).wrapping_sub(old as Link))?;
        } else {
            self.lay.set(r, next_at, NONE)?;
        }
        self.lay.set(r, h, (elem as Link).wrapping_sub(h as Link))?;
        self.lay.set(r, elem + self.link + self.lay.entry_prev(), (h as Link).wrapping_sub(elem as Link))
    }

    pub fn remove(&self, r: &mut [u8], elem: usize) -> Result<(), BadLink> {
        let next = self.lay.get(r, elem + self.link + ENTRY_NEXT)?;
        let prev = self.lay.get(r, elem + self.link + self.lay.entry_prev())?;
        let prev_field = self.lay.resolve(r, elem + self.link + self.lay.entry_prev(), elem, prev, self.lay.word())?;
        if next != NONE {
            let n = self.lay.resolve(r, elem + self.link + ENTRY_NEXT, elem, next, self.elem_size)?;
            self.lay.set(r, n + self.link + self.lay.entry_prev(), prev.wrapping_sub(next))?;
            let v = self.lay.get(r, prev_field)?;
            self.lay.set(r, prev_field, v.wrapping_add(next))?;
        } else {
            self.lay.set(r, prev_field, NONE)?;
        }
        Ok(())
    }
}

/// What a verifier needs of either list kind: the head's `first` field, the link offset in an element, and
/// the three links. `last_field` is where a tail queue's `last` points (absolute); lists have none.
pub trait Chain {
    fn head_first(&self) -> usize;
    fn link(&self) -> usize;
    fn first(&self, r: &[u8]) -> Result<Option<usize>, BadLink>;
    fn next(&self, r: &[u8], elem: usize) -> Result<Option<usize>, BadLink>;
    fn prev_field(&self, r: &[u8], elem: usize) -> Result<usize, BadLink>;
    fn last_field(&self, _r: &[u8]) -> Option<Result<Link, BadLink>> {
        None
    }
}

impl Chain for TailQ {
    fn head_first(&self) -> usize {
        self.head + HEAD_FIRST
    }
    fn link(&self) -> usize {
        self.link
    }
    fn first(&self, r: &[u8]) -> Result<Option<usize>, BadLink> {
        TailQ::first(self, r)
    }
    fn next(&self, r: &[u8], elem: usize) -> Result<Option<usize>, BadLink> {
        TailQ::next(self, r, elem)
    }
    fn prev_field(&self, r: &[u8], elem: usize) -> Result<usize, BadLink> {
        TailQ::prev_field(self, r, elem)
    }
    fn last_field(&self, r: &[u8]) -> Option<Result<Link, BadLink>> {
        Some(self.lay.get(r, self.head + self.lay.head_last()).map(|last| (self.head as Link).wrapping_add(last)))
    }
}

impl Chain for List {
    fn head_first(&self) -> usize {
        self.head
    }
    fn link(&self) -> usize {
        self.link
    }
    fn first(&self, r: &[u8]) -> Result<Option<usize>, BadLink> {
        List::first(self, r)
    }
    fn next(&self, r: &[u8], elem: usize) -> Result<Option<usize>, BadLink> {
        List::next(self, r, elem)
    }
    fn prev_field(&self, r: &[u8], elem: usize) -> Result<usize, BadLink> {
        List::prev_field(self, r, elem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ELEM: usize = 64;
    const LINK: usize = 16;

    fn walk(q: &TailQ, r: &[u8]) -> Vec<usize> {
        let mut v = Vec::new();
        let mut cur = q.first(r).unwrap();
        while let Some(e) = cur {
            v.push(e);
            assert!(v.len() < 100);
            cur = q.next(r, e).unwrap();
        }
        v
    }

    #[test]
    fn tail_queue_insert_and_remove_keep_bdb_links() {
        let mut r = vec![0u8; 4096];
        let q = TailQ { lay: Layout::NATIVE, head: 64, link: LINK, elem_size: ELEM };
        q.init(&mut r).unwrap();
        assert_eq!(get(&r, 64 + HEAD_LAST).unwrap(), 0, "empty: last points at the head's first");
        let (a, b, c) = (256, 512, 1024);
        q.insert_tail(&mut r, a).unwrap();
        q.insert_tail(&mut r, b).unwrap();
        q.insert_head(&mut r, c).unwrap();
        assert_eq!(walk(&q, &r), vec![c, a, b]);
        // prev of a points at c's next field; last points at b's next field.
        assert_eq!(q.prev_field(&r, a).unwrap(), c + LINK);
        assert_eq!(get(&r, 64 + HEAD_LAST).unwrap(), (b + LINK - 64) as Link);
        q.remove(&mut r, a).unwrap();
        assert_eq!(walk(&q, &r), vec![c, b]);
        q.remove(&mut r, b).unwrap();
        assert_eq!(walk(&q, &r), vec![c]);
        assert_eq!(get(&r, 64 + HEAD_LAST).unwrap(), (c + LINK - 64) as Link);
        q.remove(&mut r, c).unwrap();
        assert_eq!(walk(&q, &r), Vec::<usize>::new());
        assert_eq!(get(&r, 64 + HEAD_LAST).unwrap(), 0);
        // The removed element keeps its links (BDB does not clear them).
        assert_ne!(get(&r, c + LINK + ENTRY_PREV).unwrap(), 0);
    }

    #[test]
    fn list_insert_and_remove() {
        let mut r = vec![0u8; 4096];
        let l = List { lay: Layout::NATIVE, head: 8, link: 32, elem_size: ELEM };
        l.init(&mut r).unwrap();
        for e in [128, 256, 384] {
            l.insert_head(&mut r, e).unwrap();
        }
        let collect = |r: &[u8]| {
            let mut v = Vec::new();
            let mut cur = l.first(r).unwrap();
            while let Some(e) = cur {
                v.push(e);
                cur = l.next(r, e).unwrap();
            }
            v
        };
        assert_eq!(collect(&r), vec![384, 256, 128]);
        l.remove(&mut r, 256).unwrap();
        assert_eq!(collect(&r), vec![384, 128]);
        l.remove(&mut r, 384).unwrap();
        l.remove(&mut r, 128).unwrap();
        assert!(collect(&r).is_empty());
    }

    #[test]
    fn corrupt_links_are_errors_not_panics() {
        let mut r = vec![0u8; 256];
        let q = TailQ { lay: Layout::NATIVE, head: 0, link: 0, elem_size: 64 };
        set(&mut r, 0, 10_000).unwrap();
        assert!(q.first(&r).is_err());
        set(&mut r, 0, -5000).unwrap();
        assert!(q.first(&r).is_err());
        set(&mut r, 0, 3).unwrap();
        assert!(q.first(&r).is_err(), "misaligned");
        assert!(get(&r, 250).is_err());
        assert!(q.remove(&mut r, 200).is_err());
    }
}
