//! The lock table as a state machine against a simple model, and the environment verifier on random and
//! mutated region bytes.

use dbtorture_backends::bdbenv::check;
use dbtorture_backends::bdbenv::lock::{self, LockError, LockHandle, LockTable, Mode, Sizes};
use dbtorture_backends::bdbenv::mmap::Region;
use dbtorture_backends::rpmdb::Finding;
use proptest::prelude::*;

const SIZES: Sizes = Sizes { lockers: 12, objects: 6, locks: 16, locker_t_size: 5, object_t_size: 3 };

fn region() -> (tempfile::TempDir, Region) {
    let d = tempfile::tempdir().unwrap();
    let mut r = Region::create(&d.path().join("__db.003"), lock::region_size(&SIZES)).unwrap();
    lock::init(&mut r, &SIZES).unwrap();
    (d, r)
}

#[derive(Debug, Clone)]
enum Op {
    Alloc,
    Free(usize),
    Get(usize, u8, bool),
    Put(usize),
    Upgrade(usize),
    Downgrade(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Alloc),
        1 => (0usize..16).prop_map(Op::Free),
        4 => (0usize..16, 0u8..3, any::<bool>()).prop_map(|(l, k, w)| Op::Get(l, k, w)),
        3 => (0usize..32).prop_map(Op::Put),
        1 => (0usize..32).prop_map(Op::Upgrade),
        1 => (0usize..32).prop_map(Op::Downgrade),
    ]
}

/// The model: lockers and their locks (object, mode, waiting?).
#[derive(Default)]
struct Model {
    lockers: Vec<u32>,
    locks: Vec<(LockHandle, u32, u8, Mode)>,
}

fn conflicts_with_others(
    m: &Model,
    locker: u32,
    key: u8,
    mode: Mode,
    st: &LockTable<'_>,
    except: Option<LockHandle>,
) -> bool {
    m.locks.iter().any(|(h, l, k, md)| {
        *l != locker
            && *k == key
            && Some(*h) != except
            && st.lock_status(*h).ok() == Some(lock::status::HELD)
            && lock::conflicts(*md as u32, mode)
    })
}

fn env_findings(r: &[u8]) -> Vec<Finding> {
    let mut out = Vec::new();
    check::lock_region(r, &mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn any_fault_free_sequence_keeps_every_invariant_and_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let (_d, mut reg) = region();
        let mut m = Model::default();
        let pid = std::process::id();
        for op in ops {
            let mut t = LockTable::new(reg.bytes_mut()).unwrap();
            match op {
                Op::Alloc => match t.locker_alloc(pid) {
                    Ok(id) => m.lockers.push(id),
                    Err(e) => prop_assert_eq!(e, LockError::OutOf("lockers")),
                },
                Op::Free(i) if !m.lockers.is_empty() => {
                    let id = m.lockers[i % m.lockers.len()];
                    let holds = m.locks.iter().any(|l| l.1 == id);
                    match t.locker_free(id) {
                        Ok(()) => {
                            prop_assert!(!holds);
                            m.lockers.retain(|&x| x != id);
                        }
                        Err(e) => {
                            prop_assert!(holds);
                            prop_assert_eq!(e, LockError::LockerHasLocks);
                        }
                    }
                }
                Op::Get(i, key, write) if !m.lockers.is_empty() => {
                    let id = m.lockers[i % m.lockers.len()];
                    let mode = if write { Mode::IW } else { Mode::R };
                    let waiters_exist = m.locks.iter().any(|(h, _, k, _)| *k == key && t.lock_status(*h).ok() == Some(lock::status::WAITING));
                    let expect_grant = !conflicts_with_others(&m, id, key, mode, &t, None) && !waiters_exist;
                    match t.lock_get(id, &[b'k', key], mode) {
                        Ok((h, granted)) => {
                            prop_assert_eq!(granted, expect_grant);
                            m.locks.push((h, id, key, mode));
                        }
                        Err(e) => prop_assert!(matches!(e, LockError::OutOf(_)), "{e}"),
                    }
                }
                Op::Put(i) if !m.locks.is_empty() => {
                    let (h, ..) = m.locks.remove(i % m.locks.len());
                    t.lock_put(h).unwrap();
                    prop_assert_eq!(t.lock_put(h), Err(LockError::LockNotValid));
                }
                Op::Upgrade(i) if !m.locks.is_empty() => {
                    let k = i % m.locks.len();
                    let (h, id, key, mode) = m.locks[k];
                    if mode == Mode::IW && t.lock_status(h).unwrap() == lock::status::HELD {
                        let expect = !conflicts_with_others(&m, id, key, Mode::W, &t, Some(h));
                        prop_assert_eq!(t.try_upgrade(h).unwrap(), expect);
                        if expect {
                            m.locks[k].3 = Mode::W;
                        }
                    }
                }
                Op::Downgrade(i) if !m.locks.is_empty() => {
                    let k = i % m.locks.len();
                    let (h, _, _, mode) = m.locks[k];
                    if mode == Mode::W {
                        t.downgrade(h, Mode::IW).unwrap();
                        m.locks[k].3 = Mode::IW;
                    }
                }
                _ => {}
            }
            let _ = t;
            let r = reg.bytes();
            // Counters equal the model; the verifier finds nothing.
            prop_assert_eq!(lock::u32_at(r, lock::H_NLOCKERS) as usize, m.lockers.len());
            prop_assert_eq!(lock::u32_at(r, lock::H_NLOCKS) as usize, m.locks.len());
            let objects: std::collections::BTreeSet<u8> = m.locks.iter().map(|l| l.2).collect();
            prop_assert_eq!(lock::u32_at(r, lock::H_NOBJECTS) as usize, objects.len());
            let f = env_findings(r);
            prop_assert!(f.is_empty(), "{:#?}", f);

        }
    }

    #[test]
    fn the_verifier_and_inspect_survive_random_region_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..8192)) {
        let _ = env_findings(&bytes);
        let _ = dbtorture_backends::bdbenv::inspect::lock_region(&bytes);
        let _ = check::environment(&bytes, &bytes, &bytes, dbtorture_backends::bdbenv::Profile::Db46);
    }

    #[test]
    fn the_verifier_survives_mutated_regions_in_bounded_time(
        ops in proptest::collection::vec(op(), 1..30),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..12),
    ) {
        let (_d, mut reg) = region();
        let pid = std::process::id();
        {
            let mut t = LockTable::new(reg.bytes_mut()).unwrap();
            let mut ids = Vec::new();
            for op in ops {
                match op {
                    Op::Alloc => { if let Ok(id) = t.locker_alloc(pid) { ids.push(id) } }
                    Op::Get(i, k, w) if !ids.is_empty() => {
                        let _ = t.lock_get(ids[i % ids.len()], &[b'k', k], if w { Mode::IW } else { Mode::R });
                    }
                    _ => {}
                }
            }
        }
        let mut bytes = reg.bytes().to_vec();
        // Only the used part of the region (header, tables, first elements) is worth mutating.
        let hot = 4096.min(bytes.len());
        for (at, b) in flips {
            bytes[at % hot] = b;
        }
        let started = std::time::Instant::now();
        let _ = env_findings(&bytes);
        let _ = dbtorture_backends::bdbenv::inspect::lock_region(&bytes);
        prop_assert!(started.elapsed() < std::time::Duration::from_secs(2), "verifier took {:?}", started.elapsed());
    }
}

