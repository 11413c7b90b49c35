//! One recorded cycle, end to end: read `pre`, mount the recorder before the workers start, unmount after
//! they end, then judge the cycle's crash images; a failing image becomes a bundle that `replay` rebuilds
//! exactly. The scheduler calls [`Recording::start`], [`Recording::finish`] and [`judge_cycle`]; the rest is
//! here.

use crate::fault::powerloss::judge::{self, Recorded, Verdict};
use crate::fault::powerloss::model::{self, Choices, Cut};
use crate::fault::powerloss::oplog::{Log, Op};
use crate::fault::powerloss::recorder::{Recorder, RecorderError};
use crate::fault::powerloss::swapjudge::{self, Swap};
use crate::finding::{Class as FindingClass, Finding, HarnessFinding};
use crate::oracle::{TxnState, WriterLog};
use crate::scenario::PowerLoss;
use crate::workload::{Pool, Txn};
use anyhow::Context;
use dbtorture_backends::BackendKind;
use dbtorture_reports::{FaultKind, ImageTally, Outcome, RunEvent};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A recorder mounted over a target's directory for one cycle.
pub struct Recording {
    rec: Recorder,
    pre: BTreeMap<String, Vec<u8>>,
    /// Reading `pre` and mounting.
    pub setup: Duration,
}

/// Every regular file under `dir` by relative path.
pub fn read_tree(dir: &Path) -> std::io::Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(dir.join(&rel))? {
            let e = e?;
            let p = rel.join(e.file_name());
            if e.file_type()?.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.to_string_lossy().into_owned(), std::fs::read(e.path())?);
            }
        }
    }
    Ok(out)
}

impl Recording {
    /// Mount a recorder over `dir`; `side` is a directory of the harness's own for the log.
    pub fn start(dir: &Path, side: &Path) -> Result<Recording, anyhow::Error> {
        let t0 = Instant::now();
        std::fs::create_dir_all(side)?;
        let pre = read_tree(dir).with_context(|| format!("reading {} before recording", dir.display()))?;
        let rec = Recorder::start(dir, &side.join("oplog.bin"))?;
        Ok(Recording { rec, pre, setup: t0.elapsed() })
    }

    /// The recording's I/O kill points and errors.
    pub fn gate(&self) -> crate::fault::powerloss::iogate::GateHandle<'_> {
        self.rec.gate()
    }

    /// Unmount; the directory is back in place with what the cycle left.
    pub fn finish(self) -> Result<(BTreeMap<String, Vec<u8>>, Log), RecorderError> {
        let log = self.rec.stop()?;
        Ok((self.pre, log))
    }
}

/// Where the recorder mounts for a cycle doing `work` on `dir`: the directory itself, or for a rebuild its
/// parent (its own directory, `targets::target_dir`), so the swap's renames and directory fsyncs are seen.
pub fn mount_point(dir: &Path, work: &super::plan::Work) -> PathBuf {
    match (work, dir.parent()) {
        (super::plan::Work::Convert { .. }, Some(p)) => p.to_path_buf(),
        _ => dir.to_path_buf(),
    }
}

/// A rebuild cycle's [`Swap`]: the database's name under the mount point, and where the rebuild returned.
pub fn swap_of(dir: &Path, work: &super::plan::Work, acks: &BTreeMap<(u32, u64), u64>) -> Option<Swap> {
    match work {
        super::plan::Work::Convert { from, to, .. } => Some(Swap {
            name: dir.file_name()?.to_string_lossy().into_owned(),
            from: *from,
            to: *to,
            acked: acks.values().next().copied(),
        }),
        super::plan::Work::Workers { .. } => None,
    }
}

/// What a cycle's images came to.
#[derive(Debug, Default)]
pub struct Summary {
    pub by_outcome: BTreeMap<Outcome, usize>,
    /// Images whose outcome the scenario does not allow (the first few).
    pub failing: Vec<Verdict>,
    pub failing_total: usize,
    /// Images by what they lost or left (the summary adds these up per backend).
    pub tally: ImageTally,
    pub ops: usize,
    pub elapsed: Duration,
    /// CPU time (user + system, this process and its reaped children) spent judging.
    pub cpu: Duration,
    /// Images whose bytes an earlier image of the cycle had (the verifier's verdict reused).
    pub same_bytes: usize,
}

