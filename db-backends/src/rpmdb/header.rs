//! Header blobs as the rpmdb stores them: no lead, no signature, no 8-byte magic.
//!
//! Why our own codec: the verifier must survive arbitrary bytes (a torn page, a stale copy, garbage), so the
//! decoder is small, bounds-checked at every step, never panics and never loops longer than the blob is long.
//! It applies the same structural rules as rpm's `hdrblobVerifyInfo`/`hdrblobVerifyRegion`, so a blob we call
//! readable is one rpm would load. The encoder only *appends* entries after an existing immutable region —
//! which is exactly what rpm does when it installs a header (INSTALLTIME, INSTALLTID, SHA1HEADER, …).
//!
//! Byte order: everything in a header is big-endian (network order), unlike the host-order rpmdb index values.

use std::fmt;

/// rpm's header magic, prepended when a header is digested (but not stored in the rpmdb).
pub const HEADER_MAGIC: [u8; 8] = [0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0];
/// rpm's limits (`HEADER_TAGS_MAX`, `HEADER_DATA_MAX`).
pub const MAX_ENTRIES: u32 = 0x0000_ffff;
pub const MAX_DATA: u32 = 0x0fff_ffff;
const ENTRY_LEN: usize = 16;
/// RPMTAG_HEADERIMAGE: the region tag of old (v3) headers; type-checked like HEADERIMMUTABLE.
const HEADERIMAGE: u32 = 61;

/// Header data types (rpmTagType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum TagType {
    Null = 0,
    Char = 1,
    Int8 = 2,
    Int16 = 3,
    Int32 = 4,
    Int64 = 5,
    String = 6,
    Bin = 7,
    StringArray = 8,
    I18nString = 9,
}

impl TagType {
    pub fn from_u32(v: u32) -> Option<TagType> {
        Some(match v {
            0 => TagType::Null,
            1 => TagType::Char,
            2 => TagType::Int8,
            3 => TagType::Int16,
            4 => TagType::Int32,
            5 => TagType::Int64,
            6 => TagType::String,
            7 => TagType::Bin,
            8 => TagType::StringArray,
            9 => TagType::I18nString,
            _ => return None,
        })
    }
    fn align(self) -> usize {
        match self {
            TagType::Int16 => 2,
            TagType::Int32 => 4,
            TagType::Int64 => 8,
            _ => 1,
        }
    }
    fn is_string(self) -> bool {
        matches!(self, TagType::String | TagType::StringArray | TagType::I18nString)
    }
}

/// Why a blob is unreadable. Each variant names what rpm would reject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    TooShort {
        len: usize,
    },
    BadCounts {
        il: u32,
        dl: u32,
    },
    LengthMismatch {
        expected: u64,
        actual: usize,
    },
    BadType {
        entry: u32,
        tag: u32,
        ty: u32,
    },
    BadOffset {
        entry: u32,
        tag: u32,
        offset: i32,
    },
    BadAlignment {
        entry: u32,
        tag: u32,
        offset: i32,
    },
    DataOverflow {
        entry: u32,
        tag: u32,
    },
    Overlap {
        entry: u32,
        tag: u32,
    },
    BadCount {
        entry: u32,
        tag: u32,
        count: u32,
    },
    UnterminatedString {
        entry: u32,
        tag: u32,
    },
    BadRegion {
        reason: &'static str,
    },
    /// A tag number below HEADER_I18NTABLE outside the region tag (rpm's hdrchkTag).
    BadTag {
        entry: u32,
        tag: u32,
    },
    /// A tag rpm knows, stored with another type (rpm's hdrchkTagType, for headers with an immutable region).
    TagTypeMismatch {
        entry: u32,
        tag: u32,
        ty: u32,
    },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::TooShort { len } => {
                write!(f, "blob of {len} bytes is shorter than a header intro")
            }
            HeaderError::BadCounts { il, dl } => {
                write!(f, "header counts out of range (il {il}, dl {dl})")
            }
            HeaderError::LengthMismatch { expected, actual } => {
                write!(f, "blob length {actual} does not match header size {expected}")
            }
            HeaderError::BadTag { entry, tag } => {
                write!(f, "entry {entry} has tag {tag}, below the first tag a header may hold")
            }
            HeaderError::TagTypeMismatch { entry, tag, ty } => {
                write!(f, "entry {entry} (tag {tag}) is stored with type {ty}, not the type rpm declares for it")
            }
            HeaderError::BadType { entry, tag, ty } => {
                write!(f, "entry {entry} (tag {tag}) has invalid type {ty}")
            }
            HeaderError::BadOffset { entry, tag, offset } => {
                write!(f, "entry {entry} (tag {tag}) has offset {offset} outside the data")
            }
            HeaderError::BadAlignment { entry, tag, offset } => {
                write!(f, "entry {entry} (tag {tag}) offset {offset} is misaligned")
            }
            HeaderError::DataOverflow { entry, tag } => {
                write!(f, "entry {entry} (tag {tag}) data runs past the end")
            }
            HeaderError::Overlap { entry, tag } => {
                write!(f, "entry {entry} (tag {tag}) overlaps the previous entry")
            }
            HeaderError::BadCount { entry, tag, count } => {
                write!(f, "entry {entry} (tag {tag}) has bad count {count}")
            }
            HeaderError::UnterminatedString { entry, tag } => {
                write!(f, "entry {entry} (tag {tag}) has an unterminated string")
            }
            HeaderError::BadRegion { reason } => write!(f, "bad immutable region: {reason}"),
        }
    }
}

