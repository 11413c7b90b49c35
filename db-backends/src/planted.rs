//! Planted bugs: named, off by default, each in one marked place in backend code (`planted::active`).
//!
//! Why: `dbtorture selftest` proves on the user's platform (an ARM guest, say) that the harness catches real
//! bugs: it runs each planted bug and requires a finding within a budget, and runs the same scenario
//! unplanted and requires none. This is the one deliberate exception to "faults wrap, they never branch".
//! A bug is switched on for a whole run with `DBTORTURE_PLANT=<name>` (workers inherit it).

use std::sync::OnceLock;

/// (name, what it breaks).
pub const ALL: &[(&str, &str)] = &[
    ("sqlite-commit-per-package", "sqlite commits each package on its own, so a transaction is no longer atomic"),
    ("sqlite-skip-index-row", "sqlite skips the last row of every index update with more than three rows"),
    ("bdbenv-stale-prev", "bdbenv's list removal leaves the successor's prev link pointing at the removed element"),
    ("bdbenv-unchecked-locker-free", "bdbenv frees a cursor's locker before its lock, without checking nlocks"),
];

static ACTIVE: OnceLock<Option<String>> = OnceLock::new();

/// Whether planted bug `name` is switched on in this process.
pub fn active(name: &str) -> bool {
    debug_assert!(ALL.iter().any(|(n, _)| *n == name), "unknown planted bug {name}");
    ACTIVE.get_or_init(|| std::env::var("DBTORTURE_PLANT").ok()).as_deref() == Some(name)
}

/// Switch planted bug `name` on for this process (replaying a bundle recorded with it). Has no effect if
/// this process already decided; returns whether `name` is now the active one.
pub fn force(name: &str) -> bool {
    ACTIVE.get_or_init(|| Some(name.to_string())).as_deref() == Some(name)
}

/// The planted bug switched on in this process, if any.
pub fn current() -> Option<String> {
    ACTIVE.get_or_init(|| std::env::var("DBTORTURE_PLANT").ok()).clone()
}
