//! What a qemu machine needs to run the guest: its kernel command line, and arguments so the guest keeps time.
//!
//! Why `-icount` on raspi0: the guest kernel's only clock event device there is the BCM2835 system timer,
//! which fires when the low 32 bits of a free-running microsecond counter *equal* a compare register. Linux
//! programs it as "counter now + delta"; qemu's counter follows the host's clock. When the host deschedules
//! qemu between the kernel's read of the counter and its write of the compare (a loaded CI runner, two
//! cores shared by four builds), the counter has already passed the compare value and the next timer
//! interrupt comes after the counter wraps — 71 minutes later. The guest then sits idle with every process
//! asleep: the run "stops making progress" at a random cycle, the vCPU halted, until the host's wall clock
//! kills it. Seen here as the intermittent guest hang (qemu-smoke stuck at cycle 2, 4, 17), with turns on
//! and off. With `-icount shift=auto` the guest's clock advances with the instructions it executes, so no
//! host pause falls between two of its instructions, and `sleep=on` keeps an idle guest in real time.

/// The kernel command line that boots Debian's armel rpi kernel on `-M raspi0` (qemu-arm-recipe.md):
/// without `initcall_blacklist=bcm2835_power_driver_init` the kernel dies in bcm2835_power_probe and qemu
/// hangs silently; `panic=-1` makes a panicking guest reboot, which `-no-reboot` turns into qemu exiting.
pub const DEFAULT_APPEND: &str = "console=ttyAMA0 panic=-1 rdinit=/init \
    initcall_blacklist=bcm2835_power_driver_init,bcm2835_i2c_driver_init quiet";

/// The arguments added for `machine` unless the user passed their own `-icount`.
pub fn timekeeping_args(machine: &str, user_args: &[String]) -> Vec<String> {
    let user_chose = user_args.iter().any(|a| a.trim_start().trim_start_matches('-').starts_with("icount"));
    if machine == "raspi0" && !user_chose { vec!["-icount".into(), "shift=auto,sleep=on".into()] } else { Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raspi0_counts_instructions_unless_the_user_said_otherwise() {
        assert_eq!(timekeeping_args("raspi0", &[]), ["-icount", "shift=auto,sleep=on"]);
        assert!(timekeeping_args("raspi0", &["-icount".into(), "shift=3".into()]).is_empty());
        assert!(timekeeping_args("raspi0", &["--icount shift=3".into()]).is_empty(), "spelt as one argument");
        assert!(timekeeping_args("versatilepb", &[]).is_empty(), "the SP804 timer counts down: nothing to miss");
    }
}
