//! DeStein's fusion: push an activation away from the toxic direction z with strength α, head by head.
//!
//! With n(v) = v / max(‖v‖, 1e-12):
//! - `rotate` (the formula the paper's released code runs, over a layer's whole vector, on the output of o_proj —
//!   our `attn_out` site; at `heads` we apply it before o_proj):
//!   a' = ‖a‖ · n(n(a) − α·n(z)). The norm is kept; the activation turns away from z.
//! - `headwise` (this project's per-head variant: the paper's exact formula was not available to us; it keeps the
//!   released multi-head branch's λ_h and per-head turn but lets each head keep its own norm): per head h,
//!   c_h = cos(a_h, z_h), λ_h = 1 + max(0, c_h), a'_h = ‖a_h‖ · n(n(a_h) − α·λ_h·n(z_h)). Each head keeps its norm; heads that point more toward
//!   toxicity are pushed harder.
//! - `headwise-reference`: the released code's (unused) multi-head branch: the same per-head u_h = n(…),
//!   but the concatenation is rescaled to ‖a‖, which forces every head to norm ‖a‖/√H.
//! - `add` (plain activation addition, a baseline): a' = a − α·‖a‖·n(z).
//! - `project` (our variant, in the spirit of subspace-projection methods such as ProFS, arXiv 2405.13967):
//!   per head, remove α times the component of a_h along z_h when it points toward toxicity:
//!   a'_h = a_h − α·max(0, a_h·n(z_h))·n(z_h). α = 1 removes it; heads pointing away are untouched.
//!
//! α = 0 is exactly the identity in every mode (the activation is not touched at all).
//!
//! Up to `MAX_VECTORS` vector files can steer one row together, each with its own α, in one mode: our own
//! generalisation, which sums the α_i·n(z_i) terms inside the same formulas (see `fuse_many`).
//! Arithmetic runs in f64 and is written back as f32.

use std::fmt;
use std::str::FromStr;

use crate::bail;
use crate::error::{find_named, unknown_name, Error, Result};

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
    Project,
}

impl FusionMode {
    pub const ALL: [FusionMode; 5] =
        [FusionMode::Rotate, FusionMode::Headwise, FusionMode::HeadwiseReference, FusionMode::Add, FusionMode::Project];

    pub fn name(self) -> &'static str {
        match self {
            FusionMode::Rotate => "rotate",
            FusionMode::Headwise => "headwise",
            FusionMode::HeadwiseReference => "headwise-reference",
            FusionMode::Add => "add",
            FusionMode::Project => "project",
        }
    }
}

impl FromStr for FusionMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        find_named(&FusionMode::ALL, FusionMode::name, s)
            .ok_or_else(|| unknown_name("fusion mode", s, &FusionMode::ALL.map(FusionMode::name)))
    }
}

impl fmt::Display for FusionMode {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which positions are steered: every position, the prompt's too, or only those producing new tokens (the prompt's
/// KV cache stays raw). `--scope` in the CLI, `recommended_scope` in a vector file, `recommendedScope` in the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Scope {
    #[default]
    All,
    Generated,
}

impl Scope {
    pub const ALL: [Scope; 2] = [Scope::All, Scope::Generated];

    pub fn name(self) -> &'static str {
        match self {
            Scope::All => "all",
            Scope::Generated => "generated",
        }
    }

    pub fn generated_only(self) -> bool {
        self == Scope::Generated
    }

    pub fn from_generated_only(generated_only: bool) -> Self {
        if generated_only {
            Scope::Generated
        } else {
            Scope::All
        }
    }
}

impl FromStr for Scope {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        find_named(&Scope::ALL, Scope::name, s).ok_or_else(|| unknown_name("scope", s, &Scope::ALL.map(Scope::name)))
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

/// At most this many vector files steer one row together.
pub const MAX_VECTORS: usize = 3;

/// One direction of a fusion with its coefficient (α_i, or α_i·λ_{i,h} in the head-wise modes).
type Term<'z> = (&'z [f32], f64);

const NO_TERM: Term<'static> = (&[], 0.0);

/// What `apply` does with the combined values u_d = x_d·inv_a − Σ_i c_i·z_i[d].
#[derive(Clone, Copy)]
enum Apply {
    /// Turn: a ← `scale` · n(u), with inv_a = 1/‖a‖ and c_i = s_i/‖z_i‖ (the caller's s_i).
    Turn(f64),
    /// Subtract: a ← u, with inv_a = 1 and c_i as given (`add` mode).
    Subtract,
}

// `apply` has one arm per number of terms, so the loops are compiled for a fixed count.
const _: () = assert!(MAX_VECTORS == 3, "apply() needs an arm per term count");

