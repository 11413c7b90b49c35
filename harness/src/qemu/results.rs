//! What a guest run leaves in its out directory, beside what `run --out` writes: `guest.json`, and — when
//! the guest died before it could write its own — a `summary.json` rebuilt from the events it streamed.
//!
//! Why: `merge` and the HTML report read out directories; a guest run must look like any other, and a
//! guest that panicked or hung must show up as an outcome in that same summary (and in the exit status),
//! not as a missing file.

use super::console::KernelTrouble;
use crate::exit_codes;
use dbtorture_reports::{LostOutcome, RunEvent, Summary};
use serde::Serialize;
use std::collections::BTreeMap;

/// How the guest run ended, worst first when several apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExitReason {
    /// The sentinel arrived: the run finished and its results were synced to the SD card.
    Completed,
    /// The guest kernel panicked.
    KernelPanic,
    /// The guest kernel oopsed (or hit a BUG) during the run.
    KernelOops,
    /// The wall-clock timeout expired; qemu was killed.
    Timeout,
    /// qemu exited without the sentinel (the guest died some other way).
    NoSentinel,
    /// `/init` reported it could not set up or run the job.
    GuestError,
    /// SIGINT/SIGTERM on the host: qemu was stopped; what the guest had written is kept.
    Interrupted,
    /// `qemu --power-cut`: the host SIGKILLed qemu on purpose, mid-run (the guest was well until then).
    PowerCut,
}

impl ExitReason {
    /// The outcome name recorded in summary.json for the cycle the guest was in (none when completed).
    pub fn lost_outcome(self) -> Option<LostOutcome> {
        match self {
            ExitReason::Completed | ExitReason::Interrupted | ExitReason::PowerCut => None,
            ExitReason::KernelPanic => Some(LostOutcome::GuestKernelPanic),
            ExitReason::KernelOops => Some(LostOutcome::GuestKernelOops),
            ExitReason::Timeout => Some(LostOutcome::GuestTimeout),
            ExitReason::NoSentinel => Some(LostOutcome::GuestLost),
            ExitReason::GuestError => Some(LostOutcome::GuestError),
        }
    }

    pub fn exit_code(self, guest_exit: Option<i32>) -> i32 {
        match self {
            ExitReason::Completed => guest_exit.unwrap_or(exit_codes::HARNESS),
            ExitReason::KernelPanic | ExitReason::KernelOops => exit_codes::GUEST_KERNEL,
            ExitReason::Timeout | ExitReason::NoSentinel => exit_codes::GUEST_LOST,
            ExitReason::GuestError => exit_codes::HARNESS,
            ExitReason::Interrupted => exit_codes::INTERRUPTED,
            ExitReason::PowerCut => guest_exit.unwrap_or(exit_codes::OK),
        }
    }

    /// Decide from what the console showed.
    pub fn decide(
        sentinel: Option<i32>,
        worst: Option<KernelTrouble>,
        timed_out: bool,
        guest_error: bool,
        interrupted: bool,
    ) -> Self {
        match (worst, sentinel) {
            (Some(KernelTrouble::Panic), _) => ExitReason::KernelPanic,
            (Some(KernelTrouble::Oops), _) => ExitReason::KernelOops,
            (_, None) if interrupted => ExitReason::Interrupted,
            _ if timed_out => ExitReason::Timeout,
            (_, Some(_)) if guest_error => ExitReason::GuestError,
            (_, Some(_)) => ExitReason::Completed,
            _ => ExitReason::NoSentinel,
        }
    }
}

/// A kernel line worth keeping.
#[derive(Debug, Clone, Serialize)]
pub struct TroubleLine {
    pub kind: KernelTrouble,
    pub line: String,
}

/// When a kind of finding first appeared: host wall clock from starting qemu, and what it said.
#[derive(Debug, Clone, Serialize)]
pub struct FirstFinding {
    pub at_s: f64,
    pub text: String,
}

