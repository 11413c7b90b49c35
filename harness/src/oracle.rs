//! The oracle: what each writer acknowledged, recorded outside the database, checked against what the
//! database holds after the kill.
//!
//! Accepts, per writer: its slice as it was before the cycle, plus every acknowledged transaction in order,
//! plus optionally the one in-flight transaction applied whole. Anything else is a finding: an acknowledged
//! effect missing is a lost commit; an in-flight transaction applied in part is a partial transaction; a change
//! no transaction explains is an unexpected package.
//!
//! Does not check: the order of transactions *between* writers (slices are disjoint), or reads.

use crate::finding::{Finding, HarnessFinding};
use crate::workload::{Pool, Step, Txn, ops::in_slice};
use dbtorture_backends::Promises;
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnState {
    Begun,
    Committed,
    /// Failed with an error: effect unknown.
    Aborted(String),
}

#[derive(Debug, Clone, Default)]
pub struct WriterLog {
    pub txns: Vec<(u64, Txn, TxnState)>,
}

impl WriterLog {
    /// A writer begins a transaction. The oracle's model holds only if at most one is in flight per writer:
    /// a second begin before the first ended is a broken protocol (checked in release builds; the caller
    /// reports it as a harness fault rather than judging on a log it cannot trust).
    pub fn begin(&mut self, txn: u64, body: Txn) -> Result<(), String> {
        if let Some(t) = self.txns.iter().find(|t| t.2 == TxnState::Begun) {
            return Err(format!("transaction {txn} began while transaction {} was still in flight", t.0));
        }
        if self.txns.iter().any(|t| t.0 == txn) {
            return Err(format!("transaction {txn} began twice"));
        }
        self.txns.push((txn, body, TxnState::Begun));
        Ok(())
    }

    /// A transaction ends (acknowledged, or aborted). Each ends once, and only one that began.
    pub fn set(&mut self, txn: u64, state: TxnState) -> Result<(), String> {
        match self.txns.iter_mut().rev().find(|t| t.0 == txn) {
            Some(t) if t.2 == TxnState::Begun => {
                t.2 = state;
                Ok(())
            }
            Some(t) => Err(format!("transaction {txn} ended twice (was {:?}, now {state:?})", t.2)),
            None => Err(format!("transaction {txn} ended without beginning")),
        }
    }
    pub fn committed(&self) -> usize {
        self.txns.iter().filter(|t| t.2 == TxnState::Committed).count()
    }
}

/// The packages of the transactions still in flight in `writers`' logs (begun, never ended: a killed writer's).
pub fn in_flight(writers: &[WriterLog]) -> BTreeSet<u32> {
    let steps = writers.iter().flat_map(|l| l.txns.iter()).filter(|t| t.2 != TxnState::Committed);
    steps
        .flat_map(|t| t.1.steps.iter())
        .map(|s| match s {
            Step::Add(p) | Step::Remove(p) => *p,
        })
        .collect()
}

