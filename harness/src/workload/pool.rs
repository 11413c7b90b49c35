//! The package pool: real RPM headers built with the `rpm` crate from one seed.
//!
//! Why pre-built: workers are forked from the scheduler and inherit the pool, so a cycle spends its time on
//! database work, not on building packages. Same seed ⇒ same bytes (timestamps come from the seed, not the
//! clock). Sizes are heavy-tailed like a distribution (Fedora: ~350,000 files in ~2,500 packages).
//!
//! Each package is the immutable header as rpmbuild would write it (plus FILECOLORS, which the `rpm` crate
//! does not emit, for multilib colours 1/2); installing appends what rpm appends at install time
//! (SIGSIZE, SIGMD5, SHA1HEADER, SHA256HEADER, INSTALLTIME, FILESTATES, INSTALLCOLOR, INSTALLTID).

use dbtorture_backends::rpmdb::check::{sha1_header, sha256_header};
use dbtorture_backends::rpmdb::header::{Header, Value, append_entries};
use dbtorture_backends::rpmdb::tags;
use md5::Digest as _;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

/// Pool parameters (from the scenario's workload).
#[derive(Debug, Clone, Copy)]
pub struct PoolSpec {
    pub names: u32,
    pub versions: u32,
    pub files_mean: u32,
    pub seed: u64,
}

#[derive(Debug, Clone)]
pub struct PoolPackage {
    pub id: u32,
    pub name_idx: u32,
    pub name: String,
    pub nevra: String,
    /// The immutable header, as stored in an rpm file, without the 8-byte magic.
    pub header: Vec<u8>,
    /// SHA1HEADER (hex): the package's identity in a database.
    pub sha1: String,
    pub sha256: String,
    pub sigmd5: [u8; 16],
    pub sigsize: u32,
    pub files: u32,
    /// Sample keys for queries.
    pub provide: String,
    pub basename: Option<String>,
}

pub struct Pool {
    pub spec: PoolSpec,
    pub packages: Vec<PoolPackage>,
    pub by_sha1: HashMap<String, u32>,
    /// A package outside every writer's slice, used by the operability probe.
    pub probe: PoolPackage,
}

const WORDS: &[&str] = &[
    "glib", "core", "util", "net", "xml", "python", "perl", "kernel", "font", "libz", "crypt", "ssl", "bash", "tools",
    "devel", "docs", "data", "gtk", "qt", "media", "audio", "video", "print", "sys", "boot", "shell",
];
const GROUPS: &[&str] = &[
    "System Environment/Libraries",
    "System Environment/Base",
    "Development/Libraries",
    "Applications/System",
    "Unspecified",
];

impl Pool {
    pub fn build(spec: PoolSpec) -> Result<Pool, rpm::Error> {
        Self::build_unless(spec, || false)?.ok_or_else(|| rpm::Error::from(std::io::Error::other("stopped")))
    }

    /// Build the pool, asking `stop` every 64 packages (a big pool takes tens of seconds and must answer
    /// Ctrl-C): `Ok(None)` when it said stop.
    pub fn build_unless(spec: PoolSpec, mut stop: impl FnMut() -> bool) -> Result<Option<Pool>, rpm::Error> {
        let mut packages = Vec::with_capacity((spec.names * spec.versions) as usize);
        for n in 0..spec.names {
            for v in 0..spec.versions {
                let id = n * spec.versions + v;
                if id.is_multiple_of(64) && stop() {
                    return Ok(None);
                }
                packages.push(build_package(&spec, id, n, v, false)?.0);
            }
        }
        let probe = build_package(&spec, u32::MAX, u32::MAX, 0, true)?.0;
        let by_sha1 = packages.iter().map(|p| (p.sha1.clone(), p.id)).collect();
        Ok(Some(Pool { spec, packages, by_sha1, probe }))
    }

    pub fn get(&self, id: u32) -> &PoolPackage {
        &self.packages[id as usize]
    }

