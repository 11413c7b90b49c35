//! Forensic bundles of failing cycles: their format, how one is written, packed and opened. (Replaying one
//! is `replay.rs`, which drives the scheduler; this module never does, so the two do not import each other.)
//!
//! A bundle is what a developer needs to look at a failure and to make it happen again: the database
//! directory as it was when the cycle started (`pre/`) and as the faults left it, before any recovery
//! (`post/`, region files included), `inspect.json` of a BDB-style environment, and `bundle.json` — the
//! scenario text, seed, cycle, backend, the plan, every kill with its last crash point and hit, the
//! findings, a planted bug if one was on, and the exact replay command. `dbtorture replay BUNDLE` re-runs
//! the cycle from `pre/` with the same plan, random-time kills turned into kills at the crash point and hit
//! they landed on, and reports whether it reaches the same verdict.

use dbtorture_reports::{FindingRecord, KillRecord, Outcome};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The version of `bundle.json` (2, like every other file dbtorture writes). Version 1 bundles have the same
/// fields and still replay.
pub const BUNDLE_SCHEMA: u32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleInfo {
    pub schema: u32,
    pub scenario_path: String,
    pub scenario_text: String,
    pub seed: u64,
    pub cycle: u64,
    pub backend: String,
    /// Index of the backend in the scenario's list (cycles are seeded per backend).
    pub target: usize,
    /// Pool ids installed when the cycle started.
    pub installed_before: Vec<u32>,
    pub plan: String,
    pub kills: Vec<KillRecord>,
    pub outcome: Outcome,
    pub findings: Vec<FindingRecord>,
    /// A planted bug that was switched on (selftest), if any.
    pub planted: Option<String>,
    pub replay: String,
    /// Each child's crash-point tickets in the cycle (the recorded interleaving; see `fault/schedule.rs`).
    #[serde(default)]
    pub schedule: Vec<Vec<u64>>,
    /// The machine that wrote pre/ and post/ (absent in older bundles: taken as this one).
    #[serde(default)]
    pub written_on: Option<Machine>,
    /// The causes earlier cycles left in the database (adopted without recovery), which explain findings of
    /// this cycle as much as its own faults do (see `scheduler/explain.rs`); a replay judges with them.
    #[serde(default)]
    pub carried: Vec<dbtorture_backends::explain::Cause>,
    /// With them, the packages earlier cycles' killed writers had in flight: present or not, as the oracle
    /// allows (`Target::uncertain`).
    #[serde(default)]
    pub uncertain: Vec<u32>,
}

/// What kind of machine wrote a database: engines with a native layout (shared regions of pointer-width
/// offsets in host byte order) cannot be read by another kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// `std::env::consts::ARCH` (`x86_64`, `arm`, …).
    pub arch: String,
    pub pointer_width: u32,
    pub little_endian: bool,
}

impl Machine {
    /// This process's machine.
    pub fn this() -> Machine {
        Machine {
            arch: std::env::consts::ARCH.to_string(),
            pointer_width: usize::BITS,
            little_endian: cfg!(target_endian = "little"),
        }
    }

    /// Whether this process reads a native layout written on `self` as it was written.
    pub fn readable_here(&self) -> bool {
        let here = Machine::this();
        self.pointer_width == here.pointer_width && self.little_endian == here.little_endian
    }
}

/// Refuse to *replay* a bundle of `kind` written on a machine whose native layout this one cannot run: a
/// replay re-runs the engine here, natively, from the bundle's `pre/` — whose region files hold the other
/// machine's words. A bdbenv bundle of a qemu guest replays in the guest (`dbtorture qemu --replay`).
pub fn check_machine(info: &BundleInfo, kind: dbtorture_backends::BackendKind) -> anyhow::Result<()> {
    match &info.written_on {
        Some(m) if kind.native_layout() && !m.readable_here() => anyhow::bail!(
            "this {} bundle was written on {} ({}-bit, {}-endian) and its region files hold that machine's words; \
             a replay re-runs the engine natively, so this {} build cannot replay it — replay it on a {}-bit \
             machine (for a qemu guest's bundle: `dbtorture qemu --replay BUNDLE` replays it in the guest){}",
            kind.name(),
            m.arch,
            m.pointer_width,
            if m.little_endian { "little" } else { "big" },
            std::env::consts::ARCH,
            m.pointer_width,
            if kind.profile().is_some() { "; `inspect` and `verify` read it here" } else { "" }
        ),
        _ => Ok(()),
    }
}