/// Check every writer's log. `before` and `after` are the installed pool ids of the whole database.
/// A backend that does not promise atomicity may show an in-flight transaction applied in part; one that
/// does not promise durability may lose acknowledged commits — neither is then a finding. `uncertain`:
/// packages an earlier cycle's killed transaction left open (`scheduler::targets::Target::uncertain`), which
/// may appear or disappear when no transaction of this cycle touched them.
pub fn check(
    pool: &Pool,
    writers: &[WriterLog],
    before: &BTreeSet<u32>,
    after: &BTreeSet<u32>,
    promises: Promises,
    uncertain: &BTreeSet<u32>,
) -> Vec<Finding> {
    let nw = writers.len() as u32;
    let mut out = Vec::new();
    for (w, log) in writers.iter().enumerate() {
        let w = w as u32;
        let slice =
            |s: &BTreeSet<u32>| s.iter().copied().filter(|&p| in_slice(pool, p, w, nw)).collect::<BTreeSet<_>>();
        let mut acked = slice(before);
        let mut touched_by_acked: BTreeSet<u32> = BTreeSet::new();
        let mut inflight: Vec<&(u64, Txn, TxnState)> = Vec::new();
        for t in &log.txns {
            if t.2 == TxnState::Committed {
                t.1.apply(&mut acked);
                touched_by_acked.extend(t.1.steps.iter().map(|s| match s {
                    Step::Add(p) | Step::Remove(p) => *p,
                }));
            } else {
                inflight.push(t);
            }
        }
        let actual = slice(after);
        if actual == acked {
            continue;
        }
        // At most one transaction can be in flight (workers are sequential and stop at their first error).
        if let Some(t) = inflight.last() {
            let mut with = acked.clone();
            t.1.apply(&mut with);
            if actual == with {
                continue;
            }
        }
        let inflight_ids: BTreeSet<u32> = inflight
            .iter()
            .flat_map(|t| {
                t.1.steps.iter().map(|s| match s {
                    Step::Add(p) | Step::Remove(p) => *p,
                })
            })
            .collect();
        let mut partial = Vec::new();
        for &p in acked.symmetric_difference(&actual) {
            let present = actual.contains(&p);
            let label = pool.get(p).nevra.clone();
            if inflight_ids.contains(&p) {
                partial.push(format!("{} {label}", if present { "has" } else { "lacks" }));
            } else if touched_by_acked.contains(&p) {
                let (txn, op) = log
                    .txns
                    .iter()
                    .rev()
                    .filter(|t| t.2 == TxnState::Committed)
                    .find_map(|t| {
                        t.1.steps.iter().find_map(|s| match *s {
                            Step::Add(q) if q == p => Some((t.0, "install")),
                            Step::Remove(q) if q == p => Some((t.0, "erase")),
                            _ => None,
                        })
                    })
                    .unwrap_or((0, "change"));
                if promises.durable {
                    out.push(Finding::from(HarnessFinding::LostCommit {
                        worker: w,
                        txn,
                        package: label,
                        op: op.into(),
                    }));
                }
            } else if !uncertain.contains(&p) {
                out.push(Finding::from(dbtorture_backends::rpmdb::Finding::UnexpectedPackage {
                    package: label,
                    detail: format!(
                        "{} although no transaction of writer {w} touched it",
                        if present { "appeared" } else { "disappeared" }
                    ),
                }));
            }
        }
        if !partial.is_empty() && promises.atomic {
            let txn = inflight.last().map(|t| t.0).unwrap_or(0);
            out.push(Finding::from(HarnessFinding::PartialTransaction { worker: w, txn, detail: partial.join(", ") }));
        }
    }
    if nw == 0 && before != after {
        out.push(Finding::from(dbtorture_backends::rpmdb::Finding::UnexpectedPackage {
            package: "(database)".into(),
            detail: "changed without writers".into(),
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{PoolSpec, TxnKind};

    const ALL: Promises = Promises { atomic: true, durable: true, isolated: true };

    fn pool() -> Pool {
        Pool::build(PoolSpec { names: 4, versions: 2, files_mean: 1, seed: 1 }).unwrap()
    }

    fn log(txns: Vec<(Vec<Step>, TxnState)>) -> WriterLog {
        WriterLog {
            txns: txns
                .into_iter()
                .enumerate()
                .map(|(i, (steps, st))| (i as u64, Txn { kind: TxnKind::Install, steps }, st))
                .collect(),
        }
    }

    // With 1 writer, every package is in its slice. Ids: name n, version v -> n*2+v.
    #[test]
    fn acked_commit_must_survive() {
        let p = pool();
        let l = log(vec![(vec![Step::Add(0)], TxnState::Committed)]);
        let before = BTreeSet::new();
        assert!(check(&p, std::slice::from_ref(&l), &before, &BTreeSet::from([0]), ALL, &BTreeSet::new()).is_empty());
        let f = check(&p, &[l], &before, &BTreeSet::new(), ALL, &BTreeSet::new());
        assert!(matches!(f.as_slice(), [Finding::Harness(HarnessFinding::LostCommit { txn: 0, .. })]), "{f:?}");
    }

    #[test]
    fn inflight_transaction_is_all_or_nothing() {
        let p = pool();
        let l = log(vec![(vec![Step::Add(2), Step::Remove(0)], TxnState::Begun)]);
        let before = BTreeSet::from([0]);
        assert!(
            check(&p, std::slice::from_ref(&l), &before, &before, ALL, &BTreeSet::new()).is_empty(),
            "nothing applied is fine"
        );
        assert!(
            check(&p, std::slice::from_ref(&l), &before, &BTreeSet::from([2]), ALL, &BTreeSet::new()).is_empty(),
            "all applied is fine"
        );
        let f = check(&p, std::slice::from_ref(&l), &before, &BTreeSet::from([0, 2]), ALL, &BTreeSet::new());
        assert!(matches!(f.as_slice(), [Finding::Harness(HarnessFinding::PartialTransaction { .. })]), "{f:?}");
        let weak = Promises { atomic: false, ..ALL };
        assert!(
            check(&p, &[l], &before, &BTreeSet::from([0, 2]), weak, &BTreeSet::new()).is_empty(),
            "not promised, not a finding"
        );
    }

    /// A package an earlier cycle's killed writer had in flight, adopted without recovery, may appear in this
    /// one (its pages lived in the shared cache the next writers flushed: CI, libdb-kill, 2026-12-01); any
    /// other untouched package may not.
    #[test]
    fn a_change_left_open_by_an_earlier_kill_is_allowed_and_only_that_one() {
        let p = pool();
        let earlier = log(vec![(vec![Step::Add(4), Step::Remove(1)], TxnState::Begun)]);
        let open = in_flight(&[earlier, log(vec![(vec![Step::Add(6)], TxnState::Committed)])]);
        assert_eq!(open, BTreeSet::from([1, 4]));
        let now = [WriterLog::default()];
        assert!(check(&p, &now, &BTreeSet::from([1]), &BTreeSet::from([4]), ALL, &open).is_empty());
        let f = check(&p, &now, &BTreeSet::from([1]), &BTreeSet::from([1, 4, 5]), ALL, &open);
        assert!(
            matches!(f.as_slice(), [Finding::Db(dbtorture_backends::rpmdb::Finding::UnexpectedPackage { package, .. })]
                if *package == p.get(5).nevra),
            "{f:?}"
        );
    }

    #[test]
    fn untouched_change_is_unexpected() {
        let p = pool();
        let f = check(&p, &[WriterLog::default()], &BTreeSet::new(), &BTreeSet::from([4]), ALL, &BTreeSet::new());
        assert!(
            matches!(f.as_slice(), [Finding::Db(dbtorture_backends::rpmdb::Finding::UnexpectedPackage { .. })]),
            "{f:?}"
        );
    }
}
