//! A cycle's plan, drawn before anything runs: which worker is killed when or armed where, the stale-page
//! fault's times or points, each worker's seed — and, for a replay, the recorded kills put in place of the
//! drawn ones.
//!
//! Why pure: same seed ⇒ same plan is the harness's determinism promise, and a plan is the thing a bundle
//! records and a replay re-creates. Drawing it here, from the cycle's RNG alone and without touching a
//! process or a file, makes that promise testable without forking (see the tests below).

use crate::fault::plan::{self, WorkerPlan};
use crate::fault::powerloss::iogate::IoArm;
use crate::scenario::IoAction;
use crate::scenario::{Scenario, StalePolicy};
use dbtorture_backends::BackendKind;
use dbtorture_reports::{KillRecord, KillTrigger};
use nix::sys::signal::Signal;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// What a cycle runs: writers and readers, or one conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    Workers { writers: u32, readers: u32 },
    Convert { from: BackendKind, to: BackendKind, by: crate::scenario::Converter },
}

/// The stale-page fault of one cycle, as drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StalePlan {
    pub file: String,
    pub policy: StalePolicy,
    /// Random policy: when to snapshot, and when to write the stale page back.
    pub snapshot_ms: Duration,
    pub restore_ms: Duration,
    /// Points policy: the paused writer and its two points (id, nth).
    pub worker: Option<usize>,
    pub snapshot_point: (u32, u32),
    pub restore_point: (u32, u32),
}

impl StalePlan {
    fn draw(rng: &mut ChaCha8Rng, sc: &Scenario, writers: u32) -> Option<StalePlan> {
        let sp = sc.stale_page.as_ref()?;
        if rng.random_range(0.0..1.0) >= sp.probability {
            return None;
        }
        let snapshot_ms = Duration::from_millis(rng.random_range(0..=sp.snapshot_ms_max));
        let restore_ms = snapshot_ms + Duration::from_millis(rng.random_range(0..=sp.restore_after_ms_max));
        let id = |p: &str| dbtorture_backends::crash::id_of(p).expect("validated when the scenario was loaded");
        let snapshot_point = (id(&sp.snapshot_at), rng.random_range(1..=sp.hit_max));
        let restore_point = (id(&sp.restore_at), rng.random_range(1..=sp.hit_max));
        let worker = match sp.policy {
            StalePolicy::Points if writers > 0 => Some(rng.random_range(0..writers) as usize),
            _ => None,
        };
        Some(StalePlan {
            file: sp.file.clone(),
            policy: sp.policy,
            snapshot_ms,
            restore_ms,
            worker,
            snapshot_point,
            restore_point,
        })
    }

    pub fn describe(&self) -> String {
        let name = |(id, nth): (u32, u32)| format!("{}#{nth}", dbtorture_backends::crash::ALL[id as usize]);
        match self.worker {
            Some(w) => format!(
                "stale {}: snapshot at w{w}:{}, restore at w{w}:{}",
                self.file,
                name(self.snapshot_point),
                name(self.restore_point)
            ),
            None => format!(
                "stale {}: snapshot @{}ms, restore @{}ms",
                self.file,
                self.snapshot_ms.as_millis(),
                self.restore_ms.as_millis()
            ),
        }
    }
}

/// One child's part of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildPlan {
    pub kill: WorkerPlan,
    /// The worker's own seed (its transactions or queries).
    pub seed: u64,
}

/// Everything a cycle will do, drawn from its seed.
#[derive(Debug, Clone)]
pub struct CyclePlan {
    pub work: Work,
    /// The cycle's seed (recorded in `cycle-start`).
    pub seed: u64,
    pub children: Vec<ChildPlan>,
    pub stale: Option<StalePlan>,
    /// The I/O kill point (or injected error) of `[io_kill]`, counted by the recorder.
    pub io: Option<IoArm>,
    /// The cycle's RNG after drawing the plan: the faults draw from it as they act.
    pub rng: ChaCha8Rng,
}

impl CyclePlan {
    /// Draw the plan of `cycle` of a target from its seed.
    pub fn draw(sc: &Scenario, kind: BackendKind, seed: u64, cycle: u64) -> CyclePlan {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let work = work_of(sc, kind);
        let points = points_for(work, kind);
        match work {
            Work::Convert { .. } => {
                let kill = plan::draw(&mut rng, &sc.kill, 1, 0, &points, cycle).remove(0);
                let io = sc.io_kill.as_ref().and_then(|c| IoArm::draw(c, cycle, &mut rng));
                CyclePlan { work, seed, children: vec![ChildPlan { kill, seed: 0 }], stale: None, io, rng }
            }
            Work::Workers { writers, readers } => {
                let mut kills = plan::draw(&mut rng, &sc.kill, writers, readers, &points, cycle);
                let stale = StalePlan::draw(&mut rng, sc, writers);
                if let Some(StalePlan { worker: Some(sw), .. }) = &stale {
                    // The paused writer's breadcrumb slot serves the stale-page points, not a crash-point kill.
                    kills[*sw].arm = None;
                }
                let children = kills.into_iter().map(|kill| ChildPlan { kill, seed: rng.random() }).collect();
                let io = sc.io_kill.as_ref().and_then(|c| IoArm::draw(c, cycle, &mut rng));
                CyclePlan { work, seed, children, stale, io, rng }
            }
        }
    }

