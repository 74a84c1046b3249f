//! Quantized matmul kernels (`destein::kernels`), through the public API only.
//!
//! * accuracy against `dequantize()` + an `f64` matmul, within a bound derived from the
//!   activation quantization (see [`error_bound`]);
//! * every available instruction set (scalar, AVX2, wasm simd128) and thread count gives the
//!   same bits as the scalar path;
//! * the GGML layouts, checked against fixtures written by the `gguf` Python package from the real
//!   SmolLM2-135M weights (tests/fixtures/kernels/make_fixtures.py);
//! * `from_ggml` / `quantize_q8_0` refuse bad shapes and data.

use destein::kernels::{Isa, KernelError, QuantizedMatrix, WeightFormat, BLOCK_SIZE};

const U: f64 = f32::EPSILON as f64 / 2.0; // unit roundoff of f32, 2^-24

/// SplitMix64: deterministic test data without dependencies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }
    fn log_range(&mut self, lo: f32, hi: f32) -> f32 {
        (lo.ln() + (hi.ln() - lo.ln()) * self.unit()).exp()
    }
    /// Roughly normal (Irwin–Hall of 4 uniforms), unit variance.
    fn normal(&mut self) -> f32 {
        ((0..4).map(|_| self.unit()).sum::<f32>() - 2.0) * 3f32.sqrt()
    }
}

fn f16_bits(v: f32) -> [u8; 2] {
    // Test-side conversion (values here are normal and in range): truncate the mantissa.
    let b = v.to_bits();
    let e = ((b >> 23) & 0xFF) as i32 - 127 + 15;
    assert!((1..31).contains(&e), "{v} is not a normal f16");
    let h = ((b >> 16) & 0x8000) as u16 | ((e as u16) << 10) | ((b >> 13) & 0x3FF) as u16;
    h.to_le_bytes()
}

fn f16_value(b: [u8; 2]) -> f64 {
    let h = u16::from_le_bytes(b);
    let (s, e, m) = ((h >> 15) as i32, ((h >> 10) & 0x1F) as i32, (h & 0x3FF) as f64);
    let v = if e == 0 { m * 2f64.powi(-24) } else { (1.0 + m / 1024.0) * 2f64.powi(e - 15) };
    if s == 1 {
        -v
    } else {
        v
    }
}

/// Q4_1 blocks with scales like SmolLM2's (d ≈ 0.015…0.5, m ≈ −4…−11 d).
fn random_q4_1(rng: &mut Rng, out_f: usize, in_f: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(WeightFormat::Q4_1.ggml_bytes(out_f, in_f));
    for _ in 0..out_f * (in_f / BLOCK_SIZE) {
        let d = rng.log_range(0.015, 0.5);
        let m = -d * rng.range(4.0, 11.0);
        v.extend_from_slice(&f16_bits(d));
        v.extend_from_slice(&f16_bits(m));
        v.extend((0..16).map(|_| rng.next() as u8));
    }
    v
}

/// Q8_0 blocks with SmolLM2-embedding-like scales; quants cover the full i8 range, −128
/// included (GGML never writes it, but the kernels must not mis-handle it).
fn random_q8_0(rng: &mut Rng, out_f: usize, in_f: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(WeightFormat::Q8_0.ggml_bytes(out_f, in_f));
    for _ in 0..out_f * (in_f / BLOCK_SIZE) {
        v.extend_from_slice(&f16_bits(rng.log_range(0.0008, 0.015)));
        v.extend((0..32).map(|_| rng.next() as u8));
    }
    v
}

fn random_matrix(rng: &mut Rng, format: WeightFormat, out_f: usize, in_f: usize) -> (QuantizedMatrix, Vec<u8>) {
    let data = match format {
        WeightFormat::Q4_1 => random_q4_1(rng, out_f, in_f),
        WeightFormat::Q8_0 => random_q8_0(rng, out_f, in_f),
    };
    (QuantizedMatrix::from_ggml(format, &data, out_f, in_f).unwrap(), data)
}

