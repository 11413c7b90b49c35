//! The rpmdb cross-check: regenerate every index from Packages and compare with what is stored; check each
//! header's digests. This is the core invariant of an rpmdb ("every index can be regenerated from Packages"),
//! and the part rpm's own `--verifydb` skips.
//!
//! Bounded work: one pass over Packages, one sort per index; no lookups that could loop on bad data.

use super::finding::{Finding, display_key, hex};
use super::header::{HEADER_MAGIC, Header};
use super::index::{Entry, entries_of, keys_for};
use super::tags::{self, IndexTag};
use sha1::Digest as _;
use std::borrow::Cow;
use std::collections::HashMap;

/// Everything a backend stores, read out for checking.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// (header number, blob) in Packages.
    pub packages: Vec<(u32, Vec<u8>)>,
    /// Stored rows of each index.
    pub indexes: Vec<(IndexTag, Vec<Entry>)>,
}

/// "name-[epoch:]version-release.arch" of a header, or "#hnum" when unreadable.
pub fn nevra(h: &Header<'_>) -> String {
    let s = |t| h.string(t).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_else(|| "?".into());
    let epoch = h.u32_first(tags::EPOCH).map(|e| format!("{e}:")).unwrap_or_default();
    format!("{}-{}{}-{}.{}", s(tags::NAME), epoch, s(tags::VERSION), s(tags::RELEASE), s(tags::ARCH))
}

/// SHA1HEADER as rpm computes it: hex SHA-1 of magic, (ril, rdl), region index and region data.
pub fn sha1_header(h: &Header<'_>) -> Option<String> {
    let (index, data) = h.region_digest_input()?;
    let (ril, rdl) = h.region_counts();
    let mut d = sha1::Sha1::new();
    d.update(HEADER_MAGIC);
    d.update(ril.to_be_bytes());
    d.update(rdl.to_be_bytes());
    d.update(index);
    d.update(data);
    Some(hex(&d.finalize()))
}

/// SHA256HEADER, same input as [`sha1_header`].
pub fn sha256_header(h: &Header<'_>) -> Option<String> {
    let (index, data) = h.region_digest_input()?;
    let (ril, rdl) = h.region_counts();
    let mut d = sha2::Sha256::new();
    d.update(HEADER_MAGIC);
    d.update(ril.to_be_bytes());
    d.update(rdl.to_be_bytes());
    d.update(index);
    d.update(data);
    Some(hex(&d.finalize()))
}

/// Check the stored header digests of one header.
pub fn check_digests(hnum: u32, h: &Header<'_>, out: &mut Vec<Finding>) {
    for (tag, name, f) in [
        (tags::SHA1HEADER, "SHA1HEADER", sha1_header as fn(&Header<'_>) -> Option<String>),
        (tags::SHA256HEADER, "SHA256HEADER", sha256_header),
    ] {
        let Some(stored) = h.string(tag) else {
            continue;
        };
        let stored = String::from_utf8_lossy(stored).into_owned();
        let computed = f(h).unwrap_or_else(|| "(no immutable region)".into());
        if !stored.eq_ignore_ascii_case(&computed) {
            out.push(Finding::DigestMismatch { hnum, package: nevra(h), digest: name.into(), stored, computed });
        }
    }
}

/// Regenerate every index from the given packages. Unreadable headers produce findings and no entries.
pub fn regenerate(packages: &[(u32, Vec<u8>)], findings: &mut Vec<Finding>) -> Vec<(IndexTag, Vec<Entry>)> {
    let mut out: Vec<(IndexTag, Vec<Entry>)> = tags::INDEXES.iter().map(|&t| (t, Vec::new())).collect();
    for (hnum, blob) in packages {
        match Header::parse(blob) {
            Ok(h) => {
                for (i, (_, es)) in entries_of(&h, *hnum).into_iter().enumerate() {
                    out[i].1.extend(es);
                }
            }
            Err(e) => findings.push(Finding::UnreadableHeader { hnum: *hnum, error: e.to_string() }),
        }
    }
    out
}

/// An index row, borrowed: (key, header number, tag index). Sorts like [`Entry`].
type Row<'a> = (&'a [u8], u32, u32);
/// A regenerated row: the key borrowed from the header blob where possible.
type OwnedRow<'a> = (Cow<'a, [u8]>, u32, u32);

