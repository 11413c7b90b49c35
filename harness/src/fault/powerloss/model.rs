//! The crash-image model: from the directory as it was when the recorder mounted (`pre`) and the log of
//! what happened since, the disk a power cut after operation P leaves. Pure functions: no filesystem.
//!
//! The model (what a journaling filesystem such as ext4 in `data=ordered` mode guarantees, and no more):
//! - **File data** (writes, truncates) is per inode. An operation followed by a successful `fsync`/
//!   `fdatasync` of the same inode before P is *durable*: it is in the image. Any other data operation before
//!   P is *volatile*: it persists with probability `keep` (seeded, per operation, independent across files
//!   and within a file — the page cache writes pages back in any order), and a persisted volatile write may
//!   be *torn*: each 512-byte sector it touches persists on its own.
//! - **Directory entries** (create, mkdir, unlink, rmdir, rename) go through the metadata journal, which
//!   commits in order: the entries that persist are a *prefix* of the metadata operations. Every metadata
//!   operation before the last successful directory `fsync` before P is durable; of the later ones a seeded
//!   number persists (0 with `keep` = 0, all with `keep` = 1000). So a rename, create or unlink survives only
//!   if a directory was synced after it, or by seeded chance — never out of order (a rename's target never
//!   appears while the file it renames is missing). A file `fsync` does not make its directory entry
//!   durable (POSIX; ext4 often does, which is the seeded chance).
//! - A new file whose directory entry does not persist is gone with its data, synced or not.
//! - **Directories are entries like files**: renaming a directory moves its inode, and its whole subtree
//!   with it, in one metadata operation (so a rebuild's `rename(new, DB)` persists or not as one step, never
//!   half a tree). `renameat2(RENAME_EXCHANGE)` is one metadata operation that swaps two entries' inodes: in
//!   every image both names are bound, to the old inodes or to the swapped ones. Two plain renames (rpm's
//!   `DB` → old, new → `DB`) are two operations: a prefix ending between them leaves nothing at `DB`.
//! - **What a directory fsync makes durable**: the journal commits as a whole, so a successful `fsync` of
//!   *any* directory makes every earlier metadata operation durable — in every directory, not only its own
//!   entries (ext4/xfs journal commit; POSIX promises only that directory's entries, so an engine relying on
//!   a sibling's fsync passes here and could still fail on a weaker filesystem). A directory fsync makes no
//!   file *data* durable: that needs the file's own fsync.
//! - **Region files** (`__db.*`, `-shm`: MAP_SHARED) get no special treatment: dirty mapped pages reach the
//!   log only when the kernel writes them back or `msync` runs, and then they are data like any other.
//!   Recovery after the reboot may discard them (see the judge).
//!
//! Not modelled: sector corruption or garbage (a sector is the old or the new bytes), lost synced data
//! (a lying disk), hard links and symlinks (the recorder refuses them), file sizes growing without data
//! (ext4 delayed allocation can leave a zero-filled tail: here a file grows only with persisted data).

use super::oplog::{Ino, Log, Op, ROOT};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

pub const SECTOR: u64 = 512;

/// Where the power goes out and how the disk makes up its mind: together with `pre` and the log, a crash
/// image is a function of this and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cut {
    /// Operations `[0, at)` happened before the power went out.
    pub at: u64,
    /// Seeds every choice.
    pub seed: u64,
    /// Chance, per mille, that a volatile operation persists.
    pub keep_per_mille: u16,
    /// Whether a persisted volatile write may be torn at 512-byte sectors.
    pub torn: bool,
}

/// What the model chose, for the report and the bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Choices {
    pub data_durable: usize,
    pub data_volatile: usize,
    pub data_kept: usize,
    pub writes_torn: usize,
    pub meta_durable: usize,
    pub meta_volatile: usize,
    pub meta_kept: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Relative path → contents.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Relative paths of directories (the root is "").
    pub dirs: BTreeSet<String>,
    /// Relative path → the inode bound there (files and directories; not the root): which directory a name
    /// holds after a swap (the original or the rebuilt one).
    pub inos: BTreeMap<String, Ino>,
    pub choices: Choices,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelError {
    #[error("crash image: cut at {at} is past the log's {len} operations")]
    PastEnd { at: u64, len: usize },
    #[error("crash image: operation {seq} names inode {ino}, which the log never introduced")]
    UnknownInode { seq: usize, ino: Ino },
    #[error("crash image: pre-existing {0:?} has no parent directory in the log")]
    Orphan(String),
}

