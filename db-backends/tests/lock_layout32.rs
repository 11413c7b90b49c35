//! A lock region in a 32-bit machine's layout (4-byte links, as the armv5tel guest writes it), written here
//! by the same lock-table code with `Layout::W32`, read back by the verifier and `inspect` on this machine:
//! the same lockers and locks as in the 64-bit layout, no damage that is not there, and damage planted in
//! the one layout reported as the same findings as in the other. (A real guest bundle is read the same way
//! in harness/tests/arm32_bundle.rs.)

use dbtorture_backends::bdbenv::check;
use dbtorture_backends::bdbenv::inspect;
use dbtorture_backends::bdbenv::lock::{self, Fields, Geometry, LockTable, Mode, Sizes, status};
use dbtorture_backends::bdbenv::origin::{Layout, Origin};
use dbtorture_backends::bdbenv::shqueue::{ENTRY_NEXT, HEAD_FIRST, Link};
use dbtorture_backends::rpmdb::Finding;

const SIZES: Sizes = Sizes { lockers: 16, objects: 8, locks: 16, locker_t_size: 5, object_t_size: 3 };

/// A region in `lay` with two lockers of (dead) pid 4242: one holds a read and a write lock, the other waits.
fn region(lay: Layout) -> Vec<u8> {
    let mut r = vec![0u8; lock::region_size(&SIZES)];
    lock::init_as(&mut r, &SIZES, lay).unwrap();
    let mut t = LockTable::new_as(&mut r, lay).unwrap();
    let a = t.locker_alloc(4242).unwrap();
    let b = t.locker_alloc(4242).unwrap();
    let _idle = t.locker_alloc(4243).unwrap();
    assert!(t.lock_get(a, b"Packages", Mode::R).unwrap().1);
    assert!(t.lock_get(a, b"Name", Mode::IW).unwrap().1);
    let (h, _) = t.lock_get(a, b"Basenames", Mode::IW).unwrap();
    assert!(t.try_upgrade(h).unwrap());
    assert!(!t.lock_get(b, b"Basenames", Mode::R).unwrap().1, "waits behind the W lock");
    r
}

fn foreign(lay: Layout) -> Origin {
    Origin::foreign(lay)
}

/// Findings as (kind, check) pairs, sorted: what must agree between layouts (details name offsets, which
/// differ).
fn shape(f: &[Finding]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = f
        .iter()
        .map(|x| match x {
            Finding::LockRegion { check, .. } => ("lock-region".to_string(), check.clone()),
            other => (other.name().to_string(), String::new()),
        })
        .collect();
    v.sort();
    v
}

fn findings(r: &[u8], lay: Layout) -> Vec<Finding> {
    let mut out = Vec::new();
    check::lock_region_as(r, foreign(lay), &mut out);
    out
}

#[test]
fn the_fields_of_a_32_bit_region_are_where_a_32_bit_build_puts_them() {
    let f = Fields::of(Layout::W32);
    // 4-byte links: heads of 8 bytes, entries of 8 bytes.
    assert_eq!(
        (f.h_free_objects, f.h_inuse_lockers, f.lk_ulinks, f.lk_heldby, f.ob_waiters, f.l_refcount, f.l_status),
        (104, 120, 40, 48, 48, 24, 36)
    );
    assert_eq!(Fields::of(Layout::W64), lock::NATIVE, "this test runs on a 64-bit machine");
}

