//! `dbtorture inspect`: a human (and JSON) dump of an environment like `db_stat -CA` — counters, lockers
//! with pid and alive/dead, objects with holders and waiters, locks with mode and status, thread slots,
//! the buffer cache — with every broken link or count shown where it is.
//!
//! Works on a damaged region: it reads copies of the files, walks with the verifier's bounded walks, and
//! never takes a mutex.

use super::check::{self, walk, walk_bucket};
use super::lock::{self, Geometry, status, u32_at};
use super::origin::Origin;
use super::{env, mpool};
use crate::rpmdb::Finding;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Debug, Serialize)]
pub struct Thread {
    pub slot: usize,
    pub pid: u32,
    pub alive: bool,
    pub state: String,
}

#[derive(Debug, Serialize)]
pub struct EnvInfo {
    pub magic_ok: bool,
    pub version: String,
    pub panic: bool,
    pub refcount: i32,
    pub init_flags: u32,
    pub threads: Vec<Thread>,
}

#[derive(Debug, Serialize)]
pub struct LockInfo {
    pub offset: usize,
    pub holder: u32,
    pub mode: String,
    pub status: String,
    pub generation: u32,
}

#[derive(Debug, Serialize)]
pub struct LockerInfo {
    pub offset: usize,
    pub id: u32,
    pub pid: u32,
    pub alive: bool,
    pub nlocks: i32,
    pub nwrites: i32,
    pub locks: Vec<LockInfo>,
    /// Problems found while walking this locker's lists.
    pub problems: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ObjectInfo {
    pub offset: usize,
    pub key: String,
    pub holders: Vec<LockInfo>,
    pub waiters: Vec<LockInfo>,
    pub problems: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct LockRegionInfo {
    pub magic_ok: bool,
    pub mutex_held_by: Option<u32>,
    /// Whether the holder of the region mutex is alive here (false for another machine's region).
    pub mutex_holder_alive: bool,
    pub counters: Vec<(String, i64)>,
    pub lockers: Vec<LockerInfo>,
    pub objects: Vec<ObjectInfo>,
    pub free_lockers: usize,
    pub free_objects: usize,
    pub free_locks: usize,
    pub problems: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct CacheInfo {
    pub frames: u32,
    pub dirty: Vec<(u32, u32)>,
    pub hits: u32,
    pub misses: u32,
    pub writebacks: u32,
}

#[derive(Debug, Serialize)]
pub struct Inspection {
    pub dir: String,
    pub environment: Option<EnvInfo>,
    pub cache: Option<CacheInfo>,
    pub lock_region: Option<LockRegionInfo>,
    /// Everything the verifier says about the regions.
    pub findings: Vec<Finding>,
}

fn lock_info(r: &[u8], f: &lock::Fields, l: usize) -> LockInfo {
    LockInfo {
        offset: l,
        holder: u32_at(r, l + lock::L_HOLDER),
        mode: lock::Mode::name(u32_at(r, l + f.l_mode)).into(),
        status: status::name(u32_at(r, l + f.l_status)).into(),
        generation: u32_at(r, l + lock::L_GEN),
    }
}

fn key_text(k: &[u8]) -> String {
    let t: String =
        k.iter().take_while(|&&c| c != 0).map(|&c| if c.is_ascii_graphic() { c as char } else { '.' }).collect();
    t
}

fn strings(f: Vec<Finding>) -> Vec<String> {
    f.into_iter().map(|x| x.to_string()).collect()
}

pub fn lock_region(r: &[u8]) -> LockRegionInfo {
    lock_region_as(r, Origin::HERE)
}

/// [`lock_region`] of a region written where `origin` says (its link width; its pids are alive only here).
pub fn lock_region_as(r: &[u8], origin: Origin) -> LockRegionInfo {
    let mut info = LockRegionInfo {
        magic_ok: u32_at(r, lock::H_MAGIC) == lock::MAGIC,
        mutex_held_by: (u32_at(r, lock::H_MUTEX) != 0).then(|| u32_at(r, lock::H_MUTEX_PID)),
        mutex_holder_alive: u32_at(r, lock::H_MUTEX) != 0 && origin.alive(u32_at(r, lock::H_MUTEX_PID)),
        counters: Vec::new(),
        lockers: Vec::new(),
        objects: Vec::new(),
        free_lockers: 0,
        free_objects: 0,
        free_locks: 0,
        problems: Vec::new(),
    };
    for (name, at) in [
        ("last locker id", lock::H_LOCK_ID),
        ("lockers", lock::H_NLOCKERS),
        ("max lockers", lock::H_MAXLOCKERS),
        ("hwm lockers", lock::H_HWM_LOCKERS),
        ("locks", lock::H_NLOCKS),
        ("max locks", lock::H_MAXLOCKS),
        ("hwm locks", lock::H_HWM_LOCKS),
        ("objects", lock::H_NOBJECTS),
        ("max objects", lock::H_MAXOBJECTS),
        ("hwm objects", lock::H_HWM_OBJECTS),
        ("lock requests", lock::H_NREQUESTS),
    ] {
        info.counters.push((name.into(), i64::from(u32_at(r, at) as i32)));
    }
    let Some(g) = Geometry::read_as(r, origin.layout).filter(|_| info.magic_ok) else {
        info.problems.push("the region header is damaged; nothing can be walked".into());
        return info;
    };
    let mut p = Vec::new();
    info.free_lockers = walk(r, &g, &g.free_lockers(), "locker", "locker free list", g.maxlockers, &mut p).len();
    info.free_objects = walk(r, &g, &g.free_objects(), "object", "object free list", g.maxobjects, &mut p).len();
    info.free_locks = walk(r, &g, &g.free_locks(), "lock", "lock free list", g.maxlocks, &mut p).len();
    info.problems.extend(strings(p));
    let mut claimed = std::collections::BTreeSet::new();
    for b in 0..g.locker_t_size {
        let mut p = Vec::new();
        let label = format!("locker bucket {b}");
        let ls = walk_bucket(r, &g, &g.locker_bucket(b), "locker", &label, g.maxlockers, &mut p, &mut claimed);
        info.problems.extend(strings(p));
        for l in ls {
            let mut p = Vec::new();
            let locks = walk(r, &g, &g.heldby(l), "lock", &format!("heldby of locker @{l:#x}"), g.maxlocks, &mut p);
            let pid = u32_at(r, l + lock::LK_PID);
            info.lockers.push(LockerInfo {
                offset: l,
                id: u32_at(r, l + lock::LK_ID),
                pid,
                alive: origin.alive(pid),
                nlocks: u32_at(r, l + lock::LK_NLOCKS) as i32,
                nwrites: u32_at(r, l + lock::LK_NWRITES) as i32,
                locks: locks.into_iter().map(|x| lock_info(r, &g.f, x)).collect(),
                problems: strings(p),
            });
        }
    }
    info.lockers.sort_by_key(|l| l.id);
    let mut claimed = std::collections::BTreeSet::new();
    for b in 0..g.object_t_size {
        let mut p = Vec::new();
        let label = format!("object bucket {b}");
        let os = walk_bucket(r, &g, &g.object_bucket(b), "object", &label, g.maxobjects, &mut p, &mut claimed);
        info.problems.extend(strings(p));
        for o in os {
            let mut p = Vec::new();
            let holders = walk(r, &g, &g.holders(o), "lock", &format!("holders of @{o:#x}"), g.maxlocks, &mut p);
            let waiters = walk(r, &g, &g.waiters(o), "lock", &format!("waiters of @{o:#x}"), g.maxlocks, &mut p);
            let len = (u32_at(r, o + lock::OB_KEYLEN) as usize).min(lock::KEY_MAX);
            info.objects.push(ObjectInfo {
                offset: o,
                key: key_text(&r[o + lock::OB_KEY..o + lock::OB_KEY + len]),
                holders: holders.into_iter().map(|x| lock_info(r, &g.f, x)).collect(),
                waiters: waiters.into_iter().map(|x| lock_info(r, &g.f, x)).collect(),
                problems: strings(p),
            });
        }
    }
    info
}

/// Inspect an environment directory (reads copies of `__db.001`–`__db.003`).
pub fn inspect(dir: &Path, profile: super::Profile) -> std::io::Result<Inspection> {
    inspect_as(dir, profile, Origin::HERE)
}

/// [`inspect`] of an environment whose region files were written where `origin` says.
pub fn inspect_as(dir: &Path, profile: super::Profile, origin: Origin) -> std::io::Result<Inspection> {
    let e = std::fs::read(dir.join(super::ENV_FILE))?;
    let m = std::fs::read(dir.join(super::MPOOL_FILE)).unwrap_or_default();
    let l = std::fs::read(dir.join(super::LOCK_FILE)).unwrap_or_default();
    let environment = (e.len() >= env::SIZE).then(|| EnvInfo {
        magic_ok: u32_at(&e, env::E_MAGIC) == env::MAGIC,
        version: format!("{}.{}.{}", u32_at(&e, env::E_MAJOR), u32_at(&e, env::E_MINOR), u32_at(&e, env::E_PATCH)),
        panic: u32_at(&e, env::E_PANIC) != 0,
        refcount: u32_at(&e, env::E_REFCOUNT) as i32,
        init_flags: u32_at(&e, env::E_INIT_FLAGS),
        threads: env::threads(&e)
            .into_iter()
            .map(|(slot, pid, st)| Thread { slot, pid, alive: origin.alive(pid), state: env::thread::name(st).into() })
            .collect(),
    });
    let n = u32_at(&m, mpool::M_NFRAMES);
    let cache = (u32_at(&m, mpool::M_MAGIC) == mpool::MAGIC).then(|| CacheInfo {
        frames: n,
        dirty: mpool::Mpool::dirty(&m),
        hits: u32_at(&m, mpool::M_HITS),
        misses: u32_at(&m, mpool::M_MISSES),
        writebacks: u32_at(&m, mpool::M_WRITEBACKS),
    });
    let lock_region = (!l.is_empty()).then(|| lock_region_as(&l, origin));
    let findings = check::environment_as(&e, &m, &l, profile, origin);
    Ok(Inspection { dir: dir.display().to_string(), environment, cache, lock_region, findings })
}

impl std::fmt::Display for Inspection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        let _ = writeln!(s, "Environment {}", self.dir);
        match &self.environment {
            None => s.push_str("  __db.001 is missing or short\n"),
            Some(e) => {
                let _ = writeln!(
                    s,
                    "  magic {}  version {}  panic {}  refcount {}  init flags {:#x}",
                    if e.magic_ok { "ok" } else { "BAD" },
                    e.version,
                    if e.panic { "SET (run recovery)" } else { "no" },
                    e.refcount,
                    e.init_flags
                );
                for t in &e.threads {
                    let _ = writeln!(
                        s,
                        "  thread slot {:>2}: pid {:>7} {:<5} {}",
                        t.slot,
                        t.pid,
                        if t.alive { "alive" } else { "DEAD" },
                        t.state
                    );
                }
            }
        }
        if let Some(c) = &self.cache {
            let _ = writeln!(
                s,
                "Buffer cache: {} frames, {} dirty, {} hits, {} misses, {} write-backs",
                c.frames,
                c.dirty.len(),
                c.hits,
                c.misses,
                c.writebacks
            );
        }
        if let Some(l) = &self.lock_region {
            let _ = writeln!(s, "Lock region: magic {}", if l.magic_ok { "ok" } else { "BAD" });
            if let Some(pid) = l.mutex_held_by {
                let _ = writeln!(
                    s,
                    "  region mutex HELD by pid {pid} ({})",
                    if l.mutex_holder_alive { "alive" } else { "DEAD" }
                );
            }
            for (name, v) in &l.counters {
                let _ = writeln!(s, "  {v:>10}  {name}{}", if *v < 0 { "   <-- negative" } else { "" });
            }
            let _ =
                writeln!(s, "  free: {} lockers, {} objects, {} locks", l.free_lockers, l.free_objects, l.free_locks);
            let _ = writeln!(s, "Lockers:");
            for k in &l.lockers {
                let _ = writeln!(
                    s,
                    "  {:#10x} @{:#08x} pid {:>7} {:<5} nlocks {:>3} nwrites {:>3}",
                    k.id,
                    k.offset,
                    k.pid,
                    if k.alive { "alive" } else { "DEAD" },
                    k.nlocks,
                    k.nwrites
                );
                for x in &k.locks {
                    let _ =
                        writeln!(s, "      lock @{:#08x} {:<6} {:<7} gen {}", x.offset, x.mode, x.status, x.generation);
                }
                for p in &k.problems {
                    let _ = writeln!(s, "      !! {p}");
                }
            }
            let _ = writeln!(s, "Objects:");
            for o in &l.objects {
                let _ = writeln!(s, "  @{:#08x} {}", o.offset, o.key);
                for (what, ls) in [("holder", &o.holders), ("waiter", &o.waiters)] {
                    for x in ls {
                        let _ = writeln!(
                            s,
                            "      {what} locker {:#x} {:<6} {:<7} lock @{:#08x}",
                            x.holder, x.mode, x.status, x.offset
                        );
                    }
                }
                for p in &o.problems {
                    let _ = writeln!(s, "      !! {p}");
                }
            }
            for p in &l.problems {
                let _ = writeln!(s, "  !! {p}");
            }
        }
        let _ = writeln!(s, "Verifier: {} finding(s)", self.findings.len());
        for x in &self.findings {
            let _ = writeln!(s, "  {x}");
        }
        f.write_str(&s)
    }
}
