//! The seeded workload: a pool of real RPM packages and the operations run on them.

pub mod ops;
pub mod pool;

pub use ops::{Query, Step, Txn, TxnKind};
pub use pool::{Pool, PoolPackage, PoolSpec};
