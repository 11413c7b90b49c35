//! Index entries of a header, with rpm 4.18's tag-index semantics (`tag2index` in lib/rpmdb.c), and index
//! maintenance on add/remove through the [`Store`] trait.
//!
//! Why written once: every backend stores indexes differently (rows in sqlite, packed sets in BDB-style hash
//! files), but *which* (key, header number, tag index) triples a header produces is rpm's rule, not the
//! backend's. Backends implement [`Store`]; this module decides what goes in.
//!
//! Semantics reproduced: the stored tag index is the array position, except for (trans)file triggers where it
//! is the FILETRIGGERINDEX value; Group falls back to "Unknown"; transient requires (install-only prereqs)
//! are not indexed; duplicate trigger names are indexed once; rich dependencies `(a or b)` also index each
//! simple name inside (sorted, de-duplicated, `rpmlib(` skipped, negated names prefixed with `!`).

use super::header::Header;
use super::tags::{self, IndexTag, KeyClass};
use std::borrow::Cow;

/// One index row: (key, header number, tag index).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entry {
    pub key: Vec<u8>,
    pub hnum: u32,
    pub tagnum: u32,
}

// rpmds.h sense flags used by the Requirename filter.
const SENSE_PREREQ: u32 = 1 << 6;
const SENSE_POSTTRANS: u32 = 1 << 5;
const SENSE_PRETRANS: u32 = 1 << 7;
const SENSE_SCRIPT_PRE: u32 = 1 << 9;
const SENSE_SCRIPT_POST: u32 = 1 << 10;
const SENSE_SCRIPT_PREUN: u32 = 1 << 11;
const SENSE_SCRIPT_POSTUN: u32 = 1 << 12;
const SENSE_RPMLIB: u32 = 1 << 24;
const SENSE_KEYRING: u32 = 1 << 26;
const SENSE_META: u32 = 1 << 29;

/// rpm's `isTransientReq`: an install-only prerequisite that is not also needed on erase and not meta.
pub fn is_transient_req(flags: u32) -> bool {
    let install_only =
        (SENSE_SCRIPT_PRE | SENSE_SCRIPT_POST | SENSE_RPMLIB | SENSE_KEYRING | SENSE_PRETRANS | SENSE_POSTTRANS)
            & !SENSE_PREREQ;
    let erase_only = (SENSE_SCRIPT_PREUN | SENSE_SCRIPT_POSTUN) & !SENSE_PREREQ;
    flags & install_only != 0 && flags & erase_only == 0 && flags & SENSE_META == 0
}

fn is_rich_capable(tag: IndexTag) -> bool {
    matches!(
        tag.0,
        tags::REQUIRENAME
            | tags::CONFLICTNAME
            | tags::SUGGESTNAME
            | tags::SUPPLEMENTNAME
            | tags::RECOMMENDNAME
            | tags::ENHANCENAME
    )
}

/// The (key, tag index) pairs a header contributes to one index, in rpm's order. `None` means the tag data
/// has a type rpm could not index (the header is then reported, not indexed).
pub fn keys_for<'a>(h: &Header<'a>, index: IndexTag) -> Vec<(Cow<'a, [u8]>, u32)> {
    let mut out = Vec::new();
    match index.key_class() {
        KeyClass::Int32 => {
            // Host byte order, as rpm's td2key copies the integer it got from headerGet.
            if let Some(vals) = h.u32s(index.0) {
                for (i, v) in vals.iter().enumerate() {
                    out.push((Cow::Owned(v.to_ne_bytes().to_vec()), i as u32));
                }
            }
        }
        KeyClass::Bin => {
            if let Some((super::header::TagType::Bin, count, bytes)) = h.raw(index.0)
                && count > 0
            {
                out.push((Cow::Borrowed(bytes), 0));
            }
        }
        KeyClass::String => {
            // PLANTED (index-dirnames-wrong-array): Dirnames keys taken from the Basenames array.
            let source = if index.0 == tags::DIRNAMES && crate::planted::active("index-dirnames-wrong-array") {
                tags::BASENAMES
            } else {
                index.0
            };
            let values = h.strings(source).unwrap_or_default();
            // PLANTED (index-basenames-skip-colour-2): files of colour 2 (64-bit ELF) left out of Basenames.
            let skip_colour_2 = index.0 == tags::BASENAMES && crate::planted::active("index-basenames-skip-colour-2");
            let colours = if skip_colour_2 { h.u32s(tags::FILECOLORS).unwrap_or_default() } else { Vec::new() };
            // PLANTED (index-providename-dedup): a Providename equal to an earlier one indexed once, as rpm does
            // only for Triggername.
            let dedup_provides = index.0 == tags::PROVIDENAME && crate::planted::active("index-providename-dedup");
            if values.is_empty() {
                if index.0 == tags::GROUP {
                    out.push((Cow::Borrowed(&b"Unknown"[..]), 0));
                }
                return out;
            }
            let req_flags = (index.0 == tags::REQUIRENAME).then(|| h.u32s(tags::REQUIREFLAGS).unwrap_or_default());
            let trig_index = match index.0 {
                tags::FILETRIGGERNAME => Some(h.u32s(tags::FILETRIGGERINDEX).unwrap_or_default()),
                tags::TRANSFILETRIGGERNAME => Some(h.u32s(tags::TRANSFILETRIGGERINDEX).unwrap_or_default()),
                _ => None,
            };
            for (i, v) in values.iter().enumerate() {
                let mut tagnum = i as u32;
                if let Some(flags) = &req_flags
                    && flags.get(i).is_some_and(|f| is_transient_req(*f))
                {
                    continue;
                }
                if let Some(ti) = &trig_index {
                    match ti.get(i) {
                        Some(t) => tagnum = *t,
                        None => break, // rpm fails the whole index update when the trigger index is short
                    }
                }
                if (index.0 == tags::TRIGGERNAME || dedup_provides) && values[..i].contains(v) {
                    continue;
                }
                if skip_colour_2 && colours.get(i) == Some(&2) {
                    continue;
                }
                out.push((Cow::Borrowed(*v), tagnum));
                if is_rich_capable(index) && v.first() == Some(&b'(') {
                    for name in rich_dep_names(v) {
                        out.push((Cow::Owned(name), tagnum));
                    }
                }
            }
        }
    }
    out
}

