//! Data files (Packages and the rpm 4.16 index files) as page-based hash files, read and written a page at
//! a time through a [`Pages`] source: the shared buffer cache when live, an in-memory image when verifying.
//!
//! Why hash pages: like rpm's BDB hash databases, an update rewrites pages in place, non-transactionally —
//! a process killed between two page writes leaves the file (and its sibling files) out of step.
//!
//! Format (host byte order): page 0 is the meta page (magic, page size, bucket count, last page, free list,
//! item count, then the bucket table); bucket pages hold packed items (key length u16, flags u16, value
//! length u32, key, then the value inline or the first overflow page); overflow pages chain large values.

use super::mpool::PAGE;
use super::shqueue::{get_u32, set_u32};

/// The data files of rpm's Berkeley DB database, by file number: Packages, then one per index in rpm's
/// order. The layout both BDB backends share (our bdbenv and real Berkeley DB).
pub fn data_files() -> Vec<&'static str> {
    std::iter::once("Packages").chain(crate::rpmdb::INDEXES.iter().map(|i| i.name())).collect()
}

/// The file number of an index's data file.
pub fn file_no(idx: crate::rpmdb::IndexTag) -> usize {
    1 + crate::rpmdb::INDEXES.iter().position(|&i| i == idx).expect("known index")
}

pub const MAGIC: u32 = 0x4442_5446;
const M_MAGIC: usize = 0;
const M_PAGESIZE: usize = 4;
const M_NBUCKETS: usize = 8;
const M_LAST: usize = 12;
const M_FREE: usize = 16;
const M_NITEMS: usize = 20;
const M_BUCKETS: usize = 64;
pub const NBUCKETS: u32 = 512;
const T_BUCKET: u8 = 1;
const T_OVERFLOW: u8 = 2;
const T_FREE: u8 = 3;
const P_TYPE: usize = 0;
const P_NEXT: usize = 4;
const P_NITEMS: usize = 8;
const P_USED: usize = 12;
const P_DATA: usize = 16;
const ITEM_HDR: usize = 8;
/// Values longer than this go to overflow pages.
const INLINE_MAX: usize = 1024;
pub const KEY_MAX: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("data file {file} page {pgno}: {what}")]
    Damaged { file: u32, pgno: u32, what: String },
    #[error("{0}")]
    Source(String),
    #[error("key of {0} bytes is too long")]
    KeyTooLong(usize),
}

/// A stored (key, value) pair.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Where pages come from.
pub trait Pages {
    fn read(&mut self, file: u32, pgno: u32) -> Result<Vec<u8>, DataError>;
    fn write(&mut self, file: u32, pgno: u32, page: &[u8]) -> Result<(), DataError>;
    /// How many pages `file` can hold, when the source knows (a file read whole): no chain can be longer,
    /// whatever the meta page claims. `None`: trust the meta page.
    fn page_count(&self, _file: u32) -> Option<u32> {
        None
    }
}

fn u16_at(p: &[u8], at: usize) -> usize {
    p.get(at..at + 2).map(|s| u16::from_ne_bytes([s[0], s[1]]) as usize).unwrap_or(0)
}

fn set_u16(p: &mut [u8], at: usize, v: usize) {
    p[at..at + 2].copy_from_slice(&(v as u16).to_ne_bytes());
}

fn u32_of(p: &[u8], at: usize) -> u32 {
    get_u32(p, at).unwrap_or(0)
}

/// A fresh meta page.
pub fn meta_page() -> Vec<u8> {
    let mut p = vec![0u8; PAGE];
    set_u32(&mut p, M_MAGIC, MAGIC);
    set_u32(&mut p, M_PAGESIZE, PAGE as u32);
    set_u32(&mut p, M_NBUCKETS, NBUCKETS);
    p
}

fn hash(key: &[u8]) -> u32 {
    super::lock::hash_key(key)
}