/// Hidden-state-like activations: normal, a few outlier channels (×20), some exact zeros and
/// an all-zero block in the first row.
fn activations(rng: &mut Rng, rows: usize, in_f: usize) -> Vec<f32> {
    let outliers: Vec<usize> = (0..3).map(|_| rng.next() as usize % in_f).collect();
    let mut x: Vec<f32> = (0..rows * in_f)
        .map(|i| {
            let v = rng.normal();
            if outliers.contains(&(i % in_f)) {
                v * 20.0
            } else if rng.next().is_multiple_of(50) {
                0.0
            } else {
                v
            }
        })
        .collect();
    if in_f >= 2 * BLOCK_SIZE {
        x[BLOCK_SIZE..2 * BLOCK_SIZE].fill(0.0);
    }
    x
}

/// `|d·q| + |m|` for every weight, from the GGML bytes (the magnitude the float error scales with).
fn weight_magnitudes(format: WeightFormat, data: &[u8], in_f: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(data.len() / format.ggml_block_bytes() * BLOCK_SIZE);
    for block in data.chunks_exact(format.ggml_block_bytes()) {
        let d = f16_value([block[0], block[1]]).abs();
        match format {
            WeightFormat::Q4_1 => {
                let m = f16_value([block[2], block[3]]).abs();
                let qs = &block[4..20];
                out.extend(qs.iter().map(|&q| d * (q & 15) as f64 + m));
                out.extend(qs.iter().map(|&q| d * (q >> 4) as f64 + m));
            }
            WeightFormat::Q8_0 => out.extend(block[2..].iter().map(|&q| d * (q as i8 as f64).abs())),
        }
    }
    assert_eq!(out.len() % in_f, 0);
    out
}

/// Error bound for one output `Σ_i W[i]·x[i]` of a row.
///
/// The kernel rounds each block of 32 activations to `dx·q` with `dx = max|x|/127` and
/// `q = round(x·fl(1/dx))`; `x·fl(1/dx)` is within `2u·127` of `x/dx`, so
/// `|x − dx·q| ≤ dx·(1/2 + 254u)`. That term, summed against `|W|`, is the quantization error.
/// On top: `f32` rounding. Each block term `(dw·dx)·isum + mw·sx` carries a relative error of a
/// few `u` of `|dw·dx·isum| + |mw·sx| ≤ Σ_block (|dw·qw| + |mw|)·|x̂|`, the sequential sum over
/// `nb` blocks adds at most `nb·u` of the running magnitude, and the reference's own `f32`
/// dequantization `fl(fl(d·q) + m)` is off by `2u·(|d·q| + |m|)`. With `|x̂| ≤ |x| + dx`, all of
/// this is below `(nb + 8)·u·Σ_i (|dw·qw_i| + |mw|)·(|x_i| + dx)`.
fn error_bound(w_abs: &[f64], mag: &[f64], x: &[f32]) -> f64 {
    let nb = x.len() / BLOCK_SIZE;
    let mut quant = 0.0;
    let mut float = 0.0;
    for ((wb, mb), xb) in w_abs.chunks(BLOCK_SIZE).zip(mag.chunks(BLOCK_SIZE)).zip(x.chunks(BLOCK_SIZE)) {
        let dx = xb.iter().fold(0.0f64, |a, v| a.max(v.abs() as f64)) / 127.0;
        quant += dx * (0.5 + 254.0 * U) * wb.iter().sum::<f64>();
        float += mb.iter().zip(xb).map(|(m, &v)| m * (v.abs() as f64 + dx)).sum::<f64>();
    }
    quant + (nb as f64 + 8.0) * U * float
}

