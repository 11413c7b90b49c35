//! junit.xml: what CI systems render. One test suite per scenario; one test case per (backend, check).
//!
//! Why checks rather than cycles: a nightly run has thousands of cycles; a CI page with thousands of green
//! rows hides the one that matters. A check is a property the scenario asks of a backend ("no acknowledged
//! commit is lost"); it fails when any cycle broke it, and its failure lists those cycles with the finding,
//! the bundle and the command that replays it. A case's `time` is what its backend's cycles took, so a CI
//! page shows where the run's time went.

use crate::model::{Outcome, Summary};
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

/// The checks, each owning the outcomes that break it when the scenario does not allow them.
pub const CHECKS: &[(&str, Outcome, &str)] = &[
    ("durability", Outcome::LostCommit, "every acknowledged commit survives a kill"),
    ("consistency", Outcome::Inconsistent, "indexes match Packages; a transaction is all-or-nothing"),
    ("environment", Outcome::CorruptEnv, "the shared environment (lock region) stays intact"),
    ("locks", Outcome::StaleLocks, "no dead process's locks block or confuse live ones"),
    ("liveness", Outcome::Hang, "every operation finishes within its timeout"),
    ("no-recovery", Outcome::Recovered, "no recovery procedure is needed after a kill"),
    ("no-crash", Outcome::Crashed, "no worker dies of a signal nobody sent, panics, or exits with an unreported error"),
    ("harness", Outcome::HarnessError, "the harness itself works"),
];

/// Failures quoted per test case.
const QUOTED: usize = 20;

pub fn junit(s: &Summary) -> Report {
    let mut report = Report::new("dbtorture");
    let mut suite = TestSuite::new(s.scenario.as_str());
    suite.set_time(Duration::from_secs_f64(s.duration_s.max(0.0)));
    for (k, v) in [
        ("seed", s.seed.to_string()),
        ("scenario-hash", s.scenario_hash.clone()),
        ("cycles", s.cycles.to_string()),
        ("kills", s.kills.to_string()),
        ("commits", s.commits.to_string()),
        ("kernel", s.environment.kernel.clone()),
        ("arch", s.environment.arch.clone()),
        ("cgroup", s.environment.cgroup.clone()),
        ("version", s.version.clone()),
        ("runs", s.runs.len().to_string()),
        ("interrupted", s.interrupted.to_string()),
        ("replay", s.replay.clone()),
    ] {
        suite.add_property(Property::new(k, v));
    }
    // Injected I/O errors: how each backend's engine took them (the cycles they broke fail their checks).
    for (backend, tally) in &s.io_errors {
        suite.add_property(Property::new(format!("io-errors.{backend}"), tally.describe()));
    }
    for backend in &s.backends {
        let totals = s.per_backend.get(backend).cloned().unwrap_or_default();
        let classname = format!("{}.{}", s.scenario, backend);
        // Every check of a backend is judged on all of its cycles: each case took those cycles' time.
        let time = Duration::from_secs_f64(totals.duration_s.max(0.0));
        for (check, outcome, what) in CHECKS {
            let broken = totals.unexpected_outcomes.get(outcome.name()).copied().unwrap_or(0);
            if *outcome == Outcome::HarnessError
                && let Some(e) = &s.harness_error
            {
                // The harness failed mid-run: this case is an error whatever the cycles said, so a CI page
                // never shows green for a run that exited 3.
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
                st.set_message(format!("the harness failed mid-run: {e}"));
                st.set_type("harness-error");
                st.set_description(format!(
                    "{broken} cycles ended harness-error; the run stopped with: {e}\nrun again: {}\n",
                    s.replay
                ));
                let mut case = TestCase::new(*check, st);
                case.set_classname(classname.as_str());
                case.set_time(time);
                suite.add_test_case(case);
                continue;
            }
            let status = if broken == 0 {
                TestCaseStatus::success()
            } else {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                let fails: Vec<_> =
                    s.failures.iter().filter(|f| &f.backend == backend && f.outcome == *outcome).collect();
                let first =
                    fails.first().and_then(|f| f.findings.first()).map(|m| format!(": {m}")).unwrap_or_default();
                st.set_message(format!(
                    "{broken} of {} cycles ended {} ({what} — broken){first}",
                    totals.cycles,
                    outcome.name()
                ));
                st.set_type(outcome.name());
                let mut text = String::new();
                for f in fails.iter().take(QUOTED) {
                    text.push_str(&format!("cycle {} ({} findings)\n", f.cycle, f.finding_count));
                    for m in &f.findings {
                        text.push_str(&format!("  finding: {m}\n"));
                    }
                    for k in &f.kills {
                        text.push_str(&format!(
                            "  kill: worker {} ({}) {} by {} at {} ms, last point {}\n",
                            k.worker,
                            k.role,
                            k.signal,
                            k.trigger,
                            k.at_ms,
                            match (&k.last_point, k.last_hit) {
                                (Some(p), Some(h)) => format!("{p}#{h}"),
                                (Some(p), None) => p.clone(),
                                _ => "(none)".into(),
                            }
                        ));
                    }
                    if let Some(b) = &f.bundle {
                        text.push_str(&format!("  bundle: {b}\n"));
                    }
                    if let Some(r) = &f.replay {
                        text.push_str(&format!("  replay: {r}\n"));
                    }
                }
                if fails.len() > QUOTED {
                    text.push_str(&format!("… and {} more cycles\n", fails.len() - QUOTED));
                }
                text.push_str(&format!("run again: {}\n", s.replay));
                st.set_description(text);
                st
            };
            let mut case = TestCase::new(*check, status);
            case.set_classname(classname.as_str());
            case.set_time(time);
            suite.add_test_case(case);
        }
        // Outcomes no check owns (e.g. a guest kernel panic under qemu, "guest-kernel-panic"): one failing
        // test case each, named by the outcome.
        for (name, n) in &totals.unexpected_outcomes {
            if CHECKS.iter().any(|(_, o, _)| o.name() == name) {
                continue;
            }
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
            st.set_message(format!("{n} cycles ended {name}"));
            st.set_type(name.as_str());
            st.set_description(format!("run again: {}\n", s.replay));
            let mut case = TestCase::new(name.as_str(), st);
            case.set_classname(classname.as_str());
            case.set_time(time);
            suite.add_test_case(case);
        }
    }
    report.add_test_suite(suite);
    report
}