/// One item parsed from a bucket page.
struct Item {
    at: usize,
    size: usize,
    key: std::ops::Range<usize>,
    overflow: Option<u32>,
    value: std::ops::Range<usize>,
    vlen: usize,
}

/// Parse the items of a bucket page, bounds-checked.
fn items(file: u32, pgno: u32, p: &[u8]) -> Result<Vec<Item>, DataError> {
    let bad = |what: &str| DataError::Damaged { file, pgno, what: what.into() };
    if p.len() != PAGE || p[P_TYPE] != T_BUCKET {
        return Err(bad("not a bucket page"));
    }
    let n = u16_at(p, P_NITEMS);
    let used = u16_at(p, P_USED);
    if P_DATA + used > PAGE {
        return Err(bad("used bytes exceed the page"));
    }
    let mut out = Vec::with_capacity(n);
    let mut at = P_DATA;
    for _ in 0..n {
        if at + ITEM_HDR > P_DATA + used {
            return Err(bad("item header past the used area"));
        }
        let klen = u16_at(p, at);
        let flags = u16_at(p, at + 2);
        let vlen = u32_of(p, at + 4) as usize;
        let key = at + ITEM_HDR..at + ITEM_HDR + klen;
        let (size, overflow, value) = if flags & 1 != 0 {
            let o = key.end;
            (ITEM_HDR + klen + 4, Some(u32_of(p, o)), o..o)
        } else {
            (ITEM_HDR + klen + vlen, None, key.end..key.end + vlen)
        };
        if at + size > P_DATA + used {
            return Err(bad("item runs past the used area"));
        }
        out.push(Item { at, size, key, overflow, value, vlen });
        at += size;
    }
    Ok(out)
}

/// A hash file over a page source.
pub struct DataFile<'a, P: Pages> {
    pub pages: &'a mut P,
    pub file: u32,
}

impl<'a, P: Pages> DataFile<'a, P> {
    pub fn new(pages: &'a mut P, file: u32) -> Self {
        DataFile { pages, file }
    }

    fn bad(&self, pgno: u32, what: impl Into<String>) -> DataError {
        DataError::Damaged { file: self.file, pgno, what: what.into() }
    }

    fn meta(&mut self) -> Result<Vec<u8>, DataError> {
        let m = self.pages.read(self.file, 0)?;
        if u32_of(&m, M_MAGIC) != MAGIC || u32_of(&m, M_NBUCKETS) == 0 || u32_of(&m, M_NBUCKETS) > NBUCKETS {
            return Err(self.bad(0, "bad meta page (magic or bucket count)"));
        }
        Ok(m)
    }

    /// The last page a walk may visit: the meta page's last page, bounded by what the file can hold (a meta
    /// page claiming 0xffffffff pages must not make a self-linked page a walk of four billion steps).
    fn last(&self, m: &[u8]) -> u32 {
        let claimed = u32_of(m, M_LAST);
        match self.pages.page_count(self.file) {
            Some(n) => claimed.min(n.saturating_sub(1)),
            None => claimed,
        }
    }

    fn bucket_of(&self, m: &[u8], key: &[u8]) -> usize {
        M_BUCKETS + (hash(key) % u32_of(m, M_NBUCKETS)) as usize * 4
    }

    fn read_overflow(&mut self, mut pgno: u32, len: usize, last: u32) -> Result<Vec<u8>, DataError> {
        let mut out = Vec::with_capacity(len);
        let mut steps = 0;
        while out.len() < len {
            if pgno == 0 || pgno > last || steps > last {
                return Err(self.bad(pgno, "overflow chain ends early or loops"));
            }
            let p = self.pages.read(self.file, pgno)?;
            if p[P_TYPE] != T_OVERFLOW {
                return Err(self.bad(pgno, "not an overflow page"));
            }
            let n = (u32_of(&p, P_NITEMS) as usize).min(PAGE - P_DATA);
            out.extend_from_slice(&p[P_DATA..P_DATA + n]);
            pgno = u32_of(&p, P_NEXT);
            steps += 1;
        }
        out.truncate(len);
        Ok(out)
    }

