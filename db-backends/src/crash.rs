//! Crash points: named places in backend code where a worker can be stopped exactly, then SIGKILLed.
//!
//! Why: a random-time kill finds bugs but cannot be replayed; a kill at "the 3rd hit of
//! `sqlite.index.put.after`" can. Backends call [`point`] at each step of their write paths. Without a hook
//! (every process but a worker) that is one atomic load. A worker installs a hook that records a breadcrumb
//! (the last point passed, even when disarmed, so a random-time kill knows where it landed) and, when armed for
//! the N-th hit of a point, stops the process so the scheduler can SIGKILL it there.
//!
//! Backend code contains no fault flags: the hook lives in the harness.

use std::sync::OnceLock;

/// Every crash point of every backend. `dbtorture list` prints this; kill-point modes choose from it.
/// The index of a point in this list is its id in breadcrumbs.
pub const ALL: &[&str] = &[
    "sqlite.open.after",
    "sqlite.begin.before",
    "sqlite.begin.after",
    "sqlite.savepoint.after",
    "sqlite.packages.put.before",
    "sqlite.packages.put.after",
    "sqlite.index.put.before",
    "sqlite.index.put.after",
    "sqlite.index.del.before",
    "sqlite.index.del.after",
    "sqlite.packages.del.before",
    "sqlite.packages.del.after",
    "sqlite.savepoint.release.before",
    "sqlite.savepoint.release.after",
    "sqlite.commit.before",
    "sqlite.commit.after",
    "sqlite.close.checkpoint.before",
    "sqlite.close.checkpoint.after",
    "bdbenv.open.after",
    "bdbenv.cursor.locker.after",
    "bdbenv.lock.get.after",
    "bdbenv.lock.upgrade.after",
    "bdbenv.lock.downgrade.after",
    "bdbenv.lock.put.before",
    "bdbenv.lock.put.after",
    "bdbenv.locker.free.after",
    "bdbenv.list.insert.step",
    "bdbenv.list.remove.step",
    "bdbenv.packages.put.before",
    "bdbenv.packages.put.after",
    "bdbenv.packages.del.before",
    "bdbenv.packages.del.after",
    "bdbenv.index.put.before",
    "bdbenv.index.put.after",
    "bdbenv.index.del.before",
    "bdbenv.index.del.after",
    "bdbenv.mpool.writeback.before",
    "bdbenv.mpool.writeback.after",
    "bdbenv.sync.before",
    "bdbenv.sync.after",
    "bdbenv.close.before",
    "rebuild.copy.after",
    "rebuild.swap.before",
    // Appended (ids are positions in this list: existing ids stay stable).
    "libdb.open.after",
    "libdb.cursor.open.after",
    "libdb.packages.put.before",
    "libdb.packages.put.after",
    "libdb.packages.del.before",
    "libdb.packages.del.after",
    "libdb.index.put.before",
    "libdb.index.put.after",
    "libdb.index.del.before",
    "libdb.index.del.after",
    "libdb.cursor.close.before",
    "libdb.cursor.close.after",
    "libdb.sync.before",
    "libdb.sync.after",
    "libdb.close.before",
    // A hash bucket chain got a new page: allocated and linked in memory, neither written yet.
    "bdbenv.hash.bucket.new",
    // A cache frame is being reused for another page (its old page written back): the bytes are in, the
    // frame's header not yet.
    "bdbenv.mpool.evict.reload",
];

/// The points whose name starts with `prefix` (e.g. a backend name followed by a dot).
pub fn points_of(backend: &str) -> impl Iterator<Item = &'static str> + '_ {
    ALL.iter().copied().filter(move |p| p.split('.').next() == Some(backend))
}

/// The id of a point (its index in [`ALL`]).
pub fn id_of(name: &str) -> Option<u32> {
    ALL.iter().position(|p| *p == name).map(|i| i as u32)
}

/// Receives every crash point hit in this process.
pub type Hook = fn(id: u32);

static HOOK: OnceLock<Hook> = OnceLock::new();

/// Install the process-wide hook (a worker does this once, after fork). Returns false if one was already set.
pub fn set_hook(hook: Hook) -> bool {
    HOOK.set(hook).is_ok()
}

/// Pass a crash point. `name` must be listed in [`ALL`].
#[inline]
pub fn point(name: &'static str) {
    let Some(hook) = HOOK.get() else {
        return;
    };
    match id_of(name) {
        Some(id) => hook(id),
        // Checked in release builds too: an unlisted point would be a kill point nobody can arm, sweep or
        // count. The worker's panic becomes a `crashed` cycle naming it (and a test scans every call site).
        None => panic!("crash point {name} is not listed in crash::ALL"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn point_names_are_unique_and_namespaced() {
        let set: HashSet<_> = ALL.iter().collect();
        assert_eq!(set.len(), ALL.len());
        for p in ALL {
            assert!(p.split('.').count() >= 3, "{p} should be backend.area.step");
        }
        assert!(points_of("sqlite").count() > 10);
        assert_eq!(points_of("nosuch").count(), 0);
    }

    /// Every `crash::point("…")` in the backends' sources names a listed point.
    #[test]
    fn every_call_site_names_a_listed_point() {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push(p);
                }
            }
        }
        let mut files = Vec::new();
        walk(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
        let mut calls = 0;
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (i, _) in text.match_indices("point(\"") {
                let rest = &text[i + 7..];
                let name = &rest[..rest.find('"').unwrap()];
                if name.split('.').count() >= 3 {
                    calls += 1;
                    assert!(id_of(name).is_some(), "{}: crash point {name} is not in crash::ALL", f.display());
                }
            }
        }
        assert!(calls > 40, "found only {calls} crash-point call sites");
    }
}