#[test]
fn a_32_bit_region_reads_as_the_same_lock_table_as_a_64_bit_one() {
    let (r32, r64) = (region(Layout::W32), region(Layout::W64));
    let (i32_, i64_) =
        (inspect::lock_region_as(&r32, foreign(Layout::W32)), inspect::lock_region_as(&r64, foreign(Layout::W64)));
    assert!(i32_.magic_ok && i32_.problems.is_empty(), "{:?}", i32_.problems);
    let lockers = |i: &inspect::LockRegionInfo| {
        i.lockers
            .iter()
            .map(|l| {
                let locks: Vec<_> = l.locks.iter().map(|x| (x.holder, x.mode.clone(), x.status.clone())).collect();
                (l.id, l.pid, l.alive, l.nlocks, l.nwrites, locks, l.problems.len())
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(lockers(&i32_), lockers(&i64_));
    let first = &lockers(&i32_)[0];
    assert_eq!((first.1, first.2, first.3, first.4), (4242, false, 3, 2), "another machine's pid is dead here");
    assert_eq!(
        first.5,
        vec![
            (1, "WRITE".to_string(), "HELD".to_string()),
            (1, "IWRITE".into(), "HELD".into()),
            (1, "READ".into(), "HELD".into())
        ]
    );
    assert_eq!(i32_.counters, i64_.counters);
    assert_eq!((i32_.free_lockers, i32_.free_objects, i32_.free_locks), (13, 5, 12));
    let objects = |i: &inspect::LockRegionInfo| {
        let mut v: Vec<_> = i.objects.iter().map(|o| (o.key.clone(), o.holders.len(), o.waiters.len())).collect();
        v.sort();
        v
    };
    assert_eq!(objects(&i32_), objects(&i64_));
    assert!(objects(&i32_).contains(&("Basenames".to_string(), 1, 1)));
    // Judged, not damaged: only the dead process's locks.
    let (f32, f64) = (findings(&r32, Layout::W32), findings(&r64, Layout::W64));
    assert_eq!(shape(&f32), shape(&f64));
    assert!(f32.iter().all(|f| matches!(f, Finding::StaleLock { .. })), "{f32:?}");
    assert!(!f32.is_empty());
}

#[test]
fn a_32_bit_region_read_with_64_bit_links_is_damage() {
    // Why the layout must be known: the same bytes in the wrong width are broken lists.
    let f = findings(&region(Layout::W32), Layout::W64);
    assert!(f.iter().any(|x| matches!(x, Finding::LockRegion { .. })), "{f:?}");
}

/// Damage of one kind, planted through the layout's own field offsets.
type Plant = fn(&mut [u8], &Geometry);

fn first_holder(r: &[u8], g: &Geometry, key: &[u8]) -> usize {
    let info = inspect::lock_region_as(r, Origin::foreign(g.f.lay));
    let o = info.objects.iter().find(|o| o.key.as_bytes() == key).unwrap();
    o.holders[0].offset
}

const PLANTS: &[(&str, Plant)] = &[
    ("a holder's prev link points at itself", |r, g| {
        let l = first_holder(r, g, b"Name");
        g.f.lay.set(r, l + lock::L_LINKS + g.f.lay.entry_prev(), 0).unwrap();
    }),
    ("a locker's nlocks is off by two", |r, g| {
        let l = g.inuse_lockers().first(r).unwrap().unwrap();
        let n = lock::u32_at(r, l + lock::LK_NLOCKS);
        r[l + lock::LK_NLOCKS..l + lock::LK_NLOCKS + 4].copy_from_slice(&(n + 2).to_ne_bytes());
    }),
    ("a heldby list's first link leaves the region", |r, g| {
        let l = g.inuse_lockers().first(r).unwrap().unwrap();
        g.f.lay.set(r, l + g.f.lk_heldby + HEAD_FIRST, 1 << 20).unwrap();
    }),
    ("a lock on the free list says HELD", |r, g| {
        let l = g.free_locks().first(r).unwrap().unwrap();
        r[l + g.f.l_status..l + g.f.l_status + 4].copy_from_slice(&status::HELD.to_ne_bytes());
    }),
    ("a lock's object link points at another object", |r, g| {
        let l = first_holder(r, g, b"Packages");
        let other = first_holder(r, g, b"Name");
        let rel = g.f.lay.get(r, other + g.f.l_obj).unwrap() + (other as Link - l as Link);
        g.f.lay.set(r, l + g.f.l_obj, rel).unwrap();
    }),
    ("the free locker list's head is cut off after its first element", |r, g| {
        let q = g.free_lockers();
        let e = q.first(r).unwrap().unwrap();
        g.f.lay.set(r, e + lock::LK_LINKS + ENTRY_NEXT, -1).unwrap();
    }),
];

#[test]
fn damage_planted_in_a_32_bit_region_is_the_same_finding_as_in_a_64_bit_one() {
    let clean = shape(&findings(&region(Layout::W64), Layout::W64));
    for (what, plant) in PLANTS {
        let mut shapes = Vec::new();
        for lay in [Layout::W32, Layout::W64] {
            let mut r = region(lay);
            let g = Geometry::read_as(&r, lay).unwrap();
            plant(&mut r, &g);
            shapes.push(shape(&findings(&r, lay)));
        }
        assert_eq!(shapes[0], shapes[1], "{what}: 32-bit vs 64-bit");
        assert_ne!(shapes[0], clean, "{what}: the damage is found");
        assert!(shapes[0].iter().any(|s| s.0 == "lock-region"), "{what}: {:?}", shapes[0]);
    }
}
