//! Time of one fusion (one position's 576-value activation, 9 heads × 64, as in SmolLM2-135M) with 1, 2 and
//! 3 vector files, per mode. Run with `cargo bench --bench fusion` (harness-less: prints a table). Each cell
//! is the minimum over 40 rounds of 20,000 fusions: the least disturbed by other jobs on a shared machine.

use destein::steering::{fuse_many, FusionMode, MAX_VECTORS};
use std::hint::black_box;
use std::time::Instant;

const WIDTH: usize = 576;
const HEADS: usize = 9;
const ROUNDS: usize = 40;
const PER_ROUND: usize = 20_000;

/// Deterministic values in [-0.5, 0.5) (a linear congruential generator: enough for timing).
fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// Nanoseconds per fusion of `n` directions in `mode`: the minimum over the rounds.
fn time(a0: &[f32], zs: &[&[f32]], n: usize, mode: FusionMode) -> f64 {
    let alphas = [0.2, 0.1, 0.05];
    let mut a = a0.to_vec();
    let mut best = f64::MAX;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..PER_ROUND {
            a.copy_from_slice(a0);
            fuse_many(&mut a, &zs[..n], &alphas[..n], HEADS, mode);
            black_box(&a);
        }
        best = best.min(start.elapsed().as_secs_f64() / PER_ROUND as f64 * 1e9);
    }
    best
}

fn main() {
    let a0 = values(1, WIDTH);
    let directions: Vec<Vec<f32>> = (0..MAX_VECTORS as u64).map(|i| values(2 + i, WIDTH)).collect();
    let zs: Vec<&[f32]> = directions.iter().map(|z| z.as_slice()).collect();
    println!("| mode | 1 vector (ns) | 2 vectors (ns) | 3 vectors (ns) |");
    println!("|---|---|---|---|");
    for mode in FusionMode::ALL {
        let cells: Vec<String> = (1..=MAX_VECTORS).map(|n| format!("{:.0}", time(&a0, &zs, n, mode))).collect();
        println!("| {} | {} |", mode.name(), cells.join(" | "));
    }
}
