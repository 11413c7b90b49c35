//! Exit codes of `dbtorture`, reserved in one place.

/// Every cycle's outcome was one the scenario allows; `verify` found nothing.
pub const OK: i32 = 0;
/// `run`: at least one cycle had an outcome the scenario does not allow. `verify`: findings.
pub const FINDINGS: i32 = 1;
/// Bad usage, a malformed scenario, or an I/O error before anything ran.
pub const USAGE: i32 = 2;
/// The harness itself failed mid-run (reports written so far are kept).
pub const HARNESS: i32 = 3;
/// Interrupted by SIGINT/SIGTERM; reports for the cycles done were written.
pub const INTERRUPTED: i32 = 130;
/// `qemu`: the guest kernel oopsed or panicked (recorded in summary.json and guest.json).
pub const GUEST_KERNEL: i32 = 4;
/// `qemu`: the guest never reported back (wall-clock timeout, or qemu exited without the sentinel).
pub const GUEST_LOST: i32 = 5;
