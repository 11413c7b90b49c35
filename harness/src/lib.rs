//! dbtorture: a crash-consistency torture-test harness for package databases.
//!
//! The scheduler forks workers that run seeded transactions against a backend, kills them at random times or
//! exact crash points, then verifies the database (storage, the rpmdb cross-check, the oracle of what was
//! acknowledged, operability) and classifies each cycle's outcome.

pub mod arg_values;
pub mod bench;
pub mod bench_rpm;
pub mod bench_verify;
pub mod bundle;
pub mod cli_error;
pub mod dirlock;
pub mod environment;
pub mod exit_codes;
pub mod fault;
pub mod finding;
pub mod fuzz;
pub mod guard;
pub mod lanes;
pub mod leftovers;
pub mod merge;
pub mod naive_rpm;
pub mod oracle;
pub mod qemu;
pub mod readonly;
pub mod replay;
pub mod run;
pub mod run_text;
pub mod scenario;
pub mod scheduler;
pub mod selftest;
pub mod shipped;
pub mod shrink;
pub mod sys;
pub mod unpack;
pub mod verify;
pub mod worker;
pub mod workload;