impl std::error::Error for HeaderError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    tag: u32,
    ty: TagType,
    offset: usize,
    count: u32,
    len: usize,
}

/// A decoded, validated header. Borrowing accessors never panic: a wrong type is simply `None`.
#[derive(Debug, Clone)]
pub struct Header<'a> {
    blob: &'a [u8],
    entries: Vec<Entry>,
    data_start: usize,
    /// Number of index entries and data bytes of the immutable region (0 if the header has none).
    region_il: u32,
    region_dl: u32,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Length in bytes of an entry's data, bounded by `avail`; `None` if it cannot fit.
fn data_len(ty: TagType, count: u32, data: &[u8]) -> Option<usize> {
    let count = count as usize;
    match ty {
        TagType::Null => Some(0),
        TagType::Char | TagType::Int8 | TagType::Bin => (count <= data.len()).then_some(count),
        TagType::Int16 | TagType::Int32 | TagType::Int64 => {
            let w = ty.align();
            let n = count.checked_mul(w)?;
            (n <= data.len()).then_some(n)
        }
        TagType::String | TagType::StringArray | TagType::I18nString => {
            if ty == TagType::String && count != 1 {
                return None;
            }
            // Scan for `count` NULs; the scan is bounded by the data length.
            let mut pos = 0usize;
            for _ in 0..count {
                let nul = data.get(pos..)?.iter().position(|&c| c == 0)?;
                pos += nul + 1;
            }
            Some(pos)
        }
    }
}

