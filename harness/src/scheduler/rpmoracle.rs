//! The rpm oracle in a run (`[oracle] rpm_every = N`): after every Nth cycle, before the cycle's verdict, real
//! rpm regenerates the indexes from the same Packages on a private copy and every index table is compared
//! row by row with what the database stores (`dbtorture_backends::rpmoracle`); disagreements are findings
//! (`rpm-disagrees`) that name both sides.
//!
//! Why in the harness, never in a child: planted bugs act only in a cycle's children (`planted.rs`), so the
//! writer may carry a planted index-layer bug while this check runs clean code — and rpm shares none of it.

use crate::finding::{Finding, HarnessFinding};
use crate::scenario::Scenario;
use dbtorture_backends::BackendKind;
use std::path::Path;
use std::time::Duration;

/// Whether the oracle runs after `cycle` (0-based): cycles N-1, 2N-1, … (every cycle when N = 1).
pub fn due(sc: &Scenario, cycle: u64) -> bool {
    sc.oracle.is_some_and(|o| cycle % o.rpm_every == o.rpm_every - 1)
}

/// What the oracle said of one cycle's database, and what it cost.
pub struct Ran {
    pub findings: Vec<Finding>,
    pub note: String,
    pub elapsed: Duration,
}

/// Run the oracle on `dir` (backend `kind`), rpm's copy under `scratch`. rpm failing to run at all is a
/// harness fault, not a verdict on the database.
pub fn run(kind: BackendKind, dir: &Path, scratch: &Path) -> Ran {
    let t0 = std::time::Instant::now();
    match dbtorture_backends::rpmoracle::check(kind, dir, scratch) {
        Ok(r) => Ran {
            note: format!(
                "rpm oracle: {} packages, {} index rows compared, {} disagreement(s), {:.0} ms",
                r.packages,
                r.rows,
                r.findings.len(),
                r.elapsed.as_secs_f64() * 1000.0
            ),
            findings: r.findings.into_iter().map(Finding::from).collect(),
            elapsed: r.elapsed,
        },
        Err(e) => Ran {
            note: format!("rpm oracle could not run: {e}"),
            findings: vec![Finding::from(HarnessFinding::HarnessFault { detail: format!("rpm oracle: {e}") })],
            elapsed: t0.elapsed(),
        },
    }
}
