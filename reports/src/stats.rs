//! Rates with honest error bars: the Wilson score interval.
//!
//! Why Wilson: nightly runs see few or zero failures in thousands of kills; the normal approximation then
//! gives an interval of zero width (or below zero), which would claim certainty a run never has. Wilson's
//! interval stays inside [0, 1] and is wide when the counts are small.

use crate::model::Rate;

/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// The 95% Wilson score interval of `failures` in `trials`, as (low, high) proportions; None without trials.
pub fn wilson(failures: u64, trials: u64) -> Option<(f64, f64)> {
    if trials == 0 {
        return None;
    }
    let n = trials as f64;
    let p = failures.min(trials) as f64 / n;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// A failure rate per 10,000 kills with its interval.
pub fn rate(failing_kills: u64, kills: u64) -> Rate {
    let per = |x: f64| (x * 10_000.0 * 1000.0).round() / 1000.0;
    match wilson(failing_kills, kills) {
        None => Rate { kills, failing_kills, per_10k: None, low_per_10k: None, high_per_10k: None },
        Some((lo, hi)) => Rate {
            kills,
            failing_kills,
            per_10k: Some(per(failing_kills as f64 / kills as f64)),
            low_per_10k: Some(per(lo)),
            high_per_10k: Some(per(hi)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_published_values() {
        // Reference values (Newcombe 1998, table I, method 3): 0/10 → 0–0.2775; 1/10 → 0.0179–0.4042;
        // 81/263 → 0.2553–0.3662.
        let close = |a: f64, b: f64| (a - b).abs() < 5e-4;
        let (lo, hi) = wilson(0, 10).unwrap();
        assert!(close(lo, 0.0) && close(hi, 0.2775), "{lo} {hi}");
        let (lo, hi) = wilson(1, 10).unwrap();
        assert!(close(lo, 0.0179) && close(hi, 0.4042), "{lo} {hi}");
        let (lo, hi) = wilson(81, 263).unwrap();
        assert!(close(lo, 0.2553) && close(hi, 0.3662), "{lo} {hi}");
        assert_eq!(wilson(0, 0), None);
    }

    #[test]
    fn zero_failures_in_many_kills_still_has_an_upper_bound() {
        let r = rate(0, 1483);
        assert_eq!(r.per_10k, Some(0.0));
        assert_eq!(r.low_per_10k, Some(0.0));
        let hi = r.high_per_10k.unwrap();
        // ≈ 3.84/n: the "rule of three" neighbourhood.
        assert!(hi > 20.0 && hi < 30.0, "{hi}");
    }

    #[test]
    fn interval_contains_the_estimate() {
        for (f, n) in [(1, 3), (5, 100), (99, 100), (100, 100), (3, 10_000)] {
            let (lo, hi) = wilson(f, n).unwrap();
            let p = f as f64 / n as f64;
            assert!(lo <= p && p <= hi && (0.0..=1.0).contains(&lo) && hi <= 1.0, "{f}/{n}: {lo} {p} {hi}");
        }
    }
}
