//! Fusion math against the paper's released code (golden fixture), plus properties every mode must keep.

use destein::steering::{cosine, fuse, fuse_many, FusionMode, MAX_VECTORS};
use proptest::prelude::*;

#[derive(serde::Deserialize)]
struct Golden {
    alpha: f64,
    heads: usize,
    direction: Vec<f64>,
    x: Vec<Vec<Vec<f64>>>,
    expected_rotate: Vec<Vec<Vec<f64>>>,
    expected_reference_multihead: Vec<Vec<Vec<f64>>>,
}

fn golden() -> Golden {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/destein_fusion_golden.json"))
            .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// max |ours − expected| / max |expected| over one vector.
fn relative_error(ours: &[f32], expected: &[f64]) -> f64 {
    let scale = expected.iter().fold(0f64, |m, v| m.max(v.abs()));
    ours.iter().zip(expected).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max) / scale
}

fn check(mode: FusionMode, expected: impl Fn(&Golden) -> &Vec<Vec<Vec<f64>>>) {
    let g = golden();
    let z: Vec<f32> = g.direction.iter().map(|&v| v as f32).collect();
    for (b, batch) in g.x.iter().enumerate() {
        for (p, position) in batch.iter().enumerate() {
            let mut a: Vec<f32> = position.iter().map(|&v| v as f32).collect();
            fuse(&mut a, &z, g.heads, mode, g.alpha as f32);
            let err = relative_error(&a, &expected(&g)[b][p]);
            assert!(err <= 1e-6, "{mode:?} [{b},{p}]: relative error {err:e}");
        }
    }
}

#[test]
fn rotate_matches_released_code() {
    check(FusionMode::Rotate, |g| &g.expected_rotate);
}

#[test]
fn headwise_reference_matches_released_multihead_branch() {
    check(FusionMode::HeadwiseReference, |g| &g.expected_reference_multihead);
}

#[test]
fn headwise_differs_from_reference_by_keeping_each_heads_norm() {
    let g = golden();
    let z: Vec<f32> = g.direction.iter().map(|&v| v as f32).collect();
    let original: Vec<f32> = g.x[0][0].iter().map(|&v| v as f32).collect();
    let mut headwise = original.clone();
    fuse(&mut headwise, &z, g.heads, FusionMode::Headwise, g.alpha as f32);
    let head_dim = original.len() / g.heads;
    for h in 0..g.heads {
        let r = h * head_dim..(h + 1) * head_dim;
        let (n0, n1) = (norm(&original[r.clone()]), norm(&headwise[r]));
        assert!((n0 - n1).abs() <= 1e-5 * n0, "head {h}: {n0} vs {n1}");
    }
    let mut reference = original.clone();
    fuse(&mut reference, &z, g.heads, FusionMode::HeadwiseReference, g.alpha as f32);
    assert!(relative_error(&headwise, &g.x[0][0]) > 0.0);
    assert_ne!(headwise, reference);
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt()
}

fn mode_strategy() -> impl Strategy<Value = FusionMode> {
    prop_oneof![
        Just(FusionMode::Rotate),
        Just(FusionMode::Headwise),
        Just(FusionMode::HeadwiseReference),
        Just(FusionMode::Add),
        Just(FusionMode::Project)
    ]
}

/// An activation and a direction of 4 heads × 8, neither near zero.
fn vectors() -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
    (prop::collection::vec(-3.0f32..3.0, 32), prop::collection::vec(-3.0f32..3.0, 32))
        .prop_filter("non-degenerate heads", |(a, z)| {
            a.chunks(8).all(|h| norm(h) > 0.1) && z.chunks(8).all(|h| norm(h) > 0.1)
        })
}