/// The full cross-check of a snapshot. Findings are in a stable order (index order, then key, then hnum).
///
/// One pass parses each header once (digests, identity, regenerated rows borrowed from the blob); then each
/// index is sorted and merged against the stored rows.
pub fn cross_check(snap: &Snapshot) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut labels: HashMap<u32, String> = HashMap::with_capacity(snap.packages.len());
    let mut readable: HashMap<u32, bool> = HashMap::with_capacity(snap.packages.len());
    let mut by_sha1: HashMap<&[u8], Vec<u32>> = HashMap::new();
    let mut expected: Vec<Vec<OwnedRow<'_>>> = vec![Vec::new(); tags::INDEXES.len()];
    for (hnum, blob) in &snap.packages {
        match Header::parse(blob) {
            Ok(h) => {
                labels.insert(*hnum, nevra(&h));
                readable.insert(*hnum, true);
                check_digests(*hnum, &h, &mut findings);
                if let Some(s) = h.string(tags::SHA1HEADER) {
                    by_sha1.entry(s).or_default().push(*hnum);
                }
                for (i, idx) in tags::INDEXES.iter().enumerate() {
                    expected[i].extend(keys_for(&h, *idx).into_iter().map(|(k, t)| (k, *hnum, t)));
                }
            }
            Err(e) => {
                readable.insert(*hnum, false);
                findings.push(Finding::UnreadableHeader { hnum: *hnum, error: e.to_string() });
            }
        }
    }
    let mut dups: Vec<_> = by_sha1.into_values().filter(|v| v.len() > 1).collect();
    dups.sort();
    for hnums in dups {
        findings.push(Finding::DuplicatePackage { package: labels[&hnums[0]].clone(), hnums });
    }
    for (i, idx) in tags::INDEXES.iter().enumerate() {
        let mut exp: Vec<Row<'_>> = expected[i].iter().map(|(k, h, t)| (k.as_ref(), *h, *t)).collect();
        let mut got: Vec<Row<'_>> = snap
            .indexes
            .iter()
            .find(|(t, _)| t == idx)
            .map(|(_, v)| v.iter().map(|e| (e.key.as_slice(), e.hnum, e.tagnum)).collect())
            .unwrap_or_default();
        exp.sort_unstable();
        got.sort_unstable();
        compare_index(*idx, &exp, &got, &labels, &readable, &mut findings);
    }
    findings
}

fn group_end(v: &[Row<'_>], start: usize) -> usize {
    let (k, h) = (v[start].0, v[start].1);
    let mut i = start;
    while i < v.len() && v[i].1 == h && v[i].0 == k {
        i += 1;
    }
    i
}

fn compare_index(
    idx: IndexTag,
    exp: &[Row<'_>],
    got: &[Row<'_>],
    labels: &HashMap<u32, String>,
    readable: &HashMap<u32, bool>,
    out: &mut Vec<Finding>,
) {
    let label = |h: u32| labels.get(&h).cloned().unwrap_or_else(|| format!("#{h}"));
    let (mut i, mut j) = (0, 0);
    while i < exp.len() || j < got.len() {
        let ord = match (exp.get(i), got.get(j)) {
            (Some(a), Some(b)) => (a.0, a.1).cmp(&(b.0, b.1)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, _) => std::cmp::Ordering::Greater,
        };
        let (ie, je) = match ord {
            std::cmp::Ordering::Less => (group_end(exp, i), j),
            std::cmp::Ordering::Greater => (i, group_end(got, j)),
            std::cmp::Ordering::Equal => (group_end(exp, i), group_end(got, j)),
        };
        let e = &exp[i..ie];
        let g = &got[j..je];
        i = ie;
        j = je;
        // The common case: stored rows are exactly the regenerated ones.
        if e.len() == g.len() && e.iter().zip(g).all(|(a, b)| a.2 == b.2) {
            continue;
        }
        let any = e.first().or(g.first()).expect("a non-empty group");
        let (key, hnum) = (display_key(any.0), any.1);
        let et: Vec<u32> = e.iter().map(|x| x.2).collect();
        let gt: Vec<u32> = g.iter().map(|x| x.2).collect();
        match readable.get(&hnum) {
            None => out.push(Finding::DanglingHeaderNumber { index: idx.to_string(), key, hnum }),
            Some(false) => {} // rows of an unreadable header cannot be judged; the header itself is reported
            Some(true) => judge_group(idx, &key, hnum, &et, &gt, &label(hnum), out),
        }
    }
}

/// Compare the tag indexes stored for one (key, hnum) with the regenerated ones.
fn judge_group(idx: IndexTag, key: &str, hnum: u32, et: &[u32], gt: &[u32], package: &str, out: &mut Vec<Finding>) {
    let f = |kind: fn(String, String, u32, u32, String) -> Finding, t: u32| {
        kind(idx.to_string(), key.to_string(), hnum, t, package.to_string())
    };
    // Rows stored more often than regeneration produces them are duplicates.
    let mut unique: Vec<u32> = Vec::with_capacity(gt.len());
    for &t in gt {
        let allowed = et.iter().filter(|x| **x == t).count();
        let have = unique.iter().filter(|x| **x == t).count();
        if have >= allowed.max(1) {
            out.push(f(
                |index, key, hnum, tagnum, package| Finding::DuplicateEntry { index, key, hnum, tagnum, package },
                t,
            ));
        } else {
            unique.push(t);
        }
    }
    let mut missing: Vec<u32> = Vec::new();
    for t in et {
        if let Some(p) = unique.iter().position(|x| x == t) {
            unique.swap_remove(p);
        } else {
            missing.push(*t);
        }
    }
    unique.sort_unstable();
    let pairs = missing.len().min(unique.len());
    for k in 0..pairs {
        out.push(Finding::WrongTagIndex {
            index: idx.to_string(),
            key: key.to_string(),
            hnum,
            expected: missing[k],
            found: unique[k],
            package: package.to_string(),
        });
    }
    for &t in &missing[pairs..] {
        out.push(f(
            |index, key, hnum, tagnum, package| Finding::MissingIndexEntry { index, key, hnum, tagnum, package },
            t,
        ));
    }
    for &t in &unique[pairs..] {
        out.push(f(
            |index, key, hnum, tagnum, package| Finding::StaleIndexEntry { index, key, hnum, tagnum, package },
            t,
        ));
    }
}