/// How `inspect` and `verify` read the region files of a `kind` database in a bundle: this machine's
/// layout, or (bdbenv) the layout of the machine that wrote them with its pids taken as dead here. What
/// cannot be read here is refused with the reason: libdb's files are laid out by the C library of the
/// machine that wrote them, and a region of the other byte order is not read at all.
pub fn origin(
    info: &BundleInfo,
    kind: dbtorture_backends::BackendKind,
) -> anyhow::Result<dbtorture_backends::bdbenv::origin::Origin> {
    use dbtorture_backends::bdbenv::origin::{Layout, Origin};
    let here = Machine::this();
    let Some(m) = info.written_on.as_ref().filter(|m| **m != here) else { return Ok(Origin::HERE) };
    if !kind.native_layout() {
        return Ok(Origin::HERE);
    }
    let what = format!(
        "this {} bundle was written on {} ({}-bit, {}-endian)",
        kind.name(),
        m.arch,
        m.pointer_width,
        if m.little_endian { "little" } else { "big" }
    );
    if kind.profile().is_none() {
        if m.readable_here() {
            return Ok(Origin::HERE);
        }
        anyhow::bail!(
            "{what}: real Berkeley DB's region and data files are laid out by the C library of the machine that \
             wrote them, and this {} build reads only its own — inspect and verify it on a {}-bit machine (for \
             a qemu guest's bundle: in the guest)",
            std::env::consts::ARCH,
            m.pointer_width
        );
    }
    match Layout::for_pointer_width(m.pointer_width) {
        Some(layout) if m.little_endian == here.little_endian => Ok(Origin::foreign(layout)),
        _ => anyhow::bail!(
            "{what}: its region files hold that machine's words, and this {} build reads {}-endian 32- and \
             64-bit layouts only",
            std::env::consts::ARCH,
            if here.little_endian { "little" } else { "big" }
        ),
    }
}

/// The bundle a database directory belongs to (`BUNDLE/pre` or `BUNDLE/post`), if it is one's.
pub fn enclosing(db_dir: &Path) -> Option<BundleInfo> {
    let parent = db_dir.canonicalize().ok()?.parent()?.to_path_buf();
    let text = std::fs::read_to_string(parent.join("bundle.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Copy a directory tree (regular files and directories).
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), target)?;
        }
    }
    Ok(())
}

pub const README: &str = "This is a dbtorture bundle: one failing cycle of a torture run, as a single
archive to attach to a bug report. Unpack it with `tar xzf cycle-….tar.gz` to look inside:

  bundle.json   scenario (full text), seed, cycle, backend, plan, kills (with the crash point and hit each
                landed on), outcome, findings, and the command that replays it
  pre/          the database directory when the cycle started
  post/         the database directory as the faults left it, before any recovery (region files included)
  inspect.json  (BDB-style environments) the lock region as `dbtorture inspect --json` shows it

Replay it with the command in bundle.json: `dbtorture replay cycle-….tar.gz` (the archive, or the unpacked
directory) re-runs the cycle from pre/ with the same seed, plan and kill points and says whether it reaches
the same verdict; `dbtorture shrink cycle-….tar.gz` reduces it. Look at the damage with
`dbtorture verify --backend BACKEND post` and `dbtorture inspect post`.
";

/// Pack a bundle directory into `DIR.tar.gz` (one top-level folder named like the directory), atomically,
/// and remove the directory. Returns the archive's path.
pub fn pack(dir: &Path) -> std::io::Result<std::path::PathBuf> {
    let name = dir.file_name().ok_or_else(|| std::io::Error::other("bundle directory has no name"))?;
    let mut archive = name.to_os_string();
    archive.push(".tar.gz");
    let archive = dir.with_file_name(archive);
    let mut tmp_name = archive.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = archive.with_file_name(tmp_name);
    {
        let f = std::fs::File::create(&tmp)?;
        let gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        tar.follow_symlinks(false);
        tar.append_dir_all(name, dir)?;
        let f = tar.into_inner()?.finish()?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &archive)?;
    std::fs::remove_dir_all(dir)?;
    Ok(archive)
}

