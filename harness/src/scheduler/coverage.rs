//! Index coverage: the rows a cycle wrote to each rpm index table — the index entries of every package it
//! installed or erased (net of the cycle), as rpm 4.18 indexes them.
//!
//! Why: a workload that never writes an index leaves rpm's rules for it (trigger de-duplication, rich
//! dependencies' component names, transient requires) untested while every cycle looks clean; a table of
//! rows per index in the report makes an index no cycle touched visible.

use crate::workload::Pool;
use dbtorture_backends::rpmdb::header::Header;
use dbtorture_backends::rpmdb::{index, tags};
use std::collections::{BTreeMap, BTreeSet};

/// Index table → rows written by going from `before` to `after` (every table listed, 0 included).
pub fn rows_written(pool: &Pool, before: &BTreeSet<u32>, after: &BTreeSet<u32>) -> BTreeMap<String, u64> {
    let mut rows: BTreeMap<String, u64> = tags::INDEXES.iter().map(|t| (t.name().to_string(), 0)).collect();
    for &id in before.symmetric_difference(after) {
        if id as usize >= pool.packages.len() {
            continue;
        }
        let blob = pool.get(id).installed_blob(1);
        let Ok(h) = Header::parse(&blob) else { continue };
        for &t in &tags::INDEXES {
            *rows.entry(t.name().to_string()).or_default() += index::keys_for(&h, t).len() as u64;
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::PoolSpec;

    #[test]
    fn rows_of_installed_and_erased_packages_and_every_table_listed() {
        let pool = Pool::build(PoolSpec { names: 4, versions: 2, files_mean: 4, seed: 3 }).unwrap();
        let none = rows_written(&pool, &BTreeSet::new(), &BTreeSet::new());
        assert_eq!(none.len(), tags::INDEXES.len());
        assert!(none.values().all(|&n| n == 0));
        let one = rows_written(&pool, &BTreeSet::new(), &BTreeSet::from([0]));
        assert_eq!(one["Name"], 1);
        assert_eq!(one["Sha1header"], 1);
        let erased = rows_written(&pool, &BTreeSet::from([0]), &BTreeSet::new());
        assert_eq!(one, erased, "an erase writes (deletes) the same rows");
        let both = rows_written(&pool, &BTreeSet::from([0]), &BTreeSet::from([0, 1]));
        assert_eq!(both["Name"], 1, "the package kept is not counted");
    }
}
