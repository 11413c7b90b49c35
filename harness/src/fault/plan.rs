//! Per-cycle fault plans, drawn from the cycle's seeded RNG: which worker is killed when, or which writer is
//! armed at which crash point. Same seed ⇒ same plan.

use crate::scenario::{Distribution, Kill, KillMode, KillSignal};
use nix::sys::signal::Signal;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerPlan {
    /// Send `signal` at this time after the cycle starts.
    pub kill_at: Option<Duration>,
    pub signal: Signal,
    /// Stop at the N-th hit of this crash point (id, nth), then SIGKILL.
    pub arm: Option<(u32, u32)>,
    /// Stop at the first point after that hit instead (replay of a kill that landed between points).
    pub arm_after: bool,
}

/// Plans for `writers` writers followed by `readers` readers. `points` are the backend's crash point ids;
/// `cycle` drives the systematic sweep.
pub fn draw(rng: &mut ChaCha8Rng, k: &Kill, writers: u32, readers: u32, points: &[u32], cycle: u64) -> Vec<WorkerPlan> {
    let n = (writers + readers) as usize;
    let mut plans = vec![WorkerPlan { kill_at: None, signal: Signal::SIGKILL, arm: None, arm_after: false }; n];
    let mode = match k.mode {
        KillMode::Mixed => {
            if rng.random_range(0..2) == 0 {
                KillMode::RandomTime
            } else {
                KillMode::CrashPoint
            }
        }
        m => m,
    };
    match mode {
        KillMode::None | KillMode::Mixed => {}
        KillMode::Sweep => {
            // Every (point, hit) pair in turn: all points' first hits, then all second hits, and so on.
            if writers > 0 && !points.is_empty() {
                let pairs = points.len() as u64 * u64::from(k.hit_max);
                let i = cycle % pairs;
                let (point, nth) = (points[(i % points.len() as u64) as usize], 1 + (i / points.len() as u64) as u32);
                let w = ((cycle / pairs) % u64::from(writers)) as usize;
                plans[w].arm = Some((point, nth));
            }
        }
        KillMode::RandomTime => {
            let mut any_writer = false;
            for (i, p) in plans.iter_mut().enumerate() {
                let is_reader = i >= writers as usize;
                if is_reader && !k.readers {
                    continue;
                }
                if rng.random_range(0.0..1.0) < k.probability {
                    p.kill_at = Some(delay(rng, k));
                    p.signal = signal(rng, k);
                    any_writer |= !is_reader;
                }
            }
            if !any_writer && writers > 0 {
                let w = rng.random_range(0..writers) as usize;
                plans[w].kill_at = Some(delay(rng, k));
                plans[w].signal = signal(rng, k);
            }
        }
        KillMode::CrashPoint => {
            if writers > 0 {
                let point = match &k.point {
                    Some(p) => dbtorture_backends::crash::id_of(p),
                    None if !points.is_empty() => Some(points[rng.random_range(0..points.len())]),
                    None => None,
                };
                if let Some(id) = point {
                    let w = rng.random_range(0..writers) as usize;
                    plans[w].arm = Some((id, rng.random_range(1..=k.hit_max)));
                }
            }
        }
    }
    plans
}

fn signal(rng: &mut ChaCha8Rng, k: &Kill) -> Signal {
    match k.signal {
        KillSignal::Sigkill => Signal::SIGKILL,
        KillSignal::Sigint => Signal::SIGINT,
        KillSignal::Sigterm => Signal::SIGTERM,
        KillSignal::Mixed => [Signal::SIGKILL, Signal::SIGINT, Signal::SIGTERM][rng.random_range(0..3usize)],
    }
}

fn delay(rng: &mut ChaCha8Rng, k: &Kill) -> Duration {
    let ms = match k.distribution {
        Distribution::Uniform => {
            if k.delay_ms_max > k.delay_ms_min {
                rng.random_range(k.delay_ms_min as f64..k.delay_ms_max as f64)
            } else {
                k.delay_ms_min as f64
            }
        }
        Distribution::Exponential => {
            let mean = (k.delay_ms_max - k.delay_ms_min).max(1) as f64;
            let u: f64 = rng.random_range(1e-12..1.0);
            k.delay_ms_min as f64 + (-u.ln() * mean).min(10.0 * mean)
        }
    };
    Duration::from_micros((ms * 1000.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn same_seed_same_plan_and_a_writer_is_always_hit() {
        let k = Kill { probability: 0.0, ..Kill::default() };
        for seed in 0..50 {
            let a = draw(&mut ChaCha8Rng::seed_from_u64(seed), &k, 3, 2, &[1, 2], 0);
            let b = draw(&mut ChaCha8Rng::seed_from_u64(seed), &k, 3, 2, &[1, 2], 0);
            assert_eq!(a, b);
            assert!(a[..3].iter().any(|p| p.kill_at.is_some()), "a writer must be killed");
            for p in &a {
                if let Some(t) = p.kill_at {
                    assert!(t <= Duration::from_millis(k.delay_ms_max));
                }
            }
        }
    }

    #[test]
    fn sweep_visits_every_point_and_hit_once_per_round() {
        let k = Kill { mode: KillMode::Sweep, hit_max: 2, ..Kill::default() };
        let mut seen = std::collections::BTreeSet::new();
        for c in 0..6 {
            let plans = draw(&mut ChaCha8Rng::seed_from_u64(c), &k, 2, 0, &[7, 8, 9], c);
            let armed: Vec<_> = plans.iter().filter_map(|p| p.arm).collect();
            assert_eq!(armed.len(), 1);
            seen.insert(armed[0]);
        }
        assert_eq!(seen.len(), 6, "3 points x 2 hits, each once: {seen:?}");
    }

    #[test]
    fn crash_point_mode_arms_exactly_one_writer() {
        let k = Kill { mode: KillMode::CrashPoint, hit_max: 3, ..Kill::default() };
        let plans = draw(&mut ChaCha8Rng::seed_from_u64(9), &k, 2, 1, &[4, 5, 6], 0);
        let armed: Vec<_> = plans.iter().filter_map(|p| p.arm).collect();
        assert_eq!(armed.len(), 1);
        assert!([4, 5, 6].contains(&armed[0].0) && (1..=3).contains(&armed[0].1));
        assert!(plans[2].arm.is_none(), "readers are never armed");
    }
}
