//! Replaying a bundle: re-run its cycle from `pre/` with the same seed, plan and kill points, and say
//! whether the verdict is the same.
//!
//! Why separate from `bundle.rs`: replaying drives the scheduler, which writes bundles; keeping the format
//! in one module and its replay in another keeps the two from importing each other.

use crate::bundle::{BUNDLE_SCHEMA, BundleInfo, open};
use dbtorture_reports::{KillRecord, KillTrigger, Outcome};
use std::path::Path;

/// What a replay found.
pub struct Replayed {
    pub recorded: Outcome,
    pub replayed: Outcome,
    pub findings: Vec<crate::finding::Finding>,
    pub info: BundleInfo,
    /// How the random-time kills were placed in the replay that counted: for each, "at P#n" or "after P#n".
    pub placement: Vec<String>,
    /// The kills of that replay (with their placement: `true` = after the point).
    pub kills: Vec<(KillRecord, bool)>,
    /// Whether that replay left the recorded schedule (None: the bundle has none).
    pub diverged: Option<bool>,
    /// Which run of the cycle that was (1: the first).
    pub tries: u32,
}

struct Quiet;

impl crate::scheduler::Observer for Quiet {
    fn event(&mut self, e: &dbtorture_reports::RunEvent) {
        if std::env::var_os("DBTORTURE_REPLAY_EVENTS").is_some() {
            eprintln!("{}", serde_json::to_string(e).unwrap_or_default());
        }
    }
}

/// Check that `bundle` can be replayed at all (an archive or directory with a bundle.json of this schema,
/// a scenario that loads, a backend in it, a planted bug this build knows) — bad input, before running.
pub fn check(bundle: &Path) -> anyhow::Result<BundleInfo> {
    use anyhow::Context;
    let opened = open(bundle)?;
    let dir = opened.dir.as_path();
    let text = std::fs::read_to_string(dir.join("bundle.json"))
        .with_context(|| format!("{}: not a bundle (no bundle.json)", dir.display()))?;
    let info: BundleInfo = serde_json::from_str(&text).context("bundle.json")?;
    anyhow::ensure!(
        (1..=BUNDLE_SCHEMA).contains(&info.schema),
        "bundle schema {} is not one this dbtorture reads (1..={BUNDLE_SCHEMA})",
        info.schema
    );
    let sc = crate::scenario::Scenario::parse(&info.scenario_text, Path::new(&info.scenario_path))?;
    anyhow::ensure!(
        info.target < sc.backends.len(),
        "bundle.json: target {} is not a backend of its scenario",
        info.target
    );
    if let Some(kind) = dbtorture_backends::BackendKind::from_name(&info.backend) {
        crate::bundle::check_machine(&info, kind)?;
    }
    if let Some(p) = &info.planted {
        anyhow::ensure!(
            dbtorture_backends::planted::ALL.iter().any(|b| b.name == p),
            "bundle.json: planted bug {p:?} is not one this build knows"
        );
    }
    anyhow::ensure!(dir.join("pre").is_dir(), "{}: the bundle has no pre/ directory", dir.display());
    let pool = u64::from(sc.workload.packages) * u64::from(sc.workload.versions);
    crate::unpack::check_installed(&info.installed_before, usize::try_from(pool).unwrap_or(usize::MAX))?;
    Ok(info)
}

/// How many times replay runs each kill placement before it gives up on reaching the recorded verdict.
pub const REPLAY_ROUNDS: u32 = 3;

