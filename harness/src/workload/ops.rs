//! Operations: what a writer does in one transaction, and what a reader asks.
//!
//! Why slices: writers run concurrently, so each owns the package names `name_idx % writers == w`. A writer's
//! transactions then depend only on its own slice, and the oracle can check each writer's history on its own
//! (acknowledged transactions applied in order, the in-flight one all-or-nothing).

use super::pool::Pool;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;

/// One step of a transaction, by pool id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Add(u32),
    Remove(u32),
}

/// What a transaction is, for people and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnKind {
    Install,
    Erase,
    Upgrade,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    pub kind: TxnKind,
    pub steps: Vec<Step>,
}

impl Txn {
    /// Apply to a set of installed pool ids.
    pub fn apply(&self, set: &mut BTreeSet<u32>) {
        for s in &self.steps {
            match *s {
                Step::Add(p) => {
                    set.insert(p);
                }
                Step::Remove(p) => {
                    set.remove(&p);
                }
            }
        }
    }

    /// Compact text form, e.g. "+12,-7" (used on the worker pipe and in events).
    pub fn encode(&self) -> String {
        let k = match self.kind {
            TxnKind::Install => 'i',
            TxnKind::Erase => 'e',
            TxnKind::Upgrade => 'u',
        };
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|s| match s {
                Step::Add(p) => format!("+{p}"),
                Step::Remove(p) => format!("-{p}"),
            })
            .collect();
        format!("{k}{}", steps.join(","))
    }

    pub fn decode(s: &str) -> Option<Txn> {
        let mut chars = s.chars();
        let kind = match chars.next()? {
            'i' => TxnKind::Install,
            'e' => TxnKind::Erase,
            'u' => TxnKind::Upgrade,
            _ => return None,
        };
        let rest = chars.as_str();
        let mut steps = Vec::new();
        for part in rest.split(',').filter(|p| !p.is_empty()) {
            let (sign, num) = part.split_at(1);
            let id: u32 = num.parse().ok()?;
            steps.push(match sign {
                "+" => Step::Add(id),
                "-" => Step::Remove(id),
                _ => return None,
            });
        }
        Some(Txn { kind, steps })
    }
}

/// Whether pool id `id` belongs to writer `w` of `writers`.
pub fn in_slice(pool: &Pool, id: u32, w: u32, writers: u32) -> bool {
    writers > 0 && pool.get(id).name_idx % writers == w
}

/// The next transaction for writer `w`, given the installed packages of its slice. At most one version of
/// each name is installed at a time (like rpm without installonly packages).
pub fn next_txn(rng: &mut ChaCha8Rng, pool: &Pool, installed: &BTreeSet<u32>, w: u32, writers: u32) -> Option<Txn> {
    let names: Vec<u32> = (0..pool.spec.names).filter(|n| writers > 0 && n % writers == w).collect();
    if names.is_empty() {
        return None;
    }
    let v = pool.spec.versions;
    let installed_version = |n: u32| (0..v).map(|k| n * v + k).find(|id| installed.contains(id));
    let (free, used): (Vec<u32>, Vec<u32>) = names.iter().partition(|&&n| installed_version(n).is_none());
    let roll = rng.random_range(0..10);
    if (roll < 4 || used.is_empty()) && !free.is_empty() {
        // Install 1–3 packages of names not yet installed.
        let k = rng.random_range(1..=3usize).min(free.len());
        let mut steps = Vec::with_capacity(k);
        let mut pick = free.clone();
        for _ in 0..k {
            let n = pick.swap_remove(rng.random_range(0..pick.len()));
            steps.push(Step::Add(n * v + rng.random_range(0..v)));
        }
        return Some(Txn { kind: TxnKind::Install, steps });
    }
    if used.is_empty() {
        return None;
    }
    if roll < 7 && v > 1 {
        // Upgrade: add another EVR of an installed name and remove the old one, in one transaction. After a
        // non-atomic backend applied an upgrade in part, two versions may be installed: never add one that is.
        let n = used[rng.random_range(0..used.len())];
        let old = installed_version(n).expect("used");
        let candidates: Vec<u32> = (0..v).map(|k| n * v + k).filter(|id| !installed.contains(id)).collect();
        if !candidates.is_empty() {
            let new = candidates[rng.random_range(0..candidates.len())];
            return Some(Txn { kind: TxnKind::Upgrade, steps: vec![Step::Add(new), Step::Remove(old)] });
        }
    }
    let k = rng.random_range(1..=2usize).min(used.len());
    let mut pick = used.clone();
    let mut steps = Vec::with_capacity(k);
    for _ in 0..k {
        let n = pick.swap_remove(rng.random_range(0..pick.len()));
        steps.push(Step::Remove(installed_version(n).expect("used")));
    }
    Some(Txn { kind: TxnKind::Erase, steps })
}

/// A reader's query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `rpm -q NAME`
    Name(String),
    /// `rpm -q --whatprovides CAP`
    Provides(String),
    /// `rpm -qf` by basename
    File(String),
}

pub fn next_query(rng: &mut ChaCha8Rng, pool: &Pool) -> Query {
    let p = &pool.packages[rng.random_range(0..pool.packages.len())];
    match rng.random_range(0..3) {
        0 => Query::Name(p.name.clone()),
        1 => Query::Provides(p.provide.clone()),
        _ => match &p.basename {
            Some(b) => Query::File(b.clone()),
            None => Query::Name(p.name.clone()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::pool::PoolSpec;
    use rand::SeedableRng;

    #[test]
    fn txn_text_form_round_trips() {
        let t = Txn { kind: TxnKind::Upgrade, steps: vec![Step::Add(12), Step::Remove(7)] };
        assert_eq!(t.encode(), "u+12,-7");
        assert_eq!(Txn::decode(&t.encode()), Some(t));
        assert_eq!(Txn::decode("x+1"), None);
        assert_eq!(Txn::decode("i+z"), None);
    }

    #[test]
    fn a_partly_applied_upgrade_never_leads_to_installing_a_package_twice() {
        let pool = Pool::build(PoolSpec { names: 3, versions: 3, files_mean: 1, seed: 5 }).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        // Two versions of every name installed, as a killed non-atomic upgrade leaves them.
        let set: BTreeSet<u32> = [0, 1, 3, 4, 6, 7].into_iter().collect();
        for _ in 0..500 {
            let t = next_txn(&mut rng, &pool, &set, 0, 1).unwrap();
            for s in &t.steps {
                if let Step::Add(p) = s {
                    assert!(!set.contains(p), "{t:?} installs {p} again");
                }
            }
        }
    }

    #[test]
    fn writers_stay_in_their_slice_and_keep_one_version_per_name() {
        let pool = Pool::build(PoolSpec { names: 9, versions: 3, files_mean: 2, seed: 5 }).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for w in 0..3 {
            let mut set = BTreeSet::new();
            for _ in 0..200 {
                let t = next_txn(&mut rng, &pool, &set, w, 3).unwrap();
                for s in &t.steps {
                    let (Step::Add(p) | Step::Remove(p)) = *s;
                    assert!(in_slice(&pool, p, w, 3));
                }
                t.apply(&mut set);
                for n in 0..9 {
                    let versions = (0..3).filter(|k| set.contains(&(n * 3 + k))).count();
                    assert!(versions <= 1, "name {n} installed {versions} times");
                }
            }
        }
    }
}
