//! Database backends for dbtorture.
//!
//! `rpmdb` is the layer every backend shares (headers, index semantics, cross-check); `backend` is the trait
//! the harness drives; `crash` the crash-point mechanism backends call; `sqlite` is rpm's sqlite rpmdb;
//! `bdbenv` the Berkeley-DB-style shared environment rpm used before; `libdb` the real Berkeley DB 5.3;
//! `rpmcli` drives the real rpm binary; `rpmconvert` is the real rpm's BDB → sqlite conversion;
//! `rpmoracle` has real rpm regenerate the indexes as a second opinion; `ioerror` says what each engine does on an injected I/O error; `rebuild` is `--rebuilddb`; `tool` runs foreign programs safely; `turns` announces steps on shared state so a
//! harness can order them.

pub mod backend;
pub mod bdbenv;
pub mod bdbstore;
pub mod child;
pub mod crash;
pub mod explain;
pub mod ioerror;
pub mod libdb;
pub mod lockfile;
pub mod planted;
pub mod rebuild;
pub mod rpmcli;
pub mod rpmconvert;
pub mod rpmdb;
pub mod rpmoracle;
pub mod rpmroot;
pub mod sqlite;
pub mod sqlite_verify;
pub mod tool;
pub mod turns;

pub use backend::{Backend, BackendError, BackendKind, Installed, OpenMode, Promises, Reader};
