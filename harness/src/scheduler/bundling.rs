//! Writing a failing cycle's bundle from what the cycle knows: the database states before and after, the
//! plan, the kills, the findings and the recorded interleaving (the format itself is `bundle.rs`).

use super::Scheduler;
use super::events::{self, Ctx};
use crate::finding::{Finding, HarnessFinding};
use dbtorture_reports::{KillRecord, Outcome, RunEvent};
use std::collections::BTreeSet;
use std::path::Path;

/// What a cycle knows that its bundle records.
pub(super) struct BundleRecord<'r> {
    pub(super) before: &'r BTreeSet<u32>,
    pub(super) plan: &'r str,
    pub(super) kills: &'r [KillRecord],
    pub(super) schedule: Vec<Vec<u64>>,
    /// The causes the cycle inherited from earlier, unrecovered cycles.
    pub(super) carried: &'r [dbtorture_backends::explain::Cause],
    pub(super) uncertain: &'r BTreeSet<u32>,
}

impl Scheduler<'_> {
    /// Write the bundle of a failing cycle and say where (or why not).
    pub(super) fn record_bundle(
        &self,
        t: usize,
        cycle: u64,
        rec: BundleRecord<'_>,
        outcome: Outcome,
        findings: &[Finding],
        ctx: &mut Ctx<'_>,
    ) {
        let BundleRecord { before, plan, kills, schedule, carried, uncertain } = rec;
        let root = self.bundles.as_ref().expect("bundles enabled");
        let kind = self.targets[t].kind;
        let sc = self.scenario;
        let info = crate::bundle::BundleInfo {
            schema: crate::bundle::BUNDLE_SCHEMA,
            scenario_path: sc.source.display().to_string(),
            scenario_text: sc.text.clone(),
            seed: self.seed,
            cycle,
            backend: kind.name().into(),
            target: self.targets[t].slot,
            installed_before: before.iter().copied().collect(),
            plan: plan.into(),
            kills: kills.to_vec(),
            outcome,
            findings: findings.iter().map(events::record).collect(),
            planted: dbtorture_backends::planted::current(),
            replay: String::new(),
            schedule,
            written_on: Some(crate::bundle::Machine::this()),
            carried: carried.to_vec(),
            uncertain: uncertain.iter().copied().collect(),
        };
        let sides = crate::bundle::Sides {
            pre: self.side_dir(kind, "pre"),
            post: self.side_dir(kind, "post"),
            live: self.targets[t].dir.clone(),
        };
        match crate::bundle::write(root, info, &sides, kind.profile()) {
            // Relative to the run's output directory (the parent of the bundles directory).
            Ok(path) => ctx.bundle(
                Path::new(root.file_name().unwrap_or_default())
                    .join(path.file_name().unwrap_or_default())
                    .display()
                    .to_string(),
            ),
            Err(e) => ctx.emit(&RunEvent::Finding {
                cycle,
                backend: kind.name().into(),
                phase: "bundle".into(),
                finding: events::record(&Finding::from(HarnessFinding::HarnessFault {
                    detail: format!("could not write the bundle: {e:#}"),
                })),
            }),
        }
    }
}