/// The crash image for `cut`. `pre` holds the files' contents at mount time by relative path.
pub fn image(pre: &BTreeMap<String, Vec<u8>>, log: &Log, cut: Cut) -> Result<Image, ModelError> {
    let at = usize::try_from(cut.at).ok().filter(|&a| a <= log.ops.len());
    let at = at.ok_or(ModelError::PastEnd { at: cut.at, len: log.ops.len() })?;
    let ops = &log.ops[..at];
    let mut rng = ChaCha8Rng::seed_from_u64(cut.seed);
    let keep = f64::from(cut.keep_per_mille.min(1000)) / 1000.0;
    let mut ch = Choices::default();

    // Durability barriers: the last fsync of each inode, the last directory fsync.
    let mut last_fsync: HashMap<Ino, usize> = HashMap::new();
    let mut last_dirsync: Option<usize> = None;
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Fsync { ino, .. } => {
                last_fsync.insert(*ino, i);
            }
            Op::FsyncDir { .. } => last_dirsync = Some(i),
            _ => {}
        }
    }
    // How many metadata operations persist: all before the last directory sync, then a seeded number more.
    let meta_total = ops.iter().filter(|o| o.is_meta()).count();
    let meta_durable = last_dirsync.map_or(0, |d| ops[..d].iter().filter(|o| o.is_meta()).count());
    let meta_volatile = meta_total - meta_durable;
    let extra = match cut.keep_per_mille {
        0 => 0,
        k if k >= 1000 => meta_volatile,
        _ => rng.random_range(0..=meta_volatile),
    };
    ch.meta_durable = meta_durable;
    ch.meta_volatile = meta_volatile;
    ch.meta_kept = extra;
    let meta_persist = meta_durable + extra;

    // The state at mount time.
    let mut entries: BTreeMap<(Ino, String), Ino> = BTreeMap::new();
    let mut contents: HashMap<Ino, Vec<u8>> = HashMap::new();
    let mut dirs: HashSet<Ino> = HashSet::from([ROOT]);
    let by_path: HashMap<&str, Ino> = log.pre.iter().map(|(p, (ino, _))| (p.as_str(), *ino)).collect();
    for (path, (ino, is_dir)) in &log.pre {
        if *is_dir {
            dirs.insert(*ino);
        } else {
            contents.insert(*ino, pre.get(path).cloned().unwrap_or_default());
        }
        if path.is_empty() {
            continue;
        }
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        let pino = *by_path.get(parent).ok_or_else(|| ModelError::Orphan(path.clone()))?;
        entries.insert((pino, name.to_string()), *ino);
    }

    let mut meta_seen = 0usize;
    for (i, op) in ops.iter().enumerate() {
        let unknown = |ino: Ino| ModelError::UnknownInode { seq: i, ino };
        match op {
            Op::Create { ino, .. } => {
                contents.entry(*ino).or_default();
            }
            Op::Mkdir { ino, .. } => {
                dirs.insert(*ino);
            }
            _ => {}
        }
        if op.is_meta() {
            let persist = meta_seen < meta_persist;
            meta_seen += 1;
            if !persist {
                continue;
            }
            match op {
                Op::Create { parent, name, ino } | Op::Mkdir { parent, name, ino } => {
                    entries.insert((*parent, name.clone()), *ino);
                }
                Op::Unlink { parent, name } | Op::Rmdir { parent, name } => {
                    entries.remove(&(*parent, name.clone()));
                }
                Op::Rename { parent, name, newparent, newname } => {
                    if let Some(ino) = entries.remove(&(*parent, name.clone())) {
                        entries.insert((*newparent, newname.clone()), ino);
                    }
                }
                Op::Exchange { parent, name, newparent, newname } => {
                    let (a, b) = ((*parent, name.clone()), (*newparent, newname.clone()));
                    if let (Some(x), Some(y)) = (entries.get(&a).copied(), entries.get(&b).copied()) {
                        entries.insert(a, y);
                        entries.insert(b, x);
                    }
                }
                _ => unreachable!("is_meta"),
            }
            continue;
        }
        let (ino, write) = match op {
            Op::Write { ino, off, data } => (*ino, Some((*off, data))),
            Op::Truncate { ino, .. } => (*ino, None),
            _ => continue,
        };
        let durable = last_fsync.get(&ino).is_some_and(|&s| s > i);
        let file = contents.get_mut(&ino).ok_or_else(|| unknown(ino))?;
        if durable {
            ch.data_durable += 1;
        } else {
            ch.data_volatile += 1;
            if !rng.random_bool(keep) {
                continue;
            }
            ch.data_kept += 1;
        }
        match (op, write) {
            (Op::Truncate { len, .. }, _) => file.resize(usize::try_from(*len).unwrap_or(usize::MAX), 0),
            (_, Some((off, data))) => {
                let end = off + data.len() as u64;
                let first = off / SECTOR;
                let last = end.div_ceil(SECTOR);
                let tear = !durable && cut.torn && last - first > 1;
                if tear {
                    ch.writes_torn += 1;
                }
                for s in first..last {
                    if tear && !rng.random_bool(keep.max(0.5)) {
                        continue;
                    }
                    let lo = (s * SECTOR).max(off);
                    let hi = ((s + 1) * SECTOR).min(end);
                    let (lo_u, hi_u) = (lo as usize, hi as usize);
                    if file.len() < hi_u {
                        file.resize(hi_u, 0);
                    }
                    file[lo_u..hi_u].copy_from_slice(&data[(lo - off) as usize..(hi - off) as usize]);
                }
            }
            _ => {}
        }
    }

    // Walk the persisted directory tree from the root.
    let mut img =
        Image { files: BTreeMap::new(), dirs: BTreeSet::from([String::new()]), inos: BTreeMap::new(), choices: ch };
    let mut children: BTreeMap<Ino, Vec<(&String, Ino)>> = BTreeMap::new();
    for ((p, name), ino) in &entries {
        children.entry(*p).or_default().push((name, *ino));
    }
    let mut stack = vec![(ROOT, String::new())];
    let mut visited = HashSet::new();
    while let Some((dino, dpath)) = stack.pop() {
        if !visited.insert(dino) {
            continue;
        }
        for (name, ino) in children.get(&dino).map(Vec::as_slice).unwrap_or_default() {
            let path = if dpath.is_empty() { (*name).clone() } else { format!("{dpath}/{name}") };
            img.inos.insert(path.clone(), *ino);
            if dirs.contains(ino) {
                img.dirs.insert(path.clone());
                stack.push((*ino, path));
            } else {
                img.files.insert(path, contents.get(ino).cloned().unwrap_or_default());
            }
        }
    }
    Ok(img)
}

