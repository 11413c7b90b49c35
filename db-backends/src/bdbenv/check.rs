//! The environment verifier: bounded, bounds- and alignment-checked walks of every list in the lock region,
//! membership, status and counter checks, the environment header and thread table, dead processes — and the
//! read-only snapshot of the data files (with the cache's pages laid over them) for the rpmdb cross-check.
//!
//! It never takes a region mutex, never panics and never loops, whatever the bytes: every walk is limited by
//! its pool size and every element is visited once. It reads copies of the region files, not mappings.

use super::datafile::{DataFile, PageImage, unpack_set};
use super::lock::{self, Geometry, status, u32_at};
use super::origin::Origin;
use super::shqueue::{self as sq, Chain};
use super::{Profile, data_files, env, mpool};
use crate::backend::BackendError;
use crate::rpmdb::tags::INDEXES;
use crate::rpmdb::{Entry, Finding, Snapshot};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn lr(check: &str, detail: impl Into<String>) -> Finding {
    Finding::LockRegion { check: check.into(), detail: detail.into() }
}

fn neg(v: u32) -> bool {
    v >= 1 << 31
}

/// Walk a tail queue or list: bounded, cycle-checked, every link resolved into the expected pool, `prev` of
/// each element pointing at its predecessor's `next` field, and (tail queues) `last` at the last element's
/// `next` field.
pub(crate) fn walk(
    r: &[u8],
    g: &Geometry,
    q: &impl Chain,
    pool: &str,
    label: &str,
    limit: u32,
    out: &mut Vec<Finding>,
) -> Vec<usize> {
    walk_bucket(r, g, q, pool, label, limit, out, &mut BTreeSet::new())
}

/// [`walk`] for one bucket of a hash table: an element is in at most one bucket, so the walk stops at an
/// element an earlier bucket of the same table `claimed` (a finding), and claims what it lists. Walking all
/// buckets is then bounded by buckets + elements, even when every bucket points into one long chain.
#[allow(clippy::too_many_arguments)]
pub(crate) fn walk_bucket(
    r: &[u8],
    g: &Geometry,
    q: &impl Chain,
    pool: &str,
    label: &str,
    limit: u32,
    out: &mut Vec<Finding>,
    claimed: &mut BTreeSet<usize>,
) -> Vec<usize> {
    let elems = walk_inner(r, g, q, pool, label, limit, out, claimed);
    claimed.extend(elems.iter().copied());
    elems
}

#[allow(clippy::too_many_arguments)]
fn walk_inner(
    r: &[u8],
    g: &Geometry,
    q: &impl Chain,
    pool: &str,
    label: &str,
    limit: u32,
    out: &mut Vec<Finding>,
    claimed: &BTreeSet<usize>,
) -> Vec<usize> {
    let mut seen = BTreeSet::new();
    let mut elems = Vec::new();
    let mut expect_prev = q.head_first();
    let mut cur = match q.first(r) {
        Ok(c) => c,
        Err(e) => {
            out.push(lr("invalid offset", format!("{label}: head {e}")));
            return elems;
        }
    };
    while let Some(e) = cur {
        if g.classify(e).map(|c| c.0) != Some(pool) {
            out.push(lr("invalid offset", format!("{label}: link leads to {e:#x}, which is not a {pool}")));
            return elems;
        }
        if claimed.contains(&e) {
            out.push(lr("list broken", format!("{label}: links to {pool} @{e:#x}, which another bucket lists")));
            return elems;
        }
        if !seen.insert(e) || elems.len() as u32 > limit {
            out.push(lr("list broken", format!("{label}: the walk returns to {pool} @{e:#x} (a cycle)")));
            return elems;
        }
        match q.prev_field(r, e) {
            Ok(p) if p == expect_prev => {}
            Ok(p) => out.push(lr(
                "list broken",
                format!("{label}: {pool} @{e:#x} has prev -> {p:#x}, but its predecessor's next field is at {expect_prev:#x}"),
            )),
            Err(err) => out.push(lr("invalid offset", format!("{label}: {pool} @{e:#x} prev: {err}"))),
        }
        elems.push(e);
        expect_prev = e + q.link() + sq::ENTRY_NEXT;
        cur = match q.next(r, e) {
            Ok(c) => c,
            Err(err) => {
                out.push(lr("invalid offset", format!("{label}: {pool} @{e:#x} next: {err}")));
                return elems;
            }
        };
    }
    match q.last_field(r) {
        None => {}
        Some(Ok(at)) if at == expect_prev as sq::Link => {}
        Some(Ok(at)) => out.push(lr(
            "list broken",
            format!("{label}: last -> {at:#x}, but the last element's next field is at {expect_prev:#x}"),
        )),
        Some(Err(err)) => out.push(lr("invalid offset", format!("{label}: last: {err}"))),
    }
    elems
}

