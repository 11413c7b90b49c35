//! Errors injected in the middle of a transaction (`[io_kill]` with an error action): what one cycle's armed
//! operation did and how the engine took it (`RunEvent::IoError`), and the per-backend tally the summary
//! adds up. Its own module because it is one fault's vocabulary, not the event model's.

use crate::kill::IoOp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the recorder answered at the armed operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum IoErrorKind {
    /// EIO, the operation not done.
    Eio,
    /// ENOSPC, the operation not done.
    Enospc,
    /// A write that wrote fewer bytes than asked (`written` of `asked`); other operations get EIO.
    Short,
}

impl IoErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            IoErrorKind::Eio => "eio",
            IoErrorKind::Enospc => "enospc",
            IoErrorKind::Short => "short",
        }
    }
}

/// How the engine took the injected error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum IoErrorEffect {
    /// The cycle's processes never reached the armed operation: nothing was injected.
    NotReached,
    /// Injected, and no worker failed: the engine absorbed it (a short write it retried, an error on a
    /// write it did again).
    Absorbed,
    /// A worker failed with the engine's error for it (its transaction, open or close failed): the
    /// verdict then judges that transaction all-or-nothing, like one in flight at a kill.
    Failed { worker: u32, said: String },
    /// A worker failed, but not with an error the backend's rules say this injection causes: the worker's
    /// error stays a finding.
    Unmatched { worker: u32, said: String },
}

/// One cycle's injected error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IoErrorRecord {
    pub op: IoOp,
    pub nth: u64,
    pub error: IoErrorKind,
    /// A short write: bytes asked and bytes written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written: Option<u64>,
    pub effect: IoErrorEffect,
}

impl IoErrorRecord {
    pub fn describe(&self) -> String {
        let what = match (self.error, self.asked, self.written) {
            (IoErrorKind::Short, Some(a), Some(w)) if self.op == IoOp::Write => {
                format!("short write ({w} of {a} bytes)")
            }
            (IoErrorKind::Short, ..) => "eio (short on a non-write)".to_string(),
            (e, ..) => e.name().to_string(),
        };
        let how = match &self.effect {
            IoErrorEffect::NotReached => "never reached".to_string(),
            IoErrorEffect::Absorbed => "absorbed: no worker failed".to_string(),
            IoErrorEffect::Failed { worker, said } => format!("worker {worker} failed with it: {said}"),
            IoErrorEffect::Unmatched { worker, said } => {
                format!("worker {worker} failed with an error the rules do not expect from it: {said}")
            }
        };
        format!("{what} at {}#{}: {how}", self.op.name(), self.nth)
    }
}

/// A backend's injected errors over the run, by how the engine took them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IoErrorTally {
    /// Cycles whose armed operation was reached (the error injected).
    pub injected: u64,
    pub eio: u64,
    pub enospc: u64,
    pub short: u64,
    /// Armed but never reached.
    pub not_reached: u64,
    pub absorbed: u64,
    /// A worker's transaction (or open/close) failed with the engine's error for it.
    pub failed: u64,
    /// A worker failed with some other error (a finding).
    pub unmatched: u64,
}

impl IoErrorTally {
    pub fn count(&mut self, r: &IoErrorRecord) {
        if r.effect == IoErrorEffect::NotReached {
            self.not_reached += 1;
            return;
        }
        self.injected += 1;
        match r.error {
            IoErrorKind::Eio => self.eio += 1,
            IoErrorKind::Enospc => self.enospc += 1,
            IoErrorKind::Short => self.short += 1,
        }
        match r.effect {
            IoErrorEffect::NotReached => {}
            IoErrorEffect::Absorbed => self.absorbed += 1,
            IoErrorEffect::Failed { .. } => self.failed += 1,
            IoErrorEffect::Unmatched { .. } => self.unmatched += 1,
        }
    }

    pub fn add(&mut self, o: &IoErrorTally) {
        self.injected += o.injected;
        self.eio += o.eio;
        self.enospc += o.enospc;
        self.short += o.short;
        self.not_reached += o.not_reached;
        self.absorbed += o.absorbed;
        self.failed += o.failed;
        self.unmatched += o.unmatched;
    }

    /// One line for the terminal and the JUnit properties.
    pub fn describe(&self) -> String {
        format!(
            "{} injected (eio {}, enospc {}, short {}): {} failed a transaction, {} absorbed, {} with an unexpected \
             error; {} armed but never reached",
            self.injected,
            self.eio,
            self.enospc,
            self.short,
            self.failed,
            self.absorbed,
            self.unmatched,
            self.not_reached
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_counts_each_record_once_by_kind_and_effect() {
        let r = |error, effect| IoErrorRecord { op: IoOp::Write, nth: 3, error, asked: None, written: None, effect };
        let mut t = IoErrorTally::default();
        t.count(&r(IoErrorKind::Enospc, IoErrorEffect::Failed { worker: 0, said: "full".into() }));
        t.count(&r(IoErrorKind::Short, IoErrorEffect::Absorbed));
        t.count(&r(IoErrorKind::Eio, IoErrorEffect::NotReached));
        assert_eq!((t.injected, t.enospc, t.short, t.eio, t.failed, t.absorbed, t.not_reached), (2, 1, 1, 0, 1, 1, 1));
        let mut sum = IoErrorTally::default();
        sum.add(&t);
        sum.add(&t);
        assert_eq!(sum.injected, 4);
        assert!(t.describe().starts_with("2 injected (eio 0, enospc 1, short 1)"), "{}", t.describe());
    }
}