/// guest.json
#[derive(Debug, Clone, Serialize)]
pub struct GuestInfo {
    pub schema: u32,
    pub exit_reason: ExitReason,
    /// The exit status of `dbtorture run` inside the guest (from the sentinel).
    pub guest_exit: Option<i32>,
    pub machine: String,
    pub kernel: String,
    pub dtb: Option<String>,
    pub initrd: String,
    pub append: String,
    pub qemu_command: Vec<String>,
    /// Host wall clock from starting qemu to `/init`, to the run's start, and to its first cycle.
    pub boot_to_init_s: Option<f64>,
    pub boot_to_ready_s: Option<f64>,
    pub boot_to_first_cycle_s: Option<f64>,
    /// Finding kind → the first one (time to first detection).
    pub first_findings: BTreeMap<String, FirstFinding>,
    pub wall_s: f64,
    /// Guest uptime at the sentinel.
    pub guest_uptime_s: Option<f64>,
    /// backend → cycles per minute of that backend's cycle time in the guest.
    pub cycles_per_min: BTreeMap<String, f64>,
    /// Where summary.json/events.jsonl came from: "sd-image", "console" or "none".
    pub results_from: String,
    pub kernel_trouble: Vec<TroubleLine>,
    pub guest_errors: Vec<String>,
}

/// Cycles per minute of cycle time, per backend.
pub fn cycles_per_min(events: &[RunEvent]) -> BTreeMap<String, f64> {
    let mut acc: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for e in events {
        if let RunEvent::CycleEnd { backend, duration_ms, .. } = e {
            let a = acc.entry(backend.clone()).or_default();
            a.0 += 1;
            a.1 += duration_ms;
        }
    }
    acc.into_iter().map(|(b, (n, ms))| (b, n as f64 * 60_000.0 / ms.max(1.0))).collect()
}

/// The summary a run would have written, rebuilt from its events (for a guest that died first): the same fold
/// `run` and `merge` use. `None` without a run-start event. A run without its run-end event is interrupted.
pub fn summary_from_events(events: &[RunEvent], replay: String) -> Option<Summary> {
    let mut agg = dbtorture_reports::Aggregate::new();
    for e in events {
        agg.push(e);
    }
    if agg.runs().is_empty() {
        return None;
    }
    // A run without its run-end event is interrupted and timed by its cycles: the fold says so.
    let mut s = agg.summary();
    if s.replay.is_empty() {
        s.replay = replay;
    }
    Some(s)
}