/// User + system CPU time of this process and of the children it has reaped so far.
fn cpu_now() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    let t = |who| {
        getrusage(who).map_or(Duration::ZERO, |u| {
            let tv = |v: nix::sys::time::TimeVal| Duration::new(v.tv_sec() as u64, v.tv_usec() as u32 * 1000);
            tv(u.user_time()) + tv(u.system_time())
        })
    };
    t(UsageWho::RUSAGE_SELF) + t(UsageWho::RUSAGE_CHILDREN)
}

impl Summary {
    pub fn describe(&self) -> String {
        let counts: Vec<String> = self.by_outcome.iter().map(|(o, n)| format!("{o} {n}")).collect();
        let t = &self.tally;
        format!(
            "{} crash images of {} recorded operations judged in {} ms ({:.0}/s; {} the same bytes as an earlier \
             one): {}; unopenable {}, rebuilddb made {} of {} damaged verify clean; {} not allowed",
            t.images,
            self.ops,
            self.elapsed.as_millis(),
            t.images as f64 / self.elapsed.as_secs_f64().max(1e-9),
            self.same_bytes,
            counts.join(", "),
            t.unopenable,
            t.mended,
            t.damaged,
            self.failing_total
        )
    }
}

/// What one image counts for in the tally.
fn tally_of(v: &Verdict) -> ImageTally {
    let has = |c: FindingClass| v.findings.iter().any(|f| f.class() == c);
    ImageTally {
        images: 1,
        lost_commit: u64::from(has(FindingClass::LostCommit)),
        inconsistent: u64::from(has(FindingClass::Inconsistent)),
        corrupt: u64::from(has(FindingClass::Corrupt)),
        unopenable: u64::from(
            v.findings.iter().any(|f| matches!(f, Finding::Db(dbtorture_backends::rpmdb::Finding::Unopenable { .. }))),
        ),
        damaged: u64::from(v.recovered.is_some()),
        mended: u64::from(v.recovered == Some(true)),
    }
}

/// Judge the cycle's images: every sync boundary plus `cfg.images_random` seeded cuts, at most
/// `cfg.images_max`. Images in `scratch`. `swap`: the cycle was a rebuild, judged by its promise
/// (`swapjudge`) instead of the writers'.
pub fn judge_cycle(
    rec: &Recorded,
    swap: Option<&Swap>,
    pool: &Pool,
    cfg: &PowerLoss,
    seed: u64,
    expected: &[Outcome],
    scratch: &Path,
) -> Result<Summary, anyhow::Error> {
    let (t0, cpu0) = (Instant::now(), cpu_now());
    let cuts = model::plan(&rec.log, seed, cfg.images_random as usize, cfg.images_max as usize);
    let mut s = Summary { ops: rec.log.ops.len(), ..Summary::default() };
    // Images are written and thrown away hundreds of times a cycle: in memory when there is room for one per
    // judging thread (a container's /dev/shm may be 64 MiB), else — and if writing there fails — on disk.
    let image_bytes: u64 = rec.pre.values().map(|b| b.len() as u64).sum::<u64>()
        + rec.log.ops.iter().map(|o| if let Op::Write { data, .. } = o { data.len() as u64 } else { 0 }).sum::<u64>();
    // fsblkcnt_t and c_ulong are 32 bits on the armel guest.
    #[allow(clippy::unnecessary_cast)]
    let room = |dir: &Path| {
        nix::sys::statvfs::statvfs(dir).map_or(0, |v| v.blocks_available() as u64 * v.fragment_size() as u64)
    };
    let mem =
        crate::leftovers::scratch_in_memory("images").ok().filter(|m| room(m.path()) > 4 * image_bytes + (64 << 20));
    let judge_all = |dir: &Path| match swap {
        Some(sw) => swapjudge::judge_all(rec, sw, pool, &cuts, dir),
        None => judge::judge_all(rec, pool, &cuts, dir),
    };
    let (verdicts, same_bytes) = match &mem {
        Some(m) => judge_all(&m.path().join("image")).or_else(|_| judge_all(scratch))?,
        None => judge_all(scratch)?,
    };
    drop(mem);
    s.same_bytes = same_bytes;
    for v in verdicts {
        *s.by_outcome.entry(v.outcome).or_default() += 1;
        s.tally.add(&tally_of(&v));
        if !expected.contains(&v.outcome) {
            s.failing_total += 1;
            if s.failing.len() < 3 {
                s.failing.push(v);
            }
        }
    }
    let _ = std::fs::remove_dir_all(scratch);
    s.elapsed = t0.elapsed();
    s.cpu = cpu_now().saturating_sub(cpu0);
    Ok(s)
}