    /// Versions of the same name, by id.
    pub fn siblings(&self, id: u32) -> impl Iterator<Item = u32> + '_ {
        let n = self.get(id).name_idx;
        (0..self.spec.versions).map(move |v| n * self.spec.versions + v)
    }

    /// Every package of the pool and the probe package as `.rpm` files: (SHA1HEADER, file bytes). For targets
    /// that install through the real rpm binary.
    pub fn rpm_files(&self) -> Result<Vec<(String, Vec<u8>)>, rpm::Error> {
        let mut out = Vec::with_capacity(self.packages.len() + 1);
        for p in &self.packages {
            out.push((p.sha1.clone(), self.rpm_file(p.id)?));
        }
        let (probe, pkg) = build_package(&self.spec, u32::MAX, u32::MAX, 0, true)?;
        let mut bytes = Vec::new();
        pkg.write(&mut bytes)?;
        out.push((probe.sha1, bytes));
        Ok(out)
    }

    /// The `.rpm` file of a pool package (rebuilt deterministically; used by compatibility tests).
    pub fn rpm_file(&self, id: u32) -> Result<Vec<u8>, rpm::Error> {
        let p = self.get(id);
        let (_, pkg) = build_package(&self.spec, id, p.name_idx, id % self.spec.versions, false)?;
        let mut out = Vec::new();
        pkg.write(&mut out)?;
        Ok(out)
    }
}

impl PoolPackage {
    /// The blob rpm stores for this package when a transaction with id `tid` installs it.
    pub fn installed_blob(&self, tid: u32) -> Vec<u8> {
        let filestates = if self.files > 0 { Some(Value::Char(vec![0; self.files as usize])) } else { None };
        let mut add = vec![
            (257, Value::Int32(vec![self.sigsize])),
            (tags::SIGMD5, Value::Bin(self.sigmd5.to_vec())),
            (tags::SHA1HEADER, Value::String(self.sha1.clone())),
            (tags::SHA256HEADER, Value::String(self.sha256.clone())),
            (tags::INSTALLTIME, Value::Int32(vec![tid])),
        ];
        if let Some(fs) = filestates {
            add.push((tags::FILESTATES, fs));
        }
        add.push((tags::INSTALLCOLOR, Value::Int32(vec![2])));
        add.push((tags::INSTALLTID, Value::Int32(vec![tid])));
        append_entries(&self.header, &add).expect("pool headers are valid")
    }
}

/// What makes the workload write every index of rpm 4.18 (drawn after everything else, so the rest of a
/// package is what it was before these were added): triggers, file triggers and transaction file triggers
/// (Triggername, Filetriggername, Transfiletriggername), weak dependencies (Supplementname, Enhancename,
/// Recommendname, Suggestname) and rich dependencies — `(a if b)`, `(a or b)`, `(a without b)` — whose names
/// rpm also indexes one by one. rpm installs the workload with `--noscripts --notriggers`: no script runs.
fn every_index(b: &mut rpm::PackageBuilder, rng: &mut ChaCha8Rng, spec: &PoolSpec, name: &str) {
    let mut other = || format!("cap-{}", name_of(rng.random_range(0..spec.names.max(1))));
    let (a, c, d) = (other(), other(), other());
    let script = || rpm::Scriptlet::new("exit 0");
    match rng.random_range(0..6) {
        0 => {
            b.trigger_in(&name_of(rng.random_range(0..spec.names.max(1))), None, script());
        }
        1 => {
            b.file_trigger_in(&format!("/usr/share/{name}"), None, script());
        }
        2 => {
            b.trans_file_trigger_in("/usr/bin", None, script());
        }
        _ => {}
    }
    match rng.random_range(0..8) {
        0 => {
            b.supplements(rpm::Dependency::any(&a));
        }
        1 => {
            b.enhances(rpm::Dependency::any(&a));
        }
        2 => {
            b.recommends(rpm::Dependency::any(format!("({a} if {c})")));
        }
        _ => {}
    }
    match rng.random_range(0..8) {
        0 => {
            b.requires(rpm::Dependency::any(format!("({a} if {c})")));
        }
        1 => {
            b.requires(rpm::Dependency::any(format!("({a} or {d})")));
        }
        2 => {
            b.requires(rpm::Dependency::any(format!("({c} without {d})")));
        }
        _ => {}
    }
}

/// Heavy-tailed file count with the given mean (log-normal, sigma 1.5).
fn file_count(rng: &mut ChaCha8Rng, mean: u32) -> u32 {
    if mean == 0 {
        return 0;
    }
    let sigma = 1.5f64;
    let mu = (mean as f64).ln() - sigma * sigma / 2.0;
    let (u1, u2): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random_range(0.0..1.0));
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    ((mu + sigma * z).exp().round() as u32).clamp(1, mean.saturating_mul(60).max(1))
}

fn name_of(n: u32) -> String {
    if n == u32::MAX {
        return "dbtorture-probe".into();
    }
    format!("{}-{}{}", WORDS[(n as usize * 7) % WORDS.len()], WORDS[(n as usize / 3) % WORDS.len()], n)
}