/// The event recording a guest that did not complete: one unexpected outcome of the cycle it was in (or,
/// if no cycle was running, of the last backend seen). None for a completed or interrupted run.
pub fn lost_event(reason: ExitReason, events: &[RunEvent], backends: &[String]) -> Option<RunEvent> {
    let name = reason.lost_outcome()?;
    let mut running: Option<(u64, &str)> = None;
    let mut last: Option<&str> = None;
    for e in events {
        match e {
            RunEvent::CycleStart { cycle, backend, .. } => {
                running = Some((*cycle, backend));
                last = Some(backend);
            }
            RunEvent::CycleEnd { .. } => running = None,
            _ => {}
        }
    }
    let backend = running.map(|r| r.1).or(last).or(backends.first().map(String::as_str)).unwrap_or("guest");
    Some(RunEvent::CycleLost {
        cycle: running.map(|r| r.0),
        backend: backend.to_string(),
        outcome: name,
        detail: format!("{reason:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbtorture_reports::{KillRecord, Outcome};

    fn events() -> Vec<RunEvent> {
        let start = |cycle, backend: &str| RunEvent::CycleStart {
            cycle,
            backend: backend.into(),
            seed: 1,
            plan: String::new(),
        };
        let end = |cycle, backend: &str, outcome, expected| RunEvent::CycleEnd {
            cycle,
            backend: backend.into(),
            outcome,
            expected,
            findings: 0,
            commits: 3,
            duration_ms: 30_000.0,
            armed: None,
            hits: Default::default(),
            index_rows: Default::default(),
        };
        vec![
            RunEvent::RunStart {
                schema: dbtorture_reports::SCHEMA_VERSION,
                scenario: "qemu-smoke".into(),
                scenario_hash: "00".into(),
                seed: 5,
                backends: vec!["sqlite".into(), "bdbenv".into()],
                version: "0.1.0".into(),
                environment: Default::default(),
                shard: None,
                replay: String::new(),
                points: Vec::new(),
            },
            start(0, "sqlite"),
            RunEvent::Kill {
                cycle: 0,
                backend: "sqlite".into(),
                kill: KillRecord {
                    worker: 0,
                    role: dbtorture_reports::Role::Writer,
                    signal: "SIGKILL".into(),
                    at_ms: 4,
                    trigger: dbtorture_reports::KillTrigger::Point,
                    last_point: Some("sqlite.commit.before".into()),
                    last_hit: Some(1),
                    points_passed: 9,
                },
            },
            end(0, "sqlite", Outcome::Clean, true),
            start(0, "bdbenv"),
            end(0, "bdbenv", Outcome::Hang, false),
            start(1, "sqlite"),
        ]
    }

    #[test]
    fn a_summary_rebuilt_from_streamed_events_counts_what_the_run_would_have() {
        let s = summary_from_events(&events(), "dbtorture run x".into()).expect("run-start present");
        assert_eq!((s.scenario.as_str(), s.seed, s.cycles, s.kills, s.commits), ("qemu-smoke", 5, 2, 1, 6));
        assert_eq!(s.outcomes["bdbenv"]["hang"], 1);
        assert_eq!(s.unexpected, 1);
        assert_eq!(s.kill_points["sqlite.commit.before"], 1);
        assert!(s.interrupted, "no run-end: the run did not finish");
        assert_eq!(summary_from_events(&events()[1..], String::new()), None);
    }

    #[test]
    fn a_guest_panic_is_an_unexpected_outcome_of_the_cycle_it_interrupted() {
        let mut ev = events();
        ev.extend(lost_event(ExitReason::KernelPanic, &ev, &[]));
        let s = summary_from_events(&ev, String::new()).expect("summary");
        assert_eq!(s.cycles, 3);
        assert_eq!(s.outcomes["sqlite"]["guest-kernel-panic"], 1);
        assert_eq!(s.unexpected, 2);
        assert_eq!(s.per_backend["sqlite"].unexpected_outcomes["guest-kernel-panic"], 1);
        let junit = dbtorture_reports::junit::junit(&s).to_string().unwrap();
        assert!(junit.contains("name=\"guest-kernel-panic\"") && junit.contains("<failure"), "{junit}");
        assert_eq!(lost_event(ExitReason::Completed, &ev, &[]), None, "a completed run is left as the guest wrote it");
    }

    #[test]
    fn the_worst_thing_seen_decides_the_exit_reason() {
        use KernelTrouble::*;
        assert_eq!(ExitReason::decide(Some(0), None, false, false, false), ExitReason::Completed);
        assert_eq!(ExitReason::decide(Some(0), Some(Warning), false, false, false), ExitReason::Completed);
        assert_eq!(ExitReason::decide(Some(0), Some(Oops), false, false, false), ExitReason::KernelOops);
        assert_eq!(ExitReason::decide(None, Some(Panic), true, false, true), ExitReason::KernelPanic);
        assert_eq!(ExitReason::decide(None, None, true, false, false), ExitReason::Timeout);
        assert_eq!(ExitReason::decide(None, None, false, false, false), ExitReason::NoSentinel);
        assert_eq!(ExitReason::decide(Some(3), None, false, true, false), ExitReason::GuestError);
        assert_eq!(ExitReason::decide(None, None, false, false, true), ExitReason::Interrupted);
        assert_eq!(ExitReason::decide(Some(0), None, false, false, true), ExitReason::Completed);
        assert_eq!(ExitReason::Interrupted.exit_code(None), exit_codes::INTERRUPTED);
        assert_eq!(ExitReason::Completed.exit_code(Some(1)), 1);
        assert_eq!(ExitReason::KernelPanic.exit_code(Some(0)), exit_codes::GUEST_KERNEL);
        assert_eq!(ExitReason::Timeout.exit_code(None), exit_codes::GUEST_LOST);
    }

    #[test]
    fn cycles_per_minute_are_per_backend() {
        let c = cycles_per_min(&events());
        assert_eq!(c["sqlite"], 2.0);
        assert_eq!(c["bdbenv"], 2.0);
    }
}