/// `power-loss.json` of a bundle: with `pre/` and `oplog.bin` (the log up to the cut), everything `replay`
/// needs to rebuild the image byte for byte and judge it again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageBundle {
    pub backend: BackendKind,
    pub cut: Cut,
    pub choices: Choices,
    pub outcome: Outcome,
    /// Per writer: (txn, encoded body, acknowledged at recorder count).
    pub writers: Vec<Vec<(u64, String, Option<u64>)>>,
    pub installed_before: Vec<u32>,
    /// A rebuild's image: judged by the rebuild's promise, not the writers' (there are none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<Swap>,
    /// SHA-256 of every file of the image, to prove a replay rebuilt the same bytes.
    pub image_sha256: BTreeMap<String, String>,
}

fn sha(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

/// Write the bundle of a failing image into `dir` (created): pre/, oplog.bin, image/, power-loss.json.
pub fn write_bundle(rec: &Recorded, swap: Option<&Swap>, v: &Verdict, dir: &Path) -> Result<(), anyhow::Error> {
    std::fs::create_dir_all(dir)?;
    let img = model::image(&rec.pre, &rec.log, v.cut)?;
    let pre = model::Image {
        files: rec.pre.clone(),
        dirs: rec.log.pre.iter().filter(|(_, (_, d))| *d).map(|(p, _)| p.clone()).collect(),
        inos: BTreeMap::new(),
        choices: Choices::default(),
    };
    judge::materialize(&pre, &dir.join("pre"))?;
    judge::materialize(&img, &dir.join("image"))?;
    let upto = Log { pre: rec.log.pre.clone(), ops: rec.log.ops[..v.cut.at as usize].to_vec() };
    std::fs::write(dir.join("oplog.bin"), upto.encode())?;
    let writers = rec
        .writers
        .iter()
        .enumerate()
        .map(|(w, l)| {
            l.txns.iter().map(|(t, body, _)| (*t, body.encode(), rec.acks.get(&(w as u32, *t)).copied())).collect()
        })
        .collect();
    let b = ImageBundle {
        backend: rec.kind,
        cut: v.cut,
        choices: v.choices.clone(),
        outcome: v.outcome,
        writers,
        installed_before: rec.before.iter().copied().collect(),
        swap: swap.cloned(),
        image_sha256: img.files.iter().map(|(p, b)| (p.clone(), sha(b))).collect(),
    };
    std::fs::write(dir.join("power-loss.json"), serde_json::to_vec_pretty(&b)?)?;
    Ok(())
}

/// Rebuild a bundle's image from pre/ + oplog.bin + the cut, check it is byte for byte the recorded one,
/// and judge it again. Returns (same bytes, verdict).
pub fn replay(dir: &Path, pool: &Pool) -> Result<(bool, Verdict), anyhow::Error> {
    let b: ImageBundle =
        serde_json::from_slice(&std::fs::read(dir.join("power-loss.json"))?).context("power-loss.json")?;
    let log = Log::decode(&std::fs::read(dir.join("oplog.bin"))?)?;
    let pre = read_tree(&dir.join("pre"))?;
    let mut writers = Vec::new();
    let mut acks = BTreeMap::new();
    for (w, txns) in b.writers.iter().enumerate() {
        let mut l = WriterLog::default();
        for (t, body, ack) in txns {
            let body = Txn::decode(body).with_context(|| format!("power-loss.json: transaction {t}"))?;
            l.txns.push((*t, body, TxnState::Committed));
            if let Some(a) = ack {
                acks.insert((w as u32, *t), *a);
            }
        }
        writers.push(l);
    }
    let rec = Recorded {
        kind: b.backend,
        pre,
        log,
        writers,
        acks,
        before: b.installed_before.iter().copied().collect::<BTreeSet<u32>>(),
    };
    let img = model::image(&rec.pre, &rec.log, b.cut)?;
    let same = img.files.iter().map(|(p, x)| (p.clone(), sha(x))).collect::<BTreeMap<_, _>>() == b.image_sha256;
    let scratch = crate::leftovers::scratch("image")?;
    let v = match &b.swap {
        Some(sw) => swapjudge::judge_all(&rec, sw, pool, &[b.cut], &scratch.path().join("image"))?.0.remove(0),
        None => judge::judge(&rec, pool, b.cut, &scratch.path().join("image"))?,
    };
    Ok((same, v))
}

/// What the scheduler hands over after a recorded cycle.
pub struct CycleCtx<'a> {
    pub scenario: &'a crate::scenario::Scenario,
    pub run_seed: u64,
    pub cycle: u64,
    pub cycle_seed: u64,
    pub target: usize,
    pub kind: BackendKind,
    pub pool: &'a Pool,
    pub scratch: PathBuf,
    pub bundles: Option<&'a Path>,
    /// A rebuild/conversion cycle (recorded over the database's parent directory).
    pub swap: Option<Swap>,
}

