//! DeStein's fusion: push an activation away from the toxic direction z with strength α, head by head.
//!
//! With n(v) = v / max(‖v‖, 1e-12):
//! - `rotate` (what the paper's released code runs, over a layer's whole vector):
//!   a' = ‖a‖ · n(n(a) − α·n(z)). The norm is kept; the activation turns away from z.
//! - `headwise` (the paper's head-wise fusion): per head h, c_h = cos(a_h, z_h), λ_h = 1 + max(0, c_h),
//!   a'_h = ‖a_h‖ · n(n(a_h) − α·λ_h·n(z_h)). Each head keeps its norm; heads that point more toward
//!   toxicity are pushed harder.
//! - `headwise-reference`: the released code's (unused) multi-head branch: the same per-head u_h = n(…),
//!   but the concatenation is rescaled to ‖a‖, which forces every head to norm ‖a‖/√H.
//! - `add` (plain activation addition, a baseline): a' = a − α·‖a‖·n(z).
//!
//! α = 0 is exactly the identity in every mode (the activation is not touched at all).
//! Arithmetic runs in f64 and is written back as f32.

use candle_core::Tensor;

use crate::bail;
use crate::error::Result;
use crate::model::{ActivationHook, Site};
use crate::vectors::DetoxVectors;

/// The largest α the tools accept. Beyond 2 every mode has long since destroyed the activation
/// (for `rotate`, an activation orthogonal to z is already turned by atan(2) ≈ 63°).
pub const MAX_ALPHA: f32 = 2.0;

const NORM_EPS: f64 = 1e-12;
const COS_EPS: f64 = 1e-8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FusionMode {
    Rotate,
    Headwise,
    HeadwiseReference,
    Add,
}

impl FusionMode {
    pub const ALL: [FusionMode; 4] =
        [FusionMode::Rotate, FusionMode::Headwise, FusionMode::HeadwiseReference, FusionMode::Add];

    pub fn name(self) -> &'static str {
        match self {
            FusionMode::Rotate => "rotate",
            FusionMode::Headwise => "headwise",
            FusionMode::HeadwiseReference => "headwise-reference",
            FusionMode::Add => "add",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "rotate" => Ok(FusionMode::Rotate),
            "headwise" => Ok(FusionMode::Headwise),
            "headwise-reference" => Ok(FusionMode::HeadwiseReference),
            "add" => Ok(FusionMode::Add),
            other => bail!(Input, "unknown fusion mode `{other}` (expected rotate, headwise, headwise-reference or add)"),
        }
    }
}

/// Refuse α values that are not a finite strength in [0, MAX_ALPHA].
pub fn validate_alpha(alpha: f32) -> Result<()> {
    if !alpha.is_finite() {
        bail!(Input, "α must be a finite number, got {alpha}");
    }
    if alpha < 0.0 {
        bail!(Input, "α must not be negative (got {alpha}); α = 0 means no steering");
    }
    if alpha > MAX_ALPHA {
        bail!(Input, "α = {alpha} is above the maximum of {MAX_ALPHA}");
    }
    Ok(())
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// cos(a, b) as torch's `cosine_similarity` (eps 1e-8), which the released code uses.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    dot(a, b) / (norm(a) * norm(b)).max(COS_EPS)
}

/// Turn `a` in place to `scale` · n(n(a) − s·n(z)). Two passes, no allocation: the first measures
/// ‖n(a) − s·n(z)‖, the second writes.
fn turn(a: &mut [f32], z: &[f32], s: f64, scale: f64) {
    let inv_a = 1.0 / norm(a).max(NORM_EPS);
    let sz = s / norm(z).max(NORM_EPS);
    let u_norm = a
        .iter()
        .zip(z)
        .map(|(&x, &y)| {
            let u = x as f64 * inv_a - sz * y as f64;
            u * u
        })
        .sum::<f64>()
        .sqrt()
        .max(NORM_EPS);
    let k = scale / u_norm;
    for (x, &y) in a.iter_mut().zip(z) {
        *x = ((*x as f64 * inv_a - sz * y as f64) * k) as f32;
    }
}