/// Re-run a bundle's cycle from its `pre/` copy with the same seed, plan and kill points.
///
/// A kill at a crash point is replayed exactly. A random-time kill landed somewhere after the last point it
/// passed (P, hit n) and before the next one; the replay stops the worker either at P#n or at the first point
/// after it, and tries those placements (at most 16 combinations, each up to [`REPLAY_ROUNDS`] times) until
/// one reaches the recorded verdict.
pub fn replay(bundle: &Path) -> anyhow::Result<Replayed> {
    use anyhow::Context;
    let opened = open(bundle)?;
    let bundle = opened.dir.as_path();
    let text = std::fs::read_to_string(bundle.join("bundle.json"))
        .with_context(|| format!("{}: not a bundle (no bundle.json)", bundle.display()))?;
    let info: BundleInfo = serde_json::from_str(&text).context("bundle.json")?;
    anyhow::ensure!(
        (1..=BUNDLE_SCHEMA).contains(&info.schema),
        "bundle schema {} is not one this dbtorture reads (1..={BUNDLE_SCHEMA})",
        info.schema
    );
    if let Some(p) = &info.planted {
        anyhow::ensure!(dbtorture_backends::planted::force(p), "this process already runs another planted bug");
    }
    let sc = crate::scenario::Scenario::parse(&info.scenario_text, Path::new(&info.scenario_path))?;
    if bundle.join("power-loss.json").exists() {
        let v = crate::scheduler::powercut::replay_bundle(bundle, &info, &sc)?;
        return Ok(Replayed {
            recorded: info.outcome,
            replayed: v.outcome,
            findings: v.findings,
            info,
            placement: vec![format!("crash image rebuilt byte for byte (cut after operation {})", v.cut.at)],
            kills: Vec::new(),
            diverged: None,
            tries: 1,
        });
    }
    let timed: Vec<usize> = info
        .kills
        .iter()
        .enumerate()
        .filter(|(_, k)| !matches!(k.trigger, KillTrigger::Point | KillTrigger::IoOp { .. }) && k.last_point.is_some())
        .map(|(i, _)| i)
        .take(4)
        .collect();
    let mut last = None;
    // Workers run concurrently, so one run of the cycle may interleave differently from the recorded one:
    // every placement is tried up to REPLAY_ROUNDS times before replay calls the verdict different.
    let masks = (0..REPLAY_ROUNDS).flat_map(|_| 0..(1u32 << timed.len()));
    for (tries, mask) in (1..).zip(masks) {
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
        let (outcome, findings, diverged, again) =
            replay_cycle(Some(&bundle.join("pre")), &info, &sc, kills.clone(), None)?;
        let mut placement: Vec<String> = kills
            .iter()
            .filter(|(k, _)| !matches!(k.trigger, KillTrigger::Point | KillTrigger::IoOp { .. }))
            .filter_map(|(k, after)| {
                let p = k.last_point.as_deref()?;
                Some(format!("w{}: {} {p}#{}", k.worker, if *after { "after" } else { "at" }, k.last_hit.unwrap_or(0)))
            })
            .collect();
        // I/O kill points are replayed exactly: say whether the replay's kill landed on the same operation.
        for k in info.kills.iter().filter(|k| matches!(k.trigger, KillTrigger::IoOp { .. })) {
            let hit = again.iter().any(|r| r.worker == k.worker && r.trigger == k.trigger);
            placement.push(format!("w{}: at {} ({})", k.worker, k.trigger, if hit { "hit again" } else { "NOT hit" }));
        }
        let done = outcome == info.outcome;
        last = Some(Replayed {
            recorded: info.outcome,
            replayed: outcome,
            findings,
            info: info.clone(),
            placement,
            kills,
            diverged,
            tries,
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
) -> anyhow::Result<(Outcome, Vec<crate::finding::Finding>)> {
    let (o, f, _, _) = replay_cycle(pre, info, sc, kills, bundles)?;
    Ok((o, f))
}

/// A replayed cycle: its outcome, findings, whether it left the recorded schedule, and its kills.
type CycleRun = (Outcome, Vec<crate::finding::Finding>, Option<bool>, Vec<KillRecord>);

/// [`replay_once`], also saying whether the replay left the bundle's recorded schedule.
fn replay_cycle(
    pre: Option<&Path>,
    info: &BundleInfo,
    sc: &crate::scenario::Scenario,
    kills: Vec<(KillRecord, bool)>,
    bundles: Option<&Path>,
) -> anyhow::Result<CycleRun> {
    let tmp = crate::leftovers::scratch("replay")?;
    let mut sched = match pre {
        Some(pre) => {
            let mut sched = crate::scheduler::Scheduler::unprepared(sc, info.seed, tmp.path())?;
            crate::unpack::check_installed(&info.installed_before, sched.pool.packages.len())?;
            for (i, kind) in sc.backend_kinds().into_iter().enumerate() {
                let mine = i == info.target;
                let installed = if mine { info.installed_before.iter().copied().collect() } else { Default::default() };
                // The copy is the database of the cycle's epoch: no fresh start.
                sched.restore_target(i, kind, mine.then_some(pre), installed, info.cycle / sc.epoch)?;
            }
            sched
        }
        None => crate::scheduler::Scheduler::new(sc, info.seed, tmp.path())?,
    };
    anyhow::ensure!(info.target < sched.targets.len(), "the bundle's backend is not in its scenario");
    // What earlier cycles of the run left unrecovered explains findings of this one as much as its own faults
    // — when the cycle starts from the bundle's pre/; a fresh database (shrink) inherited nothing.
    if pre.is_some() {
        sched.targets[info.target].carried = info.carried.clone();
        sched.targets[info.target].uncertain = info.uncertain.iter().copied().collect();
    }
    sched.replay_kills = Some(kills);
    // Follow the recorded interleaving (bundles written before schedules were recorded have none).
    sched.replay_schedule = (!info.schedule.is_empty()).then(|| info.schedule.clone());
    sched.bundles = bundles.map(Path::to_path_buf);
    // A replay that writes a bundle writes it for any finding: the caller (shrink) wants the evidence even
    // where the scenario allows the outcome.
    sched.bundle_policy = crate::scenario::BundlePolicy::Findings;
    let res = sched.cycle(info.target, info.cycle, &mut Quiet)?;
    Ok((res.outcome, res.findings, res.diverged, res.kills))
}