/// The cuts to judge for one recorded log: at every sync (just before it returned, and just after, with
/// nothing volatile kept: the harshest disk that is still honest), then `random` seeded ones anywhere. At
/// most `max` in all (sync boundaries thinned evenly when there are more).
pub fn plan(log: &Log, seed: u64, random: usize, max: usize) -> Vec<Cut> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut boundaries: Vec<u64> = Vec::new();
    for (i, op) in log.ops.iter().enumerate() {
        if op.is_sync() {
            boundaries.push(i as u64);
            boundaries.push(i as u64 + 1);
        }
    }
    boundaries.push(log.ops.len() as u64);
    boundaries.dedup();
    let room = max.saturating_sub(random).max(1);
    if boundaries.len() > room {
        let n = boundaries.len();
        boundaries = (0..room).map(|k| boundaries[k * n / room]).collect();
    }
    let mut cuts: Vec<Cut> =
        boundaries.into_iter().map(|at| Cut { at, seed: rng.random(), keep_per_mille: 0, torn: false }).collect();
    for _ in 0..random.min(max) {
        let keep_per_mille = *[0u16, 250, 500, 750, 1000].get(rng.random_range(0..5)).expect("in range");
        cuts.push(Cut {
            at: rng.random_range(0..=log.ops.len() as u64),
            seed: rng.random(),
            keep_per_mille,
            torn: rng.random_bool(0.5),
        });
    }
    cuts.truncate(max);
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ino = 2;
    const NEW: Ino = 3;

    /// "a" exists with 1024 bytes of 0xAA; the log writes, syncs, creates, renames.
    fn fixture(ops: Vec<Op>) -> (BTreeMap<String, Vec<u8>>, Log) {
        let mut log = Log::default();
        log.pre.insert(String::new(), (ROOT, true));
        log.pre.insert("a".into(), (A, false));
        log.ops = ops;
        (BTreeMap::from([("a".to_string(), vec![0xAA; 1024])]), log)
    }

    fn cut(at: usize, keep: u16, torn: bool, seed: u64) -> Cut {
        Cut { at: at as u64, seed, keep_per_mille: keep, torn }
    }

    #[test]
    fn synced_write_persists_unsynced_one_may_not() {
        let (pre, log) = fixture(vec![
            Op::Write { ino: A, off: 0, data: vec![1; 512] },
            Op::Fsync { ino: A, datasync: true },
            Op::Write { ino: A, off: 512, data: vec![2; 512] },
        ]);
        let lose = image(&pre, &log, cut(3, 0, false, 1)).unwrap();
        let a = &lose.files["a"];
        assert_eq!(&a[..512], &[1; 512][..], "synced data survives");
        assert_eq!(&a[512..], &[0xAA; 512][..], "unsynced data lost with keep=0");
        let keep = image(&pre, &log, cut(3, 1000, false, 1)).unwrap();
        assert_eq!(&keep.files["a"][512..], &[2; 512][..], "unsynced data kept with keep=1000");
        // Cut before the fsync: even the first write is volatile.
        let before = image(&pre, &log, cut(1, 0, false, 1)).unwrap();
        assert_eq!(before.files["a"], vec![0xAA; 1024]);
        assert_eq!(before.choices.data_volatile, 1);
    }

    #[test]
    fn torn_write_persists_whole_sectors_only() {
        let (pre, log) = fixture(vec![Op::Write { ino: A, off: 0, data: vec![9; 1024] }]);
        let mut torn_seen = false;
        for seed in 0..64 {
            let img = image(&pre, &log, cut(1, 500, true, seed)).unwrap();
            let a = &img.files["a"];
            for s in a.chunks(512) {
                assert!(s.iter().all(|&b| b == s[0]), "a sector is all old or all new");
            }
            torn_seen |= a[0] != a[512];
        }
        assert!(torn_seen, "some seed tears the write");
    }

    #[test]
    fn new_file_needs_its_directory_synced() {
        let ops = vec![
            Op::Create { parent: ROOT, name: "n".into(), ino: NEW },
            Op::Write { ino: NEW, off: 0, data: b"hello".to_vec() },
            Op::Fsync { ino: NEW, datasync: false },
        ];
        let (pre, log) = fixture(ops.clone());
        let img = image(&pre, &log, cut(3, 0, false, 7)).unwrap();
        assert!(!img.files.contains_key("n"), "file fsync alone does not persist the entry");
        let (pre, log) = fixture([ops, vec![Op::FsyncDir { ino: ROOT }]].concat());
        let img = image(&pre, &log, cut(4, 0, false, 7)).unwrap();
        assert_eq!(img.files["n"], b"hello");
    }

    #[test]
    fn renames_persist_in_order_never_target_without_source() {
        // The rebuild pattern: write a new file, sync it, rename it over the old one, (maybe) sync the dir.
        let (pre, log) = fixture(vec![
            Op::Create { parent: ROOT, name: "tmp".into(), ino: NEW },
            Op::Write { ino: NEW, off: 0, data: b"new".to_vec() },
            Op::Fsync { ino: NEW, datasync: false },
            Op::Rename { parent: ROOT, name: "tmp".into(), newparent: ROOT, newname: "a".into() },
            Op::FsyncDir { ino: ROOT },
        ]);
        for seed in 0..32 {
            for keep in [0, 500, 1000] {
                let img = image(&pre, &log, cut(4, keep, false, seed)).unwrap();
                let a = &img.files["a"];
                assert!(a == b"new" || a == &vec![0xAA; 1024], "old or new, nothing else: {a:?}");
            }
        }
        let img = image(&pre, &log, cut(5, 0, false, 0)).unwrap();
        assert_eq!(img.files["a"], b"new", "after the directory sync the rename is durable");
        assert!(!img.files.contains_key("tmp"));
    }

    /// `pre`: directory "db" (ino 10) holding "f" (11) = "old"; the rebuild made "db.new" (20) holding "f" (21)
    /// = "new", synced it and its directory, then swaps by `swap` and maybe syncs the parent.
    fn rebuild_fixture(swap: Vec<Op>, sync_parent: bool) -> (BTreeMap<String, Vec<u8>>, Log) {
        let mut log = Log::default();
        log.pre.insert(String::new(), (ROOT, true));
        log.pre.insert("db".into(), (10, true));
        log.pre.insert("db/f".into(), (11, false));
        log.ops = vec![
            Op::Mkdir { parent: ROOT, name: "db.new".into(), ino: 20 },
            Op::Create { parent: 20, name: "f".into(), ino: 21 },
            Op::Write { ino: 21, off: 0, data: b"new".to_vec() },
            Op::Fsync { ino: 21, datasync: false },
            Op::FsyncDir { ino: 20 },
        ];
        log.ops.extend(swap);
        if sync_parent {
            log.ops.push(Op::FsyncDir { ino: ROOT });
        }
        (BTreeMap::from([("db/f".to_string(), b"old".to_vec())]), log)
    }

    fn at_db(img: &Image) -> Option<(Ino, &[u8])> {
        Some((*img.inos.get("db")?, img.files.get("db/f")?.as_slice()))
    }

    #[test]
    fn a_directory_moves_with_its_tree_and_an_exchange_never_leaves_neither() {
        let xchg = || vec![Op::Exchange { parent: ROOT, name: "db".into(), newparent: ROOT, newname: "db.new".into() }];
        let two = || {
            vec![
                Op::Rename { parent: ROOT, name: "db".into(), newparent: ROOT, newname: "db.old".into() },
                Op::Rename { parent: ROOT, name: "db.new".into(), newparent: ROOT, newname: "db".into() },
            ]
        };
        let mut neither = 0;
        for (swap, parent_sync) in [(xchg(), true), (xchg(), false), (two(), true), (two(), false)] {
            let exchange = swap.len() == 1;
            let (pre, log) = rebuild_fixture(swap, parent_sync);
            for at in 0..=log.ops.len() {
                for seed in 0..16 {
                    for keep in [0, 500, 1000] {
                        let img = image(&pre, &log, cut(at, keep, false, seed)).unwrap();
                        match at_db(&img) {
                            Some((10, b"old")) | Some((20, b"new")) => {}
                            None if !exchange => neither += 1,
                            other => panic!("exchange {exchange}, cut {at} keep {keep}: {other:?}"),
                        }
                    }
                }
            }
            // After the parent's sync the swap is durable, whatever else the disk drops.
            let img = image(&pre, &log, cut(log.ops.len(), 0, false, 0)).unwrap();
            assert_eq!(at_db(&img).map(|x| x.0), Some(if parent_sync { 20 } else { 10 }), "exchange {exchange}");
        }
        assert!(neither > 0, "two renames can leave no database at db");
    }

    #[test]
    fn a_directory_fsync_commits_every_earlier_entry_but_no_file_data() {
        // db.new's own fsync made the mkdir of db.new in the root durable, and its entry "f".
        let (pre, log) = rebuild_fixture(Vec::new(), false);
        let img = image(&pre, &log, cut(5, 0, false, 0)).unwrap();
        assert_eq!(img.files["db.new/f"], b"new");
        // Without the file's fsync the entry persists with no data.
        let mut log2 = log.clone();
        log2.ops.remove(3);
        let img = image(&pre, &log2, cut(4, 0, false, 0)).unwrap();
        assert_eq!(img.files["db.new/f"], b"");
    }

    #[test]
    fn unlink_and_truncate() {
        let (pre, log) = fixture(vec![
            Op::Truncate { ino: A, len: 10 },
            Op::Fsync { ino: A, datasync: false },
            Op::Unlink { parent: ROOT, name: "a".into() },
            Op::FsyncDir { ino: ROOT },
        ]);
        assert_eq!(image(&pre, &log, cut(2, 0, false, 0)).unwrap().files["a"].len(), 10);
        assert!(image(&pre, &log, cut(4, 0, false, 0)).unwrap().files.is_empty());
    }

    #[test]
    fn same_cut_same_image() {
        let (pre, log) =
            fixture((0..40).map(|i| Op::Write { ino: A, off: (i * 100) as u64, data: vec![i as u8; 700] }).collect());
        let c = cut(40, 500, true, 99);
        assert_eq!(image(&pre, &log, c).unwrap(), image(&pre, &log, c).unwrap());
    }

    #[test]
    fn bad_cuts_and_logs_are_errors() {
        let (pre, log) = fixture(vec![Op::Write { ino: 77, off: 0, data: vec![1] }]);
        assert_eq!(image(&pre, &log, cut(2, 0, false, 0)), Err(ModelError::PastEnd { at: 2, len: 1 }));
        assert_eq!(image(&pre, &log, cut(1, 1000, false, 0)), Err(ModelError::UnknownInode { seq: 0, ino: 77 }));
    }

    #[test]
    fn plan_covers_every_sync_boundary() {
        let (_, log) = fixture(vec![
            Op::Write { ino: A, off: 0, data: vec![1] },
            Op::Fsync { ino: A, datasync: true },
            Op::Write { ino: A, off: 0, data: vec![2] },
            Op::FsyncDir { ino: ROOT },
        ]);
        let cuts = plan(&log, 1, 5, 100);
        let ats: Vec<u64> = cuts.iter().filter(|c| c.keep_per_mille == 0 && !c.torn).map(|c| c.at).collect();
        for want in [1, 2, 3, 4] {
            assert!(ats.contains(&want), "{ats:?} lacks {want}");
        }
        assert_eq!(cuts.len(), 4 + 5);
        assert!(plan(&log, 1, 5, 3).len() == 3);
        assert_eq!(plan(&log, 1, 5, 100), cuts, "seeded");
    }
}