    /// Replay: only the recorded kills happen, each at (or, `true`, just after) the crash point and hit it
    /// landed on; every other child runs to its end.
    pub fn replaying(&mut self, kills: &[(KillRecord, bool)]) {
        for c in &mut self.children {
            c.kill.kill_at = None;
            c.kill.arm = None;
            c.kill.arm_after = false;
        }
        // An I/O kill happens again only where one was recorded; an injected error stays (it is no kill).
        self.io = self.io.filter(|a| a.action != IoAction::Kill);
        for (k, after) in kills {
            if let KillTrigger::IoOp { op, nth } = k.trigger {
                self.io = Some(IoArm { op, nth, action: IoAction::Kill });
                continue;
            }
            let (Some(p), Some(hit), Some(c)) = (&k.last_point, k.last_hit, self.children.get_mut(k.worker as usize))
            else {
                continue;
            };
            if let Some(id) = dbtorture_backends::crash::id_of(p) {
                c.kill.arm = Some((id, hit as u32));
                c.kill.arm_after = *after && k.trigger != KillTrigger::Point;
            }
        }
    }

    /// Child `i`'s arming: the stale-page fault's snapshot point for its paused writer, else the kill plan's.
    pub fn arming(&self, i: usize) -> (Option<(u32, u32)>, bool) {
        match &self.stale {
            Some(st) if st.worker == Some(i) => (Some(st.snapshot_point), false),
            _ => (self.children[i].kill.arm, self.children[i].kill.arm_after),
        }
    }

    /// The crash point a child was armed at to be killed there (for the coverage table).
    pub fn armed(&self) -> Option<&'static str> {
        self.children
            .iter()
            .find_map(|c| c.kill.arm)
            .map(|(id, _)| dbtorture_backends::crash::ALL[id as usize])
            .or(self.io.map(|a| a.op.point()))
    }

    /// The plan in one line, as `cycle-start` and bundles record it.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (i, c) in self.children.iter().enumerate() {
            let p = &c.kill;
            if let Some(k) = p.kill_at {
                let sig =
                    if p.signal == Signal::SIGKILL { "kill".to_string() } else { p.signal.as_str().to_lowercase() };
                parts.push(format!("w{i}:{sig}@{:.1}ms", k.as_secs_f64() * 1000.0));
            }
            if let Some((id, nth)) = p.arm {
                parts.push(format!("w{i}:{}#{nth}", dbtorture_backends::crash::ALL[id as usize]));
            }
        }
        parts.extend(self.io.map(|a| a.describe()));
        let mut text = if parts.is_empty() { "no faults".to_string() } else { parts.join(" ") };
        if let Some(st) = &self.stale {
            text.push_str(&format!(" {}", st.describe()));
        }
        text
    }
}

/// What a cycle of this scenario does on a backend.
pub fn work_of(sc: &Scenario, kind: BackendKind) -> Work {
    match sc.convert_to() {
        Some(to) => Work::Convert { from: kind, to, by: sc.workload.converter },
        None => Work::Workers { writers: sc.workload.writers, readers: sc.workload.readers },
    }
}

/// Every crash point a run of these backends can pass, in `crash::ALL` order: the rows of its coverage table.
pub fn run_points(sc: &Scenario, kinds: &[BackendKind]) -> Vec<String> {
    let mut ids: Vec<u32> = kinds.iter().flat_map(|k| points_for(work_of(sc, *k), *k)).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter().map(|i| dbtorture_backends::crash::ALL[i as usize].to_string()).collect()
}