/// Checks `m.matmul` (every ISA, 1 and 3 threads) against the reference and against the
/// scalar bits; returns the largest `error / bound` seen.
fn check(m: &QuantizedMatrix, data: &[u8], x: &[f32], rows: usize, what: &str) -> f64 {
    let (out_f, in_f) = (m.out_features(), m.in_features());
    let w = m.dequantize();
    let w_abs: Vec<f64> = w.iter().map(|v| v.abs() as f64).collect();
    let mag = weight_magnitudes(m.format(), data, in_f);
    let mut scalar = vec![f32::NAN; rows * out_f];
    m.matmul_with(x, rows, &mut scalar, Isa::Scalar, 1);
    let mut worst = 0.0f64;
    for r in 0..rows {
        let xr = &x[r * in_f..(r + 1) * in_f];
        for o in 0..out_f {
            let wr = &w[o * in_f..(o + 1) * in_f];
            let exact: f64 = wr.iter().zip(xr).map(|(&a, &b)| a as f64 * b as f64).sum();
            let bound = error_bound(&w_abs[o * in_f..(o + 1) * in_f], &mag[o * in_f..(o + 1) * in_f], xr);
            let got = scalar[r * out_f + o] as f64;
            let err = (got - exact).abs();
            assert!(err <= bound, "{what}: row {r} out {o}: got {got}, reference {exact}, error {err} > bound {bound}");
            if bound > 0.0 {
                worst = worst.max(err / bound);
            }
        }
    }
    for isa in Isa::available() {
        for threads in [1, 3] {
            let mut got = vec![f32::NAN; rows * out_f];
            m.matmul_with(x, rows, &mut got, isa, threads);
            if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != scalar[i].to_bits()) {
                panic!(
                    "{what}: {isa:?} with {threads} thread(s) differs from scalar at row {} out {}: {} vs {}",
                    i / out_f,
                    i % out_f,
                    got[i],
                    scalar[i]
                );
            }
        }
    }
    let mut got = vec![f32::NAN; rows * out_f];
    m.matmul(x, rows, &mut got);
    assert!(got.iter().zip(&scalar).all(|(a, b)| a.to_bits() == b.to_bits()), "{what}: matmul() differs");
    worst
}

/// The model's shapes, as (out_features, in_features).
const SHAPES: [(usize, usize); 4] = [(576, 576), (1536, 576), (576, 1536), (192, 576)];
const ROWS: [usize; 5] = [1, 2, 3, 25, 42];

#[test]
fn model_shapes_match_reference_and_scalar_bits() {
    let mut rng = Rng(1);
    for format in [WeightFormat::Q4_1, WeightFormat::Q8_0] {
        for (out_f, in_f) in SHAPES {
            let (m, data) = random_matrix(&mut rng, format, out_f, in_f);
            for rows in ROWS {
                let x = activations(&mut rng, rows, in_f);
                let worst = check(&m, &data, &x, rows, &format!("{format} {in_f}→{out_f} rows {rows}"));
                eprintln!("{format} {in_f}→{out_f} rows {rows}: max error / bound = {worst:.3}");
            }
        }
    }
}

#[test]
fn lm_head_shape() {
    // The tied 49152×576 Q8_0 embedding as lm-head: the full matrix for 1 and 2 rows, a
    // 4104-row slice (not a multiple of 8) for the rest to keep the f64 reference quick.
    let mut rng = Rng(2);
    let (m, data) = random_matrix(&mut rng, WeightFormat::Q8_0, 49152, 576);
    for rows in [1, 2] {
        let x = activations(&mut rng, rows, 576);
        check(&m, &data, &x, rows, &format!("lm-head rows {rows}"));
    }
    let slice = &data[..WeightFormat::Q8_0.ggml_bytes(4104, 576)];
    let m = QuantizedMatrix::from_ggml(WeightFormat::Q8_0, slice, 4104, 576).unwrap();
    for rows in [3, 25, 42] {
        let x = activations(&mut rng, rows, 576);
        check(&m, slice, &x, rows, &format!("lm-head slice rows {rows}"));
    }
}

#[test]
fn odd_shapes_and_padding() {
    let mut rng = Rng(3);
    for format in [WeightFormat::Q4_1, WeightFormat::Q8_0] {
        for (out_f, in_f) in [(1, 32), (3, 64), (7, 96), (9, 32), (13, 160), (17, 576), (100, 1536)] {
            let (m, data) = random_matrix(&mut rng, format, out_f, in_f);
            for rows in [1, 2, 3, 4, 5, 9] {
                let x = activations(&mut rng, rows, in_f);
                check(&m, &data, &x, rows, &format!("{format} {in_f}→{out_f} rows {rows}"));
            }
        }
    }
    // No rows: nothing to do, nothing written.
    let (m, _) = random_matrix(&mut rng, WeightFormat::Q4_1, 8, 32);
    m.matmul(&[], 0, &mut []);
}