/// Apply 1 to `MAX_VECTORS` terms to `a` in place, without allocation. Always inlined: the head-wise modes
/// call it once per head, and the dispatch must cost no more than the single-vector code did.
#[inline(always)]
fn apply(a: &mut [f32], terms: &[Term], how: Apply) {
    match *terms {
        [t0] => apply_n(a, [t0], how),
        [t0, t1] => apply_n(a, [t0, t1], how),
        [t0, t1, t2] => apply_n(a, [t0, t1, t2], how),
        _ => unreachable!("fuse_many passes 1 to MAX_VECTORS terms"),
    }
}

/// `apply` for exactly N terms. Each c_i·z_i[d] is subtracted in index order, so with one term the f64
/// operations are those of the single-vector formulas (x·inv_a − c·y; for `add`, x·1 = x exactly).
fn apply_n<const N: usize>(a: &mut [f32], terms: [Term; N], how: Apply) {
    let len = a.len();
    let (inv_a, terms) = match how {
        Apply::Turn(_) => (1.0 / norm(a).max(NORM_EPS), terms.map(|(z, s)| (&z[..len], s / norm(z).max(NORM_EPS)))),
        Apply::Subtract => (1.0, terms.map(|(z, c)| (&z[..len], c))),
    };
    let u = |d: usize, x: f32| terms.iter().fold(x as f64 * inv_a, |u, &(z, c)| u - c * z[d] as f64);
    let k = match how {
        Apply::Turn(scale) => {
            let u_norm = a
                .iter()
                .enumerate()
                .map(|(d, &x)| {
                    let u = u(d, x);
                    u * u
                })
                .sum::<f64>()
                .sqrt();
            scale / u_norm.max(NORM_EPS)
        }
        Apply::Subtract => 1.0,
    };
    for (d, x) in a.iter_mut().enumerate() {
        let u = u(d, *x);
        *x = if let Apply::Turn(_) = how { u * k } else { u } as f32;
    }
}

/// Fuse the direction `z` into one position's activation `a` (both of length n_heads · head_dim) in place:
/// `fuse_many` with one vector. α ≤ 0 leaves `a` untouched.
pub fn fuse(a: &mut [f32], z: &[f32], n_heads: usize, mode: FusionMode, alpha: f32) {
    fuse_many(a, &[z], &[alpha], n_heads, mode);
}

/// Fuse up to `MAX_VECTORS` directions `zs[i]`, each with its own `alphas[i]`, into one position's activation
/// `a` in place. Only the terms with α_i > 0 take part, in index order; with none, `a` is not touched at all.
///
/// This combination is this project's own generalisation of the single-vector formulas (the paper fuses one
/// vector): with n(v) = v / max(‖v‖, 1e-12),
/// - `rotate`: a' = ‖a‖ · n(n(a) − Σ_i α_i·n(z_i));
/// - `add`: a' = a − ‖a‖ · Σ_i α_i·n(z_i);
/// - `headwise`: per head h, λ_{i,h} = 1 + max(0, cos(a_h, z_{i,h})) with the original a_h, and
///   a'_h = ‖a_h‖ · n(n(a_h) − Σ_i α_i·λ_{i,h}·n(z_{i,h}));
/// - `headwise-reference`: as `headwise` with unit heads, then the concatenation rescaled to ‖a‖;
/// - `project`: per head, each term in turn: a_h ← a_h − α_i·max(0, a_h·n(z_{i,h}))·n(z_{i,h}).
///
/// With one active term the result is bit-identical to the single-vector formula.
pub fn fuse_many(a: &mut [f32], zs: &[&[f32]], alphas: &[f32], n_heads: usize, mode: FusionMode) {
    assert_eq!(zs.len(), alphas.len(), "one α per direction");
    assert!(zs.len() <= MAX_VECTORS, "more than {MAX_VECTORS} directions");
    assert!(zs.iter().all(|z| z.len() == a.len()), "activation and direction lengths differ");
    assert!(n_heads > 0 && a.len().is_multiple_of(n_heads), "length not divisible into heads");
    let mut terms = [NO_TERM; MAX_VECTORS];
    let mut n = 0;
    for (&z, &alpha) in zs.iter().zip(alphas).filter(|(_, &alpha)| alpha > 0.0) {
        terms[n] = (z, alpha as f64);
        n += 1;
    }
    if n == 0 {
        return;
    }
    let terms = &mut terms[..n];
    let head_dim = a.len() / n_heads;
    match mode {
        FusionMode::Rotate => {
            let scale = norm(a);
            apply(a, terms, Apply::Turn(scale));
        }
        FusionMode::Add => {
            let whole = norm(a);
            for (z, step) in terms.iter_mut() {
                *step = *step * whole / norm(z).max(NORM_EPS);
            }
            apply(a, terms, Apply::Subtract);
        }
        FusionMode::Project => {
            for (h, ah) in a.chunks_exact_mut(head_dim).enumerate() {
                for &(z, alpha) in terms.iter() {
                    let zh = &z[h * head_dim..(h + 1) * head_dim];
                    let z_norm = norm(zh).max(NORM_EPS);
                    let along = dot(ah, zh) / z_norm;
                    if along > 0.0 {
                        let c = alpha * along / z_norm;
                        ah.iter_mut().zip(zh).for_each(|(x, &zd)| *x = (*x as f64 - c * zd as f64) as f32);
                    }
                }
            }
        }
        FusionMode::Headwise | FusionMode::HeadwiseReference => {
            let whole = norm(a);
            let mut head_terms = [NO_TERM; MAX_VECTORS];
            for (h, ah) in a.chunks_exact_mut(head_dim).enumerate() {
                for (slot, &(z, alpha)) in head_terms.iter_mut().zip(terms.iter()) {
                    let zh = &z[h * head_dim..(h + 1) * head_dim];
                    *slot = (zh, alpha * (1.0 + cosine(ah, zh).max(0.0)));
                }
                // Head-wise keeps each head's norm; the reference branch makes each head a unit vector first.
                let scale = if mode == FusionMode::Headwise { norm(ah) } else { 1.0 };
                apply(ah, &head_terms[..n], Apply::Turn(scale));
            }
            if mode == FusionMode::HeadwiseReference {
                let rescale = whole / norm(a).max(NORM_EPS);
                a.iter_mut().for_each(|x| *x = (*x as f64 * rescale) as f32);
            }
        }
    }
}