#[test]
fn a_dropped_unlink_is_named_by_the_verifier() {
    // Simulate a lost write-back of one page: snapshot the region, do a lock_put, then restore the stale
    // copy of the page holding the object's holder list but keep the rest.
    let (_d, mut reg) = region();
    let pid = std::process::id();
    let (h1, h2) = {
        let mut t = LockTable::new(reg.bytes_mut()).unwrap();
        let a = t.locker_alloc(pid).unwrap();
        let b = t.locker_alloc(pid).unwrap();
        let (h1, _) = t.lock_get(a, b"file", Mode::R).unwrap();
        let (h2, _) = t.lock_get(b, b"file", Mode::R).unwrap();
        (h1, h2)
    };
    let stale = reg.bytes().to_vec();
    {
        let mut t = LockTable::new(reg.bytes_mut()).unwrap();
        t.lock_put(h1).unwrap();
    }
    // The locker table page (the lockers' heldby lists and counters) goes stale; the lock pages do not.
    let g = lock::Geometry::read(reg.bytes()).unwrap();
    let (from, to) = (g.lockers, g.lockers + 2 * lock::LOCKER_SIZE);
    reg.bytes_mut()[from..to].copy_from_slice(&stale[from..to]);
    let f = env_findings(reg.bytes());
    let text: Vec<String> = f.iter().map(|x| x.to_string()).collect();
    assert!(!f.is_empty());
    assert!(text.iter().any(|t| t.contains("heldby") || t.contains("nlocks")), "{text:#?}");
    let _ = h2;
}

#[test]
fn every_locker_bucket_pointing_into_one_long_chain_is_walked_once() {
    use dbtorture_backends::bdbenv::shqueue as sq;
    // 200,000 buckets, all pointing at the head of one 1,000-locker chain: walked bucket by bucket that was
    // 200 million lockers listed (2.8 GB); each locker is in at most one bucket.
    let sizes = Sizes { lockers: 1000, objects: 8, locks: 8, locker_t_size: 200_000, object_t_size: 3 };
    let d = tempfile::tempdir().unwrap();
    let mut reg = Region::create(&d.path().join("__db.003"), lock::region_size(&sizes)).unwrap();
    lock::init(&mut reg, &sizes).unwrap();
    {
        let mut t = LockTable::new(reg.bytes_mut()).unwrap();
        for _ in 0..1000 {
            t.locker_alloc(std::process::id()).unwrap();
        }
    }
    let r = reg.bytes_mut();
    let g = lock::Geometry::read(r).unwrap();
    let mut all = Vec::new();
    for b in 0..g.locker_t_size {
        let q = g.locker_bucket(b);
        while let Some(e) = q.first(r).unwrap() {
            q.remove(r, e).unwrap();
            all.push(e);
        }
    }
    assert_eq!(all.len(), 1000);
    let b0 = g.locker_bucket(0);
    for &e in &all {
        b0.insert_head(r, e).unwrap();
    }
    let first = b0.first(r).unwrap().unwrap();
    for b in 1..g.locker_t_size {
        let h = g.locker_bucket(b).head;
        sq::set(r, h + sq::HEAD_FIRST, first as sq::Link - h as sq::Link).unwrap();
    }
    let f = env_findings(r);
    assert!(f.len() < 3 * 200_000, "{} findings", f.len());
    let i = dbtorture_backends::bdbenv::inspect::lock_region(r);
    assert_eq!(i.lockers.len(), 1000, "each locker listed once");
}
