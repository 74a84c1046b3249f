//! A toxic subspace per layer that stacks with the fusion: our variant in the spirit of subspace-projection
//! methods such as ProFS (Uppaal et al., arXiv 2405.13967), which edit MLP weights to remove a low-rank toxic
//! subspace found by an SVD of embedding differences. Ours works on activations at the vector file's site:
//!
//! 1. Read the steering pairs **without** their prefixes (the derivation's reader, mean of the last 8 tokens).
//! 2. Per layer, the differences d_i = toxic_i − non-toxic_i, with their components along the fused direction
//!    z_l (the fusion already handles z; the subspace holds what z misses) and along the mean non-toxic activation
//!    (shared by all text) removed.
//! 3. The top `rank` right singular vectors of [d_i] (power iteration with deflation, f64): the basis V_l.
//! 4. At inference, before the fusion, each steered position's activation loses its part in the subspace:
//!    a ← a − Σ_j (a·v_j) v_j.

use candle_core::Tensor;

use crate::bail;
use crate::error::Result;
use crate::model::{ActivationHook, Model, Site};
use crate::steering::RowSteering;
use crate::vectors::{Derivation, DeriveOptions, DetoxVectors, SteeringPair};

/// Power-iteration steps per singular vector (the differences' spectrum falls fast; 200 is plenty at rank ≤ 8).
const ITERATIONS: usize = 200;
pub const MAX_RANK: usize = 8;

/// Orthonormal bases, `basis[layer][j]` of `width` values each.
#[derive(Clone, Debug)]
pub struct Subspace {
    pub rank: usize,
    pub width: usize,
    pub basis: Vec<Vec<Vec<f32>>>,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn normalize(v: &mut [f64]) -> f64 {
    let n = dot(v, v).sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    n
}

/// Remove from `v` its components along the orthonormal `basis`.
fn deflate(v: &mut [f64], basis: &[Vec<f64>]) {
    for b in basis {
        let c = dot(v, b);
        v.iter_mut().zip(b).for_each(|(x, y)| *x -= c * y);
    }
}

/// The top `rank` right singular vectors of the rows `d` (power iteration on DᵀD, deflated; deterministic start).
pub fn top_singular_vectors(d: &[Vec<f64>], rank: usize) -> Vec<Vec<f64>> {
    let width = d.first().map_or(0, |r| r.len());
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(rank);
    for j in 0..rank {
        let mut v: Vec<f64> = (0..width).map(|i| 1.0 + ((i * 31 + j * 17) % 7) as f64 / 7.0).collect();
        deflate(&mut v, &basis);
        normalize(&mut v);
        for _ in 0..ITERATIONS {
            let mut next = vec![0.0; width];
            for row in d {
                let c = dot(row, &v);
                next.iter_mut().zip(row).for_each(|(x, r)| *x += c * r);
            }
            deflate(&mut next, &basis);
            if normalize(&mut next) == 0.0 {
                break;
            }
            v = next;
        }
        basis.push(v);
    }
    basis
}

impl Subspace {
    /// Read every pair without prefixes on `model` at `vectors`' site and build the rank-`rank` subspace of each
    /// layer, orthogonal to `vectors`' direction.
    pub fn derive(model: &Model, pairs: &[SteeringPair], vectors: &DetoxVectors, rank: usize) -> Result<Self> {
        if rank == 0 || rank > MAX_RANK {
            bail!(Input, "the subspace rank must be 1 to {MAX_RANK}, got {rank}");
        }
        vectors.check_model(model)?;
        let mut options = DeriveOptions::detox(vectors.meta.site, pairs.len(), 0, String::new());
        options.away_prefix = String::new();
        options.toward_prefix = String::new();
        let mut reader = Derivation::new(model, pairs, options)?;
        while reader.pairs_read() < reader.pairs_total() {
            reader.step(model)?;
        }
        let width = vectors.meta.heads * vectors.meta.head_dim;
        let basis = (0..vectors.meta.layers)
            .map(|l| {
                let samples = reader.pair_activations();
                // Directions left out of the subspace: z (the fusion's) and the mean non-toxic activation (the
                // part every text shares, which ProFS also projects away before its SVD), made orthonormal.
                let mut zn: Vec<f64> = vectors.layer(l).iter().map(|&x| x as f64).collect();
                normalize(&mut zn);
                let mut mean = vec![0.0; width];
                for (_, toward) in samples {
                    mean.iter_mut().zip(&toward[l]).for_each(|(m, &t)| *m += t as f64);
                }
                deflate(&mut mean, std::slice::from_ref(&zn));
                normalize(&mut mean);
                let excluded = [zn, mean];
                let d: Vec<Vec<f64>> = samples
                    .iter()
                    .map(|(away, toward)| {
                        let mut row: Vec<f64> =
                            away[l].iter().zip(&toward[l]).map(|(&a, &t)| a as f64 - t as f64).collect();
                        deflate(&mut row, &excluded);
                        row
                    })
                    .collect();
                top_singular_vectors(&d, rank).into_iter().map(|v| v.into_iter().map(|x| x as f32).collect()).collect()
            })
            .collect();
        Ok(Self { rank, width, basis })
    }

