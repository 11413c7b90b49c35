//! From deaths to a verdict: how each child ended ([`decide`]), what that end means for the cycle
//! ([`effect`]: a kill, a finding, a hang), the cycle's outcome from its findings ([`classify`]), and the
//! checks after the processes are gone (`Scheduler::judge`: verify, probe, recover, verify again).
//!
//! Why one place: every way a child can end is a [`WorkerEnd`] variant, decided here from the wait status
//! and what the scheduler knows (what it sent, why, what the cgroup and the faults did); nothing else in the
//! harness looks at a wait status. There is no "anything else" arm: an end nobody thought of does not
//! compile, and an end that says nothing about the database (the harness lost a child) is a harness fault,
//! never silence.

use super::Scheduler;
use super::durability;
use super::events::{Ctx, PROBE_WORKER};
use crate::fault::crashpoint::Breadcrumb;
use crate::finding::{Class as FindingClass, Finding, HarnessFinding};
use crate::verify::{self, Probe};
use crate::workload::Pool;
use dbtorture_backends::BackendKind;
use dbtorture_backends::child::ChildExit;
use dbtorture_reports::{KillRecord, KillTrigger, Outcome, Role, WorkerEnd};
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// What the scheduler knows about one child when it has been reaped.
#[derive(Debug, Clone)]
pub struct EndFacts<'a> {
    /// The final wait status; None when the child was reaped by someone else (ECHILD).
    pub status: Option<WaitStatus>,
    /// The last signal the scheduler sent it, and why.
    pub sent: Option<(Signal, KillTrigger)>,
    /// OOM kills in the workers' memory cgroup this cycle.
    pub oom_kills: u64,
    /// The engine is not our code and a stale page was written into its region this cycle.
    pub foreign_region_fault: bool,
    /// It reported a fatal error on its pipe before exiting.
    pub reported: bool,
    /// Its panic hook's message.
    pub panic: Option<&'a str>,
}

/// How a child ended.
pub fn decide(f: &EndFacts<'_>) -> WorkerEnd {
    let sent_sig = f.sent.map(|(s, _)| s);
    let Some(status) = f.status else {
        return WorkerEnd::Lost { detail: "reaped by someone else (waitpid: ECHILD)".into() };
    };
    if let Some(message) = f.panic {
        return WorkerEnd::Panicked { message: message.to_string() };
    }
    match status {
        WaitStatus::Signaled(_, sig, _) if sent_sig == Some(sig) => WorkerEnd::Killed {
            signal: sig.as_str().into(),
            trigger: f.sent.map(|(_, t)| t).unwrap_or(KillTrigger::Time),
        },
        WaitStatus::Signaled(_, Signal::SIGKILL, _) if f.oom_kills > 0 => WorkerEnd::OomKilled,
        WaitStatus::Signaled(_, sig @ (Signal::SIGSEGV | Signal::SIGBUS), _) if f.foreign_region_fault => {
            WorkerEnd::FaultEffect { signal: sig.as_str().into() }
        }
        WaitStatus::Signaled(_, sig, core_dumped) => WorkerEnd::Crashed { signal: sig.as_str().into(), core_dumped },
        WaitStatus::Exited(_, code) => match (ChildExit::from_code(code), sent_sig) {
            (Some(ChildExit::Panicked), _) => {
                WorkerEnd::Panicked { message: "exited as panicked without sending a message".into() }
            }
            // Sent SIGINT/SIGTERM: it finished its operation and stopped, whatever its status (a planned kill).
            (_, Some(sig @ (Signal::SIGINT | Signal::SIGTERM))) => {
                WorkerEnd::Interrupted { signal: sig.as_str().into() }
            }
            (Some(ChildExit::Ok), _) => WorkerEnd::Completed,
            (Some(ChildExit::PipeBroken), _) => {
                WorkerEnd::Lost { detail: "its report pipe to the scheduler broke".into() }
            }
            (Some(ChildExit::Orphaned), _) => WorkerEnd::Lost { detail: "it found the scheduler gone at start".into() },
            (Some(ChildExit::SetupFailed), _) => WorkerEnd::Lost { detail: "it could not set itself up".into() },
            (
                Some(ChildExit::Refused | ChildExit::BackendError | ChildExit::ExecFailed | ChildExit::Interrupted)
                | None,
                _,
            ) => WorkerEnd::Failed { code, reported: f.reported },
        },
        WaitStatus::Stopped(..) | WaitStatus::Continued(_) | WaitStatus::StillAlive => {
            WorkerEnd::Lost { detail: format!("not ended when judged ({status:?})") }
        }
        WaitStatus::PtraceEvent(..) | WaitStatus::PtraceSyscall(_) => {
            WorkerEnd::Lost { detail: format!("traced by another process ({status:?})") }
        }
    }
}