    /// Walk a bucket chain, calling `f(pgno, page, items)` until it returns Some.
    fn walk<T>(
        &mut self,
        first: u32,
        last: u32,
        mut f: impl FnMut(&mut Self, u32, &[u8], &[Item]) -> Result<Option<T>, DataError>,
    ) -> Result<Option<T>, DataError> {
        let mut pgno = first;
        let mut steps = 0;
        while pgno != 0 {
            if pgno > last || steps > last {
                return Err(self.bad(pgno, "bucket chain points past the file or loops"));
            }
            let p = self.pages.read(self.file, pgno)?;
            let its = items(self.file, pgno, &p)?;
            if let Some(v) = f(self, pgno, &p, &its)? {
                return Ok(Some(v));
            }
            pgno = u32_of(&p, P_NEXT);
            steps += 1;
        }
        Ok(None)
    }

    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, DataError> {
        let m = self.meta()?;
        let first = u32_of(&m, self.bucket_of(&m, key));
        let last = self.last(&m);
        self.walk(first, last, |s, _pg, p, its| {
            for it in its {
                if &p[it.key.clone()] == key {
                    return Ok(Some(match it.overflow {
                        Some(o) => s.read_overflow(o, it.vlen, last)?,
                        None => p[it.value.clone()].to_vec(),
                    }));
                }
            }
            Ok(None)
        })
    }

    fn alloc(&mut self, m: &mut [u8]) -> Result<u32, DataError> {
        let free = u32_of(m, M_FREE);
        if free != 0 {
            let p = self.pages.read(self.file, free)?;
            if p[P_TYPE] != T_FREE {
                return Err(self.bad(free, "free list points at a page in use"));
            }
            set_u32(m, M_FREE, u32_of(&p, P_NEXT));
            return Ok(free);
        }
        let n = u32_of(m, M_LAST) + 1;
        set_u32(m, M_LAST, n);
        Ok(n)
    }

    fn free_page(&mut self, m: &mut [u8], pgno: u32) -> Result<(), DataError> {
        let mut p = vec![0u8; PAGE];
        p[P_TYPE] = T_FREE;
        set_u32(&mut p, P_NEXT, u32_of(m, M_FREE));
        self.pages.write(self.file, pgno, &p)?;
        set_u32(m, M_FREE, pgno);
        Ok(())
    }

    /// Delete `key`; returns whether it existed. Overflow pages go to the free list.
    pub fn del(&mut self, key: &[u8]) -> Result<bool, DataError> {
        let mut m = self.meta()?;
        let first = u32_of(&m, self.bucket_of(&m, key));
        let last = self.last(&m);
        let hit = self.walk(first, last, |_, pg, p, its| {
            Ok(its.iter().find(|it| &p[it.key.clone()] == key).map(|it| (pg, p.to_vec(), it.at, it.size, it.overflow)))
        })?;
        let Some((pgno, mut page, at, size, overflow)) = hit else { return Ok(false) };
        let used = u16_at(&page, P_USED);
        page.copy_within(at + size..P_DATA + used, at);
        let n = u16_at(&page, P_NITEMS);
        set_u16(&mut page, P_NITEMS, n - 1);
        set_u16(&mut page, P_USED, used - size);
        self.pages.write(self.file, pgno, &page)?;
        let mut o = overflow.unwrap_or(0);
        let mut steps = 0;
        while o != 0 && o <= last && steps <= last {
            let p = self.pages.read(self.file, o)?;
            if p[P_TYPE] != T_OVERFLOW {
                break;
            }
            let next = u32_of(&p, P_NEXT);
            self.free_page(&mut m, o)?;
            o = next;
            steps += 1;
        }
        let ni = u32_of(&m, M_NITEMS).wrapping_sub(1);
        set_u32(&mut m, M_NITEMS, ni);
        self.pages.write(self.file, 0, &m)?;
        Ok(true)
    }

