//! Paired bootstrap over prompts: every draw resamples the same prompts for every setting, so a setting's
//! change against raw is measured on the same resampled prompts. Intervals are the 2.5 and 97.5
//! percentiles of the draws.

use serde::{Deserialize, Serialize};

/// Draws and the fixed seed, so the same inputs give the same intervals.
pub const BOOTSTRAP_DRAWS: usize = 2000;
pub const BOOTSTRAP_SEED: u64 = 20_261_202;

/// A point estimate with its 95% bootstrap interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub point: f64,
    pub lo: f64,
    pub hi: f64,
}

/// The resampled prompt indices of each draw (`draws` draws of `n_prompts` indices, with repeats).
pub fn resamples(n_prompts: usize, draws: usize, seed: u64) -> Vec<Vec<usize>> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..draws).map(|_| (0..n_prompts).map(|_| rng.random_range(0..n_prompts)).collect()).collect()
}

/// The q-quantile of sorted finite values, interpolated linearly between order statistics.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * q;
    let (i, frac) = (h.floor() as usize, h - h.floor());
    let next = sorted[(i + 1).min(sorted.len() - 1)];
    sorted[i] + frac * (next - sorted[i])
}

/// The interval of `point` from its bootstrap draws (non-finite draws left out: a draw of only empty
/// continuations has no perplexity).
pub fn interval(point: f64, mut draws: Vec<f64>) -> Interval {
    draws.retain(|d| d.is_finite());
    draws.sort_by(f64::total_cmp);
    Interval { point, lo: quantile(&draws, 0.025), hi: quantile(&draws, 0.975) }
}

/// Interval of a change against raw, draw by draw: `a − b`, or `a / b − 1` when `relative`.
pub fn change(point: (f64, f64), draws: &[(f64, f64)], relative: bool) -> Interval {
    let f = |a: f64, b: f64| if relative { a / b - 1.0 } else { a - b };
    interval(f(point.0, point.1), draws.iter().map(|&(a, b)| f(a, b)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate() {
        let v: Vec<f64> = (0..=100).map(|i| i as f64).collect();
        assert_eq!(quantile(&v, 0.025), 2.5);
        assert_eq!(quantile(&v, 0.975), 97.5);
        let i = interval(1.0, vec![f64::NAN, 3.0, 1.0, 2.0]);
        assert_eq!((i.lo, i.hi), (1.05, 2.95));
    }

    #[test]
    fn resamples_are_seeded_and_in_range() {
        let a = resamples(7, 5, 1);
        assert_eq!(a, resamples(7, 5, 1));
        assert!(a.iter().all(|d| d.len() == 7 && d.iter().all(|&i| i < 7)));
    }
}