/// What one child's end means for its cycle.
#[derive(Debug, Default)]
pub struct Effect {
    pub kill: Option<KillRecord>,
    pub finding: Option<Finding>,
    /// The cycle overran its timeout.
    pub hang: bool,
}

/// Who a child was, for records.
#[derive(Debug, Clone, Copy)]
pub struct Who {
    pub index: u32,
    pub role: Role,
    pub killed_at: Option<Duration>,
}

pub fn effect(end: &WorkerEnd, who: Who, crumb: &Breadcrumb) -> Effect {
    let record = |signal: &str, trigger: KillTrigger, crumb: &Breadcrumb| KillRecord {
        worker: who.index,
        role: who.role,
        signal: signal.into(),
        at_ms: who.killed_at.unwrap_or_default().as_millis() as u64,
        trigger: if crumb.stopped { KillTrigger::Point } else { trigger },
        last_point: crumb.last.map(|(p, _)| p.to_string()),
        last_hit: crumb.last.map(|(_, h)| h),
        points_passed: crumb.passed,
    };
    let role = who.role.name().to_string();
    let last = match crumb.last {
        Some((p, h)) => format!("{p}#{h}"),
        None => "none".into(),
    };
    match end {
        WorkerEnd::Completed => Effect::default(),
        WorkerEnd::Interrupted { signal } => {
            Effect { kill: Some(record(signal, KillTrigger::Time, crumb)), ..Effect::default() }
        }
        WorkerEnd::Killed { signal, trigger } => Effect {
            kill: Some(record(signal, *trigger, crumb)),
            hang: *trigger == KillTrigger::Timeout,
            ..Effect::default()
        },
        WorkerEnd::OomKilled => Effect {
            kill: Some(record("SIGKILL", KillTrigger::Oom, &Breadcrumb { stopped: false, ..*crumb })),
            ..Effect::default()
        },
        WorkerEnd::Failed { reported: true, .. } => Effect::default(),
        WorkerEnd::Failed { code, reported: false } => Effect {
            finding: Some(Finding::from(HarnessFinding::WorkerExited { worker: who.index, role, code: *code })),
            ..Effect::default()
        },
        WorkerEnd::Panicked { message } => Effect {
            finding: Some(Finding::from(HarnessFinding::WorkerPanicked {
                worker: who.index,
                role,
                message: message.clone(),
            })),
            ..Effect::default()
        },
        WorkerEnd::Crashed { signal, core_dumped } => Effect {
            finding: Some(Finding::from(HarnessFinding::WorkerCrashed {
                worker: who.index,
                role,
                detail: format!(
                    "died of {signal}{} — not a signal the scheduler sent; last crash point {last}",
                    if *core_dumped { " (core dumped)" } else { "" }
                ),
            })),
            ..Effect::default()
        },
        WorkerEnd::FaultEffect { signal } => Effect {
            finding: Some(Finding::from(dbtorture_backends::rpmdb::Finding::EnvironmentError {
                by: format!("{role} {}", who.index),
                message: format!("died of {signal} after a stale page of its region (last crash point {last})"),
            })),
            ..Effect::default()
        },
        WorkerEnd::Lost { detail } => Effect {
            finding: Some(Finding::from(HarnessFinding::HarnessFault {
                detail: format!("{role} {}: {detail}", who.index),
            })),
            ..Effect::default()
        },
        // A variant added to the report model later: say so rather than count it as nothing.
        other => Effect {
            finding: Some(Finding::from(HarnessFinding::HarnessFault {
                detail: format!("{role} {}: unjudged end {other:?}", who.index),
            })),
            ..Effect::default()
        },
    }
}

/// A cycle's outcome from its findings (the most severe wins).
pub fn classify(findings: &[Finding], hang: bool) -> Outcome {
    let mut out = if hang { Outcome::Hang } else { Outcome::Clean };
    for f in findings {
        let o = match f.class() {
            FindingClass::Corrupt | FindingClass::Inconsistent | FindingClass::Inoperable => Outcome::Inconsistent,
            FindingClass::LostCommit => Outcome::LostCommit,
            FindingClass::Environment => Outcome::CorruptEnv,
            FindingClass::Crash => Outcome::Crashed,
            FindingClass::Harness => Outcome::HarnessError,
            FindingClass::StaleLocks => Outcome::StaleLocks,
        };
        if o.severity() > out.severity() {
            out = o;
        }
    }
    out
}

