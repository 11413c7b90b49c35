//! Every finding kind the cross-check can produce, provoked on purpose: the verifier names the damage and
//! the package it concerns.

use dbtorture::workload::{Pool, PoolSpec};
use dbtorture_backends::rpmdb::check::{Snapshot, cross_check, regenerate};
use dbtorture_backends::rpmdb::{Entry, Finding, IndexTag, tags};
use std::sync::OnceLock;

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool::build(PoolSpec { names: 5, versions: 1, files_mean: 4, seed: 3 }).unwrap())
}

/// A consistent snapshot of three installed packages (hnums 1..=3).
fn good() -> Snapshot {
    let packages: Vec<(u32, Vec<u8>)> =
        (0..3).map(|i| (i + 1, pool().packages[i as usize].installed_blob(100 + i))).collect();
    let mut f = Vec::new();
    let indexes = regenerate(&packages, &mut f);
    assert!(f.is_empty());
    Snapshot { packages, indexes }
}

fn index_mut(s: &mut Snapshot, tag: u32) -> &mut Vec<Entry> {
    &mut s.indexes.iter_mut().find(|(t, _)| *t == IndexTag(tag)).unwrap().1
}

fn kinds(f: &[Finding]) -> Vec<&'static str> {
    f.iter().map(|x| x.name()).collect()
}

#[test]
fn a_consistent_snapshot_has_no_findings() {
    assert_eq!(cross_check(&good()), vec![]);
}

#[test]
fn a_removed_row_is_a_missing_index_entry_naming_the_package() {
    let mut s = good();
    let row = index_mut(&mut s, tags::BASENAMES).remove(0);
    let f = cross_check(&s);
    assert_eq!(kinds(&f), ["missing index entry"]);
    let nevra = &pool().packages[row.hnum as usize - 1].nevra;
    assert_eq!(f[0].package(), Some(nevra.as_str()));
}

#[test]
fn a_row_for_a_deleted_header_is_a_dangling_header_number() {
    let mut s = good();
    s.packages.retain(|(h, _)| *h != 2);
    let f = cross_check(&s);
    assert!(!f.is_empty());
    assert!(f.iter().all(|x| matches!(x, Finding::DanglingHeaderNumber { hnum: 2, .. })), "{f:#?}");
}

#[test]
fn a_renumbered_row_is_a_wrong_tag_index() {
    let mut s = good();
    index_mut(&mut s, tags::PROVIDENAME)[0].tagnum += 5;
    assert_eq!(kinds(&cross_check(&s)), ["wrong tag index"]);
}

#[test]
fn a_row_stored_twice_is_a_duplicate_entry() {
    let mut s = good();
    let rows = index_mut(&mut s, tags::NAME);
    let dup = rows[1].clone();
    rows.push(dup);
    assert_eq!(kinds(&cross_check(&s)), ["duplicate entry"]);
}

#[test]
fn a_row_the_header_does_not_produce_is_a_stale_index_entry() {
    let mut s = good();
    index_mut(&mut s, tags::REQUIRENAME).push(Entry { key: b"ghost".to_vec(), hnum: 1, tagnum: 0 });
    assert_eq!(kinds(&cross_check(&s)), ["stale index entry"]);
}

#[test]
fn a_flipped_byte_in_the_region_is_a_digest_mismatch_and_garbage_is_unreadable() {
    let mut s = good();
    // Flip a byte in the data of the immutable region (the summary text), keeping the structure valid.
    let blob = &mut s.packages[0].1;
    let pos = blob.windows(8).position(|w| w == b"Package ").expect("summary text");
    blob[pos] = b'p';
    assert_eq!(kinds(&cross_check(&s)), ["digest mismatch", "digest mismatch"]);
    let mut s = good();
    s.packages[1].1.truncate(30);
    let f = cross_check(&s);
    assert_eq!(kinds(&f)[0], "unreadable header");
    // Its index rows cannot be judged, so nothing else is reported about it.
    assert_eq!(f.len(), 1, "{f:#?}");
}

#[test]
fn the_same_package_twice_is_a_duplicate_package() {
    let mut s = good();
    s.packages.push((9, s.packages[0].1.clone()));
    let mut f = Vec::new();
    s.indexes = regenerate(&s.packages, &mut f);
    let f = cross_check(&s);
    assert_eq!(kinds(&f), ["duplicate package"]);
    assert!(matches!(&f[0], Finding::DuplicatePackage { hnums, .. } if hnums == &vec![1, 9]));
}
