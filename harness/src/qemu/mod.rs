//! `dbtorture qemu`: the same scenarios and seeds inside an armv5tel guest under qemu system emulation.
//!
//! Why in the harness and not a script: the host must parse the guest's console as it streams (progress,
//! kernel oops/panic), enforce a wall-clock timeout, and turn whatever came back into the out directory of
//! an x86 run — the same summary.json, events.jsonl and bundles — which needs the report types. The guest
//! side is this same binary, cross-built by `qemu/build-guest.sh` and started as the guest's `/init`.
//!
//! - [`console`]: the framed serial-line protocol and the kernel-trouble recogniser (both sides).
//! - [`guest`]: pid 1 in the guest — set-up, the run as a child, reaping, sentinel, power-off.
//! - [`stall`]: a guest run that stopped making progress — every process's state, then the run ended.
//! - [`disk`]: the SD card image — job in, results out, with debugfs.
//! - [`machine`]: what a qemu machine needs so the guest keeps time (`-icount` on raspi0).
//! - [`boot`]: booting qemu, streaming the console, the timeout.
//! - [`host`]: a scenario in the guest — the job, and the results brought back as an x86 run's.
//! - [`replay`]: `qemu --replay` — a guest bundle replayed in the guest, its verdict brought back.
//! - [`slow`]: `--timeout-scale N` — an x86 scenario's timeouts scaled for the emulated core.
//! - [`results`]: guest.json, and the summary of a guest that died.

pub mod boot;
pub mod console;
pub mod disk;
pub mod guest;
pub mod host;
pub mod machine;
pub mod powercut;
pub mod powercut_guest;
pub mod powercut_judge;
pub mod replay;
pub mod results;
pub mod slow;
pub mod stall;

pub use host::{QemuArgs, run};

/// How a failure of `dbtorture qemu` reaches the user: before a guest ran it is the input's or the machine's
/// (exit 2); once one ran, the harness's (exit 3): its results were not all brought back.
pub fn cli_error(e: anyhow::Error) -> crate::cli_error::CliError {
    use crate::cli_error::CliError;
    match boot::booted() {
        false => CliError::bad_input("cannot run the guest").cause(e),
        true => CliError::harness("the guest ran, but its results could not all be brought back").cause(e),
    }
}
