//! The fuzz targets: each takes one mutated input and runs the code that reads such bytes from a user —
//! header decoding, sqlite verify, the bdbenv offline check and inspect, libdb's check, bundle opening, and
//! merging event logs. The seeds are real files, made by one clean cycle of each backend.

use dbtorture_backends::bdbenv::Profile;
use dbtorture_backends::rpmdb::Header;
use dbtorture_backends::{BackendKind, OpenMode};
use std::path::{Path, PathBuf};

/// What a target reads.
pub struct Target {
    pub name: &'static str,
    /// Real files to mutate (for directory targets: one entry per file of `files`).
    pub seeds: Vec<Vec<u8>>,
    /// For directory targets: the database directory the input replaces one file of (file i of `files`
    /// for seed i); restored after each input.
    pub dir: Option<PathBuf>,
    pub files: Vec<String>,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Header,
    Sqlite,
    BdbenvRegions,
    BdbenvDir,
    Libdb,
    Bundle,
    Merge,
    /// Proves the supervisor: fails one way on every 7th input (panic, allocation over the cap, hang).
    Canary(Canary),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canary {
    Panic,
    Alloc,
    Hang,
}

/// Targets that fail on purpose, selectable by name but never part of "all".
pub const CANARIES: &[(&str, Canary)] =
    &[("canary-panic", Canary::Panic), ("canary-alloc", Canary::Alloc), ("canary-hang", Canary::Hang)];

pub const ALL: &[&str] = &["header", "sqlite", "bdbenv-regions", "bdbenv", "libdb", "bundle", "merge"];

/// One clean cycle of each backend, with its events, in `work`: the seed corpus.
pub fn corpus(work: &Path) -> anyhow::Result<Vec<Target>> {
    let text = r#"
name = "fuzz-corpus"
backends = ["sqlite", "bdbenv", "libdb"]
[workload]
packages = 12
versions = 2
files_mean = 6
writers = 1
readers = 0
txns_per_writer = 4
queries_per_reader = 0
[kill]
mode = "none"
[timeouts]
cycle_ms = 10000
probe_ms = 10000
[expect]
sqlite = ["clean"]
bdbenv = ["clean"]
libdb = ["clean"]
"#;
    let sc = crate::scenario::Scenario::parse(text, Path::new("fuzz-corpus.toml"))?;
    let out = work.join("out");
    let db = work.join("db");
    let opts = crate::run::RunOptions {
        seed: Some(1),
        cycles: Some(1),
        duration: None,
        out: Some(out.clone()),
        workdir: Some(db.clone()),
        quiet: true,
        no_bundles: true,
        shard: None,
        backends: Vec::new(),
        jobs: Some(1),
    };
    crate::run::run(&sc, &opts)?;
    let read_dir = |d: &Path| -> anyhow::Result<(Vec<String>, Vec<Vec<u8>>)> {
        let mut names: Vec<String> = std::fs::read_dir(d)?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let data = names.iter().map(|n| std::fs::read(d.join(n))).collect::<Result<Vec<_>, _>>()?;
        Ok((names, data))
    };
    let mut targets = Vec::new();
    let (sq_names, sq_data) = read_dir(&db.join("sqlite/db"))?;
    let sqlite = sq_data[sq_names.iter().position(|n| n == "rpmdb.sqlite").expect("rpmdb.sqlite")].clone();
    // Headers: as stored in the database.
    let (_, snap) = BackendKind::Sqlite.check(&db.join("sqlite/db"), OpenMode::ReadOnly)?;
    let headers: Vec<Vec<u8>> = snap.map(|s| s.packages.into_iter().map(|(_, b)| b).collect()).unwrap_or_default();
    anyhow::ensure!(!headers.is_empty(), "the corpus run installed nothing");
    targets.push(Target { name: "header", seeds: headers, dir: None, files: Vec::new(), kind: Kind::Header });
    targets.push(Target { name: "sqlite", seeds: vec![sqlite], dir: None, files: Vec::new(), kind: Kind::Sqlite });
    let bdb = db.join("bdbenv/db");
    let regions = ["__db.001", "__db.002", "__db.003"];
    let region_seeds = regions.iter().map(|r| std::fs::read(bdb.join(r))).collect::<Result<Vec<_>, _>>()?;
    targets.push(Target {
        name: "bdbenv-regions",
        seeds: region_seeds,
        dir: None,
        files: regions.iter().map(|s| s.to_string()).collect(),
        kind: Kind::BdbenvRegions,
    });
    let (names, data) = read_dir(&bdb)?;
    targets.push(Target { name: "bdbenv", seeds: data, dir: Some(bdb), files: names, kind: Kind::BdbenvDir });
    if cfg!(feature = "libdb") {
        let ldb = db.join("libdb/db");
        let (names, data) = read_dir(&ldb)?;
        targets.push(Target { name: "libdb", seeds: data, dir: Some(ldb), files: names, kind: Kind::Libdb });
    }
    // A bundle: the sqlite database and the run's events, packed as the harness packs bundles; mutated as
    // the uncompressed tar (structure) and as the archive (compression).
    let b = work.join("bundle/cycle-00000-sqlite");
    crate::bundle::copy_dir(&db.join("sqlite/db"), &b.join("pre"))?;
    std::fs::write(b.join("bundle.json"), "{}")?;
    let archive = crate::bundle::pack(&b)?;
    let gz = std::fs::read(&archive)?;
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut tar)?;
    targets.push(Target { name: "bundle", seeds: vec![tar, gz], dir: None, files: Vec::new(), kind: Kind::Bundle });
    let events = std::fs::read(out.join("events.jsonl"))?;
    targets.push(Target { name: "merge", seeds: vec![events], dir: None, files: Vec::new(), kind: Kind::Merge });
    for (name, c) in CANARIES {
        targets.push(Target { name, seeds: vec![vec![0; 64]], dir: None, files: Vec::new(), kind: Kind::Canary(*c) });
    }
    Ok(targets)
}