/// How one batch row is steered during a forward pass: α_i for vector file i (0 = that file does not steer
/// this row), and one fusion mode for all of them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RowSteering {
    pub alphas: [f32; MAX_VECTORS],
    pub mode: FusionMode,
}

impl RowSteering {
    pub const OFF: RowSteering = RowSteering { alphas: [0.0; MAX_VECTORS], mode: FusionMode::Rotate };

    /// Steering by the first vector file alone.
    pub fn single(alpha: f32, mode: FusionMode) -> Self {
        let mut alphas = [0.0; MAX_VECTORS];
        alphas[0] = alpha;
        Self { alphas, mode }
    }

    /// No vector steers this row: the activations pass untouched.
    pub fn is_off(&self) -> bool {
        !self.alphas.iter().any(|&alpha| alpha > 0.0)
    }

    /// Every α must pass `validate_alpha`; the error names the vector file's position.
    pub fn validate(&self) -> Result<()> {
        for (i, &alpha) in self.alphas.iter().enumerate() {
            validate_alpha(alpha).map_err(|e| Error::Input(format!("vector file {}: {e}", i + 1)))?;
        }
        Ok(())
    }

    /// Refuse α > 0 for a vector file position beyond the `available` files.
    pub fn check_vectors(&self, available: usize) -> Result<()> {
        let missing = self.alphas.iter().enumerate().skip(available).find(|(_, &alpha)| alpha > 0.0);
        match (missing, available) {
            (None, _) => Ok(()),
            (Some(_), 0) => bail!(Input, "α > 0 needs a detox vector file"),
            (Some((i, alpha)), _) => {
                bail!(
                    Input,
                    "α = {alpha} is set for vector file {} but only {available} vector file(s) are loaded",
                    i + 1
                )
            }
        }
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
    fn project_removes_the_toxic_component_per_head() {
        // Head 0 points partly along z (component 3 along n(z) = (1, 0)); head 1 points away from z.
        let mut a = vec![3.0f32, 4.0, -2.0, 1.0];
        fuse(&mut a, &[2.0, 0.0, 1.0, 0.0], 2, FusionMode::Project, 1.0);
        assert_eq!(a, vec![0.0, 4.0, -2.0, 1.0]);
        let mut half = vec![3.0f32, 4.0, -2.0, 1.0];
        fuse(&mut half, &[2.0, 0.0, 1.0, 0.0], 2, FusionMode::Project, 0.5);
        assert_eq!(half, vec![1.5, 4.0, -2.0, 1.0]);
    }

    #[test]
    fn rotate_turns_an_orthogonal_unit_by_atan_alpha() {
        let mut a = vec![1.0f32, 0.0];
        fuse(&mut a, &[0.0, 1.0], 1, FusionMode::Rotate, 1.0);
        let angle = (a[1] as f64).atan2(a[0] as f64);
        assert!((angle + std::f64::consts::FRAC_PI_4).abs() < 1e-6, "{angle}");
    }
}
