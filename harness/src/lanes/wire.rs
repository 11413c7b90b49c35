//! What a lane tells the parent over its pipe: one JSON object a line — the cycle it begins, each event of
//! it, a note for the progress bar, the cycle's end, and finally how the lane ended.
//!
//! Why JSON lines of the report's own `RunEvent`: the parent writes exactly the events the lane's
//! scheduler built (no second encoding to keep in step), and a lane killed mid-line leaves at most one
//! unparsable last line, which the parent reports.

use crate::scheduler::{CycleResult, Observer};
use dbtorture_reports::{Outcome, RunEvent};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::time::Duration;

/// What the progress bar and the "unexpected outcome" lines need of a cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CycleNote {
    pub cycle: u64,
    pub backend: String,
    pub outcome: Outcome,
    pub expected: bool,
    /// The first finding, as text (empty: none).
    pub first: String,
    /// The harness's own time in the cycle (fork, reap, verify, probe, classify).
    pub overhead: Duration,
}

impl CycleNote {
    pub fn of(c: &CycleResult) -> CycleNote {
        CycleNote {
            cycle: c.cycle,
            backend: c.backend.name().into(),
            outcome: c.outcome,
            expected: c.expected,
            first: c.findings.first().map(|f| f.to_string()).unwrap_or_default(),
            overhead: c.overhead,
        }
    }
}

/// One line on a lane's pipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "msg")]
pub enum LaneMsg {
    /// The lane begins cycle index `cycle` (all its backends follow, as in a `--jobs 1` run).
    Begin {
        cycle: u64,
    },
    Event {
        event: Box<RunEvent>,
    },
    Note {
        note: CycleNote,
    },
    /// Every backend of the cycle begun last is done.
    End,
    /// The lane is done: whether it was interrupted, its harness error if any, and one past the last cycle
    /// index it began (0: none).
    Exit {
        interrupted: bool,
        harness_error: Option<String>,
        cycles_run: u64,
    },
}

/// The lane's end of the pipe, as the scheduler's observer. A write that fails (the parent is gone) is
/// remembered; the lane stops at the next cycle.
pub struct PipeObserver<W: Write> {
    out: W,
    pub broken: Option<String>,
}

impl<W: Write> PipeObserver<W> {
    pub fn new(out: W) -> PipeObserver<W> {
        PipeObserver { out, broken: None }
    }

    pub fn send(&mut self, m: &LaneMsg) {
        if self.broken.is_some() {
            return;
        }
        let mut line = serde_json::to_vec(m).expect("lane messages serialize");
        line.push(b'\n');
        if let Err(e) = self.out.write_all(&line).and_then(|_| self.out.flush()) {
            self.broken = Some(e.to_string());
        }
    }
}

impl<W: Write> Observer for PipeObserver<W> {
    fn event(&mut self, ev: &RunEvent) {
        self.send(&LaneMsg::Event { event: Box::new(ev.clone()) });
    }

    fn cycle_done(&mut self, c: &CycleResult) {
        self.send(&LaneMsg::Note { note: CycleNote::of(c) });
    }
}

/// Bytes read from a lane, cut into messages.
#[derive(Default)]
pub struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    /// Add `bytes`; the complete lines among what has come, parsed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Result<LaneMsg, String>> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=nl).collect();
            out.push(
                serde_json::from_slice(&line)
                    .map_err(|e| format!("{e}: {:?}", String::from_utf8_lossy(&line[..line.len().min(200)]))),
            );
        }
        out
    }

    /// What is left after the pipe closed: a line cut short, if any.
    pub fn rest(&self) -> Option<String> {
        (!self.buf.is_empty()).then(|| String::from_utf8_lossy(&self.buf[..self.buf.len().min(200)]).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cross_the_pipe_whole_and_split() {
        let mut w = PipeObserver::new(Vec::new());
        w.send(&LaneMsg::Begin { cycle: 7 });
        w.event(&RunEvent::CycleStart { cycle: 7, backend: "bdbenv".into(), seed: 9, plan: "p".into() });
        w.send(&LaneMsg::End);
        w.send(&LaneMsg::Exit { interrupted: true, harness_error: None, cycles_run: 8 });
        let bytes = w.out.clone();
        let mut l = Lines::default();
        let (a, b) = bytes.split_at(bytes.len() / 2 + 3);
        let mut got: Vec<LaneMsg> = l.push(a).into_iter().map(Result::unwrap).collect();
        got.extend(l.push(b).into_iter().map(Result::unwrap));
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], LaneMsg::Begin { cycle: 7 });
        assert!(matches!(&got[1], LaneMsg::Event { event } if matches!(**event, RunEvent::CycleStart { seed: 9, .. })));
        assert_eq!(got[3], LaneMsg::Exit { interrupted: true, harness_error: None, cycles_run: 8 });
        assert!(l.rest().is_none());
        assert!(l.push(b"{\"msg\":\"be").is_empty());
        assert!(l.rest().is_some(), "a line cut short is kept for the report");
        assert!(l.push(b"gin\"}\n")[0].is_err(), "a begin without its cycle is an error, not a guess");
    }
}