/// The images' verdict on a recorded cycle, for the scheduler to merge into the cycle's.
pub struct CycleVerdict {
    /// The most severe image outcome the scenario does not allow, if any.
    pub outcome: Option<Outcome>,
    pub findings: Vec<crate::finding::Finding>,
}

/// Judge a recorded cycle's images, report them as events, bundle the first failing one.
#[allow(clippy::too_many_arguments)]
pub fn after_cycle(
    cc: CycleCtx<'_>,
    pre: BTreeMap<String, Vec<u8>>,
    log: Log,
    writers: &[WriterLog],
    acks: &BTreeMap<(u32, u64), u64>,
    before: &BTreeSet<u32>,
    ctx: &mut super::events::Ctx<'_>,
) -> Result<CycleVerdict, anyhow::Error> {
    let cfg = cc.scenario.power_loss.clone().unwrap_or_default();
    let rec =
        Recorded { kind: cc.kind, pre, log, writers: writers.to_vec(), acks: acks.clone(), before: before.clone() };
    let expected = cc.scenario.expected(cc.kind);
    let seed = super::derive_seed(cc.cycle_seed, 0x9017_0055, 0);
    let s = judge_cycle(&rec, cc.swap.as_ref(), cc.pool, &cfg, seed, &expected, &cc.scratch)?;
    ctx.fault(FaultKind::PowerLoss, s.describe());
    let ev = RunEvent::CrashImages {
        cycle: cc.cycle,
        backend: cc.kind.name().into(),
        tally: s.tally.clone(),
        elapsed_ms: s.elapsed.as_secs_f64() * 1000.0,
        cpu_ms: s.cpu.as_secs_f64() * 1000.0,
    };
    ctx.emit(&ev);
    let mut out = CycleVerdict { outcome: None, findings: Vec::new() };
    for (i, v) in s.failing.iter().enumerate() {
        let detail = format!(
            "image cut after operation {} of {} (keep {}‰, torn {}, {} acknowledged commits before it): {}; {}; \
             {}",
            v.cut.at,
            s.ops,
            v.cut.keep_per_mille,
            v.cut.torn,
            v.acked,
            v.outcome,
            v.findings.iter().take(3).map(|f| f.to_string()).collect::<Vec<_>>().join("; "),
            match v.recovered {
                Some(true) => "after rebuilddb the database verifies clean (what was lost stays lost)",
                Some(false) => "still damaged after rebuilddb",
                None => "no recovery needed",
            }
        );
        ctx.fault(FaultKind::PowerLossImage, detail);
        if out.outcome.is_none_or(|o| v.outcome.severity() > o.severity()) {
            out.outcome = Some(v.outcome);
        }
        if i == 0 {
            // The first failing image's findings are the cycle's: as events (selftest reads them) and in
            // the verdict.
            for f in &v.findings {
                ctx.finding("power-loss", f);
            }
            out.findings.extend(v.findings.iter().cloned());
            if let Some(root) = cc.bundles {
                match bundle_image(&cc, &rec, v, root) {
                    Ok(path) => ctx.bundle(
                        Path::new(root.file_name().unwrap_or_default())
                            .join(path.file_name().unwrap_or_default())
                            .display()
                            .to_string(),
                    ),
                    Err(e) => ctx.finding(
                        "bundle",
                        &Finding::from(HarnessFinding::HarnessFault {
                            detail: format!("could not write the crash image's bundle: {e:#}"),
                        }),
                    ),
                }
            }
        }
    }
    Ok(out)
}