/// At most this many findings of one check are reported one by one; the rest are counted. A single stale
/// page can corrupt a chain that every hash-bucket walk then runs into: the first few name the damage.
pub const PER_CHECK: usize = 8;

/// Every check of the lock region, with at most [`PER_CHECK`] findings per check (then a count).
pub fn lock_region(r: &[u8], out: &mut Vec<Finding>) {
    lock_region_as(r, Origin::HERE, out)
}

/// [`lock_region`] of a region written where `origin` says (its link width, its pids).
pub fn lock_region_as(r: &[u8], origin: Origin, out: &mut Vec<Finding>) {
    let mut raw = Vec::new();
    lock_region_all(r, origin, &mut raw);
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    let mut more: BTreeMap<String, usize> = BTreeMap::new();
    for f in raw {
        let key = match &f {
            Finding::LockRegion { check, .. } => check.clone(),
            other => other.name().to_string(),
        };
        let n = per.entry(key.clone()).or_default();
        *n += 1;
        if *n <= PER_CHECK {
            out.push(f);
        } else {
            *more.entry(key).or_default() += 1;
        }
    }
    for (check, n) in more {
        out.push(lr(&check, format!("... and {n} more findings of this kind")));
    }
}

fn lock_region_all(r: &[u8], origin: Origin, out: &mut Vec<Finding>) {
    if u32_at(r, lock::H_MAGIC) != lock::MAGIC {
        out.push(lr("bad region", format!("lock region magic is {:#x}", u32_at(r, lock::H_MAGIC))));
        return;
    }
    let Some(g) = Geometry::read_as(r, origin.layout) else {
        out.push(lr("bad region", "lock region geometry (table sizes and offsets) does not fit the file"));
        return;
    };
    let owner = u32_at(r, lock::H_MUTEX_PID);
    if u32_at(r, lock::H_MUTEX) != 0 && !origin.alive(owner) {
        out.push(Finding::StaleLock { detail: format!("lock region mutex is held by dead process {owner}") });
    }
    let locker_label = |l: usize| format!("locker {:#x} @{l:#x}", u32_at(r, l + lock::LK_ID));
    // Lockers: free list, hash buckets, in-use list.
    let free_lk = walk(r, &g, &g.free_lockers(), "locker", "locker free list", g.maxlockers, out);
    let mut in_buckets: Vec<usize> = Vec::new();
    let mut by_id: BTreeMap<u32, usize> = BTreeMap::new();
    let mut claimed = BTreeSet::new();
    for b in 0..g.locker_t_size {
        let label = format!("locker bucket {b}");
        for l in walk_bucket(r, &g, &g.locker_bucket(b), "locker", &label, g.maxlockers, out, &mut claimed) {
            let id = u32_at(r, l + lock::LK_ID);
            if id % g.locker_t_size != b {
                out.push(lr(
                    "list broken",
                    format!("{} is in bucket {b}, expected {}", locker_label(l), id % g.locker_t_size),
                ));
            }
            if by_id.insert(id, l).is_some() {
                out.push(lr("duplicate locker", format!("locker id {id:#x} appears twice in the locker table")));
            }
            in_buckets.push(l);
        }
    }
    let inuse = walk(r, &g, &g.inuse_lockers(), "locker", "in-use locker list", g.maxlockers, out);
    let (bset, iset): (BTreeSet<_>, BTreeSet<_>) =
        (in_buckets.iter().copied().collect(), inuse.iter().copied().collect());
    for l in bset.symmetric_difference(&iset) {
        out.push(lr(
            "list broken",
            format!(
                "{} is in {} but not in {}",
                locker_label(*l),
                if bset.contains(l) { "the locker table" } else { "the in-use list" },
                if bset.contains(l) { "the in-use list" } else { "the locker table" }
            ),
        ));
    }
    membership("locker", g.maxlockers, lock::LOCKER_SIZE, g.lockers, &[&free_lk, &in_buckets], out);
    for &l in &free_lk {
        if u32_at(r, l + lock::LK_NLOCKS) != 0 {
            out.push(lr(
                "Locker still has locks",
                format!("free {} has nlocks {}", locker_label(l), u32_at(r, l + lock::LK_NLOCKS) as i32),
            ));
        }
    }
    // Objects.
    let free_ob = walk(r, &g, &g.free_objects(), "object", "object free list", g.maxobjects, out);
    let mut objects = Vec::new();
    let mut claimed = BTreeSet::new();
    for b in 0..g.object_t_size {
        let label = format!("object bucket {b}");
        objects.extend(walk_bucket(r, &g, &g.object_bucket(b), "object", &label, g.maxobjects, out, &mut claimed));
    }
    membership("object", g.maxobjects, lock::OBJECT_SIZE, g.objects, &[&free_ob, &objects], out);
    // Locks: free list, holders and waiters of every live object.
    let free_lo = walk(r, &g, &g.free_locks(), "lock", "lock free list", g.maxlocks, out);
    for &l in &free_lo {
        if u32_at(r, l + g.f.l_status) != status::FREE {
            out.push(lr(
                "status mismatch",
                format!("lock @{l:#x} is on the free list with status {}", status::name(u32_at(r, l + g.f.l_status))),
            ));
        }
    }
    let mut granted: Vec<usize> = Vec::new();
    for &o in &objects {
        for (q, what, ok) in [
            (g.holders(o), "holders", [status::HELD, status::PENDING]),
            (g.waiters(o), "waiters", [status::WAITING, status::WAITING]),
        ] {
            for l in walk(r, &g, &q, "lock", &format!("{what} of object @{o:#x}"), g.maxlocks, out) {
                let st = u32_at(r, l + g.f.l_status);
                if !ok.contains(&st) {
                    out.push(lr(
                        "status mismatch",
                        format!("lock @{l:#x} is among the {what} of object @{o:#x} with status {}", status::name(st)),
                    ));
                }
                let rel = g.f.lay.get(r, l + g.f.l_obj).unwrap_or(0);
                if (l as sq::Link).wrapping_add(rel) != o as sq::Link {
                    out.push(lr(
                        "list broken",
                        format!(
                            "lock @{l:#x} is among the {what} of object @{o:#x} but its object link points at {:#x}",
                            (l as sq::Link).wrapping_add(rel)
                        ),
                    ));
                }
                let holder = u32_at(r, l + lock::L_HOLDER);
                if !by_id.contains_key(&holder) {
                    out.push(lr("Locker is not valid", format!("lock @{l:#x} ({} on object @{o:#x}) is held by locker {holder:#x}, which is not in the locker table (db4: Unknown locker ID: {holder:x})", lock::Mode::name(u32_at(r, l + g.f.l_mode)))));
                }
                granted.push(l);
            }
        }
    }
    membership("lock", g.maxlocks, lock::LOCK_SIZE, g.locks, &[&free_lo, &granted], out);
    // Each locker's heldby list and counters.
    let mut heldby_total = 0usize;
    // Dead pid → (lockers, lockers holding locks, write locks).
    let mut dead: BTreeMap<u32, (usize, usize, usize)> = BTreeMap::new();
    for &l in &in_buckets {
        let id = u32_at(r, l + lock::LK_ID);
        let locks = walk(r, &g, &g.heldby(l), "lock", &format!("heldby of {}", locker_label(l)), g.maxlocks, out);
        heldby_total += locks.len();
        let writes = locks
            .iter()
            .filter(|&&x| lock::Mode::from_u32(u32_at(r, x + g.f.l_mode)).is_some_and(lock::Mode::is_write))
            .count();
        for &x in &locks {
            if u32_at(r, x + lock::L_HOLDER) != id {
                out.push(lr(
                    "list broken",
                    format!(
                        "lock @{x:#x} is on the heldby list of {} but names locker {:#x}",
                        locker_label(l),
                        u32_at(r, x + lock::L_HOLDER)
                    ),
                ));
            }
            if u32_at(r, x + g.f.l_status) == status::FREE {
                out.push(lr(
                    "status mismatch",
                    format!("free lock @{x:#x} is still on the heldby list of {}", locker_label(l)),
                ));
            }
        }
        let (nl, nw) = (u32_at(r, l + lock::LK_NLOCKS), u32_at(r, l + lock::LK_NWRITES));
        for (name, v, actual) in [("nlocks", nl, locks.len()), ("nwrites", nw, writes)] {
            if neg(v) {
                out.push(lr("negative count", format!("{} has {name} = {}", locker_label(l), v as i32)));
            } else if v as usize != actual {
                out.push(lr(
                    "count mismatch",
                    format!("{} has {name} = {v} but {actual} on its heldby list", locker_label(l)),
                ));
            }
        }
        let pid = u32_at(r, l + lock::LK_PID);
        if !origin.alive(pid) {
            let e = dead.entry(pid).or_insert((0, 0, 0));
            e.0 += 1;
            if !locks.is_empty() {
                e.1 += 1;
                e.2 += writes;
                out.push(Finding::StaleLock {
                    detail: format!(
                        "{} of dead process {pid} holds {} locks ({writes} write)",
                        locker_label(l),
                        locks.len()
                    ),
                });
            }
        }
    }
    for (pid, (n, holding, writes)) in dead {
        out.push(Finding::StaleLock {
            detail: format!(
                "dead process {pid} left {n} lockers in the table ({holding} holding locks, {writes} write locks; {} leaked)",
                n - holding
            ),
        });
    }
    // Region counters.
    for (name, at, max_at, actual) in [
        ("nlockers", lock::H_NLOCKERS, lock::H_MAXLOCKERS, in_buckets.len()),
        ("nlocks", lock::H_NLOCKS, lock::H_MAXLOCKS, granted.len()),
        ("nobjects", lock::H_NOBJECTS, lock::H_MAXOBJECTS, objects.len()),
    ] {
        let v = u32_at(r, at);
        if neg(v) {
            out.push(lr("negative count", format!("region {name} = {}", v as i32)));
        } else if v > u32_at(r, max_at) {
            out.push(lr("count mismatch", format!("region {name} = {v} exceeds its maximum {}", u32_at(r, max_at))));
        } else if v as usize != actual {
            out.push(lr("count mismatch", format!("region {name} = {v} but {actual} are reachable")));
        }
    }
    if heldby_total != granted.len() {
        out.push(lr(
            "count mismatch",
            format!("{heldby_total} locks on lockers' heldby lists but {} on objects", granted.len()),
        ));
    }
}