/// Fuse the direction `z` into one position's activation `a` (both of length n_heads · head_dim) in place.
pub fn fuse(a: &mut [f32], z: &[f32], n_heads: usize, mode: FusionMode, alpha: f32) {
    assert_eq!(a.len(), z.len(), "activation and direction lengths differ");
    assert!(n_heads > 0 && a.len() % n_heads == 0, "length not divisible into heads");
    if alpha == 0.0 {
        return;
    }
    let alpha = alpha as f64;
    let head_dim = a.len() / n_heads;
    match mode {
        FusionMode::Rotate => {
            let scale = norm(a);
            turn(a, z, alpha, scale);
        }
        FusionMode::Add => {
            let step = alpha * norm(a) / norm(z).max(NORM_EPS);
            for (x, &y) in a.iter_mut().zip(z) {
                *x = (*x as f64 - step * y as f64) as f32;
            }
        }
        FusionMode::Headwise | FusionMode::HeadwiseReference => {
            let whole = norm(a);
            for (ah, zh) in a.chunks_exact_mut(head_dim).zip(z.chunks_exact(head_dim)) {
                let lambda = 1.0 + cosine(ah, zh).max(0.0);
                // Head-wise keeps each head's norm; the reference branch makes each head a unit vector first.
                let scale = if mode == FusionMode::Headwise { norm(ah) } else { 1.0 };
                turn(ah, zh, alpha * lambda, scale);
            }
            if mode == FusionMode::HeadwiseReference {
                let rescale = whole / norm(a).max(NORM_EPS);
                a.iter_mut().for_each(|x| *x = (*x as f64 * rescale) as f32);
            }
        }
    }
}

/// How one batch row is steered during a forward pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RowSteering {
    pub alpha: f32,
    pub mode: FusionMode,
}

impl RowSteering {
    pub const OFF: RowSteering = RowSteering { alpha: 0.0, mode: FusionMode::Rotate };
}

/// The forward-pass hook that applies DeStein: every layer, every position of the step (prompt and generated
/// tokens alike, so the KV cache holds steered values), each row with its own α and mode. It also records,
/// for the last position of each row, the mean over layers of cos(activation, z) before fusion: the model's
/// own read-out of how toxic the current step is.
pub struct Steerer<'a> {
    vectors: &'a DetoxVectors,
    rows: &'a [RowSteering],
    projection_sums: Vec<f64>,
    layers_seen: usize,
}

impl<'a> Steerer<'a> {
    pub fn new(vectors: &'a DetoxVectors, rows: &'a [RowSteering]) -> Self {
        Self { vectors, rows, projection_sums: vec![0.0; rows.len()], layers_seen: 0 }
    }

    /// Mean over layers of cos(a_l, z_l) at each row's last position, before fusion.
    pub fn projections(&self) -> Vec<f32> {
        let layers = self.layers_seen.max(1) as f64;
        self.projection_sums.iter().map(|s| (s / layers) as f32).collect()
    }
}

impl ActivationHook for Steerer<'_> {
    fn site(&self) -> Site {
        self.vectors.meta.site
    }

    fn on_activation(&mut self, layer: usize, act: Tensor) -> Result<Tensor> {
        let dims = act.dims().to_vec();
        let (batch, seq) = (dims[0], dims[1]);
        let width = dims[2..].iter().product::<usize>();
        if batch != self.rows.len() {
            bail!(Input, "the steering plan has {} rows but the batch has {batch}", self.rows.len());
        }
        let z = self.vectors.layer(layer);
        if z.len() != width {
            bail!(Vectors, "layer {layer}: direction has {} values, activation {width}", z.len());
        }
        let mut values = act.flatten_all()?.to_vec1::<f32>()?;
        let heads = self.vectors.meta.heads;
        for (row, steer) in self.rows.iter().enumerate() {
            let row_values = &mut values[row * seq * width..(row + 1) * seq * width];
            let last = &row_values[(seq - 1) * width..];
            self.projection_sums[row] += cosine(last, z);
            if steer.alpha > 0.0 {
                for position in row_values.chunks_exact_mut(width) {
                    fuse(position, z, heads, steer.mode, steer.alpha);
                }
            }
        }
        self.layers_seen += 1;
        if self.rows.iter().all(|r| r.alpha == 0.0) {
            return Ok(act);
        }
        Ok(Tensor::from_vec(values, dims, act.device())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha_validation() {
        assert!(validate_alpha(0.0).is_ok());
        assert!(validate_alpha(MAX_ALPHA).is_ok());
        for bad in [f32::NAN, f32::INFINITY, -0.1, MAX_ALPHA + 0.01, 1e30] {
            assert!(validate_alpha(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn rotate_turns_an_orthogonal_unit_by_atan_alpha() {
        let mut a = vec![1.0f32, 0.0];
        fuse(&mut a, &[0.0, 1.0], 1, FusionMode::Rotate, 1.0);
        let angle = (a[1] as f64).atan2(a[0] as f64);
        assert!((angle + std::f64::consts::FRAC_PI_4).abs() < 1e-6, "{angle}");
    }
}
