//! Every finding explained: the causes a cycle recorded (its kills, a stale page written, memory pressure,
//! and what earlier cycles left unrecovered), and the findings none of them can cause — by the backend's
//! table in `dbtorture_backends::explain`.
//!
//! Why: an expect list allows outcomes, and an allowed outcome (`hang`, `recovered`) can hide damage no
//! injected fault explains — which is a bug in the system under test. An unexplained finding makes its cycle
//! unexpected whatever the outcome, and shows in the report as an `unexplained` finding naming it.

use crate::finding::{Finding, HarnessFinding};
use dbtorture_backends::BackendKind;
use dbtorture_backends::explain::{self, Cause};
use dbtorture_reports::{KillRecord, KillTrigger, Outcome};

/// The causes a cycle recorded: kills it sent or the OOM killer made (not the kill at the timeout: that is
/// the hang's effect, not its cause), a stale page written, memory pressure; plus `carried` from earlier
/// cycles whose state was adopted without recovery.
/// A worker that exited on an error it reported (`exited_on_error`) left like a killed one: without closing.
pub fn causes(
    kills: &[KillRecord],
    exited_on_error: bool,
    stale_written: bool,
    memory: bool,
    carried: &[Cause],
) -> Vec<Cause> {
    let mut out = carried.to_vec();
    if exited_on_error || kills.iter().any(|k| !matches!(k.trigger, KillTrigger::Timeout | KillTrigger::Interrupt)) {
        out.push(Cause::Kill);
    }
    if stale_written {
        out.push(Cause::StalePage);
    }
    if memory {
        out.push(Cause::Memory);
    }
    out.sort();
    out.dedup();
    out
}

/// What the next cycle inherits: the causes whose leftovers may still be in the database. A cycle that
/// ended clean or whose state recovery rebuilt leaves nothing; one adopted with stale locks leaves its causes.
pub fn carry(outcome: Outcome, causes: &[Cause]) -> Vec<Cause> {
    match outcome {
        Outcome::StaleLocks | Outcome::CorruptEnv | Outcome::Inconsistent => causes.to_vec(),
        _ => Vec::new(),
    }
}

/// The findings (and a hang) no cause explains, each as an `Unexplained` finding.
pub fn unexplained(kind: BackendKind, causes: &[Cause], findings: &[(String, &Finding)], hang: bool) -> Vec<Finding> {
    let faults = || match causes {
        [] => "no fault".to_string(),
        cs => cs.iter().map(|c| c.name()).collect::<Vec<_>>().join(", "),
    };
    let mut out = Vec::new();
    if hang && !explain::explained(kind, causes, explain::HANG) {
        out.push(HarnessFinding::Unexplained { finding: "the cycle hung".into(), faults: faults() }.into());
    }
    for (k, f) in findings {
        if !explain::explained(kind, causes, k)
            && !out.iter().any(|u| matches!(u, Finding::Harness(HarnessFinding::Unexplained { finding, .. }) if finding.starts_with(k.as_str())))
        {
            out.push(HarnessFinding::Unexplained { finding: format!("{k}: {f}"), faults: faults() }.into());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbtorture_reports::Role;

    fn kill(trigger: KillTrigger) -> KillRecord {
        KillRecord {
            worker: 0,
            role: Role::Writer,
            signal: "SIGKILL".into(),
            at_ms: 1,
            trigger,
            last_point: None,
            last_hit: None,
            points_passed: 0,
        }
    }

    #[test]
    fn the_timeout_kill_explains_no_hang_and_stale_locks_carry_over() {
        assert!(causes(&[kill(KillTrigger::Timeout)], false, false, false, &[]).is_empty());
        assert_eq!(causes(&[kill(KillTrigger::Oom)], false, false, false, &[]), [Cause::Kill]);
        assert_eq!(causes(&[], true, false, false, &[]), [Cause::Kill], "an exit on an error leaves like a kill");
        let k = BackendKind::Bdbenv;
        let u = unexplained(k, &[], &[], true);
        assert!(matches!(u.as_slice(), [Finding::Harness(HarnessFinding::Unexplained { .. })]), "{u:?}");
        assert!(unexplained(k, &[Cause::Kill], &[], true).is_empty());
        assert_eq!(carry(Outcome::StaleLocks, &[Cause::Kill]), [Cause::Kill]);
        assert!(carry(Outcome::Recovered, &[Cause::Kill]).is_empty());
    }

    #[test]
    fn damage_a_kill_cannot_cause_is_unexplained_once_per_kind() {
        let d: Finding = dbtorture_backends::rpmdb::Finding::DataFileDamaged {
            file: "Packages".into(),
            detail: "page 7: not a bucket page".into(),
        }
        .into();
        let m: Finding = dbtorture_backends::rpmdb::Finding::MissingIndexEntry {
            index: "Name".into(),
            key: "a".into(),
            hnum: 1,
            tagnum: 0,
            package: "a-1".into(),
        }
        .into();
        let fs = [
            ("data-file-damaged".to_string(), &d),
            ("data-file-damaged".to_string(), &d),
            ("missing-index-entry".to_string(), &m),
        ];
        let u = unexplained(BackendKind::Bdbenv, &[Cause::Kill], &fs, false);
        assert_eq!(u.len(), 1, "{u:?}");
        assert!(u[0].to_string().contains("not a bucket page") && u[0].to_string().contains("kill"), "{}", u[0]);
    }
}