fn bundle_image(ctx: &CycleCtx<'_>, rec: &Recorded, v: &Verdict, root: &Path) -> Result<PathBuf, anyhow::Error> {
    let dir = root.join(format!("cycle-{:05}-{}-image-{}", ctx.cycle, ctx.kind.name(), v.cut.at));
    let _ = std::fs::remove_dir_all(&dir);
    write_bundle(rec, ctx.swap.as_ref(), v, &dir)?;
    let sc = ctx.scenario;
    let info = crate::bundle::BundleInfo {
        schema: crate::bundle::BUNDLE_SCHEMA,
        scenario_path: sc.source.display().to_string(),
        scenario_text: std::fs::read_to_string(&sc.source).unwrap_or_default(),
        seed: ctx.run_seed,
        cycle: ctx.cycle,
        backend: ctx.kind.name().into(),
        target: ctx.target,
        installed_before: rec.before.iter().copied().collect(),
        plan: format!("power cut after operation {} (keep {}‰, torn {})", v.cut.at, v.cut.keep_per_mille, v.cut.torn),
        kills: Vec::new(),
        outcome: v.outcome,
        findings: v.findings.iter().map(super::events::record).collect(),
        planted: dbtorture_backends::planted::current(),
        replay: format!("dbtorture replay {}.tar.gz", dir.file_name().unwrap_or_default().to_string_lossy()),
        schedule: Vec::new(),
        written_on: Some(crate::bundle::Machine::this()),
        carried: Vec::new(),
        uncertain: Default::default(),
    };
    dbtorture_reports::write_json_atomic(&dir.join("bundle.json"), &info)?;
    std::fs::write(dir.join("README.txt"), README)?;
    Ok(crate::bundle::pack(&dir)?)
}

pub const README: &str = "This is a dbtorture power-loss bundle: one crash image that failed its engine's promise.

  bundle.json      scenario (full text), seed, cycle, backend, outcome, findings, the replay command
  power-loss.json  the cut (where the power went out, the model's seed and knobs), the model's choices, what
                   each writer had acknowledged and at which recorded operation, SHA-256 of the image's files
  pre/             the database directory when the recorder was mounted
  oplog.bin        every recorded file operation up to the cut (see harness/src/fault/powerloss/oplog.rs)
  image/           the disk after the power cut, before the reboot and any recovery

`dbtorture replay` on this bundle rebuilds image/ from pre/ + oplog.bin + the cut, checks the bytes are the
same, and judges it again. `dbtorture verify --backend BACKEND image` looks at it by hand.
";

/// `dbtorture replay` of a power-loss bundle: rebuild the image, check its bytes, judge it again. Returns the
/// verdict on the rebuilt image (`replay.rs` turns it into its report; this module does not import it).
pub fn replay_bundle(
    dir: &Path,
    info: &crate::bundle::BundleInfo,
    sc: &crate::scenario::Scenario,
) -> Result<Verdict, anyhow::Error> {
    let w = &sc.workload;
    let pool = Pool::build(crate::workload::PoolSpec {
        names: w.packages,
        versions: w.versions,
        files_mean: w.files_mean,
        seed: info.seed,
    })
    .context("building the package pool")?;
    let (same, v) = replay(dir, &pool)?;
    anyhow::ensure!(same, "the rebuilt crash image differs from the bundle's image/ (model or log changed?)");
    Ok(v)
}