#[test]
fn threads_do_not_change_bits() {
    let mut rng = Rng(4);
    let (m, _) = random_matrix(&mut rng, WeightFormat::Q4_1, 1536, 576);
    let x = activations(&mut rng, 42, 576);
    let mut one = vec![0.0; 42 * 1536];
    m.matmul_threads(&x, 42, &mut one, 1);
    for threads in [2, 3, 4, 7, 64, 1000] {
        let mut got = vec![0.0; 42 * 1536];
        m.matmul_threads(&x, 42, &mut got, threads);
        assert!(got.iter().zip(&one).all(|(a, b)| a.to_bits() == b.to_bits()), "{threads} threads");
    }
}

#[test]
fn bound_is_not_vacuous() {
    // The derived bound should be within a small factor of what is actually observed, else
    // the accuracy tests above would not catch much: on realistic data the worst error
    // reaches a sizeable fraction of it.
    let mut rng = Rng(5);
    let (m, data) = random_matrix(&mut rng, WeightFormat::Q4_1, 576, 576);
    let x = activations(&mut rng, 42, 576);
    let worst = check(&m, &data, &x, 42, "Q4_1 576→576 rows 42");
    assert!(worst > 0.05, "max error / bound = {worst}");
}

#[test]
fn extreme_activations() {
    let mut rng = Rng(6);
    for format in [WeightFormat::Q4_1, WeightFormat::Q8_0] {
        let (m, data) = random_matrix(&mut rng, format, 24, 96);
        let mut x = activations(&mut rng, 3, 96);
        x[0] = 1e30; // a block dominated by a huge value
        x[100] = 1e-30; // a tiny value in an otherwise normal block
        for (i, v) in x[192 + 32..192 + 64].iter_mut().enumerate() {
            *v = 1e-30 * (i as f32 - 10.0); // a block of tiny values
        }
        check(&m, &data, &x, 3, &format!("{format} extreme"));

        // A block whose scale is subnormal (1/dx overflows): no accuracy claim at 1e-40, but
        // finite, consistent across instruction sets, and of the right sign.
        let mut x = vec![0.0f32; 96];
        for (i, v) in x[32..64].iter_mut().enumerate() {
            *v = 1e-38 * (i as f32 - 15.5) / 16.0;
        }
        let scalar = matmul_all_isas_agree(&m, &x, 1);
        assert!(scalar.iter().all(|v| v.is_finite()), "{scalar:?}");

        // NaN or ∞ in a row makes that row's outputs NaN/∞ (never a silent finite value) and
        // leaves the other rows alone.
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut x = activations(&mut rng, 2, 96);
            x[96 + 40] = bad;
            let got = matmul_all_isas_agree(&m, &x, 2);
            assert!(got[..24].iter().all(|v| v.is_finite()), "{bad}: row 0 {got:?}");
            assert!(got[24..].iter().all(|v| !v.is_finite()), "{bad}: row 1 {got:?}");
        }
    }
}

/// Runs every ISA; asserts they agree (bitwise, or both NaN) and returns the scalar result.
fn matmul_all_isas_agree(m: &QuantizedMatrix, x: &[f32], rows: usize) -> Vec<f32> {
    let mut scalar = vec![0.0; rows * m.out_features()];
    m.matmul_with(x, rows, &mut scalar, Isa::Scalar, 1);
    for isa in Isa::available() {
        let mut got = vec![0.0; rows * m.out_features()];
        m.matmul_with(x, rows, &mut got, isa, 1);
        for (a, b) in got.iter().zip(&scalar) {
            assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{isa:?}: {a} vs {b}");
        }
    }
    scalar
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/kernels/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn expected(key: &str) -> Vec<String> {
    let text = String::from_utf8(fixture("expected.txt")).unwrap();
    text.lines().filter_map(|l| l.strip_prefix(key).map(|rest| rest.trim().to_string())).collect()
}

fn fnv1a64(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xCBF2_9CE4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01B3))
}