impl<'a> Header<'a> {
    /// Decode and validate a header blob as stored in an rpmdb (no magic).
    pub fn parse(blob: &'a [u8]) -> Result<Header<'a>, HeaderError> {
        let il = be32(blob, 0).ok_or(HeaderError::TooShort { len: blob.len() })?;
        let dl = be32(blob, 4).ok_or(HeaderError::TooShort { len: blob.len() })?;
        if il == 0 || il > MAX_ENTRIES || dl > MAX_DATA {
            return Err(HeaderError::BadCounts { il, dl });
        }
        let expected = 8 + il as u64 * ENTRY_LEN as u64 + dl as u64;
        if expected != blob.len() as u64 {
            return Err(HeaderError::LengthMismatch { expected, actual: blob.len() });
        }
        let data_start = 8 + il as usize * ENTRY_LEN;
        let data = &blob[data_start..];
        let mut entries = Vec::with_capacity(il as usize);
        for i in 0..il {
            let at = 8 + i as usize * ENTRY_LEN;
            let (tag, ty_raw) = (be32(blob, at).unwrap_or(0), be32(blob, at + 4).unwrap_or(u32::MAX));
            let offset = be32(blob, at + 8).unwrap_or(u32::MAX) as i32;
            let count = be32(blob, at + 12).unwrap_or(0);
            let ty = TagType::from_u32(ty_raw).ok_or(HeaderError::BadType { entry: i, tag, ty: ty_raw })?;
            if offset < 0 || offset as u32 >= dl.max(1) || (dl == 0 && offset != 0) {
                return Err(HeaderError::BadOffset { entry: i, tag, offset });
            }
            let off = offset as usize;
            if !off.is_multiple_of(ty.align()) {
                return Err(HeaderError::BadAlignment { entry: i, tag, offset });
            }
            if count == 0 || count > MAX_DATA {
                return Err(HeaderError::BadCount { entry: i, tag, count });
            }
            let len = data_len(ty, count, &data[off.min(data.len())..]).ok_or(if ty.is_string() {
                HeaderError::UnterminatedString { entry: i, tag }
            } else {
                HeaderError::DataOverflow { entry: i, tag }
            })?;
            entries.push(Entry { tag, ty, offset: off, count, len });
        }
        let mut h = Header { blob, entries, data_start, region_il: 0, region_dl: 0 };
        h.check_region_and_order()?;
        Ok(h)
    }

    /// rpm's region rules: if entry 0 is a region tag its trailer must describe a prefix of the index and data;
    /// all non-region entries must have increasing, non-overlapping data.
    fn check_region_and_order(&mut self) -> Result<(), HeaderError> {
        let first = self.entries[0];
        let mut start = 0;
        if first.tag == super::tags::HEADERIMMUTABLE || first.tag == super::tags::HEADERSIGNATURES {
            if first.ty != TagType::Bin || first.count != 16 {
                return Err(HeaderError::BadRegion { reason: "region tag is not a 16-byte BIN" });
            }
            let data = self.data();
            let trailer = data
                .get(first.offset..first.offset + 16)
                .ok_or(HeaderError::BadRegion { reason: "trailer outside data" })?;
            let ttag = be32(trailer, 0).unwrap_or(0);
            let tty = be32(trailer, 4).unwrap_or(0);
            let toff = be32(trailer, 8).unwrap_or(0) as i32;
            let tcount = be32(trailer, 12).unwrap_or(0);
            if ttag != first.tag || tty != TagType::Bin as u32 || tcount != 16 {
                return Err(HeaderError::BadRegion { reason: "trailer does not match the region tag" });
            }
            let ril = toff.checked_neg().filter(|v| *v > 0 && v % ENTRY_LEN as i32 == 0).map(|v| v as u32 / 16);
            let ril = ril.ok_or(HeaderError::BadRegion { reason: "trailer offset is not a negative index size" })?;
            if ril as usize > self.entries.len() {
                return Err(HeaderError::BadRegion { reason: "region claims more entries than the header has" });
            }
            self.region_il = ril;
            self.region_dl = (first.offset + 16) as u32;
            start = 1;
        }
        // rpm type-checks known tags only in package headers (not signature headers).
        let typechk = start == 1 && (first.tag == super::tags::HEADERIMMUTABLE || first.tag == HEADERIMAGE);
        let mut end = 0usize;
        for (i, e) in self.entries.iter().enumerate().skip(start) {
            if e.offset < end {
                return Err(HeaderError::Overlap { entry: i as u32, tag: e.tag });
            }
            if e.tag < super::tags::HEADERI18NTABLE {
                return Err(HeaderError::BadTag { entry: i as u32, tag: e.tag });
            }
            if typechk && super::tagtypes::mismatched(e.tag, e.ty) {
                return Err(HeaderError::TagTypeMismatch { entry: i as u32, tag: e.tag, ty: e.ty as u32 });
            }
            end = e.offset + e.len;
            // No entry's data may overlap the region trailer (the loop skips the trailer's own entry).
            if start == 1 && end > self.region_dl as usize - 16 && e.offset < self.region_dl as usize {
                return Err(HeaderError::BadRegion { reason: "entry data overlaps the region trailer" });
            }
            if i < self.region_il as usize && end > self.region_dl as usize {
                return Err(HeaderError::BadRegion { reason: "region entry data runs past the trailer" });
            }
        }
        Ok(())
    }

    fn data(&self) -> &'a [u8] {
        &self.blob[self.data_start..]
    }

    fn find(&self, tag: u32) -> Option<&Entry> {
        self.entries.iter().find(|e| e.tag == tag)
    }

