//! Messages a worker sends the scheduler over its pipe: one short text line each (≤ PIPE_BUF, so a line is
//! written atomically even if the worker dies right after). Internal to the harness; the scheduler converts
//! them into report events and oracle records.

use crate::workload::Txn;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerMsg {
    /// About to begin transaction `txn` with these steps.
    Begin { txn: u64, body: Txn },
    /// `commit` returned Ok: the transaction is acknowledged.
    Commit { txn: u64 },
    /// Under the power-loss recorder: the recorder's operation count read right after `commit` returned.
    Acked { txn: u64, seq: u64 },
    /// The transaction failed with an error; its effect is unknown (e.g. an error at COMMIT).
    Abort { txn: u64, error: String },
    /// A fatal error; the worker exits.
    Error { error: String },
    /// A reader saw an index entry that does not match the header it points at.
    Inconsistent { detail: String },
    /// A reader finished this many queries.
    Queries { n: u64 },
    /// A message the engine printed.
    Log { line: String },
    /// The worker panicked (sent by its panic hook just before it exits).
    Panic { message: String },
}

fn clean(s: &str) -> String {
    let mut s: String = s.chars().map(|c| if c == '\n' { ' ' } else { c }).collect();
    if s.len() > 3000 {
        let mut cut = 3000;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

impl WorkerMsg {
    pub fn encode(&self) -> String {
        match self {
            WorkerMsg::Begin { txn, body } => format!("B {txn} {}\n", body.encode()),
            WorkerMsg::Commit { txn } => format!("C {txn}\n"),
            WorkerMsg::Acked { txn, seq } => format!("S {txn} {seq}\n"),
            WorkerMsg::Abort { txn, error } => format!("A {txn} {}\n", clean(error)),
            WorkerMsg::Error { error } => format!("E {}\n", clean(error)),
            WorkerMsg::Inconsistent { detail } => format!("X {}\n", clean(detail)),
            WorkerMsg::Queries { n } => format!("Q {n}\n"),
            WorkerMsg::Log { line } => format!("L {}\n", clean(line)),
            WorkerMsg::Panic { message } => format!("P {}\n", clean(message)),
        }
    }

    pub fn decode(line: &str) -> Option<WorkerMsg> {
        let (tag, rest) = line.split_once(' ').unwrap_or((line, ""));
        Some(match tag {
            "B" => {
                let (txn, body) = rest.split_once(' ')?;
                WorkerMsg::Begin { txn: txn.parse().ok()?, body: Txn::decode(body)? }
            }
            "C" => WorkerMsg::Commit { txn: rest.parse().ok()? },
            "S" => {
                let (txn, seq) = rest.split_once(' ')?;
                WorkerMsg::Acked { txn: txn.parse().ok()?, seq: seq.parse().ok()? }
            }
            "A" => {
                let (txn, e) = rest.split_once(' ').unwrap_or((rest, ""));
                WorkerMsg::Abort { txn: txn.parse().ok()?, error: e.into() }
            }
            "E" => WorkerMsg::Error { error: rest.into() },
            "X" => WorkerMsg::Inconsistent { detail: rest.into() },
            "Q" => WorkerMsg::Queries { n: rest.parse().ok()? },
            "L" => WorkerMsg::Log { line: rest.into() },
            "P" => WorkerMsg::Panic { message: rest.into() },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Step, TxnKind};

    #[test]
    fn messages_round_trip_as_single_lines() {
        let msgs = [
            WorkerMsg::Begin { txn: 7, body: Txn { kind: TxnKind::Install, steps: vec![Step::Add(3)] } },
            WorkerMsg::Commit { txn: 7 },
            WorkerMsg::Acked { txn: 7, seq: 12345 },
            WorkerMsg::Abort { txn: 8, error: "database is locked".into() },
            WorkerMsg::Error { error: "multi\nline".into() },
            WorkerMsg::Inconsistent { detail: "x".into() },
            WorkerMsg::Queries { n: 12 },
        ];
        for m in msgs {
            let line = m.encode();
            assert_eq!(line.matches('\n').count(), 1);
            let back = WorkerMsg::decode(line.trim_end_matches('\n')).unwrap();
            if let WorkerMsg::Error { error } = &back {
                assert_eq!(error, "multi line");
            } else {
                assert_eq!(back, m);
            }
        }
        assert_eq!(WorkerMsg::decode("Z 1"), None);
    }
}
