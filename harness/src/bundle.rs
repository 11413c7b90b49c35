//! Forensic bundles of failing cycles, and their replay.
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
use std::path::Path;

pub const BUNDLE_SCHEMA: u32 = 1;

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
    let f = std::fs::File::open(path).with_context(|| format!("{}: no such bundle", path.display()))?;
    let tmp = tempfile::Builder::new().prefix("dbtorture-bundle-").tempdir()?;
    tar::Archive::new(flate2::read::GzDecoder::new(f))
        .unpack(tmp.path())
        .with_context(|| format!("{}: not a bundle archive (.tar.gz)", path.display()))?;
    // The archive holds one folder; find the one with bundle.json.
    let dir = std::fs::read_dir(tmp.path())?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.join("bundle.json").exists())
        .with_context(|| format!("{}: the archive holds no bundle.json", path.display()))?;
    Ok(Opened { dir, _tmp: Some(tmp) })
}

/// What a replay found.
pub struct Replayed {
    pub recorded: Outcome,
    pub replayed: Outcome,
    pub findings: Vec<dbtorture_backends::rpmdb::Finding>,
    pub info: BundleInfo,
    /// How the random-time kills were placed in the replay that counted: for each, "at P#n" or "after P#n".
    pub placement: Vec<String>,
    /// The kills of that replay (with their placement: `true` = after the point).
    pub kills: Vec<(KillRecord, bool)>,
}

struct Quiet;

impl crate::scheduler::Observer for Quiet {
    fn event(&mut self, e: &dbtorture_reports::RunEvent) {
        if std::env::var_os("DBTORTURE_REPLAY_EVENTS").is_some() {
            eprintln!("{}", serde_json::to_string(e).unwrap_or_default());
        }
    }
}

/// Re-run a bundle's cycle from its `pre/` copy with the same seed, plan and kill points.
///
/// A kill at a crash point is replayed exactly. A random-time kill landed somewhere after the last point it
/// passed (P, hit n) and before the next one; the replay stops the worker either at P#n or at the first point
/// after it, and tries those placements (at most 16 combinations) until one reaches the recorded verdict.
pub fn replay(bundle: &Path) -> anyhow::Result<Replayed> {
    use anyhow::Context;
    let opened = open(bundle)?;
    let bundle = opened.dir.as_path();
    let text = std::fs::read_to_string(bundle.join("bundle.json"))
        .with_context(|| format!("{}: not a bundle (no bundle.json)", bundle.display()))?;
    let info: BundleInfo = serde_json::from_str(&text).context("bundle.json")?;
    anyhow::ensure!(info.schema == BUNDLE_SCHEMA, "bundle schema {} is not {}", info.schema, BUNDLE_SCHEMA);
    if let Some(p) = &info.planted {
        anyhow::ensure!(dbtorture_backends::planted::force(p), "this process already runs another planted bug");
    }
    let sc = crate::scenario::Scenario::parse(&info.scenario_text, Path::new(&info.scenario_path))?;
    let timed: Vec<usize> = info
        .kills
        .iter()
        .enumerate()
        .filter(|(_, k)| k.trigger != "point" && k.last_point.is_some())
        .map(|(i, _)| i)
        .take(4)
        .collect();
    let mut last = None;
    for mask in 0..(1u32 << timed.len()) {
        let kills: Vec<(KillRecord, bool)> = info
            .kills
            .iter()
            .enumerate()
            .map(|(i, k)| {
                // Bit set: at the point; clear: after it (the more likely place for a kill between points).
                let at = timed.iter().position(|&t| t == i).is_some_and(|b| mask & (1 << b) != 0);
                (k.clone(), !at)
            })
            .collect();
        let (outcome, findings) = replay_once(Some(&bundle.join("pre")), &info, &sc, kills.clone(), None)?;
        let placement = kills
            .iter()
            .filter(|(k, _)| k.trigger != "point")
            .filter_map(|(k, after)| {
                let p = k.last_point.as_deref()?;
                Some(format!("w{}: {} {p}#{}", k.worker, if *after { "after" } else { "at" }, k.last_hit.unwrap_or(0)))
            })
            .collect();
        let done = outcome == info.outcome;
        last = Some(Replayed {
            recorded: info.outcome,
            replayed: outcome,
            findings,
            info: info.clone(),
            placement,
            kills,
        });
        if done {
            break;
        }
    }
    Ok(last.expect("at least one replay"))
}

/// Run the bundle's cycle once: from `pre` (a copy of a database directory) or, with `None`, from a freshly
/// prepared database; kills placed as given. With `bundles`, a failing cycle writes its own bundle there.
pub fn replay_once(
    pre: Option<&Path>,
    info: &BundleInfo,
    sc: &crate::scenario::Scenario,
    kills: Vec<(KillRecord, bool)>,
    bundles: Option<&Path>,
) -> anyhow::Result<(Outcome, Vec<dbtorture_backends::rpmdb::Finding>)> {
    use anyhow::Context;
    let tmp = tempfile::Builder::new().prefix("dbtorture-replay-").tempdir()?;
    let mut sched = match pre {
        Some(pre) => {
            let mut sched = crate::scheduler::Scheduler::unprepared(sc, info.seed, tmp.path())?;
            for (i, kind) in sc.backend_kinds().into_iter().enumerate() {
                let dir = tmp.path().join(kind.name()).join("db");
                let mut installed = std::collections::BTreeSet::new();
                if i == info.target {
                    copy_dir(pre, &dir).context("copying pre/")?;
                    installed.extend(info.installed_before.iter().copied());
                }
                // The copy is the database of the cycle's epoch: no fresh start.
                sched.targets.push(crate::scheduler::Target {
                    kind,
                    dir,
                    installed,
                    epoch: info.cycle / sc.epoch,
                    slot: i,
                });
            }
            sched
        }
        None => crate::scheduler::Scheduler::new(sc, info.seed, tmp.path())?,
    };
    anyhow::ensure!(info.target < sched.targets.len(), "the bundle's backend is not in its scenario");
    sched.replay_kills = Some(kills);
    sched.bundles = bundles.map(Path::to_path_buf);
    let res = sched.cycle(info.target, info.cycle, &mut Quiet)?;
    Ok((res.outcome, res.findings))
}