/// Whether recovery can make a cycle with these findings `recovered`: it cannot bring back a lost commit,
/// undo half a transaction, or explain a crash.
fn recoverable(findings: &[Finding]) -> bool {
    findings.iter().all(|f| {
        let class_ok = match f.class() {
            FindingClass::Corrupt
            | FindingClass::Inconsistent
            | FindingClass::Environment
            | FindingClass::StaleLocks
            | FindingClass::Inoperable => true,
            FindingClass::LostCommit | FindingClass::Crash | FindingClass::Harness => false,
        };
        class_ok && !matches!(f, Finding::Harness(HarnessFinding::PartialTransaction { .. }))
    })
}

/// What the cycle saw before the judge: findings from the workers' ends and pipes, whether it overran, and
/// the engine's messages.
pub struct Seen<'m> {
    pub findings: Vec<Finding>,
    pub hang: bool,
    pub messages: &'m [String],
}

/// The judged state of a target after a cycle.
pub struct Judged {
    pub outcome: Outcome,
    pub findings: Vec<Finding>,
    /// The installed set afterwards (None: unreadable even after recovery).
    pub installed: Option<BTreeSet<u32>>,
    /// The cycle overran its timeout, or the probe did.
    pub hang: bool,
}

impl Scheduler<'_> {
    /// After a cycle's processes are gone: data checks plus `extra` checks on the installed set, the
    /// operability probe, classification, and recovery when needed (then the database must be clean again).
    /// Stale locks that did not stop a fresh process (failchk freed them, or they block nothing) need no
    /// recovery.
    pub(super) fn judge(
        &mut self,
        t: usize,
        kind: BackendKind,
        seen: Seen<'_>,
        ctx: &mut Ctx<'_>,
        extra: impl Fn(&Pool, &BTreeSet<u32>) -> Vec<Finding>,
    ) -> anyhow::Result<Judged> {
        let Seen { mut findings, mut hang, messages: worker_messages } = seen;
        let dir = self.targets[t].dir.clone();
        let data = verify::data(kind, &dir, &self.pool);
        findings.extend(crate::finding::from_db(data.findings));
        if let Some(after) = &data.installed {
            let seen = extra(&self.pool, after);
            // Before the probe writes the cache back: what the data files alone hold.
            findings.extend(durability::cache_only(kind, &dir, &self.pool, &seen, &extra));
            findings.extend(seen);
        }
        // The workers' words against the lock table as they left it (the probe's failchk changes it).
        let engine_said =
            dbtorture_backends::explain::judge_messages(kind, &dir, worker_messages.iter().map(String::as_str));
        let (probe, messages) =
            verify::probe(kind, &dir, &self.pool, Duration::from_millis(self.scenario.timeouts.probe_ms))?;
        // The engine's own words, judged: the workers' and the probe's.
        let mut engine_said = engine_said;
        let all = worker_messages.iter().chain(&messages).map(String::as_str);
        for f in dbtorture_backends::explain::judge_messages(kind, &dir, all) {
            if !engine_said.contains(&f) {
                engine_said.push(f);
            }
        }
        findings.extend(crate::finding::from_db(engine_said));
        for message in messages {
            ctx.engine_message(PROBE_WORKER, message);
        }
        let probe_ok = probe == Probe::Ok;
        match probe {
            Probe::Ok => {}
            Probe::TimedOut => hang = true,
            Probe::Failed(e) => findings
                .push(super::collect::engine_error("probe".into(), e).unwrap_or_else(|detail| {
                    Finding::from(dbtorture_backends::rpmdb::Finding::ProbeFailed { detail })
                })),
        }
        let mut outcome = classify(&findings, hang);
        for f in &findings {
            ctx.finding("verify", f);
        }
        let mut installed = data.installed;
        if self.bundles.is_some() {
            // The state the faults left, before any recovery touches it.
            let post = self.side_dir(self.targets[t].kind, "post");
            let _ = std::fs::remove_dir_all(&post);
            if outcome != Outcome::Clean {
                let _ = crate::bundle::copy_dir(&dir, &post);
            }
        }
        if outcome != Outcome::Clean && !(outcome == Outcome::StaleLocks && probe_ok) {
            let (ok, detail, after) = self.recover(kind, &dir);
            ctx.recovery(kind.recovery_name(), ok, detail.clone());
            // The oracle again, on what recovery produced (the next cycle starts from it).
            let lost = after.as_ref().map(|a| durability::after_recovery(&self.pool, a, &findings, &extra));
            let mut lost = lost.unwrap_or_default();
            if !ok {
                // Whatever outcome the cycle had, a recovery that failed is a finding of its own (never
                // explained by a fault), so the cycle cannot pass as its allowed stale-locks or hang.
                let procedure = kind.recovery_name().to_string();
                lost.push(Finding::from(HarnessFinding::RecoveryFailed { procedure, detail }));
            }
            for f in &lost {
                ctx.finding("after-recovery", f);
            }
            findings.extend(lost);
            let again = classify(&findings, hang);
            if again.severity() > outcome.severity() {
                outcome = again;
            }
            if ok && recoverable(&findings) && !hang {
                outcome = Outcome::Recovered;
            }
            installed = after;
        }
        Ok(Judged { outcome, findings, installed, hang })
    }

    /// rebuilddb, then verify again. Returns (clean afterwards, detail, installed set).
    fn recover(&mut self, kind: BackendKind, dir: &Path) -> (bool, String, Option<BTreeSet<u32>>) {
        let detail = match kind.recover(dir) {
            Ok(r) => format!("copied {} headers, skipped {}", r.copied, r.skipped.len()),
            Err(e) => return (false, format!("rebuilddb failed: {e}"), None),
        };
        let data = verify::data(kind, dir, &self.pool);
        let probe = verify::probe(kind, dir, &self.pool, Duration::from_millis(self.scenario.timeouts.probe_ms));
        let clean = data.findings.is_empty() && matches!(probe, Ok((Probe::Ok, _)));
        let detail = if clean {
            detail
        } else {
            format!(
                "{detail}; still failing: {}",
                data.findings.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("; ")
            )
        };
        (clean, detail, data.installed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::unistd::Pid;

    fn facts(status: WaitStatus) -> EndFacts<'static> {
        EndFacts {
            status: Some(status),
            sent: None,
            oom_kills: 0,
            foreign_region_fault: false,
            reported: false,
            panic: None,
        }
    }
    const P: Pid = Pid::from_raw(42);
    const WHO: Who = Who { index: 1, role: Role::Writer, killed_at: Some(Duration::from_millis(5)) };
    const NO_CRUMB: Breadcrumb = Breadcrumb { last: None, passed: 0, stopped: false };

    fn outcome_of(end: &WorkerEnd) -> Outcome {
        let e = effect(end, WHO, &NO_CRUMB);
        classify(&e.finding.into_iter().collect::<Vec<_>>(), e.hang)
    }

    #[test]
    fn a_silent_nonzero_exit_is_a_crash_not_nothing() {
        let end = decide(&facts(WaitStatus::Exited(P, 3)));
        assert_eq!(end, WorkerEnd::Failed { code: 3, reported: false });
        assert_eq!(outcome_of(&end), Outcome::Crashed);
        let reported = decide(&EndFacts { reported: true, ..facts(WaitStatus::Exited(P, 3)) });
        assert_eq!(outcome_of(&reported), Outcome::Clean, "a reported error is judged by its own finding");
        let foreign = decide(&facts(WaitStatus::Exited(P, 77)));
        assert_eq!(foreign, WorkerEnd::Failed { code: 77, reported: false });
        assert_eq!(outcome_of(&foreign), Outcome::Crashed);
    }

    #[test]
    fn a_signal_nobody_sent_is_crashed_and_named_not_a_harness_error() {
        let end = decide(&facts(WaitStatus::Signaled(P, Signal::SIGABRT, true)));
        assert_eq!(end, WorkerEnd::Crashed { signal: "SIGABRT".into(), core_dumped: true });
        let e = effect(&end, WHO, &NO_CRUMB);
        let f = e.finding.expect("a finding");
        assert!(f.to_string().contains("SIGABRT"), "{f}");
        assert_eq!(classify(&[f], false), Outcome::Crashed);
    }

    #[test]
    fn panics_carry_their_message_even_when_killed_afterwards() {
        let end = decide(&EndFacts { panic: Some("index out of bounds"), ..facts(WaitStatus::Exited(P, 112)) });
        assert_eq!(end, WorkerEnd::Panicked { message: "index out of bounds".into() });
        assert_eq!(outcome_of(&end), Outcome::Crashed);
        let silent = decide(&facts(WaitStatus::Exited(P, ChildExit::Panicked.code())));
        assert!(matches!(silent, WorkerEnd::Panicked { .. }));
    }

    #[test]
    fn planned_kills_are_kills_and_timeouts_hang() {
        let sent = Some((Signal::SIGKILL, KillTrigger::Time));
        let end = decide(&EndFacts { sent, ..facts(WaitStatus::Signaled(P, Signal::SIGKILL, false)) });
        let e = effect(&end, WHO, &NO_CRUMB);
        assert_eq!(e.kill.as_ref().map(|k| k.trigger), Some(KillTrigger::Time));
        assert!(!e.hang && e.finding.is_none());
        let stopped = Breadcrumb { last: Some(("sqlite.commit.before", 2)), passed: 9, stopped: true };
        let k = effect(&end, WHO, &stopped).kill.unwrap();
        assert_eq!((k.trigger, k.last_hit), (KillTrigger::Point, Some(2)));
        let t = decide(&EndFacts {
            sent: Some((Signal::SIGKILL, KillTrigger::Timeout)),
            ..facts(WaitStatus::Signaled(P, Signal::SIGKILL, false))
        });
        assert_eq!(outcome_of(&t), Outcome::Hang);
        let int = decide(&EndFacts {
            sent: Some((Signal::SIGINT, KillTrigger::Time)),
            ..facts(WaitStatus::Exited(P, ChildExit::Interrupted.code()))
        });
        assert_eq!(int, WorkerEnd::Interrupted { signal: "SIGINT".into() });
        assert!(effect(&int, WHO, &NO_CRUMB).kill.is_some());
    }

    #[test]
    fn an_unsent_sigkill_is_oom_only_under_oom_kills() {
        let k = facts(WaitStatus::Signaled(P, Signal::SIGKILL, false));
        assert_eq!(decide(&EndFacts { oom_kills: 1, ..k.clone() }), WorkerEnd::OomKilled);
        assert!(matches!(decide(&k), WorkerEnd::Crashed { .. }), "a SIGKILL from outside is a crash");
        let oom = effect(&WorkerEnd::OomKilled, WHO, &NO_CRUMB);
        assert_eq!(oom.kill.map(|k| k.trigger), Some(KillTrigger::Oom));
    }

    #[test]
    fn a_foreign_engines_memory_fault_after_a_stale_page_is_the_faults_effect() {
        let s = facts(WaitStatus::Signaled(P, Signal::SIGBUS, false));
        assert!(matches!(decide(&EndFacts { foreign_region_fault: true, ..s.clone() }), WorkerEnd::FaultEffect { .. }));
        assert!(matches!(decide(&s), WorkerEnd::Crashed { .. }));
        assert_eq!(outcome_of(&WorkerEnd::FaultEffect { signal: "SIGBUS".into() }), Outcome::CorruptEnv);
    }

    #[test]
    fn the_harness_losing_a_child_is_a_harness_error() {
        let gone = decide(&EndFacts { status: None, ..facts(WaitStatus::Exited(P, 0)) });
        assert!(matches!(gone, WorkerEnd::Lost { .. }));
        assert_eq!(outcome_of(&gone), Outcome::HarnessError);
        let pipe = decide(&facts(WaitStatus::Exited(P, ChildExit::PipeBroken.code())));
        assert_eq!(outcome_of(&pipe), Outcome::HarnessError);
        assert_eq!(outcome_of(&decide(&facts(WaitStatus::Exited(P, 0)))), Outcome::Clean);
    }

    #[test]
    fn the_most_severe_finding_wins_and_crashes_are_not_recoverable() {
        let crash =
            Finding::from(HarnessFinding::WorkerCrashed { worker: 0, role: "writer".into(), detail: "x".into() });
        let stale = Finding::from(dbtorture_backends::rpmdb::Finding::StaleLock { detail: "y".into() });
        assert_eq!(classify(&[stale.clone(), crash.clone()], false), Outcome::Crashed);
        assert_eq!(classify(std::slice::from_ref(&stale), true), Outcome::Hang);
        assert!(recoverable(&[stale]));
        assert!(!recoverable(&[crash]));
    }
}
