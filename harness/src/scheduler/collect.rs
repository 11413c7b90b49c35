//! What the workers said on their pipes during a cycle: the oracle's transaction log, errors, readers'
//! inconsistencies, engine messages and panics.
//!
//! Why separate from supervision: reading lines and turning them into records is pure bookkeeping; the
//! event loop only hands bytes over.

use crate::finding::{Finding, HarnessFinding};
use crate::oracle::{TxnState, WriterLog};
use crate::worker::events::WorkerMsg;
use dbtorture_reports::Role;
use std::collections::{BTreeMap, BTreeSet};

/// What the workers reported besides their transactions.
#[derive(Default)]
pub struct Collected {
    /// The writers' transaction logs, by worker index.
    pub logs: Vec<WriterLog>,
    pub findings: Vec<Finding>,
    /// Reader inconsistencies: findings only for backends that promise isolation.
    pub reader: Vec<Finding>,
    /// Engine messages (worker, line).
    pub messages: Vec<(u32, String)>,
    /// Workers that reported a fatal error before exiting (that error is already a finding).
    pub reported: BTreeSet<u32>,
    /// Workers that panicked, with the message their panic hook sent.
    pub panics: BTreeMap<u32, String>,
    /// (worker, txn) → the power-loss recorder's count when the worker saw `commit` return.
    pub acks: BTreeMap<(u32, u64), u64>,
}

impl Collected {
    pub fn new(writers: u32) -> Collected {
        Collected { logs: vec![WriterLog::default(); writers as usize], ..Collected::default() }
    }

    /// Commits acknowledged in this cycle, over all writers.
    pub fn commits(&self) -> u64 {
        self.logs.iter().map(|l| l.committed() as u64).sum()
    }

    /// Take the complete lines out of `buf` and apply them.
    pub fn take_lines(&mut self, index: u32, role: Role, buf: &mut Vec<u8>) {
        while let Some(pos) = buf.iter().position(|&c| c == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            self.apply(index, role, &line);
        }
    }

    fn apply(&mut self, index: u32, role: Role, line: &str) {
        let Some(msg) = WorkerMsg::decode(line) else {
            self.findings.push(Finding::from(HarnessFinding::WorkerError {
                worker: index,
                role: role.name().into(),
                detail: format!("unparseable report line {line:?}"),
            }));
            return;
        };
        match msg {
            WorkerMsg::Begin { txn, body } => self.writer_log(index, role, |l| l.begin(txn, body)),
            WorkerMsg::Commit { txn } => self.writer_log(index, role, |l| l.set(txn, TxnState::Committed)),
            WorkerMsg::Acked { txn, seq } => {
                self.acks.insert((index, txn), seq);
            }
            WorkerMsg::Abort { txn, error } => self.writer_log(index, role, |l| l.set(txn, TxnState::Aborted(error))),
            WorkerMsg::Error { error } => {
                self.reported.insert(index);
                self.findings.push(worker_error(index, role.name(), error));
            }
            WorkerMsg::Inconsistent { detail } => {
                self.reader.push(Finding::from(HarnessFinding::ReaderSawInconsistency { worker: index, detail }))
            }
            WorkerMsg::Log { line } => self.messages.push((index, line)),
            WorkerMsg::Panic { message } => {
                self.panics.insert(index, message);
            }
            // A reader's count of queries: nothing to judge.
            WorkerMsg::Queries { .. } => {}
        }
    }

    /// A transaction message from a worker that is not a writer, or one that breaks the log's protocol, is a
    /// harness bug, reported as such.
    fn writer_log(&mut self, index: u32, role: Role, f: impl FnOnce(&mut WriterLog) -> Result<(), String>) {
        let broken = match self.logs.get_mut(index as usize) {
            Some(log) if role == Role::Writer => f(log).err(),
            _ => Some("reported a transaction, but only writers have a transaction log".to_string()),
        };
        if let Some(why) = broken {
            self.findings
                .push(Finding::from(HarnessFinding::HarnessFault { detail: format!("{role} {index}: {why}") }));
        }
    }
}

/// A worker's error as a finding, by what the engine said: db4's "run recovery" (and running out of lock
/// table entries, which stale lockers cause) is stale-locks; any other "rpmdb:" message is the environment.
pub fn worker_error(worker: u32, role: &str, text: String) -> Finding {
    engine_error(format!("{role} {worker}"), text)
        .unwrap_or_else(|text| Finding::from(HarnessFinding::WorkerError { worker, role: role.into(), detail: text }))
}

/// An engine error in Berkeley DB's words, or the text back if it is not one.
pub fn engine_error(by: String, text: String) -> Result<Finding, String> {
    if text.contains("run recovery") || text.contains("RUNRECOVERY") || text.contains("out of available") {
        Ok(Finding::from(dbtorture_backends::rpmdb::Finding::RunRecovery { by, message: text }))
    } else if text.contains("rpmdb:") || text.contains("db4 error") {
        Ok(Finding::from(dbtorture_backends::rpmdb::Finding::EnvironmentError { by, message: text }))
    } else {
        Err(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_records_and_a_torn_line_waits() {
        let mut c = Collected::new(1);
        let mut buf = b"B 7 i+1\nC 7\nE rpmdb: Locker is not valid\nP boom at x.rs:1\nL hello\nC 8".to_vec();
        c.take_lines(0, Role::Writer, &mut buf);
        assert_eq!(buf, b"C 8", "an incomplete last line stays in the buffer");
        assert!(c.reported.contains(&0));
        assert!(matches!(c.findings[0], Finding::Db(dbtorture_backends::rpmdb::Finding::EnvironmentError { .. })));
        assert_eq!(c.panics[&0], "boom at x.rs:1");
        assert_eq!(c.messages, vec![(0, "hello".to_string())]);
    }

    #[test]
    fn a_broken_transaction_protocol_is_a_harness_fault() {
        let body = |n| format!("B {n} i+1\n");
        for lines in [format!("{}{}", body(1), body(2)), format!("{}C 1\nC 1\n", body(1)), "C 5\n".to_string()] {
            let mut c = Collected::new(1);
            let mut buf = lines.clone().into_bytes();
            c.take_lines(0, Role::Writer, &mut buf);
            assert!(
                c.findings.iter().any(|f| matches!(f, Finding::Harness(HarnessFinding::HarnessFault { .. }))),
                "{lines:?}: {:?}",
                c.findings
            );
        }
    }

    #[test]
    fn a_reader_reporting_a_transaction_is_a_harness_fault() {
        let mut c = Collected::new(1);
        let mut buf = b"C 1\n".to_vec();
        c.take_lines(1, Role::Reader, &mut buf);
        assert!(matches!(c.findings[..], [Finding::Harness(HarnessFinding::HarnessFault { .. })]), "{:?}", c.findings);
    }
}
