//! The databases under torture: one directory per backend, prepared fresh at every epoch from the epoch's
//! seed, recreated after a conversion cycle, and the side directories a bundle is built from.
//!
//! Why epochs: each epoch starts from its own seeded database, so epochs are independent — what lets
//! `--shard I/N` split a run and `merge` put it back together exactly.

use super::{Scheduler, derive_seed};
use anyhow::{Context, Result};
use dbtorture_backends::{BackendKind, OpenMode};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// One backend's database under torture.
pub struct Target {
    pub kind: BackendKind,
    pub dir: PathBuf,
    /// Pool ids installed now (as last verified).
    pub installed: BTreeSet<u32>,
    /// The epoch the database belongs to (see `Scenario::epoch`).
    pub epoch: u64,
    /// Position of the backend in the scenario's list: cycles are seeded by it, so running one backend alone
    /// (`run --backend`) gives that backend the same cycles as running them all.
    pub slot: usize,
    /// Causes of earlier cycles whose leftovers the database may still hold (adopted without recovery).
    pub carried: Vec<dbtorture_backends::explain::Cause>,
    /// With them: the packages of the transactions those cycles' killed writers had in flight. Whether they
    /// are in the database is open until a recovery — their pages may live only in the shared cache the
    /// next cycle's writers join and flush (libdb: the verifier reads the data files, not that cache).
    pub uncertain: BTreeSet<u32>,
}

impl Target {
    /// A database just prepared (or restored from a bundle's pre/): nothing carried from earlier cycles.
    pub fn new(kind: BackendKind, dir: PathBuf, installed: BTreeSet<u32>, epoch: u64, slot: usize) -> Target {
        Target { kind, dir, installed, epoch, slot, carried: Vec::new(), uncertain: BTreeSet::new() }
    }
}

/// Where backend `kind`'s database lives. A rebuild under power loss records the database's parent (the
/// swap renames in it), so there the parent is a directory of its own: `swap/`.
pub fn target_dir(workdir: &Path, kind: BackendKind, sc: &crate::scenario::Scenario) -> PathBuf {
    let home = workdir.join(kind.name());
    match (sc.power_loss.is_some() || sc.io_kill.is_some()) && sc.convert_to().is_some() {
        true => home.join("swap").join("db"),
        false => home.join("db"),
    }
}

impl Scheduler<'_> {
    pub(super) fn side_dir(&self, kind: BackendKind, what: &str) -> PathBuf {
        self.workdir.join(kind.name()).join(what)
    }

    /// Add the scenario's backend at `slot` as a target whose database starts as a copy of `pre` holding
    /// `installed` (a replay of a bundle's cycle), or fresh and empty for the other backends.
    pub fn restore_target(
        &mut self,
        slot: usize,
        kind: BackendKind,
        pre: Option<&Path>,
        installed: BTreeSet<u32>,
        epoch: u64,
    ) -> Result<()> {
        let dir = target_dir(&self.workdir, kind, self.scenario);
        if let Some(pre) = pre {
            crate::bundle::copy_dir(pre, &dir).context("copying pre/")?;
        }
        self.targets.push(Target::new(kind, dir, installed, epoch, slot));
        Ok(())
    }

    /// Remove `dir` and, for targets that install through the rpm binary, put the workload's package files
    /// back into it (built once per run).
    pub(super) fn fresh_dir(&mut self, kind: BackendKind, dir: &Path) -> Result<()> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        if kind.needs_package_files() {
            if self.rpm_files.is_empty() {
                self.rpm_files = self.pool.rpm_files().context("writing the workload's .rpm files")?;
            }
            let pkgs = dir.join(dbtorture_backends::rpmcli::PKGS);
            std::fs::create_dir_all(&pkgs)?;
            for (sha1, bytes) in &self.rpm_files {
                std::fs::write(pkgs.join(format!("{sha1}.rpm")), bytes)?;
            }
        }
        Ok(())
    }

    /// Create a fresh database for `epoch` and install its initial packages in one transaction.
    pub(super) fn prepare(&mut self, kind: BackendKind, dir: &Path, epoch: u64) -> Result<BTreeSet<u32>> {
        self.fresh_dir(kind, dir)?;
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(self.seed, 0xfeed, epoch));
        let w = &self.scenario.workload;
        let mut installed = BTreeSet::new();
        for n in 0..w.packages {
            if rng.random_range(0.0..1.0) < w.initial_fraction {
                installed.insert(n * w.versions + rng.random_range(0..w.versions));
            }
        }
        self.write_db(kind, dir, &installed).with_context(|| format!("creating {}", dir.display()))?;
        Ok(installed)
    }

    /// A new epoch starts from its own fresh database, whatever the cycles before left.
    pub(super) fn enter_epoch(&mut self, t: usize, cycle: u64) -> Result<()> {
        let epoch = cycle / self.scenario.epoch;
        if self.targets[t].epoch != epoch {
            let (kind, dir) = (self.targets[t].kind, self.targets[t].dir.clone());
            self.targets[t].installed = self.prepare(kind, &dir, epoch)?;
            self.targets[t].epoch = epoch;
            self.targets[t].carried.clear();
            self.targets[t].uncertain.clear();
        }
        // What a killed rpm left outside its database (its unpacking temporaries) is not the next cycle's.
        if self.targets[t].kind == BackendKind::Rpm {
            let root = &self.targets[t].dir;
            dbtorture_backends::rpmroot::clear_killed_leftovers(root)
                .with_context(|| format!("removing a killed rpm's temporaries under {}", root.display()))?;
        }
        Ok(())
    }

    /// Replace target `t`'s database by a fresh one of its backend holding `installed`.
    pub(super) fn recreate(&mut self, t: usize, installed: &BTreeSet<u32>) -> Result<()> {
        let kind = self.targets[t].kind;
        let dir = self.targets[t].dir.clone();
        self.fresh_dir(kind, &dir)?;
        self.write_db(kind, &dir, installed)
    }

    /// Start over from an empty database (the old one is unreadable even after recovery).
    pub(super) fn prepare_empty(&mut self, t: usize) -> Result<BTreeSet<u32>> {
        self.recreate(t, &BTreeSet::new())?;
        Ok(BTreeSet::new())
    }

    fn write_db(&mut self, kind: BackendKind, dir: &Path, installed: &BTreeSet<u32>) -> Result<()> {
        let mut db = kind.open(dir, OpenMode::Create)?;
        db.begin()?;
        for (i, &id) in installed.iter().enumerate() {
            if i % 256 == 255 && self.interrupt_requested() {
                return Err(super::Interrupted.into());
            }
            db.install(&self.pool.get(id).installed_blob(1_600_000_000))?;
        }
        db.commit()?;
        db.close()?;
        Ok(())
    }

    /// Clear leftovers of killed rebuilds beside target `t` (`<dir>.rebuilddb.<pid>`, `<dir>.old.<pid>`).
    pub(super) fn clear_rebuild_leftovers(&self, t: usize) -> Result<()> {
        let dir = &self.targets[t].dir;
        if let (Some(parent), Some(name)) = (dir.parent(), dir.file_name().and_then(|n| n.to_str())) {
            for e in std::fs::read_dir(parent)?.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.len() > name.len()
                    && n.starts_with(name)
                    && (n[name.len()..].starts_with(".rebuilddb.") || n[name.len()..].starts_with(".old."))
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(())
    }
}
