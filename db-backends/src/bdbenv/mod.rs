//! `bdbenv`: a Berkeley-DB-style environment backend, the way rpm 4.4–4.16 used db 4.x: a shared environment
//! (`__db.001` header, `__db.002` buffer cache, `__db.003` lock region, all MAP_SHARED by every process),
//! Concurrent Data Store locking (a locker and an R or IW lock per cursor, upgraded to W per put), and
//! non-transactional hash data files (Packages + the rpm 4.16 index files) written through the cache.
//!
//! Why: this is the backend of seed 000. It must fail the way db4 under rpm failed — stale locks of killed
//! processes, lock-region damage with db4's own error messages, data files out of step after a kill — and
//! be recoverable the way rpm users recovered (`rm __db.*` + `rpm --rebuilddb`). See bdb-env-spec.md.
//!
//! Profiles: `bdbenv` is rpm ≥ 4.6 on db 4.4-style checks (thread table, is_alive, failchk at open and
//! before every write cursor); `bdbenv-db43` has no failchk, so a stale IW lock blocks writers for ever.

pub mod check;
pub mod datafile;
pub mod durable;
mod engine;
pub mod env;
pub mod inspect;
pub mod lock;
pub mod lock_layout;
pub mod mmap;
pub mod mpool;
pub mod origin;
mod region_files;
pub mod shqueue;

pub use engine::*;
pub use region_files::*;
