//! When a cycle has run too long: a hang is a cycle whose children stopped making progress, not one that is
//! merely slow.
//!
//! Why: with a fixed deadline, a loaded machine (a CI runner with parallel jobs, the emulated ARM core)
//! turns a slow but healthy cycle into a `hang`, and with no fault to explain it that is an unexpected
//! cycle — a red night that says nothing about the database. So the scenario's `timeouts.cycle_ms` is
//! the time a cycle may take *while it makes no progress*: once it has elapsed, the children are killed as
//! soon as they have gone a quarter of it without progress (no crash point passed, nothing said on a pipe),
//! and at three times it whatever they do. A deadlock (every worker waiting on a lock: no crash point, no
//! word) is still killed at `cycle_ms`; a foreign program that passes no crash point and says nothing
//! (the real rpm) is too, exactly as before.

use std::time::Duration;

/// A cycle's deadline, moved by progress.
#[derive(Debug, Clone)]
pub struct Deadline {
    timeout: Duration,
    quiet: Duration,
    hard: Duration,
    progress: u64,
    last: Duration,
}

impl Deadline {
    pub fn new(timeout: Duration) -> Deadline {
        Deadline { timeout, quiet: timeout / 4, hard: timeout * 3, progress: 0, last: Duration::ZERO }
    }

    /// `progress` is a counter that only grows (crash points passed + bytes said, over all children).
    pub fn observe(&mut self, progress: u64, now: Duration) {
        if progress != self.progress {
            self.progress = progress;
            self.last = now;
        }
    }

    /// Whether the children must be killed now.
    pub fn due(&self, now: Duration) -> bool {
        now >= self.next()
    }

    /// The earliest time [`Deadline::due`] can become true, as things stand.
    pub fn next(&self) -> Duration {
        self.hard.min(self.timeout.max(self.last + self.quiet))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn children_that_never_progress_are_killed_at_the_timeout() {
        let d = Deadline::new(4 * S);
        assert!(!d.due(4 * S - Duration::from_millis(1)));
        assert!(d.due(4 * S));
    }

    #[test]
    fn progress_before_the_last_quarter_changes_nothing() {
        let mut d = Deadline::new(4 * S);
        d.observe(10, 2 * S);
        assert_eq!(d.next(), 4 * S, "a deadlock after 2 s of work is still killed at the timeout");
    }

    #[test]
    fn a_slow_cycle_that_keeps_progressing_runs_on_until_it_goes_quiet() {
        let mut d = Deadline::new(4 * S);
        d.observe(10, 3900 * S / 1000);
        assert!(!d.due(4 * S), "progress 0.1 s ago: not a hang");
        d.observe(20, 5 * S);
        assert!(!d.due(5500 * S / 1000));
        assert!(d.due(6 * S), "quiet for a quarter of the timeout: a hang");
    }

    #[test]
    fn three_times_the_timeout_ends_it_whatever_happens() {
        let mut d = Deadline::new(4 * S);
        for t in 1..12u32 {
            d.observe(u64::from(t), t * S);
        }
        d.observe(99, 11900 * S / 1000);
        assert!(d.due(12 * S));
        assert_eq!(d.next(), 12 * S);
    }
}
