//! Property tests: the header decoder on garbage, index maintenance against regeneration, and the sqlite
//! backend as a state machine against a simple model.

use dbtorture::workload::{Pool, PoolSpec};
use dbtorture_backends::rpmdb::check::{Snapshot, cross_check, regenerate};
use dbtorture_backends::rpmdb::index::{Entry, Store, add_header, entries_of, remove_header};
use dbtorture_backends::rpmdb::{Header, INDEXES, IndexTag, tags};
use dbtorture_backends::{BackendKind, OpenMode};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool::build(PoolSpec { names: 8, versions: 2, files_mean: 5, seed: 11 }).unwrap())
}

/// Touch every accessor of a decoded header and every index extraction.
fn exercise(blob: &[u8]) {
    if let Ok(h) = Header::parse(blob) {
        let tags: Vec<u32> = h.tags().collect();
        for t in tags {
            let _ = (h.string(t), h.strings(t), h.u32s(t), h.raw(t), h.count(t), h.tag_type(t));
        }
        let _ = h.region_digest_input();
        let _ = entries_of(&h, 1);
        let _ = dbtorture_backends::rpmdb::check::sha1_header(&h);
    }
    let snap = Snapshot { packages: vec![(1, blob.to_vec())], indexes: Vec::new() };
    let _ = cross_check(&snap);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn header_decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        exercise(&bytes);
    }

    #[test]
    fn header_decode_never_panics_on_damaged_real_headers(
        which in 0usize..16,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let mut blob = pool().packages[which].installed_blob(5);
        for (at, b) in flips {
            let i = at % blob.len();
            blob[i] = b;
        }
        if let Some(c) = cut {
            blob.truncate(c % (blob.len() + 1));
        }
        exercise(&blob);
    }
}

/// A BDB-style index store: Packages in a map, each index a map key → packed (hnum, tagnum) set, rewritten
/// whole on update and deleted when empty.
/// key → packed (header number, tag index) set.
type PackedIndex = BTreeMap<Vec<u8>, Vec<(u32, u32)>>;

#[derive(Default)]
struct MapStore {
    next: u32,
    packages: BTreeMap<u32, Vec<u8>>,
    indexes: BTreeMap<IndexTag, PackedIndex>,
}

impl Store for MapStore {
    type Error = std::convert::Infallible;
    fn put_package(&mut self, blob: &[u8]) -> Result<u32, Self::Error> {
        self.next += 1;
        self.packages.insert(self.next, blob.to_vec());
        Ok(self.next)
    }
    fn del_package(&mut self, hnum: u32) -> Result<(), Self::Error> {
        self.packages.remove(&hnum);
        Ok(())
    }
    fn get_package(&mut self, hnum: u32) -> Result<Option<Vec<u8>>, Self::Error> {
        Ok(self.packages.get(&hnum).cloned())
    }
    fn index_add(&mut self, idx: IndexTag, hnum: u32, entries: &[Entry]) -> Result<(), Self::Error> {
        let m = self.indexes.entry(idx).or_default();
        for e in entries {
            m.entry(e.key.clone()).or_default().push((hnum, e.tagnum));
        }
        Ok(())
    }
    fn index_remove(&mut self, idx: IndexTag, hnum: u32, entries: &[Entry]) -> Result<(), Self::Error> {
        let m = self.indexes.entry(idx).or_default();
        for e in entries {
            if let Some(set) = m.get_mut(&e.key) {
                set.retain(|&(h, t)| !(h == hnum && t == e.tagnum));
                if set.is_empty() {
                    m.remove(&e.key);
                }
            }
        }
        Ok(())
    }
}