    /// a ← a − Σ_j (a·v_j) v_j for one position's activation at `layer`.
    pub fn project_out(&self, layer: usize, a: &mut [f32]) {
        for v in &self.basis[layer] {
            let c: f64 = a.iter().zip(v).map(|(&x, &y)| x as f64 * y as f64).sum();
            a.iter_mut().zip(v).for_each(|(x, &y)| *x = (*x as f64 - c * y as f64) as f32);
        }
    }
}

/// A hook that removes the subspace from the positions of the steered rows, then hands the activation to `inner`
/// (the steering hook), so the fusion sees the projected activation.
pub struct Projecting<'a, H: ActivationHook> {
    pub subspace: &'a Subspace,
    pub rows: &'a [RowSteering],
    /// Leading positions of each row left alone (generated-only steering).
    pub skip: usize,
    pub inner: H,
}

impl<H: ActivationHook> ActivationHook for Projecting<'_, H> {
    fn site(&self) -> Site {
        self.inner.site()
    }

    fn on_activation(&mut self, layer: usize, act: Tensor) -> Result<Tensor> {
        let dims = act.dims().to_vec();
        let (batch, seq) = (dims[0], dims[1]);
        let width = self.subspace.width;
        let mut values = act.flatten_all()?.to_vec1::<f32>()?;
        if values.len() != batch * seq * width || batch != self.rows.len() {
            bail!(Input, "the subspace expects {} rows of width {width}", self.rows.len());
        }
        for (row, _) in self.rows.iter().enumerate().filter(|(_, s)| !s.is_off()) {
            let row_values = &mut values[row * seq * width..(row + 1) * seq * width];
            for position in row_values.chunks_exact_mut(width).skip(self.skip) {
                self.subspace.project_out(layer, position);
            }
        }
        let projected = Tensor::from_vec(values, dims, act.device())?;
        self.inner.on_activation(layer, projected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn singular_vectors_of_a_known_matrix() {
        // Rows mostly along e0 (norm 3), then e2 (norm 1): the right singular vectors are ±e0, then ±e2.
        let d = vec![vec![3.0, 0.0, 0.0, 0.0], vec![0.0, 0.0, 1.0, 0.0], vec![-3.0, 0.0, 0.0, 0.0]];
        let v = top_singular_vectors(&d, 2);
        assert!((v[0][0].abs() - 1.0).abs() < 1e-9 && (v[1][2].abs() - 1.0).abs() < 1e-9, "{v:?}");
        assert!(dot(&v[0], &v[1]).abs() < 1e-12, "orthogonal");
    }

    #[test]
    fn projecting_out_removes_the_subspace_only() {
        let s = Subspace { rank: 1, width: 3, basis: vec![vec![vec![0.0, 1.0, 0.0]]] };
        let mut a = vec![2.0f32, 5.0, -1.0];
        s.project_out(0, &mut a);
        assert_eq!(a, vec![2.0, 0.0, -1.0]);
    }
}