    /// Store `value` under `key`, replacing any old value.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), DataError> {
        if key.len() > KEY_MAX {
            return Err(DataError::KeyTooLong(key.len()));
        }
        self.del(key)?;
        let mut m = self.meta()?;
        let bucket = self.bucket_of(&m, key);
        let overflow = value.len() > INLINE_MAX;
        let size = ITEM_HDR + key.len() + if overflow { 4 } else { value.len() };
        // Overflow chain first (written before the item that points at it).
        let mut ovfl_first = 0;
        if overflow {
            let chunks: Vec<&[u8]> = value.chunks(PAGE - P_DATA).collect();
            let mut pgnos = Vec::with_capacity(chunks.len());
            for _ in &chunks {
                pgnos.push(self.alloc(&mut m)?);
            }
            for (i, c) in chunks.iter().enumerate() {
                let mut p = vec![0u8; PAGE];
                p[P_TYPE] = T_OVERFLOW;
                set_u32(&mut p, P_NEXT, pgnos.get(i + 1).copied().unwrap_or(0));
                set_u32(&mut p, P_NITEMS, c.len() as u32);
                p[P_DATA..P_DATA + c.len()].copy_from_slice(c);
                self.pages.write(self.file, pgnos[i], &p)?;
            }
            ovfl_first = pgnos[0];
        }
        // A bucket page with room, or a new one at the head of the chain.
        let first = u32_of(&m, bucket);
        let last = self.last(&m);
        let room = self.walk(first, last, |_, pg, p, _| {
            Ok((P_DATA + u16_at(p, P_USED) + size <= PAGE).then(|| (pg, p.to_vec())))
        })?;
        let (pgno, mut page) = match room {
            Some(x) => x,
            None => {
                let pg = self.alloc(&mut m)?;
                let mut p = vec![0u8; PAGE];
                p[P_TYPE] = T_BUCKET;
                set_u32(&mut p, P_NEXT, first);
                set_u32(&mut m, bucket, pg);
                // Planted bug: the bucket links the new page (meta page written) before the page is written.
                if crate::planted::active("bdbenv-bucket-linked-before-written") {
                    self.pages.write(self.file, 0, &m)?;
                }
                crate::crash::point("bdbenv.hash.bucket.new");
                (pg, p)
            }
        };
        let used = u16_at(&page, P_USED);
        let at = P_DATA + used;
        set_u16(&mut page, at, key.len());
        set_u16(&mut page, at + 2, usize::from(overflow));
        set_u32(&mut page, at + 4, value.len() as u32);
        page[at + ITEM_HDR..at + ITEM_HDR + key.len()].copy_from_slice(key);
        let v = at + ITEM_HDR + key.len();
        if overflow {
            set_u32(&mut page, v, ovfl_first);
        } else {
            page[v..v + value.len()].copy_from_slice(value);
        }
        let n = u16_at(&page, P_NITEMS);
        set_u16(&mut page, P_NITEMS, n + 1);
        set_u16(&mut page, P_USED, used + size);
        self.pages.write(self.file, pgno, &page)?;
        let ni = u32_of(&m, M_NITEMS).wrapping_add(1);
        set_u32(&mut m, M_NITEMS, ni);
        self.pages.write(self.file, 0, &m)
    }

    /// Every (key, value), bucket by bucket.
    pub fn scan(&mut self) -> Result<Vec<KeyValue>, DataError> {
        let (rows, errors) = self.salvage()?;
        match errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(rows),
        }
    }

    /// Every readable (key, value), and what could not be read: a broken overflow chain loses its item, a
    /// broken bucket chain the rest of that bucket; everything else is kept (what `db_dump -r` salvages).
    /// Only an unreadable meta page is an error.
    pub fn salvage(&mut self) -> Result<(Vec<KeyValue>, Vec<DataError>), DataError> {
        let m = self.meta()?;
        let last = self.last(&m);
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for b in 0..u32_of(&m, M_NBUCKETS) as usize {
            let first = u32_of(&m, M_BUCKETS + b * 4);
            let walked = self.walk(first, last, |s, _, p, its| {
                for it in its {
                    match it.overflow {
                        Some(o) => match s.read_overflow(o, it.vlen, last) {
                            Ok(v) => out.push((p[it.key.clone()].to_vec(), v)),
                            Err(e) => errors.push(e),
                        },
                        None => out.push((p[it.key.clone()].to_vec(), p[it.value.clone()].to_vec())),
                    }
                }
                Ok(None::<()>)
            });
            if let Err(e) = walked {
                errors.push(e);
            }
        }
        Ok((out, errors))
    }
}