/// Copy the bundle archive `from` to the archive `to` (which must end in `.tar.gz`), its top-level folder
/// renamed after `to` and its replay command naming `to`. Atomic: `to` appears complete or not at all.
pub fn repack(from: &Path, to: &Path) -> anyhow::Result<PathBuf> {
    use anyhow::Context;
    let name = to.file_name().context("the bundle path has no file name")?.to_string_lossy().into_owned();
    let stem = name.strip_suffix(".tar.gz").context("a bundle archive ends in .tar.gz")?;
    let parent = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let opened = open(from)?;
    let staging = tempfile::Builder::new().prefix(".dbtorture-bundle-").tempdir_in(parent)?;
    let dir = staging.path().join(stem);
    copy_dir(&opened.dir, &dir)?;
    let json = dir.join("bundle.json");
    let mut info: BundleInfo = serde_json::from_str(&std::fs::read_to_string(&json)?).context("bundle.json")?;
    info.replay = format!("dbtorture replay {}", to.display());
    dbtorture_reports::write_json_atomic(&json, &info)?;
    let archive = pack(&dir)?;
    std::fs::rename(&archive, to).with_context(|| format!("writing {}", to.display()))?;
    Ok(to.to_path_buf())
}

/// A bundle ready to read: a directory, or an archive unpacked into a temporary directory.
pub struct Opened {
    pub dir: std::path::PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

/// Open a bundle given as a directory or as a `.tar.gz` archive written by [`pack`].
pub fn open(path: &Path) -> anyhow::Result<Opened> {
    use anyhow::Context;
    if path.is_dir() {
        return Ok(Opened { dir: path.to_path_buf(), _tmp: None });
    }
    let tmp = crate::leftovers::scratch("bundle")?;
    crate::unpack::unpack(path, tmp.path(), crate::unpack::LIMITS)?;
    // The archive holds one folder; find the one with bundle.json.
    let dir = std::fs::read_dir(tmp.path())?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.join("bundle.json").exists())
        .with_context(|| format!("{}: the archive holds no bundle.json", path.display()))?;
    Ok(Opened { dir, _tmp: Some(tmp) })
}

/// Move a directory; across filesystems (the out directory on a tmpfs, the work directory on disk: rename
/// says EXDEV) copy it and remove the original.
pub fn move_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            copy_dir(from, to)?;
            std::fs::remove_dir_all(from)
        }
        other => other,
    }
}

/// Where a failing cycle's database states are: the copy taken when the cycle started, the copy taken
/// before recovery (if one was), and the live directory (the state to take when there is no `post`).
pub struct Sides {
    pub pre: PathBuf,
    pub post: PathBuf,
    pub live: PathBuf,
}

/// Write the bundle of a failing cycle into `root`: pre/ and post/ (moved from `sides`), inspect.json for a
/// BDB-style environment, bundle.json (with the replay command filled in) and the README; packed into
/// `cycle-NNNNN-BACKEND.tar.gz`. Returns the archive's path.
pub fn write(
    root: &Path,
    mut info: BundleInfo,
    sides: &Sides,
    profile: Option<dbtorture_backends::bdbenv::Profile>,
) -> anyhow::Result<PathBuf> {
    use anyhow::Context;
    let dir = root.join(format!("cycle-{:05}-{}", info.cycle, info.backend));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(dir.with_extension("tar.gz"));
    std::fs::create_dir_all(&dir)?;
    move_dir(&sides.pre, &dir.join("pre")).context("moving pre/")?;
    if sides.post.exists() {
        move_dir(&sides.post, &dir.join("post")).context("moving post/")?;
    } else {
        copy_dir(&sides.live, &dir.join("post"))?;
    }
    if let Some(profile) = profile
        && let Ok(i) = dbtorture_backends::bdbenv::inspect::inspect(&dir.join("post"), profile)
    {
        std::fs::write(dir.join("inspect.json"), serde_json::to_vec_pretty(&i)?)?;
    }
    // The bundles directory as the run was given it: the command works from where the run was started.
    info.replay = format!("dbtorture replay {}.tar.gz", dir.display());
    info.written_on = Some(Machine::this());
    dbtorture_reports::write_json_atomic(&dir.join("bundle.json"), &info)?;
    std::fs::write(dir.join("README.txt"), README)?;
    Ok(pack(&dir)?)
}