/// Real SmolLM2 rows: our dequantization is bit-identical to the `gguf` package's.
#[test]
fn real_rows_dequantize_like_gguf() {
    for (name, format, file) in
        [("attn_q", WeightFormat::Q4_1, "attn_q.q4_1"), ("token_embd", WeightFormat::Q8_0, "token_embd.q8_0")]
    {
        let data = fixture(file);
        let m = QuantizedMatrix::from_ggml(format, &data, 8, 576).unwrap();
        assert_eq!(m.to_ggml(), data, "{name}: to_ggml must give the input back");
        let w = m.dequantize();
        let hash = fnv1a64(w.iter().flat_map(|v| v.to_le_bytes()));
        let want = &expected(&format!("{name}.dequant.fnv1a64"))[0];
        assert_eq!(format!("{hash:016x}"), *want, "{name}: dequantized values differ from gguf's");
        for line in expected(&format!("{name}.value")) {
            let f: Vec<&str> = line.split(' ').collect();
            let (i, j) = (f[0].parse::<usize>().unwrap(), f[1].parse::<usize>().unwrap());
            let bits = u32::from_str_radix(f[2], 16).unwrap();
            assert_eq!(w[i * 576 + j].to_bits(), bits, "{name}[{i}][{j}]");
            let mut row = vec![0.0; 576];
            m.dequantize_row_into(i, &mut row);
            assert_eq!(row[j].to_bits(), bits);
        }
    }
}

/// Real rows through matmul, and `quantize_q8_0` reproducing GGML's own Q8_0 bytes.
#[test]
fn real_rows_matmul_and_requantize() {
    let mut rng = Rng(7);
    let q4 = fixture("attn_q.q4_1");
    let m = QuantizedMatrix::from_ggml(WeightFormat::Q4_1, &q4, 8, 576).unwrap();
    let requant = QuantizedMatrix::quantize_q8_0(&m.dequantize(), 8, 576).unwrap();
    assert_eq!(requant.to_ggml(), fixture("attn_q.requant.q8_0"), "quantize_q8_0 must match gguf/GGML bytes");
    let q8 = fixture("token_embd.q8_0");
    let e = QuantizedMatrix::from_ggml(WeightFormat::Q8_0, &q8, 8, 576).unwrap();
    for rows in ROWS {
        let x = activations(&mut rng, rows, 576);
        check(&m, &q4, &x, rows, &format!("real attn_q rows {rows}"));
        check(&e, &q8, &x, rows, &format!("real token_embd rows {rows}"));
        check(&requant, &requant.to_ggml(), &x, rows, &format!("requantized attn_q rows {rows}"));
    }
}

#[test]
fn quantize_q8_0_error_is_half_a_step() {
    let mut rng = Rng(8);
    let (out_f, in_f) = (40, 160);
    let mut w: Vec<f32> = (0..out_f * in_f).map(|_| rng.normal() * 0.05).collect();
    w[..32].fill(0.0); // an all-zero block: d = 0, q = 0
    let m = QuantizedMatrix::quantize_q8_0(&w, out_f, in_f).unwrap();
    let back = m.dequantize();
    assert!(back[..32].iter().all(|&v| v == 0.0));
    for (b, (wb, qb)) in w.chunks(32).zip(back.chunks(32)).enumerate() {
        let amax = wb.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        // d is rounded to f16 (relative 2^-11), then each weight to the nearest step.
        let step = amax as f64 / 127.0 * (1.0 + 1.0 / 2048.0);
        for (a, q) in wb.iter().zip(qb) {
            let err = (*a as f64 - *q as f64).abs();
            assert!(err <= step * 0.5 + 127.0 * step / 2048.0 + 1e-12, "block {b}: {a} → {q}");
        }
    }
    let data = m.to_ggml();
    assert_eq!(data.len(), WeightFormat::Q8_0.ggml_bytes(out_f, in_f));
    // Blocks too small for an f16 scale (or for 1/d to exist) quantize to zero, without panics.
    let tiny: Vec<f32> = (0..64).map(|i| (i as f32 - 31.5) * if i < 32 { 1e-38 } else { 1e-12 }).collect();
    let t = QuantizedMatrix::quantize_q8_0(&tiny, 1, 64).unwrap();
    assert!(t.dequantize().iter().all(|&v| v == 0.0));
    let again = QuantizedMatrix::from_ggml(WeightFormat::Q8_0, &data, out_f, in_f).unwrap();
    assert_eq!(again.dequantize(), back);
}

