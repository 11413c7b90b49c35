//! The rpmdb layer, written once and used by every backend: header blobs, index tags, index entries with
//! rpm's semantics, regeneration and the cross-check, and the findings they produce.

pub mod check;
pub mod finding;
pub mod header;
pub mod index;
pub mod tags;
pub mod tagtypes;

pub use check::{Snapshot, cross_check};
pub use finding::{Finding, FindingClass};
pub use header::Header;
pub use index::{Entry, Store, add_header, remove_header};
pub use tags::{INDEXES, IndexTag};
