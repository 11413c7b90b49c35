//! Planted bugs: named, off by default, each in one marked place in backend code (`planted::active`).
//!
//! Why: `dbtorture selftest` proves on the user's platform (an ARM guest, say) that the harness catches real
//! bugs: it runs each planted bug and requires a finding within a budget, and runs the same scenario
//! unplanted and requires none. This is the one deliberate exception to "faults wrap, they never branch".
//! A bug is switched on for a whole run with `DBTORTURE_PLANT=<name>`, and acts only inside a cycle's
//! children (workers, conversions): the harness's own set-up and checks of the database never run planted
//! code, so a planted bug can only be *detected*, never break the harness (which selftest would otherwise
//! have to tell apart from a detection).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// A planted bug: its name, what it breaks, which backend it lives in, and the finding kinds (as reports
/// name them) that count as catching it — a cycle that fails for any other reason is not a detection.
#[derive(Debug, Clone, Copy)]
pub struct Planted {
    pub name: &'static str,
    pub breaks: &'static str,
    pub backend: &'static str,
    pub caught_by: &'static [&'static str],
}

/// The lock-region damage a broken list or locker shows as, in any of its forms.
const LOCK_DAMAGE: &[&str] = &["lock-region", "environment-error", "run-recovery", "stale-lock", "env-region"];

/// What the real rpm, regenerating the indexes, reports (`dbtorture_backends::rpmoracle`).
pub const RPM_ORACLE: &[&str] = &["rpm-disagrees"];

pub const ALL: &[Planted] = &[
    Planted {
        name: "sqlite-commit-per-package",
        breaks: "sqlite commits each package on its own, so a transaction is no longer atomic",
        backend: "sqlite",
        caught_by: &["partial-transaction"],
    },
    Planted {
        name: "sqlite-skip-index-row",
        breaks: "sqlite skips the last row of every index update with more than three rows",
        backend: "sqlite",
        caught_by: &["missing-index-entry"],
    },
    Planted {
        name: "sqlite-panic-mid-transaction",
        breaks: "sqlite panics while adding every seventh header, in the middle of a transaction",
        backend: "sqlite",
        caught_by: &["worker-panicked"],
    },
    // Only an error in the middle of a transaction shows this one whole (selftest runs it under injected I/O
    // errors, scenarios/io-errors.toml); a kill between the early release and the index rows shows it too.
    Planted {
        name: "sqlite-savepoint-released-early",
        breaks: "sqlite releases (commits) a package's savepoint once its header is in Packages, before its index \
                 rows are written: an error in the index rows leaves the header without them",
        backend: "sqlite",
        caught_by: &["missing-index-entry", "partial-transaction"],
    },
    Planted {
        name: "bdbenv-stale-prev",
        breaks: "bdbenv's list removal leaves the successor's prev link pointing at the removed element",
        backend: "bdbenv",
        caught_by: LOCK_DAMAGE,
    },
    Planted {
        name: "bdbenv-unchecked-locker-free",
        breaks: "bdbenv frees a cursor's locker before its lock, without checking nlocks",
        backend: "bdbenv",
        caught_by: LOCK_DAMAGE,
    },
    Planted {
        name: "bdbenv-mpool-skip-frame",
        breaks: "bdbenv's buffer cache sync at commit skips the last dirty frame of Packages: it stays in the cache only",
        backend: "bdbenv",
        caught_by: &["cache-only-commit", "lost-commit"],
    },
    // The next two need a killed process (selftest runs them under kills): what they leave is an allowed
    // outcome (`hang`, `recovered`), caught only because no kill can explain it.
    Planted {
        name: "bdbenv-failchk-frees-nothing",
        breaks: "bdbenv's failchk prints \"Freeing read locks for locker …\" for a dead reader and frees nothing",
        backend: "bdbenv",
        caught_by: &["engine-message", "unexplained"],
    },
    Planted {
        name: "bdbenv-bucket-linked-before-written",
        breaks: "bdbenv links a new bucket page into its hash chain (meta page written) before writing the page",
        backend: "bdbenv",
        caught_by: &["unexplained"],
    },
    // The next three are semantic bugs of the rpmdb index layer: our own cross-check regenerates indexes with the
    // same layer, so only an independent implementation — real rpm, `[oracle] rpm_every` — tells them apart.
    // (Here they act in the writers only, so the cross-check sees them too; the selftest requires rpm's finding.)
    Planted {
        name: "index-dirnames-wrong-array",
        breaks: "the index layer takes Dirnames keys from the Basenames array",
        backend: "sqlite",
        caught_by: RPM_ORACLE,
    },
    Planted {
        name: "index-providename-dedup",
        breaks: "the index layer indexes a repeated Providename once (rpm 4.18 de-duplicates Triggername only)",
        backend: "sqlite",
        caught_by: RPM_ORACLE,
    },
    Planted {
        name: "index-basenames-skip-colour-2",
        breaks: "the index layer leaves files of colour 2 (64-bit ELF) out of Basenames",
        backend: "sqlite",
        caught_by: RPM_ORACLE,
    },
    // The next three only a power cut shows (selftest runs them under the power-loss recorder).
    Planted {
        name: "sqlite-sync-off",
        breaks: "sqlite runs with PRAGMA synchronous = OFF: a commit returns before the WAL reaches the disk",
        backend: "sqlite",
        caught_by: &["lost-commit"],
    },
    Planted {
        name: "bdbenv-no-fsync",
        breaks: "bdbenv's commit writes the cache back but never fsyncs the data files",
        backend: "bdbenv",
        caught_by: &["lost-commit"],
    },
    Planted {
        name: "rebuild-no-dir-fsync",
        breaks: "rebuilddb swaps the rebuilt database into place without fsyncing its files, its directory or the \
                 parent after the swap",
        backend: "sqlite",
        caught_by: &["lost-commit"],
    },
];

static ACTIVE: OnceLock<Option<String>> = OnceLock::new();
static ARMED: AtomicBool = AtomicBool::new(false);

/// Whether planted bug `name` acts here: switched on for the run, and this process is a cycle's child.
pub fn active(name: &str) -> bool {
    assert!(ALL.iter().any(|p| p.name == name), "unknown planted bug {name}");
    ARMED.load(Ordering::Relaxed)
        && ACTIVE.get_or_init(|| std::env::var("DBTORTURE_PLANT").ok()).as_deref() == Some(name)
}

/// In a cycle's child: let the run's planted bug (if any) act in this process.
pub fn arm_in_this_process() {
    ARMED.store(true, Ordering::Relaxed);
}

/// The planted bug `DBTORTURE_PLANT` names: Ok(None) if unset, Err listing the known ones if it names none.
pub fn from_env() -> Result<Option<&'static Planted>, String> {
    match std::env::var("DBTORTURE_PLANT") {
        Err(_) => Ok(None),
        Ok(v) => ALL.iter().find(|p| p.name == v).map(Some).ok_or_else(|| {
            format!(
                "DBTORTURE_PLANT={v:?} names no planted bug; known: {}",
                ALL.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
            )
        }),
    }
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