/// Run one input. `seed_index` is the seed it was mutated from (the file it replaces, for directory
/// targets); `scratch` is a private directory for files. Errors are fine; a panic, a hang or a huge
/// allocation is not.
pub fn run_one(t: &Target, seed_index: usize, input: &[u8], scratch: &Path) {
    match t.kind {
        Kind::Header => {
            if let Ok(h) = Header::parse(input) {
                for tag in h.tags().collect::<Vec<_>>() {
                    let _ = (h.string(tag), h.strings(tag), h.u32s(tag), h.raw(tag), h.count(tag));
                }
                let _ = (h.region_digest_input(), h.region_counts(), dbtorture_backends::rpmdb::check::nevra(&h));
            }
            let snap = dbtorture_backends::rpmdb::Snapshot { packages: vec![(1, input.to_vec())], indexes: Vec::new() };
            let _ = dbtorture_backends::rpmdb::cross_check(&snap);
        }
        Kind::Sqlite => {
            let d = scratch.join("sqlite");
            let _ = std::fs::remove_dir_all(&d);
            let _ = std::fs::create_dir_all(&d);
            if std::fs::write(d.join("rpmdb.sqlite"), input).is_ok() {
                // The streamed verify, and the plain one it hands damage to.
                let _ = BackendKind::Sqlite.check_lean(&d, OpenMode::ReadOnly);
            }
        }
        Kind::BdbenvRegions => {
            let mut files: Vec<&[u8]> = t.seeds.iter().map(|s| &s[..]).collect();
            files[seed_index] = input;
            let _ = dbtorture_backends::bdbenv::check::environment(files[0], files[1], files[2], Profile::Db46);
            let _ = dbtorture_backends::bdbenv::inspect::lock_region(files[2]);
            // The same bytes read as a 32-bit machine's region (4-byte links at other offsets).
            let w32 =
                dbtorture_backends::bdbenv::origin::Origin::foreign(dbtorture_backends::bdbenv::origin::Layout::W32);
            let _ = dbtorture_backends::bdbenv::check::environment_as(files[0], files[1], files[2], Profile::Db46, w32);
            let _ = dbtorture_backends::bdbenv::inspect::lock_region_as(files[2], w32);
        }
        Kind::BdbenvDir | Kind::Libdb => {
            let dir = t.dir.as_deref().expect("directory target");
            let d = scratch.join("dir");
            if !d.exists() {
                let _ = crate::bundle::copy_dir(dir, &d);
            }
            let file = d.join(&t.files[seed_index]);
            if std::fs::write(&file, input).is_ok() {
                if t.kind == Kind::Libdb {
                    let _ = BackendKind::Libdb.check(&d, OpenMode::ReadOnly);
                } else {
                    let _ = BackendKind::Bdbenv.check(&d, OpenMode::ReadOnly);
                    let _ = dbtorture_backends::bdbenv::inspect::inspect(&d, Profile::Db46);
                }
            }
            let _ = std::fs::write(&file, &t.seeds[seed_index]);
        }
        Kind::Bundle => {
            let d = scratch.join("bundle");
            let _ = std::fs::remove_dir_all(&d);
            let _ = std::fs::create_dir_all(&d);
            let archive = d.join("b.tar.gz");
            let bytes = if seed_index == 0 {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                let _ = std::io::Write::write_all(&mut gz, input);
                gz.finish().unwrap_or_default()
            } else {
                input.to_vec()
            };
            if std::fs::write(&archive, bytes).is_ok() {
                let _ = crate::bundle::open(&archive);
            }
        }
        Kind::Canary(c) => {
            // Every 7th input by content: the mutations are deterministic, so the failures are too.
            if input.iter().map(|&b| u32::from(b)).sum::<u32>() % 7 == 0 {
                match c {
                    Canary::Panic => panic!("canary"),
                    Canary::Alloc => {
                        let v = vec![1u8; 1 << 30];
                        std::hint::black_box(&v);
                    }
                    Canary::Hang => loop {
                        std::thread::sleep(std::time::Duration::from_secs(1));
                    },
                }
            }
        }
        Kind::Merge => {
            let d = scratch.join("merge");
            let _ = std::fs::remove_dir_all(&d);
            let (run, out) = (d.join("run"), d.join("out"));
            let _ = std::fs::create_dir_all(&run);
            if std::fs::write(run.join("events.jsonl"), input).is_ok() {
                let _ = crate::merge::merge(&[run], &out);
            }
        }
    }
}
