//! Judging a cycle with an injected I/O error (`[io_kill]` eio/enospc/short): which worker got it, whether
//! it failed with the engine's documented error for it (`dbtorture_backends::ioerror`), and what the
//! report says (`RunEvent::IoError`).
//!
//! Why here and not in the verdict: the verdict's checks do not change — the database must verify clean,
//! every acknowledged commit be there, the failed transaction all-or-nothing (the oracle treats an aborted
//! transaction like one in flight at a kill), a fresh process open it without recovery. What changes is one
//! finding: a worker that failed with the engine's error for the injection did what it should; its
//! `worker-error` is taken out of the cycle's findings and reported as the fault's effect. A worker that
//! failed with anything else keeps its finding.

use crate::fault::powerloss::iogate::IoArm;
use crate::finding::{Finding, HarnessFinding};
use crate::scenario::IoAction;
use dbtorture_backends::BackendKind;
use dbtorture_backends::ioerror::is_engine_io_error;
use dbtorture_reports::{IoErrorEffect, IoErrorKind, IoErrorRecord};

/// What the recorder did at the armed operation: the process it answered the error to, and for a short
/// write (bytes asked, bytes written). `None`: the operation was never reached.
pub type Injected = Option<(u32, Option<(u64, u64)>)>;

/// The cycle's injected error, judged; takes the worker's explained `worker-error` out of `findings`.
/// `children`: (worker index, pid). None when the cycle armed no error.
pub fn judge(
    kind: BackendKind,
    arm: Option<IoArm>,
    injected: Injected,
    children: &[(u32, u32)],
    findings: &mut Vec<Finding>,
) -> Option<IoErrorRecord> {
    let arm = arm?;
    let error = match arm.action {
        IoAction::Kill => return None,
        IoAction::Eio | IoAction::Errors => IoErrorKind::Eio,
        IoAction::Enospc => IoErrorKind::Enospc,
        IoAction::Short => IoErrorKind::Short,
    };
    let mut rec = IoErrorRecord {
        op: arm.op,
        nth: arm.nth,
        error,
        asked: None,
        written: None,
        effect: IoErrorEffect::NotReached,
    };
    let Some((pid, short)) = injected else { return Some(rec) };
    rec.asked = short.map(|s| s.0);
    rec.written = short.map(|s| s.1);
    // The worker the error was answered to (our engines run in the worker process itself); a process that is
    // none of them (a helper an engine started) leaves every worker a candidate.
    let owner = children.iter().find(|c| c.1 == pid).map(|c| c.0);
    let errors: Vec<(usize, u32, String)> = findings
        .iter()
        .enumerate()
        .filter_map(|(i, f)| match f {
            Finding::Harness(HarnessFinding::WorkerError { worker, detail, .. })
                if owner.is_none_or(|o| o == *worker) =>
            {
                Some((i, *worker, detail.clone()))
            }
            _ => None,
        })
        .collect();
    rec.effect = match errors.iter().find(|e| is_engine_io_error(kind, &e.2)) {
        Some((i, worker, said)) => {
            findings.remove(*i);
            IoErrorEffect::Failed { worker: *worker, said: said.clone() }
        }
        None => match errors.first() {
            Some((_, worker, said)) => IoErrorEffect::Unmatched { worker: *worker, said: said.clone() },
            None => IoErrorEffect::Absorbed,
        },
    };
    Some(rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbtorture_reports::IoOp;

    fn err(worker: u32, detail: &str) -> Finding {
        HarnessFinding::WorkerError { worker, role: "writer".into(), detail: detail.into() }.into()
    }

    const ARM: IoArm = IoArm { op: IoOp::Write, nth: 4, action: IoAction::Enospc };

    #[test]
    fn the_engines_error_for_the_injection_is_its_effect_not_a_finding() {
        let mut f = vec![err(1, "transaction 7: commit: sqlite: database or disk is full"), err(0, "other")];
        let r = judge(BackendKind::Sqlite, Some(ARM), Some((200, None)), &[(0, 100), (1, 200)], &mut f).unwrap();
        assert!(
            matches!(&r.effect, IoErrorEffect::Failed { worker: 1, said } if said.contains("disk is full")),
            "{r:?}"
        );
        assert_eq!(f.len(), 1, "the other worker's error stays: {f:?}");
        assert!(r.describe().starts_with("enospc at write#4: worker 1 failed with it"), "{}", r.describe());
    }

    #[test]
    fn any_other_error_stays_a_finding_and_no_error_is_absorbed() {
        let mut f = vec![err(0, "install a-1: UNIQUE constraint failed")];
        let r = judge(BackendKind::Sqlite, Some(ARM), Some((100, None)), &[(0, 100)], &mut f).unwrap();
        assert!(matches!(r.effect, IoErrorEffect::Unmatched { worker: 0, .. }), "{r:?}");
        assert_eq!(f.len(), 1);
        let short = IoArm { action: IoAction::Short, ..ARM };
        let r = judge(BackendKind::Sqlite, Some(short), Some((100, Some((4096, 2048)))), &[(0, 100)], &mut Vec::new());
        let r = r.unwrap();
        assert_eq!((r.effect.clone(), r.asked, r.written), (IoErrorEffect::Absorbed, Some(4096), Some(2048)));
        assert!(r.describe().starts_with("short write (2048 of 4096 bytes) at write#4: absorbed"), "{}", r.describe());
    }

    #[test]
    fn an_unreached_arm_and_a_kill_arm() {
        let r = judge(BackendKind::Sqlite, Some(ARM), None, &[(0, 100)], &mut Vec::new()).unwrap();
        assert_eq!(r.effect, IoErrorEffect::NotReached);
        let kill = IoArm { action: IoAction::Kill, ..ARM };
        assert!(judge(BackendKind::Sqlite, Some(kill), Some((100, None)), &[], &mut Vec::new()).is_none());
        assert!(judge(BackendKind::Sqlite, None, None, &[], &mut Vec::new()).is_none());
    }
}
