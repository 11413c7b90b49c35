//! Exit codes of every child process dbtorture forks: workers, the operability probe, a conversion, the
//! memory balloon, BDB readers under a deadline, and a foreign tool's pre-exec step.
//!
//! Why one enum: the scheduler decides what a child's end means from its exit code. With each role picking
//! its own numbers, a panicking worker (112) and an engine error (3) could not be told apart, and an exit
//! nobody listed fell through unnoticed. Every code a child can exit with is a variant here, and
//! [`ChildExit::from_code`] is the only way back from a number.

/// How a child process ends on its own (not by a signal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum ChildExit {
    /// Did everything it was asked to.
    Ok = 0,
    /// Asked to fail (the probe's "no", a verify that found problems) — the reason is on its pipe.
    Refused = 1,
    /// A database operation failed; the error was reported on the pipe before exiting.
    BackendError = 3,
    /// The pipe to the scheduler broke: the harness lost its report channel.
    PipeBroken = 4,
    /// The child could not set itself up (cgroup, pipe, hook) before doing its job.
    SetupFailed = 5,
    /// The parent was already gone when the child started (PR_SET_PDEATHSIG came too late).
    Orphaned = 111,
    /// The child's code panicked; the message was reported on the pipe where there is one.
    Panicked = 112,
    /// exec of a foreign program failed.
    ExecFailed = 127,
    /// SIGINT/SIGTERM arrived; the child finished its current operation, closed cleanly and stopped.
    Interrupted = 130,
}

impl ChildExit {
    pub const ALL: [ChildExit; 9] = [
        ChildExit::Ok,
        ChildExit::Refused,
        ChildExit::BackendError,
        ChildExit::PipeBroken,
        ChildExit::SetupFailed,
        ChildExit::Orphaned,
        ChildExit::Panicked,
        ChildExit::ExecFailed,
        ChildExit::Interrupted,
    ];

    pub fn code(self) -> i32 {
        self as i32
    }

    /// The variant for an exit code, or None for a code no child of ours uses (someone else's `exit`).
    pub fn from_code(code: i32) -> Option<ChildExit> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }
}

impl std::fmt::Display for ChildExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            ChildExit::Ok => "ok",
            ChildExit::Refused => "refused",
            ChildExit::BackendError => "backend error",
            ChildExit::PipeBroken => "report pipe broken",
            ChildExit::SetupFailed => "set-up failed",
            ChildExit::Orphaned => "orphaned",
            ChildExit::Panicked => "panicked",
            ChildExit::ExecFailed => "exec failed",
            ChildExit::Interrupted => "interrupted",
        };
        write!(f, "{s} ({})", self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_round_trip() {
        let mut seen = std::collections::BTreeSet::new();
        for c in ChildExit::ALL {
            assert!(seen.insert(c.code()), "{c} twice");
            assert_eq!(ChildExit::from_code(c.code()), Some(c));
        }
        assert_eq!(ChildExit::from_code(2), None);
        assert_eq!(ChildExit::from_code(101), None, "Rust's default panic exit is not one of ours");
    }
}