/// Each element of a pool must be on exactly one of the given lists.
fn membership(pool: &str, n: u32, size: usize, base: usize, lists: &[&Vec<usize>], out: &mut Vec<Finding>) {
    let mut count: BTreeMap<usize, u32> = BTreeMap::new();
    for l in lists {
        for &e in l.iter() {
            *count.entry(e).or_default() += 1;
        }
    }
    let mut lost = Vec::new();
    for i in 0..n as usize {
        let e = base + i * size;
        match count.get(&e).copied().unwrap_or(0) {
            1 => {}
            0 => lost.push(e),
            k => out.push(lr("element in two lists", format!("{pool} #{i} @{e:#x} is on {k} lists at once"))),
        }
    }
    if !lost.is_empty() {
        out.push(lr("lost element", format!("{} {pool}s are on no list (first @{:#x})", lost.len(), lost[0])));
    }
}

/// The environment header, thread table and buffer cache.
pub fn environment(e: &[u8], m: &[u8], l: &[u8], profile: Profile) -> Vec<Finding> {
    environment_as(e, m, l, profile, Origin::HERE)
}

/// [`environment`] of region files written where `origin` says.
pub fn environment_as(e: &[u8], m: &[u8], l: &[u8], profile: Profile, origin: Origin) -> Vec<Finding> {
    let mut out = Vec::new();
    let er = |d: String| Finding::EnvRegion { region: "__db.001".into(), detail: d };
    if e.len() < env::SIZE || u32_at(e, env::E_MAGIC) != env::MAGIC {
        out.push(er(format!("environment header magic is {:#x} (file of {} bytes)", u32_at(e, env::E_MAGIC), e.len())));
    } else {
        let v = (u32_at(e, env::E_MAJOR), u32_at(e, env::E_MINOR));
        let want = profile.version();
        if v != (want.0, want.1) {
            out.push(er(format!("environment version {}.{} (expected {}.{})", v.0, v.1, want.0, want.1)));
        }
        if u32_at(e, env::E_PANIC) != 0 {
            out.push(Finding::StaleLock { detail: "environment panic flag is set: run recovery".into() });
        }
        let threads = env::threads(e);
        let live = threads.iter().filter(|t| origin.alive(t.1)).count();
        for (slot, pid, st) in &threads {
            if !origin.alive(*pid) {
                out.push(Finding::StaleLock {
                    detail: if *st == env::thread::ACTIVE {
                        format!("thread slot {slot}: process {pid} died inside the Berkeley DB library")
                    } else {
                        format!("thread slot {slot}: process {pid} is dead (state {})", env::thread::name(*st))
                    },
                });
            }
        }
        let rc = u32_at(e, env::E_REFCOUNT);
        if rc as usize != live {
            out.push(Finding::StaleLock {
                detail: format!("environment reference count is {} but {live} live processes are attached", rc as i32),
            });
        }
        if u32_at(e, env::E_MUTEX) != 0 && !origin.alive(u32_at(e, env::E_MUTEX + 4)) {
            out.push(Finding::StaleLock {
                detail: format!("environment mutex is held by dead process {}", u32_at(e, env::E_MUTEX + 4)),
            });
        }
    }
    let n = u32_at(m, mpool::M_NFRAMES) as usize;
    if u32_at(m, mpool::M_MAGIC) != mpool::MAGIC || n == 0 || mpool::region_size(n) > m.len() {
        out.push(Finding::EnvRegion { region: "__db.002".into(), detail: "buffer cache header is damaged".into() });
    } else if u32_at(m, mpool::M_MUTEX) != 0 && !origin.alive(u32_at(m, mpool::M_MUTEX + 4)) {
        out.push(Finding::StaleLock {
            detail: format!("buffer cache mutex is held by dead process {}", u32_at(m, mpool::M_MUTEX + 4)),
        });
    }
    lock_region_as(l, origin, &mut out);
    out
}