/// Pages held in memory: data files read whole, with the cache's pages laid over them (what the next
/// process would see). Read-only.
pub struct PageImage {
    pub files: Vec<Vec<u8>>,
}

impl Pages for PageImage {
    fn read(&mut self, file: u32, pgno: u32) -> Result<Vec<u8>, DataError> {
        let f = self.files.get(file as usize).ok_or_else(|| DataError::Source(format!("no data file {file}")))?;
        let start = pgno as usize * PAGE;
        Ok(f.get(start..start + PAGE).map(|s| s.to_vec()).unwrap_or_else(|| vec![0u8; PAGE]))
    }

    fn write(&mut self, file: u32, pgno: u32, page: &[u8]) -> Result<(), DataError> {
        let f = self.files.get_mut(file as usize).ok_or_else(|| DataError::Source(format!("no data file {file}")))?;
        let start = pgno as usize * PAGE;
        if f.len() < start + PAGE {
            f.resize(start + PAGE, 0);
        }
        f[start..start + PAGE].copy_from_slice(page);
        Ok(())
    }

    fn page_count(&self, file: u32) -> Option<u32> {
        self.files.get(file as usize).map(|f| u32::try_from(f.len() / PAGE).unwrap_or(u32::MAX))
    }
}

/// Pack an index value: (header number, tag index) pairs, host order, sorted (rpm's dbiIndexSet).
pub fn pack_set(set: &[(u32, u32)]) -> Vec<u8> {
    let mut v = Vec::with_capacity(set.len() * 8);
    for (h, t) in set {
        v.extend_from_slice(&h.to_ne_bytes());
        v.extend_from_slice(&t.to_ne_bytes());
    }
    v
}

