//! rpm's Berkeley DB layout as a [`Store`](crate::rpmdb::Store), written once for both BDB engines — our
//! re-creation (`bdbenv`) and real Berkeley DB 5.3 (`libdb`): Packages keyed by header number in host byte
//! order, key 0 holding the last number handed out (rpm's pkgInstance); each index a hash of key → packed
//! (header number, tag index) set, read, changed and written back whole; an empty set deletes its key.
//!
//! Why one copy: the algorithm is rpm's, not the engine's. Two copies drift — a fix or a planted bug lands in
//! one and the other engine silently disagrees. What differs between the engines is only the key-value
//! primitive of an open data file ([`Kv`]) and the names of the crash points around each write ([`Points`]).

use crate::backend::BackendError;
use crate::bdbenv::datafile::{pack_set, unpack_set};
use crate::crash::point;
use crate::rpmdb::Entry;

/// One open data file of an engine, inside its write (or read) section.
pub trait Kv {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError>;
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), BackendError>;
    /// Whether the key was there.
    fn del(&mut self, key: &[u8]) -> Result<bool, BackendError>;
}

/// The crash points an engine passes around each write: (before, after).
pub struct Points {
    pub packages_put: (&'static str, &'static str),
    pub packages_del: (&'static str, &'static str),
    pub index_put: (&'static str, &'static str),
    pub index_del: (&'static str, &'static str),
}

/// Store `blob` under the next header number (Packages); returns the number.
pub fn put_package(kv: &mut impl Kv, p: &Points, blob: &[u8]) -> Result<u32, BackendError> {
    let last = kv.get(&0u32.to_ne_bytes())?.and_then(|v| <[u8; 4]>::try_from(v.as_slice()).ok());
    let hnum = last.map(u32::from_ne_bytes).unwrap_or(0) + 1;
    kv.put(&0u32.to_ne_bytes(), &hnum.to_ne_bytes())?;
    point(p.packages_put.0);
    kv.put(&hnum.to_ne_bytes(), blob)?;
    point(p.packages_put.1);
    Ok(hnum)
}

/// Remove header `hnum` from Packages.
pub fn del_package(kv: &mut impl Kv, p: &Points, hnum: u32) -> Result<(), BackendError> {
    point(p.packages_del.0);
    kv.del(&hnum.to_ne_bytes())?;
    point(p.packages_del.1);
    Ok(())
}

/// Add `hnum`'s entries to an index; entries come grouped by key, each key's set is written back once.
pub fn index_add(kv: &mut impl Kv, p: &Points, hnum: u32, entries: &[Entry]) -> Result<(), BackendError> {
    for group in entries.chunk_by(|a, b| a.key == b.key) {
        let key = &group[0].key;
        let mut set = kv.get(key)?.and_then(|v| unpack_set(&v)).unwrap_or_default();
        set.extend(group.iter().map(|e| (hnum, e.tagnum)));
        set.sort_unstable();
        point(p.index_put.0);
        kv.put(key, &pack_set(&set))?;
        point(p.index_put.1);
    }
    Ok(())
}

/// Remove `hnum`'s entries from an index; a key whose set becomes empty is deleted, as rpm does.
pub fn index_remove(kv: &mut impl Kv, p: &Points, hnum: u32, entries: &[Entry]) -> Result<(), BackendError> {
    for e in entries {
        let Some(v) = kv.get(&e.key)? else { continue };
        let mut set = unpack_set(&v).unwrap_or_default();
        set.retain(|&(h, t)| !(h == hnum && t == e.tagnum));
        point(p.index_del.0);
        if set.is_empty() {
            kv.del(&e.key)?;
        } else {
            kv.put(&e.key, &pack_set(&set))?;
        }
        point(p.index_del.1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Default)]
    struct Mem(BTreeMap<Vec<u8>, Vec<u8>>);

    impl Kv for Mem {
        fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
            Ok(self.0.get(key).cloned())
        }
        fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), BackendError> {
            self.0.insert(key.to_vec(), value.to_vec());
            Ok(())
        }
        fn del(&mut self, key: &[u8]) -> Result<bool, BackendError> {
            Ok(self.0.remove(key).is_some())
        }
    }

    const P: Points = Points {
        packages_put: ("bdbenv.packages.put.before", "bdbenv.packages.put.after"),
        packages_del: ("bdbenv.packages.del.before", "bdbenv.packages.del.after"),
        index_put: ("bdbenv.index.put.before", "bdbenv.index.put.after"),
        index_del: ("bdbenv.index.del.before", "bdbenv.index.del.after"),
    };

    fn entry(key: &str, tagnum: u32) -> Entry {
        Entry { key: key.as_bytes().to_vec(), hnum: 0, tagnum }
    }

    #[test]
    fn header_numbers_count_up_from_key_zero_and_index_sets_empty_out() {
        let mut kv = Mem::default();
        assert_eq!(put_package(&mut kv, &P, b"a").unwrap(), 1);
        assert_eq!(put_package(&mut kv, &P, b"b").unwrap(), 2);
        assert_eq!(kv.0.get(0u32.to_ne_bytes().as_slice()), Some(&2u32.to_ne_bytes().to_vec()));
        index_add(&mut kv, &P, 1, &[entry("x", 0), entry("x", 1), entry("y", 0)]).unwrap();
        index_add(&mut kv, &P, 2, &[entry("x", 0)]).unwrap();
        assert_eq!(unpack_set(&kv.0[b"x".as_slice()]), Some(vec![(1, 0), (1, 1), (2, 0)]));
        index_remove(&mut kv, &P, 1, &[entry("x", 0), entry("x", 1), entry("y", 0)]).unwrap();
        assert_eq!(unpack_set(&kv.0[b"x".as_slice()]), Some(vec![(2, 0)]));
        assert!(!kv.0.contains_key(b"y".as_slice()), "an empty set deletes its key");
        del_package(&mut kv, &P, 1).unwrap();
        assert!(!kv.0.contains_key(1u32.to_ne_bytes().as_slice()));
        assert_eq!(put_package(&mut kv, &P, b"c").unwrap(), 3, "numbers are never reused");
    }
}