/// [`offline_as`] plus the rpmdb cross-check of what was read: the whole verdict on a directory whose
/// region files were written where `origin` says.
pub fn full_as(dir: &Path, profile: Profile, origin: Origin) -> Result<(Vec<Finding>, Option<Snapshot>), BackendError> {
    let (mut findings, snap) = offline_as(dir, profile, origin)?;
    if let Some(s) = &snap {
        findings.extend(crate::rpmdb::cross_check(s));
    }
    Ok((findings, snap))
}

/// Turn scanned data files into a snapshot: Packages (key 0 = last header number) and index sets.
pub fn snapshot_from(files: Vec<Vec<super::datafile::KeyValue>>, findings: &mut Vec<Finding>) -> Snapshot {
    let mut snap = Snapshot::default();
    let mut files = files.into_iter();
    let mut last = None;
    for (k, v) in files.next().unwrap_or_default() {
        match <[u8; 4]>::try_from(k.as_slice()).map(u32::from_ne_bytes) {
            Ok(0) => last = v.as_slice().try_into().ok().map(u32::from_ne_bytes),
            Ok(h) => snap.packages.push((h, v)),
            Err(_) => findings.push(Finding::DataFileDamaged {
                file: "Packages".into(),
                detail: format!("key of {} bytes", k.len()),
            }),
        }
    }
    snap.packages.sort_by_key(|p| p.0);
    if let (Some(max), last) = (snap.packages.last().map(|p| p.0), last)
        && last.is_none_or(|l| l < max)
    {
        findings.push(Finding::DataFileDamaged {
            file: "Packages".into(),
            detail: format!("key 0 (last header number) is {last:?} but header #{max} exists"),
        });
    }
    for (idx, rows) in INDEXES.iter().zip(files) {
        let mut entries = Vec::new();
        for (k, v) in rows {
            match unpack_set(&v) {
                Some(set) => {
                    entries.extend(set.into_iter().map(|(hnum, tagnum)| Entry { key: k.clone(), hnum, tagnum }))
                }
                None => findings.push(Finding::DataFileDamaged {
                    file: idx.name().into(),
                    detail: format!("value of {} bytes is not a set of (header, tag index) pairs", v.len()),
                }),
            }
        }
        snap.indexes.push((*idx, entries));
    }
    snap
}