#[test]
fn from_ggml_refuses_bad_input() {
    let good = vec![0u8; WeightFormat::Q4_1.ggml_bytes(4, 64)];
    assert!(QuantizedMatrix::from_ggml(WeightFormat::Q4_1, &good, 4, 64).is_ok());

    let e = QuantizedMatrix::from_ggml(WeightFormat::Q4_1, &good, 4, 48).unwrap_err();
    assert_eq!(e, KernelError::InFeaturesNotBlockMultiple { in_features: 48 });
    assert!(e.to_string().contains("not a multiple of"), "{e}");

    for len in [good.len() - 1, good.len() + 1, 0, WeightFormat::Q8_0.ggml_bytes(4, 64)] {
        let e = QuantizedMatrix::from_ggml(WeightFormat::Q4_1, &vec![0; len], 4, 64).unwrap_err();
        assert!(matches!(e, KernelError::ByteLength { expected: 160, .. }), "{e:?}");
        assert!(e.to_string().contains("must be 160 bytes"), "{e}");
    }
    let e = QuantizedMatrix::from_ggml(WeightFormat::Q8_0, &good, 4, 64).unwrap_err();
    assert!(e.to_string().contains("Q8_0") && e.to_string().contains("272"), "{e}");

    for (o, i) in [(0, 64), (4, 0)] {
        let e = QuantizedMatrix::from_ggml(WeightFormat::Q8_0, &[], o, i).unwrap_err();
        assert!(matches!(e, KernelError::EmptyShape { .. }), "{e:?}");
    }

    // Infinite / NaN f16 scales (d of row 1 block 1; m of row 3 block 0).
    let mut bad = good.clone();
    bad[(2 + 1) * 20..(2 + 1) * 20 + 2].copy_from_slice(&0x7C00u16.to_le_bytes());
    let e = QuantizedMatrix::from_ggml(WeightFormat::Q4_1, &bad, 4, 64).unwrap_err();
    assert_eq!(e, KernelError::NonFiniteScale { format: WeightFormat::Q4_1, row: 1, block: 1 });
    let mut bad = good.clone();
    bad[6 * 20 + 2..6 * 20 + 4].copy_from_slice(&0xFE00u16.to_le_bytes());
    let e = QuantizedMatrix::from_ggml(WeightFormat::Q4_1, &bad, 4, 64).unwrap_err();
    assert_eq!(e, KernelError::NonFiniteScale { format: WeightFormat::Q4_1, row: 3, block: 0 });

    let e = QuantizedMatrix::quantize_q8_0(&[0.0; 64], 2, 48).unwrap_err();
    assert_eq!(e, KernelError::InFeaturesNotBlockMultiple { in_features: 48 });
    let e = QuantizedMatrix::quantize_q8_0(&[0.0; 63], 1, 64).unwrap_err();
    assert!(matches!(e, KernelError::ValueCount { .. }), "{e:?}");
    let mut w = vec![0.0; 64];
    w[5] = f32::NAN;
    assert_eq!(QuantizedMatrix::quantize_q8_0(&w, 1, 64).unwrap_err(), KernelError::NonFiniteWeight { index: 5 });
}

#[test]
#[should_panic(expected = "matmul input must hold")]
fn matmul_checks_input_length() {
    let m = QuantizedMatrix::from_ggml(WeightFormat::Q8_0, &[0; 68], 2, 32).unwrap();
    m.matmul(&[0.0; 31], 1, &mut [0.0; 2]);
}

#[test]
#[should_panic(expected = "matmul output must hold")]
fn matmul_checks_output_length() {
    let m = QuantizedMatrix::from_ggml(WeightFormat::Q8_0, &[0; 68], 2, 32).unwrap();
    m.matmul(&[0.0; 64], 2, &mut [0.0; 3]);
}

#[test]
fn isa_detection_is_consistent() {
    let best = Isa::detect();
    assert!(best.is_available());
    assert!(Isa::Scalar.is_available());
    assert!(Isa::available().contains(&best));
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("f16c") {
        assert_eq!(best, Isa::Avx2);
    }
}

/// The check the browser runs on its own build (`kernelCheck`, www/worker.js) covers its cases and finds the native
/// paths (scalar, AVX2 where present, split over threads) exact.
#[test]
fn exactness_check_passes_natively() {
    let r = destein::kernels::exactness_check(5, 3);
    assert_eq!(r.cases, 40);
    assert_eq!(r.mismatches, 0, "{r:?}");
    assert_eq!(r.threads, 3);
    assert_eq!(r.isas[0], Isa::Scalar);
}