/// The crash point ids a cycle of this work can be armed at.
pub fn points_for(work: Work, kind: BackendKind) -> Vec<u32> {
    use dbtorture_backends::crash;
    let names: Vec<&'static str> = match work {
        Work::Workers { .. } => crash::points_of(kind.point_prefix()).collect(),
        // The real rpm passes none of our crash points: it is killed at random times only.
        Work::Convert { by: crate::scenario::Converter::Rpm, .. } => Vec::new(),
        Work::Convert { from, to, .. } => crash::points_of("rebuild")
            .chain(crash::points_of(from.point_prefix()))
            .chain(crash::points_of(to.point_prefix()))
            .collect(),
    };
    names.into_iter().filter_map(crash::id_of).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn scenario(extra: &str) -> Scenario {
        Scenario::parse(
            &format!("name='t'\nbackends=['bdbenv']\n[expect]\nbdbenv=['clean']\n{extra}"),
            Path::new("t.toml"),
        )
        .unwrap()
    }

    #[test]
    fn a_runs_points_are_its_backends_or_its_conversions() {
        use dbtorture_backends::crash::points_of;
        let sc = scenario("");
        let want: Vec<String> = points_of("bdbenv").map(String::from).collect();
        assert_eq!(run_points(&sc, &[BackendKind::Bdbenv]), want);
        let both = run_points(&sc, &[BackendKind::Bdbenv, BackendKind::Sqlite]);
        assert_eq!(both.len(), want.len() + points_of("sqlite").count(), "{both:?}");
        // A conversion passes the rebuild's points and both backends'.
        let conv = scenario("[workload]\nconvert_to='sqlite'\n");
        let pts = run_points(&conv, &[BackendKind::Bdbenv]);
        assert!(pts.iter().any(|p| p.starts_with("rebuild.")) && pts.iter().any(|p| p.starts_with("sqlite.")));
    }

    #[test]
    fn same_seed_same_plan_different_seed_different_plan() {
        let sc = scenario("[kill]\nmode='mixed'\nprobability=0.5\n");
        let a = CyclePlan::draw(&sc, BackendKind::Bdbenv, 42, 3);
        let b = CyclePlan::draw(&sc, BackendKind::Bdbenv, 42, 3);
        assert_eq!(a.children, b.children);
        assert_eq!(a.describe(), b.describe());
        let differs = (0..20).any(|s| CyclePlan::draw(&sc, BackendKind::Bdbenv, s, 3).children != a.children);
        assert!(differs, "20 other seeds all drew the same plan");
    }

    #[test]
    fn a_points_stale_fault_takes_over_its_writers_arming() {
        let sc = scenario(
            "[kill]\nmode='crash-point'\nhit_max=2\n[stale_page]\nfile='__db.003'\nprobability=1.0\npolicy='points'\n\
             snapshot_at='bdbenv.lock.get.after'\nrestore_at='bdbenv.lock.put.after'\n",
        );
        for seed in 0..30 {
            let p = CyclePlan::draw(&sc, BackendKind::Bdbenv, seed, 0);
            let st = p.stale.as_ref().expect("probability 1");
            let w = st.worker.expect("points policy pauses a writer");
            assert_eq!(p.children[w].kill.arm, None, "the paused writer is not also armed for a kill");
            assert_eq!(p.arming(w), (Some(st.snapshot_point), false));
        }
    }

    #[test]
    fn replaying_puts_recorded_kills_in_place_of_drawn_ones() {
        let sc = scenario("[kill]\nmode='random-time'\nprobability=1.0\n");
        let mut p = CyclePlan::draw(&sc, BackendKind::Bdbenv, 7, 0);
        assert!(p.children.iter().any(|c| c.kill.kill_at.is_some()));
        let rec = |worker, trigger| KillRecord {
            worker,
            role: dbtorture_reports::Role::Writer,
            signal: "SIGKILL".into(),
            at_ms: 3,
            trigger,
            last_point: Some("bdbenv.index.put.after".into()),
            last_hit: Some(4),
            points_passed: 9,
        };
        p.replaying(&[(rec(1, KillTrigger::Time), true), (rec(0, KillTrigger::Point), true)]);
        let id = dbtorture_backends::crash::id_of("bdbenv.index.put.after").unwrap();
        assert!(p.children.iter().all(|c| c.kill.kill_at.is_none()), "no timed kills in a replay");
        assert_eq!(p.children[1].kill.arm, Some((id, 4)));
        assert!(p.children[1].kill.arm_after, "a timed kill lands after its last point");
        assert!(!p.children[0].kill.arm_after, "a point kill lands exactly at its point");
        assert_eq!(p.children[2].kill.arm, None, "the reader was not killed");
    }

    #[test]
    fn conversion_plans_draw_from_rebuild_and_both_backends_points() {
        let pts = points_for(
            Work::Convert {
                from: BackendKind::Bdbenv,
                to: BackendKind::Sqlite,
                by: crate::scenario::Converter::Dbtorture,
            },
            BackendKind::Bdbenv,
        );
        let names: Vec<_> = pts.iter().map(|&i| dbtorture_backends::crash::ALL[i as usize]).collect();
        assert!(names.iter().any(|n| n.starts_with("rebuild.")));
        assert!(names.iter().any(|n| n.starts_with("bdbenv.")));
        assert!(names.iter().any(|n| n.starts_with("sqlite.")));
        assert!(!names.iter().any(|n| n.starts_with("libdb.")));
    }
}