proptest! {
    #[test]
    fn alpha_zero_is_exactly_the_identity((a, z) in vectors(), mode in mode_strategy()) {
        let mut b = a.clone();
        fuse(&mut b, &z, 4, mode, 0.0);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn norm_is_preserved_where_the_mode_says((a, z) in vectors(), alpha in 0.01f32..2.0) {
        for mode in [FusionMode::Rotate, FusionMode::HeadwiseReference] {
            let mut b = a.clone();
            fuse(&mut b, &z, 4, mode, alpha);
            prop_assert!((norm(&a) - norm(&b)).abs() <= 1e-5 * norm(&a), "{:?}", mode);
        }
        let mut b = a.clone();
        fuse(&mut b, &z, 4, FusionMode::Headwise, alpha);
        for (ha, hb) in a.chunks(8).zip(b.chunks(8)) {
            prop_assert!((norm(ha) - norm(hb)).abs() <= 1e-5 * norm(ha));
        }
    }

    #[test]
    fn cosine_with_z_falls_as_alpha_grows((a, z) in vectors(), mode in mode_strategy(), lo in 0.0f32..1.0, step in 0.05f32..1.0) {
        let hi = (lo + step).min(2.0);
        let (mut at_lo, mut at_hi) = (a.clone(), a.clone());
        fuse(&mut at_lo, &z, 4, mode, lo);
        fuse(&mut at_hi, &z, 4, mode, hi);
        // Per head for the head-wise modes (that is where they act), over the whole vector otherwise.
        match mode {
            FusionMode::Rotate | FusionMode::Add => {
                prop_assert!(cosine(&at_hi, &z) <= cosine(&at_lo, &z) + 1e-6);
            }
            FusionMode::Headwise | FusionMode::HeadwiseReference | FusionMode::Project => {
                for h in 0..4 {
                    let r = h * 8..(h + 1) * 8;
                    prop_assert!(cosine(&at_hi[r.clone()], &z[r.clone()]) <= cosine(&at_lo[r.clone()], &z[r]) + 1e-6);
                }
            }
        }
    }
}

#[test]
fn add_and_headwise_by_hand() {
    // add: a' = a − α·‖a‖·n(z); ‖(3, 4)‖ = 5, so α = 0.2 subtracts 1 along z.
    let mut a = vec![3.0f32, 4.0];
    fuse(&mut a, &[2.0, 0.0], 1, FusionMode::Add, 0.2);
    assert_eq!(a, vec![2.0, 4.0]);

    // headwise, 2 heads of 2. Head 0 points along z (cos 1, λ 2): n((1,0) − 0.4·(1,0)) = (1,0), unchanged.
    // Head 1 is orthogonal (cos 0, λ 1): n((0,1) − 0.2·(1,0)) = (−0.2, 1)/√1.04, times its norm 2.
    let mut a = vec![1.0f32, 0.0, 0.0, 2.0];
    fuse(&mut a, &[1.0, 0.0, 3.0, 0.0], 2, FusionMode::Headwise, 0.2);
    let k = 2.0 / 1.04f64.sqrt();
    let expected = [1.0, 0.0, -0.2 * k, k];
    for (x, e) in a.iter().zip(expected) {
        assert!((*x as f64 - e).abs() < 1e-6, "{a:?} vs {expected:?}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Several vectors at once (`fuse_many`, our own generalisation).

/// The single-vector fusion as this crate computed it before `fuse_many` existed (f64, same operation order):
/// the reference the one-active-vector path must reproduce bit for bit.
fn single_reference(a: &mut [f32], z: &[f32], n_heads: usize, mode: FusionMode, alpha: f32) {
    fn norm(v: &[f32]) -> f64 {
        v.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt()
    }
    fn turn(a: &mut [f32], z: &[f32], s: f64, scale: f64) {
        let inv_a = 1.0 / norm(a).max(1e-12);
        let sz = s / norm(z).max(1e-12);
        let u_norm = a
            .iter()
            .zip(z)
            .map(|(&x, &y)| {
                let u = x as f64 * inv_a - sz * y as f64;
                u * u
            })
            .sum::<f64>()
            .sqrt()
            .max(1e-12);
        let k = scale / u_norm;
        for (x, &y) in a.iter_mut().zip(z) {
            *x = ((*x as f64 * inv_a - sz * y as f64) * k) as f32;
        }
    }
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
            let step = alpha * norm(a) / norm(z).max(1e-12);
            for (x, &y) in a.iter_mut().zip(z) {
                *x = (*x as f64 - step * y as f64) as f32;
            }
        }
        FusionMode::Project => {
            for (ah, zh) in a.chunks_exact_mut(head_dim).zip(z.chunks_exact(head_dim)) {
                let z_norm = norm(zh).max(1e-12);
                let along = ah.iter().zip(zh).map(|(&x, &y)| x as f64 * y as f64).sum::<f64>() / z_norm;
                if along > 0.0 {
                    let c = alpha * along / z_norm;
                    ah.iter_mut().zip(zh).for_each(|(x, &y)| *x = (*x as f64 - c * y as f64) as f32);
                }
            }
        }
        FusionMode::Headwise | FusionMode::HeadwiseReference => {
            let whole = norm(a);
            for (ah, zh) in a.chunks_exact_mut(head_dim).zip(z.chunks_exact(head_dim)) {
                let lambda = 1.0 + cosine(ah, zh).max(0.0);
                let scale = if mode == FusionMode::Headwise { norm(ah) } else { 1.0 };
                turn(ah, zh, alpha * lambda, scale);
            }
            if mode == FusionMode::HeadwiseReference {
                let rescale = whole / norm(a).max(1e-12);
                a.iter_mut().for_each(|x| *x = (*x as f64 * rescale) as f32);
            }
        }
    }
}

/// An activation and MAX_VECTORS directions of 4 heads × 8, none near zero.
fn several() -> impl Strategy<Value = (Vec<f32>, Vec<Vec<f32>>)> {
    let v = || prop::collection::vec(-3.0f32..3.0, 32);
    (v(), prop::collection::vec(v(), MAX_VECTORS)).prop_filter("non-degenerate heads", |(a, zs)| {
        a.chunks(8).all(|h| norm(h) > 0.1) && zs.iter().all(|z| z.chunks(8).all(|h| norm(h) > 0.1))
    })
}

fn fused(a: &[f32], zs: &[Vec<f32>], alphas: &[f32], mode: FusionMode) -> Vec<f32> {
    let refs: Vec<&[f32]> = zs.iter().map(|z| z.as_slice()).collect();
    let mut b = a.to_vec();
    fuse_many(&mut b, &refs, alphas, 4, mode);
    b
}

#[test]
fn golden_fixture_through_fuse_many_with_idle_vectors() {
    let g = golden();
    let z: Vec<f32> = g.direction.iter().map(|&v| v as f32).collect();
    let other: Vec<f32> = z.iter().rev().copied().collect();
    for (mode, expected) in
        [(FusionMode::Rotate, &g.expected_rotate), (FusionMode::HeadwiseReference, &g.expected_reference_multihead)]
    {
        let mut a: Vec<f32> = g.x[0][0].iter().map(|&v| v as f32).collect();
        fuse_many(&mut a, &[&other, &z, &other], &[0.0, g.alpha as f32, 0.0], g.heads, mode);
        let err = relative_error(&a, &expected[0][0]);
        assert!(err <= 1e-6, "{mode:?}: relative error {err:e}");
    }
}

proptest! {
    #[test]
    fn one_active_vector_is_bit_identical_to_the_single_path(
        (a, zs) in several(), mode in mode_strategy(), alpha in 0.0f32..2.0, active in 0..MAX_VECTORS,
    ) {
        let mut expected = a.clone();
        single_reference(&mut expected, &zs[active], 4, mode, alpha);
        let mut alphas = [0.0f32; MAX_VECTORS];
        alphas[active] = alpha;
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&fused(&a, &zs, &alphas, mode)), bits(&expected));
        let mut wrapper = a.clone();
        fuse(&mut wrapper, &zs[active], 4, mode, alpha);
        prop_assert_eq!(bits(&wrapper), bits(&expected));
    }

    #[test]
    fn all_alphas_zero_is_exactly_the_identity((a, zs) in several(), mode in mode_strategy()) {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&fused(&a, &zs, &[0.0; MAX_VECTORS], mode)), bits(&a));
    }

    #[test]
    fn several_vectors_keep_the_norms_their_mode_keeps(
        (a, zs) in several(), alphas in prop::array::uniform3(0.0f32..2.0),
    ) {
        for mode in [FusionMode::Rotate, FusionMode::HeadwiseReference] {
            let b = fused(&a, &zs, &alphas, mode);
            prop_assert!((norm(&a) - norm(&b)).abs() <= 1e-5 * norm(&a), "{:?}", mode);
        }
        let b = fused(&a, &zs, &alphas, FusionMode::Headwise);
        for (ha, hb) in a.chunks(8).zip(b.chunks(8)) {
            prop_assert!((norm(ha) - norm(hb)).abs() <= 1e-5 * norm(ha));
        }
    }
}