/// Every index entry of a header, per index, in rpm's index order.
pub fn entries_of(h: &Header<'_>, hnum: u32) -> Vec<(IndexTag, Vec<Entry>)> {
    tags::INDEXES
        .iter()
        .map(|&idx| {
            let es = keys_for(h, idx)
                .into_iter()
                .map(|(key, tagnum)| Entry { key: key.into_owned(), hnum, tagnum })
                .collect::<Vec<_>>();
            (idx, es)
        })
        .collect()
}

/// The names rpm additionally indexes for a rich dependency (`updateRichDep`): every simple dependency name
/// inside, `rpmlib(` ones skipped, names in the condition of `if`/`unless` (and the inverted copy for `else`)
/// prefixed with `!`, sorted and de-duplicated. Returns nothing for a string that does not parse.
pub fn rich_dep_names(dep: &[u8]) -> Vec<Vec<u8>> {
    let mut p = RichParser { s: dep, pos: 0, neg: false, names: Vec::new(), depth: 0 };
    if p.group().is_none() {
        return Vec::new();
    }
    let mut names = p.names;
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|mut n| {
            if n.first() == Some(&b' ') {
                n.remove(0);
            }
            n
        })
        .collect()
}

struct RichParser<'a> {
    s: &'a [u8],
    pos: usize,
    neg: bool,
    /// Names with a one-byte marker: ' ' plain, '!' negated (rpm's own encoding before sorting).
    names: Vec<Vec<u8>>,
    depth: u32,
}

