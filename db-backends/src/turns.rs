//! Turns: the steps where concurrent processes of one database touch state they share (a region mutex's
//! critical section, rpm's fcntl lock, a call into Berkeley DB that takes or frees its locks), announced to
//! a hook so a harness can record their order and enforce it again.
//!
//! Why: crash points fix *where* a process is, not *in which order* concurrent processes took the shared
//! region's mutexes and locks between them — and for a shared-environment engine that order decides what a
//! kill leaves behind. A backend calls [`wait`] before such a step (a replay may make it wait for its turn
//! there) and [`took`] once the step has taken effect, still inside it (the step's place in the order).
//! A library call whose locks are taken and released inside it (libdb's cursor open, put/del, failchk) is
//! one step, [`wait`] before the call and [`took`] after it returns: on replay no other turn passes while it
//! runs. A step that changed nothing and decided nothing (a lock poll that found the lock still taken) ends
//! without [`took`]: how often a process polls is timing, not order. Without a hook (every process but a
//! harness's worker) each call is one atomic load.
//!
//! Backend code holds no scheduling logic: the hooks live in the harness.

use std::sync::OnceLock;

/// What the harness does at a turn.
#[derive(Clone, Copy)]
pub struct Hooks {
    /// Before a step on shared state.
    pub wait: fn(),
    /// The step took effect (called inside it, before the mutex or lock is released).
    pub took: fn(),
}

static HOOKS: OnceLock<Hooks> = OnceLock::new();

/// Install the process-wide hooks (a worker does this once, after fork). Returns false if already set.
pub fn set_hooks(h: Hooks) -> bool {
    HOOKS.set(h).is_ok()
}

/// Before a step on state shared with concurrent processes.
#[inline]
pub fn wait() {
    if let Some(h) = HOOKS.get() {
        (h.wait)();
    }
}

/// The step announced by [`wait`] took effect.
#[inline]
pub fn took() {
    if let Some(h) = HOOKS.get() {
        (h.took)();
    }
}