#[test]
fn two_vectors_by_hand() {
    let close = |got: &[f32], expected: &[f64]| {
        assert!(got.iter().zip(expected).all(|(x, e)| (*x as f64 - e).abs() < 1e-6), "{got:?} vs {expected:?}");
    };
    // rotate: a = (2,0,0), n(z1) = (0,1,0), n(z2) = (0,0,1), α = (0.5, 0.25):
    // n(a) − Σ = (1, −0.5, −0.25), of norm √1.3125; times ‖a‖ = 2.
    let mut a = vec![2.0f32, 0.0, 0.0];
    fuse_many(&mut a, &[&[0.0, 3.0, 0.0], &[0.0, 0.0, 2.0]], &[0.5, 0.25], 1, FusionMode::Rotate);
    let k = 2.0 / 1.3125f64.sqrt();
    close(&a, &[k, -0.5 * k, -0.25 * k]);

    // add: a = (3,4), ‖a‖ = 5; 5·(0.2·(1,0) + 0.4·(0,1)) = (1, 2).
    let mut a = vec![3.0f32, 4.0];
    fuse_many(&mut a, &[&[2.0, 0.0], &[0.0, 5.0]], &[0.2, 0.4], 1, FusionMode::Add);
    close(&a, &[2.0, 2.0]);

    // headwise, 2 heads of 2, α = (0.2, 0.1). Head 0, a0 = (1,0): cos with z1 = 1 (λ 2), with z2 = 0 (λ 1):
    // (1,0) − 0.4·(1,0) − 0.1·(0,1) = (0.6, −0.1), scaled to norm 1. Head 1, a1 = (0,2): cos with z1 = 0 and
    // with z2 = −1, so both λ = 1: (0,1) − 0.2·(1,0) − 0.1·(0,−1) = (−0.2, 1.1), scaled to norm 2.
    let mut a = vec![1.0f32, 0.0, 0.0, 2.0];
    fuse_many(&mut a, &[&[1.0, 0.0, 3.0, 0.0], &[0.0, 1.0, 0.0, -1.0]], &[0.2, 0.1], 2, FusionMode::Headwise);
    let (k0, k1) = (1.0 / 0.37f64.sqrt(), 2.0 / 1.25f64.sqrt());
    close(&a, &[0.6 * k0, -0.1 * k0, -0.2 * k1, 1.1 * k1]);

    // headwise-reference: the same unit heads, then the whole rescaled to ‖a‖ = √5 (each head at √5/√2).
    let mut a = vec![1.0f32, 0.0, 0.0, 2.0];
    fuse_many(&mut a, &[&[1.0, 0.0, 3.0, 0.0], &[0.0, 1.0, 0.0, -1.0]], &[0.2, 0.1], 2, FusionMode::HeadwiseReference);
    let r = 5f64.sqrt() / 2f64.sqrt();
    let (k0, k1) = (r / 0.37f64.sqrt(), r / 1.25f64.sqrt());
    close(&a, &[0.6 * k0, -0.1 * k0, -0.2 * k1, 1.1 * k1]);
}