impl RichParser<'_> {
    fn skip_ws(&mut self) {
        while self.s.get(self.pos).is_some_and(|c| c.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn word(&mut self) -> &[u8] {
        self.skip_ws();
        let start = self.pos;
        let mut parens = 0i32;
        while let Some(&c) = self.s.get(self.pos) {
            if c.is_ascii_whitespace() || (c == b')' && parens == 0) {
                break;
            }
            match c {
                b'(' => parens += 1,
                b')' => parens -= 1,
                _ => {}
            }
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    /// `( operand (op operand)* )`; `None` on a syntax error.
    fn group(&mut self) -> Option<()> {
        self.depth += 1;
        if self.depth > 64 {
            return None;
        }
        self.skip_ws();
        if self.s.get(self.pos) != Some(&b'(') {
            return None;
        }
        self.pos += 1;
        let mut cond_start = self.names.len();
        let mut group_op: Option<Vec<u8>> = None;
        self.operand()?;
        loop {
            self.skip_ws();
            match self.s.get(self.pos) {
                Some(b')') => {
                    self.pos += 1;
                    break;
                }
                None => return None,
                _ => {}
            }
            let op = self.word().to_vec();
            match op.as_slice() {
                b"and" | b"or" | b"with" | b"without" => {}
                b"if" | b"unless" => {
                    cond_start = self.names.len();
                    self.neg = !self.neg;
                }
                b"else" => {
                    let end = self.names.len();
                    for i in cond_start..end {
                        let mut n = self.names[i].clone();
                        n[0] = if n[0] == b'!' { b' ' } else { b'!' };
                        self.names.push(n);
                    }
                    self.neg = !self.neg;
                }
                _ => return None,
            }
            if op != b"else" {
                group_op = Some(op);
            }
            self.operand()?;
        }
        if matches!(group_op.as_deref(), Some(b"if") | Some(b"unless")) {
            self.neg = !self.neg;
        }
        self.depth -= 1;
        Some(())
    }

    fn operand(&mut self) -> Option<()> {
        self.skip_ws();
        if self.s.get(self.pos) == Some(&b'(') {
            return self.group();
        }
        let name = self.word().to_vec();
        if name.is_empty() {
            return None;
        }
        // An optional version comparison: `name OP version`.
        let save = self.pos;
        let next = self.word().to_vec();
        if matches!(next.as_slice(), b"<" | b"<=" | b"=" | b"==" | b">=" | b">" | b"<=>") {
            if self.word().is_empty() {
                return None;
            }
        } else {
            self.pos = save;
        }
        if !name.starts_with(b"rpmlib(") {
            let mut n = Vec::with_capacity(name.len() + 1);
            n.push(if self.neg { b'!' } else { b' ' });
            n.extend_from_slice(&name);
            self.names.push(n);
        }
        Some(())
    }
}

/// The primitive operations a backend offers the rpmdb layer. Implementations add their crash points; the
/// *order* of calls is rpm's (see [`add_header`] and [`remove_header`]).
pub trait Store {
    type Error;
    /// Store a header blob under a new header number and return it.
    fn put_package(&mut self, blob: &[u8]) -> Result<u32, Self::Error>;
    /// Delete a header number from Packages.
    fn del_package(&mut self, hnum: u32) -> Result<(), Self::Error>;
    /// Read a header blob.
    fn get_package(&mut self, hnum: u32) -> Result<Option<Vec<u8>>, Self::Error>;
    /// Add one header's entries to one index (possibly none: a backend may still touch the index).
    fn index_add(&mut self, index: IndexTag, hnum: u32, entries: &[Entry]) -> Result<(), Self::Error>;
    /// Remove one header's entries (as generated from its blob) from one index.
    fn index_remove(&mut self, index: IndexTag, hnum: u32, entries: &[Entry]) -> Result<(), Self::Error>;
}

/// rpm's `rpmdbAdd` order: Packages first, then every index in `dbiTags` order.
pub fn add_header<S: Store>(store: &mut S, blob: &[u8]) -> Result<u32, AddError<S::Error>> {
    let h = Header::parse(blob).map_err(AddError::Header)?;
    let hnum = store.put_package(blob).map_err(AddError::Store)?;
    for (idx, entries) in entries_of(&h, hnum) {
        if !entries.is_empty() {
            store.index_add(idx, hnum, &entries).map_err(AddError::Store)?;
        }
    }
    Ok(hnum)
}

/// rpm's `rpmdbRemove` order: Packages first, then every index.
pub fn remove_header<S: Store>(store: &mut S, hnum: u32) -> Result<(), AddError<S::Error>> {
    let blob = store.get_package(hnum).map_err(AddError::Store)?.ok_or(AddError::NoSuchPackage(hnum))?;
    let h = Header::parse(&blob).map_err(AddError::Header)?;
    store.del_package(hnum).map_err(AddError::Store)?;
    for (idx, entries) in entries_of(&h, hnum) {
        if !entries.is_empty() {
            store.index_remove(idx, hnum, &entries).map_err(AddError::Store)?;
        }
    }
    Ok(())
}

/// Why an add or remove failed.
#[derive(Debug)]
pub enum AddError<E> {
    Header(super::header::HeaderError),
    NoSuchPackage(u32),
    Store(E),
}

impl<E: std::fmt::Display> std::fmt::Display for AddError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddError::Header(e) => write!(f, "unreadable header: {e}"),
            AddError::NoSuchPackage(h) => write!(f, "no package with header number {h}"),
            AddError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl<E: std::fmt::Debug + std::fmt::Display> std::error::Error for AddError<E> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_requires_follow_rpm_418() {
        assert!(is_transient_req(SENSE_SCRIPT_PRE));
        assert!(is_transient_req(SENSE_RPMLIB | 0x8));
        assert!(!is_transient_req(0));
        assert!(!is_transient_req(SENSE_SCRIPT_POST | SENSE_SCRIPT_PREUN));
        assert!(!is_transient_req(SENSE_SCRIPT_PRE | SENSE_META));
    }

    #[test]
    fn rich_deps_index_inner_names_like_rpm() {
        let n = |s: &str| {
            rich_dep_names(s.as_bytes()).into_iter().map(|v| String::from_utf8(v).unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(n("(a or b)"), ["a", "b"]);
        assert_eq!(n("(foo >= 1.0 and perl(Bar::Baz))"), ["foo", "perl(Bar::Baz)"]);
        assert_eq!(n("(a if b)"), ["a", "!b"]);
        assert_eq!(n("(a if b else c)"), ["a", "b", "c", "!b"]);
        assert_eq!(n("(rpmlib(X) and z)"), ["z"]);
        assert!(n("(a or").is_empty());
        assert!(n("((((((").is_empty());
    }
}
