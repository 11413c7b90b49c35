//! Durability judged where it is lost: on the data files alone (what survives `rm __db.*`), and again on
//! what recovery produced.
//!
//! Why: the data check of a BDB-style environment lays the shared cache over the data files — what the next
//! process to join sees — so a commit the cache holds but the files lack looks present, and recovery, the one
//! step that discards the cache, used to be followed by no oracle at all: the next cycle adopted whatever it
//! left. Here the oracle runs on the files alone (a change only there is a `CacheOnlyCommit`, apart from a
//! commit lost outright) and after every recovery (a change recovery lost is a finding like any other).

use crate::finding::{Class, Finding, HarnessFinding};
use crate::verify;
use crate::workload::Pool;
use dbtorture_backends::BackendKind;
use dbtorture_reports::Outcome;
use std::collections::BTreeSet;
use std::path::Path;

/// The oracle as the judge holds it: findings for an installed set.
pub type Oracle<'a> = dyn Fn(&Pool, &BTreeSet<u32>) -> Vec<Finding> + 'a;

/// What the oracle finds on the data files alone and not on the overlaid read (`seen`): acknowledged changes
/// that only the cache holds. Nothing for an engine without a cache over its files. The in-flight
/// transaction applied in part on the files alone is the non-atomic engine's right, not a finding here.
pub fn cache_only(kind: BackendKind, dir: &Path, pool: &Pool, seen: &[Finding], oracle: &Oracle<'_>) -> Vec<Finding> {
    // A missing Packages file is already the overlaid check's finding.
    let Some(Ok((mut damage, snap))) = kind.data_files_alone(dir) else { return Vec::new() };
    let alone = verify::installed_of(&snap, pool, &mut damage);
    from_alone(oracle(pool, &alone), seen)
}

/// The oracle's findings on the files alone, minus those already `seen`, as cache-only commits.
fn from_alone(alone: Vec<Finding>, seen: &[Finding]) -> Vec<Finding> {
    alone
        .into_iter()
        .filter(|f| !seen.contains(f))
        .filter_map(|f| match f {
            Finding::Harness(HarnessFinding::LostCommit { worker, txn, package, op }) => {
                Some(HarnessFinding::CacheOnlyCommit {
                    package,
                    detail: format!("worker {worker} transaction {txn} acknowledged its {op}, which the cache holds"),
                })
            }
            Finding::Db(dbtorture_backends::rpmdb::Finding::UnexpectedPackage { package, detail }) => {
                Some(HarnessFinding::CacheOnlyCommit {
                    package,
                    detail: format!("an earlier cycle's acknowledged change is in the cache only (files: {detail})"),
                })
            }
            _ => None,
        })
        .map(Finding::Harness)
        .collect()
}

/// The oracle on what recovery left (`after`), minus what was found before recovery (`seen`): acknowledged
/// changes recovery lost.
pub fn after_recovery(pool: &Pool, after: &BTreeSet<u32>, seen: &[Finding], oracle: &Oracle<'_>) -> Vec<Finding> {
    oracle(pool, after).into_iter().filter(|f| !seen.contains(f)).collect()
}

/// Whether the scenario allows every commit the cycle lost. A lost commit cannot hide behind a more severe
/// outcome the scenario allows (a `hang` whose recovery then lost a commit is not an allowed hang).
pub fn losses_allowed(allowed: &[Outcome], findings: &[Finding]) -> bool {
    allowed.contains(&Outcome::LostCommit) || !findings.iter().any(|f| f.class() == Class::LostCommit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_commit_under_an_allowed_hang_is_not_allowed() {
        let allowed = [Outcome::Clean, Outcome::Hang, Outcome::Recovered];
        assert!(!losses_allowed(&allowed, &[lost("a-1")]));
        assert!(losses_allowed(&[Outcome::Hang, Outcome::LostCommit], &[lost("a-1")]));
        assert!(losses_allowed(
            &allowed,
            &[dbtorture_backends::rpmdb::Finding::StaleLock { detail: "x".into() }.into()]
        ));
    }

    fn lost(p: &str) -> Finding {
        HarnessFinding::LostCommit { worker: 0, txn: 3, package: p.into(), op: "install".into() }.into()
    }

    #[test]
    fn a_commit_lost_on_the_files_alone_is_cache_only_and_one_lost_everywhere_is_not_repeated() {
        let seen = vec![lost("a-1")];
        let partial = HarnessFinding::PartialTransaction { worker: 1, txn: 9, detail: "lacks b-1".into() }.into();
        let gone = dbtorture_backends::rpmdb::Finding::UnexpectedPackage {
            package: "c-1".into(),
            detail: "disappeared".into(),
        }
        .into();
        let out = from_alone(vec![lost("a-1"), lost("d-1"), partial, gone], &seen);
        let pk: Vec<_> = out.iter().map(|f| (f.name(), f.package().unwrap_or(""))).collect();
        assert_eq!(pk, [("commit held only in the cache", "d-1"), ("commit held only in the cache", "c-1")], "{out:?}");
    }
}