    fn bytes_of(&self, e: &Entry) -> &'a [u8] {
        &self.data()[e.offset..e.offset + e.len]
    }

    pub fn has(&self, tag: u32) -> bool {
        self.find(tag).is_some()
    }

    /// All tags present, in index order.
    pub fn tags(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries.iter().map(|e| e.tag)
    }

    pub fn tag_type(&self, tag: u32) -> Option<TagType> {
        self.find(tag).map(|e| e.ty)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A STRING or I18NSTRING (first translation) value, as bytes without the NUL.
    pub fn string(&self, tag: u32) -> Option<&'a [u8]> {
        let e = self.find(tag)?;
        match e.ty {
            TagType::String | TagType::I18nString => {
                let b = self.bytes_of(e);
                Some(&b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())])
            }
            _ => None,
        }
    }

    /// The elements of a string-class tag (STRING yields one element), without NULs.
    pub fn strings(&self, tag: u32) -> Option<Vec<&'a [u8]>> {
        let e = self.find(tag)?;
        if !e.ty.is_string() {
            return None;
        }
        let b = self.bytes_of(e);
        let mut out: Vec<&[u8]> = b.split(|&c| c == 0).collect();
        out.pop(); // the split after the final NUL
        out.truncate(e.count as usize);
        Some(out)
    }

    /// INT32 values (host integers decoded from big-endian).
    pub fn u32s(&self, tag: u32) -> Option<Vec<u32>> {
        let e = self.find(tag)?;
        if e.ty != TagType::Int32 {
            return None;
        }
        Some(self.bytes_of(e).chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    pub fn u32_first(&self, tag: u32) -> Option<u32> {
        self.u32s(tag)?.first().copied()
    }

    /// Raw data bytes of any entry (BIN values, or the encoded form of others).
    pub fn raw(&self, tag: u32) -> Option<(TagType, u32, &'a [u8])> {
        self.find(tag).map(|e| (e.ty, e.count, self.bytes_of(e)))
    }

    /// The number of elements of a tag (0 if absent).
    pub fn count(&self, tag: u32) -> u32 {
        self.find(tag).map(|e| e.count).unwrap_or(0)
    }

    /// Whether the header has an immutable region (every installed rpm header does).
    pub fn has_region(&self) -> bool {
        self.region_il > 0
    }

    /// The bytes rpm digests for SHA1HEADER/SHA256HEADER: magic, (ril, rdl) big-endian, the region's index
    /// entries and its data (rpm's `hdrblobDigestUpdate`). `None` if there is no region.
    pub fn region_digest_input(&self) -> Option<(&'a [u8], &'a [u8])> {
        if !self.has_region() {
            return None;
        }
        let index = &self.blob[8..8 + self.region_il as usize * ENTRY_LEN];
        let data = &self.data()[..self.region_dl as usize];
        Some((index, data))
    }

    /// (ril, rdl) of the immutable region.
    pub fn region_counts(&self) -> (u32, u32) {
        (self.region_il, self.region_dl)
    }
}

/// A value to append to a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Char(Vec<u8>),
    Int32(Vec<u32>),
    String(String),
    StringArray(Vec<String>),
    Bin(Vec<u8>),
}

/// Append entries (after any immutable region and existing entries) to a valid header blob, as rpm does when
/// it installs a package. Entries must not already exist; the result is re-validated.
pub fn append_entries(blob: &[u8], add: &[(u32, Value)]) -> Result<Vec<u8>, HeaderError> {
    let h = Header::parse(blob)?;
    let il = h.entries.len();
    let mut data = h.data().to_vec();
    let mut index = blob[8..8 + il * ENTRY_LEN].to_vec();
    for (tag, v) in add {
        let (ty, count, bytes, align) = match v {
            Value::Char(b) => (TagType::Char, b.len() as u32, b.clone(), 1),
            Value::Int32(xs) => (TagType::Int32, xs.len() as u32, xs.iter().flat_map(|x| x.to_be_bytes()).collect(), 4),
            Value::String(s) => (TagType::String, 1, nul_terminated([s.as_str()]), 1),
            Value::StringArray(xs) => {
                (TagType::StringArray, xs.len() as u32, nul_terminated(xs.iter().map(|s| s.as_str())), 1)
            }
            Value::Bin(b) => (TagType::Bin, b.len() as u32, b.clone(), 1),
        };
        while !data.len().is_multiple_of(align) {
            data.push(0);
        }
        index.extend_from_slice(&tag.to_be_bytes());
        index.extend_from_slice(&(ty as u32).to_be_bytes());
        index.extend_from_slice(&(data.len() as u32).to_be_bytes());
        index.extend_from_slice(&count.to_be_bytes());
        data.extend_from_slice(&bytes);
    }
    let mut out = Vec::with_capacity(8 + index.len() + data.len());
    out.extend_from_slice(&((index.len() / ENTRY_LEN) as u32).to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(&index);
    out.extend_from_slice(&data);
    Header::parse(&out)?;
    Ok(out)
}

fn nul_terminated<'s>(xs: impl IntoIterator<Item = &'s str>) -> Vec<u8> {
    let mut v = Vec::new();
    for s in xs {
        v.extend_from_slice(s.as_bytes());
        v.push(0);
    }
    v
}