/// Unpack an index value; `None` if its length is not a multiple of 8.
pub fn unpack_set(v: &[u8]) -> Option<Vec<(u32, u32)>> {
    if !v.len().is_multiple_of(8) {
        return None;
    }
    Some(
        v.chunks_exact(8)
            .map(|c| (u32::from_ne_bytes([c[0], c[1], c[2], c[3]]), u32::from_ne_bytes([c[4], c[5], c[6], c[7]])))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages read whole from memory, counting the reads.
    struct Counting(PageImage, usize);

    impl Pages for Counting {
        fn read(&mut self, file: u32, pgno: u32) -> Result<Vec<u8>, DataError> {
            self.1 += 1;
            self.0.read(file, pgno)
        }
        fn write(&mut self, file: u32, pgno: u32, page: &[u8]) -> Result<(), DataError> {
            self.0.write(file, pgno, page)
        }
        fn page_count(&self, file: u32) -> Option<u32> {
            self.0.page_count(file)
        }
    }

    #[test]
    fn a_self_linked_bucket_page_under_a_meta_claiming_4g_pages_is_a_bounded_walk() {
        let mut img = PageImage { files: vec![meta_page()] };
        let mut f = DataFile::new(&mut img, 0);
        for i in 0..40u32 {
            f.put(&i.to_ne_bytes(), b"value").unwrap();
        }
        let file = &mut img.files[0];
        set_u32(file, M_LAST, 0xffff_ffff);
        // Every bucket page links to itself.
        let pages = file.len() / PAGE;
        for pg in 1..pages {
            if file[pg * PAGE + P_TYPE] == T_BUCKET {
                set_u32(&mut file[pg * PAGE..], P_NEXT, pg as u32);
            }
        }
        let mut c = Counting(img, 0);
        let (_, errors) = DataFile::new(&mut c, 0).salvage().unwrap();
        assert!(!errors.is_empty() && errors.iter().all(|e| e.to_string().contains("loops")), "{errors:?}");
        // At most one visit per page the file holds, per bucket.
        assert!(c.1 <= 1 + NBUCKETS as usize * (pages + 1), "{} reads for a {pages}-page file", c.1);
    }

    #[test]
    fn put_get_del_scan_with_overflow_values() {
        let mut img = PageImage { files: vec![meta_page()] };
        let mut f = DataFile::new(&mut img, 0);
        let big = vec![7u8; 10_000];
        for i in 0..2000u32 {
            f.put(&i.to_ne_bytes(), if i % 100 == 0 { &big } else { b"small" }).unwrap();
        }
        assert_eq!(f.get(&100u32.to_ne_bytes()).unwrap().unwrap(), big);
        assert_eq!(f.get(&5u32.to_ne_bytes()).unwrap().unwrap(), b"small");
        f.put(&5u32.to_ne_bytes(), b"replaced").unwrap();
        assert_eq!(f.get(&5u32.to_ne_bytes()).unwrap().unwrap(), b"replaced");
        assert!(f.del(&100u32.to_ne_bytes()).unwrap());
        assert!(!f.del(&100u32.to_ne_bytes()).unwrap());
        assert_eq!(f.get(&100u32.to_ne_bytes()).unwrap(), None);
        assert_eq!(f.scan().unwrap().len(), 1999);
        // Freed overflow pages are reused.
        let pages_before = img.files[0].len();
        let mut f = DataFile::new(&mut img, 0);
        f.put(b"again", &big).unwrap();
        assert_eq!(img.files[0].len(), pages_before);
    }

    #[test]
    fn salvage_keeps_what_is_readable_when_an_overflow_page_is_lost() {
        let mut img = PageImage { files: vec![meta_page()] };
        let mut f = DataFile::new(&mut img, 0);
        for i in 0..50u32 {
            f.put(&i.to_ne_bytes(), &vec![i as u8; if i == 7 { 5000 } else { 10 }]).unwrap();
        }
        // Zero every overflow page, as if their write-back was lost.
        let pages = img.files[0].len() / PAGE;
        for p in 1..pages {
            if img.files[0][p * PAGE + P_TYPE] == T_OVERFLOW {
                img.files[0][p * PAGE..(p + 1) * PAGE].fill(0);
            }
        }
        let mut f = DataFile::new(&mut img, 0);
        assert!(f.scan().is_err());
        let (rows, errors) = f.salvage().unwrap();
        assert_eq!(rows.len(), 49);
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn damaged_pages_are_errors() {
        let mut img = PageImage { files: vec![meta_page()] };
        let mut f = DataFile::new(&mut img, 0);
        f.put(b"k", b"v").unwrap();
        let len = img.files[0].len();
        // Point the chain at itself and scribble over the item area.
        img.files[0][PAGE + P_NEXT..PAGE + P_NEXT + 4].copy_from_slice(&1u32.to_ne_bytes());
        img.files[0][PAGE + P_USED..PAGE + P_USED + 2].copy_from_slice(&9000u16.to_ne_bytes());
        let mut f = DataFile::new(&mut img, 0);
        assert!(f.scan().is_err());
        assert!(f.get(b"k").is_err());
        assert!(len >= 2 * PAGE);
    }
}