/// Verify a directory without joining the environment or taking any mutex: copies of the region files for
/// the environment checks; the data files with the buffer cache's pages laid over them for the data checks.
pub fn offline(dir: &Path, profile: Profile) -> Result<(Vec<Finding>, Option<Snapshot>), BackendError> {
    offline_as(dir, profile, Origin::HERE)
}

/// [`offline`] of a directory whose region files were written where `origin` says (the data files and the
/// buffer cache hold no links: only the lock region reads differently).
pub fn offline_as(
    dir: &Path,
    profile: Profile,
    origin: Origin,
) -> Result<(Vec<Finding>, Option<Snapshot>), BackendError> {
    let read = |name: &str| std::fs::read(dir.join(name));
    let packages = dir.join("Packages");
    if !packages.exists() {
        return Err(BackendError::Io {
            path: packages,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no Packages file in this directory"),
        });
    }
    let mut findings = Vec::new();
    let regions = (read(super::ENV_FILE), read(super::MPOOL_FILE), read(super::LOCK_FILE));
    let mut cache = None;
    match regions {
        (Ok(e), Ok(m), Ok(l)) => {
            findings.extend(environment_as(&e, &m, &l, profile, origin));
            cache = Some(m);
        }
        (Err(_), Err(_), Err(_)) => {} // no environment (after `rm __db.*`): nothing to check
        _ => findings
            .push(Finding::EnvRegion { region: "__db.*".into(), detail: "some region files are missing".into() }),
    }
    let mut img = PageImage { files: Vec::new() };
    for name in data_files() {
        img.files.push(read(name).unwrap_or_default());
    }
    if let Some(m) = cache {
        let n = u32_at(&m, mpool::M_NFRAMES) as usize;
        if u32_at(&m, mpool::M_MAGIC) == mpool::MAGIC && n > 0 && mpool::region_size(n) <= m.len() {
            let start = mpool::region_size(n) - n * mpool::PAGE;
            // A cached page may lie past the end of its file (allocated, not yet written back), but not
            // further than the cache could have added: that bounds what the overlay allocates.
            let bound: Vec<usize> = img.files.iter().map(|f| f.len() / mpool::PAGE + n).collect();
            for i in 0..n {
                let at = mpool::M_FRAMES + i * mpool::FRAME_HDR;
                let (file, pgno, flags) = (u32_at(&m, at), u32_at(&m, at + 4), u32_at(&m, at + 8));
                let Some(&bound) = bound.get(file as usize) else { continue };
                if flags & mpool::VALID != 0 && pgno as usize >= bound {
                    findings.push(Finding::EnvRegion {
                        region: super::MPOOL_FILE.into(),
                        detail: format!(
                            "frame {i} holds page {pgno} of data file {file}, past its end and the cache's reach                              ({bound} pages)"
                        ),
                    });
                    continue;
                }
                if flags & mpool::VALID != 0 {
                    let page = &m[start + i * mpool::PAGE..start + (i + 1) * mpool::PAGE];
                    let _ = super::datafile::Pages::write(&mut img, file, pgno, page);
                }
            }
        }
    }
    let snap = salvage(&mut img, &mut findings);
    Ok((findings, Some(snap)))
}

/// Salvage every data file of a page image into a snapshot; damaged pages become findings.
pub(crate) fn salvage(img: &mut PageImage, findings: &mut Vec<Finding>) -> Snapshot {
    let mut scanned = Vec::new();
    for (i, name) in data_files().iter().enumerate() {
        match DataFile::new(img, i as u32).salvage() {
            Ok((rows, errors)) => {
                for e in errors {
                    findings.push(Finding::DataFileDamaged { file: (*name).into(), detail: e.to_string() });
                }
                scanned.push(rows);
            }
            Err(e) => {
                findings.push(Finding::DataFileDamaged { file: (*name).into(), detail: e.to_string() });
                scanned.push(Vec::new());
            }
        }
    }
    snapshot_from(scanned, findings)
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
