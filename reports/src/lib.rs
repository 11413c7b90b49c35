//! Reports of a dbtorture run: the event model and its writers (events.jsonl, summary.json).

pub mod model;
pub mod writer;

pub use model::{FindingRecord, KillRecord, Outcome, PointCoverage, RunEvent, SCHEMA_VERSION, Summary};
pub use writer::{EventLog, write_json_atomic};