fn build_package(
    spec: &PoolSpec,
    id: u32,
    n: u32,
    v: u32,
    probe: bool,
) -> Result<(PoolPackage, rpm::Package), rpm::Error> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ (u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    let name = name_of(n);
    let arch = match rng.random_range(0..10) {
        0 => "noarch",
        1 => "i686",
        _ => "x86_64",
    };
    let version = format!("{}.{}.{}", 1 + v, rng.random_range(0..20), rng.random_range(0..100));
    let release = format!("{}.fc40", 1 + rng.random_range(0..5));
    let config = rpm::BuildConfig::v4()
        .compression(rpm::CompressionType::Gzip)
        .source_date(1_700_000_000u32 + (spec.seed % 1_000_000) as u32);
    let mut b = rpm::PackageBuilder::new(&name, &version, "MIT", arch, &format!("Package {name}"));
    b.using_config(config)
        .release(release.clone())
        .description(format!("dbtorture workload package {id}"))
        .group(GROUPS[rng.random_range(0..GROUPS.len())])
        .build_host("dbtorture.invalid");
    if rng.random_range(0..10) == 0 {
        b.epoch(rng.random_range(1..4));
    }
    let files = if probe { 2 } else { file_count(&mut rng, spec.files_mean) };
    let libdir = if arch == "i686" { "/usr/lib" } else { "/usr/lib64" };
    let dirs = [
        "/usr/bin".to_string(),
        format!("{libdir}/{name}"),
        format!("/usr/share/{name}"),
        format!("/usr/share/doc/{name}"),
        format!("/etc/{name}"),
    ];
    let mut colors = Vec::with_capacity(files as usize);
    let mut first_basename = None;
    for f in 0..files {
        let d = if f < 2 { f as usize } else { rng.random_range(0..dirs.len()) };
        let base = match d {
            0 => format!("{name}-tool{f}"),
            1 => format!("lib{name}.so.{f}"),
            _ => format!("file{f}.dat"),
        };
        let path = format!("{}/{base}", dirs[d]);
        first_basename.get_or_insert(base);
        let mut opts = rpm::FileOptions::new(path).permissions(if d <= 1 { 0o755 } else { 0o644 });
        if d == 4 {
            opts = opts.config().noreplace();
        }
        b.with_file_contents(format!("{name} {version} file {f}\n").into_bytes(), opts)?;
        // rpmbuild colours ELF files: 1 = 32-bit, 2 = 64-bit; others 0.
        colors.push(match (d <= 1, arch) {
            (true, "i686") => 1,
            (true, "x86_64") => 2,
            _ => 0,
        });
    }
    let provide = format!("cap-{name}");
    b.provides(rpm::Dependency::eq(&provide, version.clone()));
    // Some capabilities are provided twice, versioned and not (`Provides: foo` and `Provides: foo = 1`), as
    // real packages do: rpm indexes every position of Providename (the rpm oracle checks ours does too).
    if files % 3 == 0 {
        b.provides(rpm::Dependency::any(&provide));
    }
    if arch != "noarch" && files > 1 {
        let bits = if arch == "i686" { "" } else { "()(64bit)" };
        b.provides(rpm::Dependency::any(format!("lib{name}.so.1{bits}")));
    }
    if !probe {
        for _ in 0..rng.random_range(0..5) {
            let other = name_of(rng.random_range(0..spec.names.max(1)));
            b.requires(rpm::Dependency::any(format!("cap-{other}")));
        }
        if rng.random_range(0..3) == 0 {
            b.requires(rpm::Dependency::any("/bin/sh"));
            b.requires(rpm::Dependency::script_pre("/bin/sh"));
            b.requires(rpm::Dependency::script_post("coreutils"));
        }
        if rng.random_range(0..6) == 0 {
            b.conflicts(rpm::Dependency::less(format!("{name}-compat"), "1.0"));
        }
        if rng.random_range(0..6) == 0 {
            b.obsoletes(rpm::Dependency::less(format!("{name}-old"), version.clone()));
        }
        if rng.random_range(0..8) == 0 {
            b.recommends(rpm::Dependency::any(format!("{name}-docs")));
        }
        if rng.random_range(0..12) == 0 {
            b.suggests(rpm::Dependency::any(format!("{name}-extras")));
        }
        every_index(&mut b, &mut rng, spec, &name);
    }
    let mut pkg = b.build()?;
    // Add FILECOLORS to the immutable region, then regenerate the signature digests over the new header.
    if files > 0 {
        let mut entries: Vec<rpm::HeaderEntry> = pkg
            .metadata
            .header
            .get_all_entries()?
            .into_iter()
            .filter(|(t, _)| *t != tags::HEADERIMMUTABLE)
            .map(|(tag, data)| rpm::HeaderEntry { tag, data })
            .collect();
        entries.push(rpm::HeaderEntry { tag: tags::FILECOLORS, data: rpm::IndexData::Int32(colors) });
        pkg.metadata.header = rpm::Header::from_entries(entries, rpm::IndexTag::RPMTAG_HEADERIMMUTABLE);
        pkg.clear_signatures()?;
    }
    let with_magic = pkg.metadata.header_bytes()?;
    let header = with_magic[8..].to_vec();
    let h = Header::parse(&header).expect("the rpm crate writes valid headers");
    let sha1 = sha1_header(&h).expect("region");
    let sha256 = sha256_header(&h).expect("region");
    let mut md5 = md5::Md5::new();
    md5.update(&with_magic);
    md5.update(&pkg.payload);
    let sigmd5: [u8; 16] = md5.finalize().into();
    let sigsize = (with_magic.len() + pkg.payload.len()) as u32;
    let nevra = dbtorture_backends::rpmdb::check::nevra(&h);
    Ok((
        PoolPackage {
            id,
            name_idx: n,
            name,
            nevra,
            header,
            sha1,
            sha256,
            sigmd5,
            sigsize,
            files,
            provide,
            basename: first_basename,
        },
        pkg,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PoolSpec {
        PoolSpec { names: 6, versions: 2, files_mean: 8, seed: 42 }
    }

    #[test]
    fn same_seed_builds_the_same_bytes() {
        let a = Pool::build(spec()).unwrap();
        let b = Pool::build(spec()).unwrap();
        for (x, y) in a.packages.iter().zip(&b.packages) {
            assert_eq!(x.header, y.header);
            assert_eq!(x.installed_blob(7), y.installed_blob(7));
        }
        let c = Pool::build(PoolSpec { seed: 43, ..spec() }).unwrap();
        assert_ne!(a.packages[0].header, c.packages[0].header);
    }

    #[test]
    fn installed_blob_keeps_region_digest_and_has_install_tags() {
        let pool = Pool::build(spec()).unwrap();
        for p in &pool.packages {
            let blob = p.installed_blob(1234);
            let h = Header::parse(&blob).unwrap();
            assert_eq!(sha1_header(&h).unwrap(), p.sha1);
            assert_eq!(h.u32_first(tags::INSTALLTID), Some(1234));
            assert_eq!(h.string(tags::SHA1HEADER).unwrap(), p.sha1.as_bytes());
            if p.files > 0 {
                assert_eq!(h.count(tags::FILECOLORS), p.files);
                assert_eq!(h.count(tags::BASENAMES), p.files);
            }
        }
        assert_eq!(pool.by_sha1.len(), pool.packages.len(), "identities are unique");
    }

    /// The smoke scenario's pool writes a row into every index table of rpm 4.18 (Installtid, Sigmd5 and
    /// Sha1header from what installing adds): none is left untested by the workload.
    #[test]
    fn the_smoke_pool_writes_every_rpm_4_18_index() {
        use dbtorture_backends::rpmdb::index::keys_for;
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/smoke.toml")).unwrap();
        let sc = crate::scenario::Scenario::parse(&text, std::path::Path::new("smoke.toml")).unwrap();
        let w = &sc.workload;
        let pool =
            Pool::build(PoolSpec { names: w.packages, versions: w.versions, files_mean: w.files_mean, seed: sc.seed })
                .unwrap();
        let mut rows = vec![0usize; tags::INDEXES.len()];
        let mut rich = 0;
        for p in &pool.packages {
            let blob = p.installed_blob(1);
            let h = Header::parse(&blob).unwrap();
            for (i, &idx) in tags::INDEXES.iter().enumerate() {
                let keys = keys_for(&h, idx);
                rich += keys.iter().filter(|(k, _)| k.starts_with(b"(")).count();
                rows[i] += keys.len();
            }
        }
        let never: Vec<_> = tags::INDEXES.iter().zip(&rows).filter(|(_, n)| **n == 0).map(|(t, _)| t.name()).collect();
        assert!(never.is_empty(), "indexes the smoke workload never writes: {never:?}");
        assert!(rich > 0, "no rich dependency");
    }

    #[test]
    fn file_counts_are_heavy_tailed_around_the_mean() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let xs: Vec<u32> = (0..20_000).map(|_| file_count(&mut rng, 140)).collect();
        let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / xs.len() as f64;
        let mut sorted = xs.clone();
        sorted.sort();
        let median = sorted[xs.len() / 2];
        assert!((100.0..180.0).contains(&mean), "mean {mean}");
        assert!(median < 70, "median {median} should be well below the mean");
    }
}
