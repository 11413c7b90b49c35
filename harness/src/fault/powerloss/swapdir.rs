//! `renameat2(RENAME_EXCHANGE)` through the recorder: the backing store's swap and the recorder's path
//! bindings swapped with it.
//!
//! Why apart from the passthrough: a rebuild swaps the new database directory with the original in one step
//! (`dbtorture_backends::rebuild`), so no power cut finds neither in place; the recorder must pass that
//! swap through (and log it as `Op::Exchange`) for a recorded rebuild to be the rebuild that runs unrecorded.

use super::oplog::Ino;
use nix::errno::Errno;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Swap the two backing paths in one step.
pub(super) fn exchange(a: &Path, b: &Path) -> Result<(), Errno> {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE)
}

/// After `exchange(a, b)`: every inode bound at or under `a` is now at the same place under `b`, and the
/// other way round.
pub(super) fn swap_bindings(inos: &mut HashMap<PathBuf, Ino>, paths: &mut HashMap<Ino, PathBuf>, a: &Path, b: &Path) {
    let under = |root: &Path| -> Vec<(PathBuf, Ino)> {
        inos.iter().filter(|(p, _)| p.starts_with(root)).map(|(p, i)| (p.clone(), *i)).collect()
    };
    let (at_a, at_b) = (under(a), under(b));
    for (p, _) in at_a.iter().chain(&at_b) {
        inos.remove(p);
    }
    for (moved, from, to) in [(at_a, a, b), (at_b, b, a)] {
        for (p, i) in moved {
            let np = to.join(p.strip_prefix(from).expect("prefix"));
            paths.insert(i, np.clone());
            inos.insert(np, i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_follow_the_swap() {
        let mut inos: HashMap<PathBuf, Ino> =
            [("db", 2), ("db/f", 3), ("dbx", 4), ("db.new", 5), ("db.new/f", 6), ("db.new/g", 7)]
                .into_iter()
                .map(|(p, i)| (PathBuf::from(p), i))
                .collect();
        let mut paths: HashMap<Ino, PathBuf> = inos.iter().map(|(p, i)| (*i, p.clone())).collect();
        swap_bindings(&mut inos, &mut paths, Path::new("db"), Path::new("db.new"));
        let at = |p: &str| inos.get(Path::new(p)).copied();
        assert_eq!((at("db"), at("db/f"), at("db/g")), (Some(5), Some(6), Some(7)));
        assert_eq!((at("db.new"), at("db.new/f"), at("db.new/g")), (Some(2), Some(3), None));
        assert_eq!(at("dbx"), Some(4), "a name that only starts like it is not under it");
        assert_eq!(paths[&3], PathBuf::from("db.new/f"));
        assert_eq!(inos.len(), paths.len());
    }
}