impl MapStore {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            packages: self.packages.iter().map(|(h, b)| (*h, b.clone())).collect(),
            indexes: INDEXES
                .iter()
                .map(|&i| {
                    let rows = self
                        .indexes
                        .get(&i)
                        .map(|m| {
                            m.iter()
                                .flat_map(|(k, v)| {
                                    v.iter().map(|&(hnum, tagnum)| Entry { key: k.clone(), hnum, tagnum })
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    (i, rows)
                })
                .collect(),
        }
    }
}

fn sorted(mut v: Vec<Entry>) -> Vec<Entry> {
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn index_maintenance_equals_regeneration_from_packages(ops in proptest::collection::vec((any::<bool>(), 0usize..16), 1..40)) {
        let mut store = MapStore::default();
        // (hnum, pool id) of what is installed; a package is installed at most once.
        let mut live: Vec<(u32, usize)> = Vec::new();
        for (add, which) in ops {
            if (add || live.is_empty()) && !live.iter().any(|l| l.1 == which) {
                let h = add_header(&mut store, &pool().packages[which].installed_blob(9)).unwrap();
                live.push((h, which));
            } else if !live.is_empty() {
                let (h, _) = live.swap_remove(which % live.len());
                remove_header(&mut store, h).unwrap();
            }
            let snap = store.snapshot();
            let mut f = Vec::new();
            let regen = regenerate(&snap.packages, &mut f);
            prop_assert!(f.is_empty());
            for ((i, stored), (j, expected)) in snap.indexes.iter().zip(regen) {
                prop_assert_eq!(*i, j);
                prop_assert_eq!(sorted(stored.clone()), sorted(expected), "index {}", i);
            }
            prop_assert_eq!(cross_check(&snap), vec![]);
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// One transaction of installs/erases (pool ids; invalid ones are skipped against the model), committed
    /// or rolled back.
    Txn { steps: Vec<(bool, usize)>, commit: bool },
    /// Close and reopen the database.
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (proptest::collection::vec((any::<bool>(), 0usize..16), 1..4), proptest::bool::weighted(0.8))
            .prop_map(|(steps, commit)| Op::Txn { steps, commit }),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_backend_behaves_like_a_set_of_packages(ops in proptest::collection::vec(op(), 1..14)) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("db");
        let pool = pool();
        let mut db = BackendKind::Sqlite.open(&dir, OpenMode::Create).unwrap();
        let mut model: BTreeSet<usize> = BTreeSet::new();
        for op in ops {
            match op {
                Op::Reopen => {
                    db.close().unwrap();
                    db = BackendKind::Sqlite.open(&dir, OpenMode::ReadWrite).unwrap();
                }
                Op::Txn { steps, commit } => {
                    let mut next = model.clone();
                    db.begin().unwrap();
                    for (add, p) in steps {
                        let pkg = &pool.packages[p];
                        if add && !next.contains(&p) {
                            db.install(&pkg.installed_blob(3)).unwrap();
                            next.insert(p);
                        } else if !add && next.contains(&p) {
                            let hits = db.lookup(IndexTag(tags::SHA1HEADER), pkg.sha1.as_bytes()).unwrap();
                            prop_assert_eq!(hits.len(), 1);
                            db.erase(hits[0].0).unwrap();
                            next.remove(&p);
                        }
                    }
                    if commit {
                        db.commit().unwrap();
                        model = next;
                    } else {
                        db.rollback().unwrap();
                    }
                }
            }
            // The database holds exactly the model's packages, findable by name, and verifies clean.
            let mut f = Vec::new();
            let snap = db.snapshot(&mut f).unwrap();
            let present: BTreeSet<usize> = snap
                .packages
                .iter()
                .map(|(_, b)| {
                    let h = Header::parse(b).unwrap();
                    let sha = String::from_utf8_lossy(h.string(tags::SHA1HEADER).unwrap()).into_owned();
                    pool.by_sha1[&sha] as usize
                })
                .collect();
            prop_assert_eq!(&present, &model);
            for &p in &model {
                let name = &pool.packages[p].name;
                let hits = db.lookup(IndexTag(tags::NAME), name.as_bytes()).unwrap();
                prop_assert_eq!(hits.len(), model.iter().filter(|&&q| &pool.packages[q].name == name).count());
            }
            prop_assert!(f.is_empty());
            prop_assert_eq!(cross_check(&snap), vec![]);
            prop_assert_eq!(db.structural_check().unwrap(), vec![]);
        }
        db.close().unwrap();
    }
}
