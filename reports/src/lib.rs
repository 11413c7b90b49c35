//! Reports of a dbtorture run: the event model, the fold that turns events into a summary, and the writers
//! (events.jsonl, summary.json, junit.xml, report.html).

pub mod coverage_table;
pub mod fold;
pub mod html;
pub mod ioerror;
pub mod junit;
pub mod kill;
pub mod model;
pub mod run_clock;
pub mod stats;
pub mod style;
mod tally;
pub mod writer;

pub use fold::{Aggregate, Timeline, read_events};
pub use model::{
    ConversionState, ConversionTotals, Environment, FailureRecord, FaultKind, FindingRecord, ImageTally, IoErrorEffect,
    IoErrorKind, IoErrorRecord, IoErrorTally, IoOp, KillRecord, KillTrigger, LostOutcome, Outcome, PointCoverage, Role,
    RunEvent, RunInfo, SCHEMA_VERSION, Shard, Summary, WorkerEnd,
};
pub use writer::{EventLog, write_atomic, write_json_atomic, write_reports};
