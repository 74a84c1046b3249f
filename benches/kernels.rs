//! Quantized matmul kernels vs a dequantized-f32 matmul, and the per-token matmul cost of
//! SmolLM2-135M. Run with `cargo bench --bench kernels` (harness-less: prints a table).
//!
//! Environment: `KERNELS_BENCH_QUICK=1` for fewer samples; `KERNELS_BENCH_THREADS=N` to also
//! time the whole-model mix with `matmul_threads(N)`.
//!
//! The per-shape numbers are cache-hot (one matrix timed repeatedly; 576×576 Q4_1 is 207 KB).
//! The "streamed" per-token numbers run 30 distinct layers plus the lm-head back to back, so
//! the weights (66 MB Q4_1 + 30 MB Q8_0 lm-head) come from DRAM as in real decoding.

use destein::kernels::{Isa, QuantizedMatrix, WeightFormat};
use std::hint::black_box;
use std::time::{Duration, Instant};

const HIDDEN: usize = 576;
const KV: usize = 192;
const FFN: usize = 1536;
const VOCAB: usize = 49152;
const LAYERS: usize = 30;

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
}

/// Random GGML blocks with plausible f16 scales (0.0156 · (1 + k/64)).
fn random_matrix(rng: &mut Rng, format: WeightFormat, out_f: usize, in_f: usize) -> QuantizedMatrix {
    let n = format.ggml_bytes(out_f, in_f);
    let mut data: Vec<u8> = (0..n.div_ceil(8)).flat_map(|_| rng.next().to_le_bytes()).take(n).collect();
    for block in data.chunks_exact_mut(format.ggml_block_bytes()) {
        let d: u16 = 0x2400 | (block[0] as u16 & 0x3F);
        block[..2].copy_from_slice(&d.to_le_bytes());
        if format == WeightFormat::Q4_1 {
            block[2..4].copy_from_slice(&(d | 0x8800).to_le_bytes()); // m ≈ −8·d
        }
    }
    QuantizedMatrix::from_ggml(format, &data, out_f, in_f).unwrap()
}

fn activations(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.unit() * 2.0 - 1.0).collect()
}

/// The baseline: `out = x · Wᵀ` on dequantized f32 weights, 8 independent partial sums per dot
/// product so the compiler can vectorize it (a fair f32 matmul, not a strawman).
fn f32_matmul(w: &[f32], out_f: usize, in_f: usize, x: &[f32], rows: usize, out: &mut [f32]) {
    for r in 0..rows {
        let xr = &x[r * in_f..(r + 1) * in_f];
        for o in 0..out_f {
            let wr = &w[o * in_f..(o + 1) * in_f];
            let mut acc = [0.0f32; 8];
            for (wc, xc) in wr.chunks_exact(8).zip(xr.chunks_exact(8)) {
                for k in 0..8 {
                    acc[k] += wc[k] * xc[k];
                }
            }
            out[r * out_f + o] = acc.iter().sum();
        }
    }
}

/// Median seconds per call of `f`, over `samples` samples of ≥ `min_sample` each.
fn time(mut f: impl FnMut(), samples: usize, min_sample: Duration) -> f64 {
    f();
    let t = Instant::now();
    f();
    let once = t.elapsed().max(Duration::from_nanos(50));
    let iters = (min_sample.as_secs_f64() / once.as_secs_f64()).ceil().max(1.0) as usize;
    let mut v: Vec<f64> = (0..samples)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_secs_f64() / iters as f64
        })
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn us(s: f64) -> String {
    format!("{:.1}", s * 1e6)
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let quick = std::env::var_os("KERNELS_BENCH_QUICK").is_some();
    let samples = if quick { 5 } else { 11 };
    let min_sample = Duration::from_millis(if quick { 2 } else { 10 });
    let isa = Isa::detect();
    println!("kernels bench: isa {isa:?}, medians of {samples} samples, single thread unless noted");
    println!("baseline = f32 matmul on dequantized weights (8-way unrolled dot products)\n");

    let mut rng = Rng(42);
    // (name, out, in, weight formats to time)
    let shapes: [(&str, usize, usize, &[WeightFormat]); 5] = [
        ("q/o 576→576", HIDDEN, HIDDEN, &[WeightFormat::Q4_1, WeightFormat::Q8_0]),
        ("k/v 576→192", KV, HIDDEN, &[WeightFormat::Q4_1, WeightFormat::Q8_0]),
        ("gate/up 576→1536", FFN, HIDDEN, &[WeightFormat::Q4_1, WeightFormat::Q8_0]),
        ("down 1536→576", HIDDEN, FFN, &[WeightFormat::Q4_1, WeightFormat::Q8_0]),
        ("lm-head 576→49152", VOCAB, HIDDEN, &[WeightFormat::Q8_0]),
    ];
    let rows_list = [1usize, 2, 25, 42];
    // t[(shape, format, rows)] in seconds
    let mut hot = std::collections::HashMap::new();
    println!(
        "{:<18} {:<5} {:>4} {:>10} {:>10} {:>10} {:>8} {:>9} {:>8}",
        "shape", "fmt", "rows", "ours µs", "scalar µs", "f32 µs", "f32/ours", "GMAC/s", "vs rows1"
    );
    for (name, out_f, in_f, formats) in shapes {
        for &format in formats {
            let m = random_matrix(&mut rng, format, out_f, in_f);
            let w = m.dequantize();
            let mut t1 = 0.0;
            for rows in rows_list {
                let x = activations(&mut rng, rows * in_f);
                let mut out = vec![0.0f32; rows * out_f];
                let ours = time(|| m.matmul_with(black_box(&x), rows, &mut out, isa, 1), samples, min_sample);
                let scalar = if rows <= 2 || !quick {
                    time(|| m.matmul_with(black_box(&x), rows, &mut out, Isa::Scalar, 1), samples.min(5), min_sample)
                } else {
                    f64::NAN
                };
                let base =
                    time(|| f32_matmul(&w, out_f, in_f, black_box(&x), rows, &mut out), samples.min(5), min_sample);
                if rows == 1 {
                    t1 = ours;
                }
                let gmacs = (rows * out_f * in_f) as f64 / ours / 1e9;
                println!(
                    "{name:<18} {format:<5} {rows:>4} {:>10} {:>10} {:>10} {:>8.1} {gmacs:>9.1} {:>7.2}×",
                    us(ours),
                    us(scalar),
                    us(base),
                    base / ours,
                    ours / t1
                );
                hot.insert((out_f, in_f, format, rows), ours);
            }
        }
    }

    println!("\nper-token matmul time, SmolLM2-135M (30 × (q, k, v, o, gate, up, down) + Q8_0 lm-head):");
    for format in [WeightFormat::Q4_1, WeightFormat::Q8_0] {
        for rows in rows_list {
            let t = |o, i, f| hot[&(o, i, f, rows)];
            let layer = 2.0 * t(HIDDEN, HIDDEN, format)
                + 2.0 * t(KV, HIDDEN, format)
                + 2.0 * t(FFN, HIDDEN, format)
                + t(HIDDEN, FFN, format);
            let total = LAYERS as f64 * layer + t(VOCAB, HIDDEN, WeightFormat::Q8_0);
            println!(
                "  cache-hot sum, layers {format}, rows {rows:>2}: {:>8.2} ms per call = {:>7.3} ms/token → {:>6.0} tok/s (matmuls only)",
                total * 1e3,
                total * 1e3 / rows as f64,
                rows as f64 / total
            );
        }
    }

    // Load cost: re-packing GGML blocks (from_ggml) and re-quantizing f32 (quantize_q8_0).
    {
        let n = WeightFormat::Q8_0.ggml_bytes(VOCAB, HIDDEN);
        let data: Vec<u8> = random_matrix(&mut rng, WeightFormat::Q8_0, VOCAB, HIDDEN).to_ggml();
        let t = time(
            || drop(black_box(QuantizedMatrix::from_ggml(WeightFormat::Q8_0, &data, VOCAB, HIDDEN))),
            3,
            min_sample,
        );
        println!("\nload: from_ggml Q8_0 {VOCAB}×{HIDDEN} ({:.1} MB): {:.1} ms", n as f64 / 1e6, t * 1e3);
        let q4 = random_matrix(&mut rng, WeightFormat::Q4_1, FFN, HIDDEN);
        let data = q4.to_ggml();
        let t =
            time(|| drop(black_box(QuantizedMatrix::from_ggml(WeightFormat::Q4_1, &data, FFN, HIDDEN))), 5, min_sample);
        println!("load: from_ggml Q4_1 {FFN}×{HIDDEN}: {:.2} ms (× 210 Q4_1 tensors of ≤ this size)", t * 1e3);
        let w = q4.dequantize();
        let t = time(|| drop(black_box(QuantizedMatrix::quantize_q8_0(&w, FFN, HIDDEN))), 5, min_sample);
        println!("load: quantize_q8_0 {FFN}×{HIDDEN}: {:.2} ms\n", t * 1e3);
    }

    // Streamed: distinct weights per layer, as in the model.
    let mut threads = vec![1usize];
    if let Some(n) = std::env::var("KERNELS_BENCH_THREADS").ok().and_then(|s| s.parse().ok()) {
        if n > 1 {
            threads.push(n);
        }
    }
    let lm_head = random_matrix(&mut rng, WeightFormat::Q8_0, VOCAB, HIDDEN);
    for format in [WeightFormat::Q4_1, WeightFormat::Q8_0] {
        let layers: Vec<[QuantizedMatrix; 7]> = (0..LAYERS)
            .map(|_| {
                [
                    random_matrix(&mut rng, format, HIDDEN, HIDDEN),
                    random_matrix(&mut rng, format, KV, HIDDEN),
                    random_matrix(&mut rng, format, KV, HIDDEN),
                    random_matrix(&mut rng, format, HIDDEN, HIDDEN),
                    random_matrix(&mut rng, format, FFN, HIDDEN),
                    random_matrix(&mut rng, format, FFN, HIDDEN),
                    random_matrix(&mut rng, format, HIDDEN, FFN),
                ]
            })
            .collect();
        let bytes: usize = layers.iter().flatten().map(|m| m.storage_bytes()).sum::<usize>() + lm_head.storage_bytes();
        for &th in &threads {
            for rows in [1usize, 2] {
                let xh = activations(&mut rng, rows * HIDDEN);
                let xf = activations(&mut rng, rows * FFN);
                let mut oh = vec![0.0; rows * HIDDEN];
                let mut ok = vec![0.0; rows * KV];
                let mut of = vec![0.0; rows * FFN];
                let mut ov = vec![0.0; rows * VOCAB];
                let t = time(
                    || {
                        for l in &layers {
                            l[0].matmul_threads(&xh, rows, &mut oh, th);
                            l[1].matmul_threads(&xh, rows, &mut ok, th);
                            l[2].matmul_threads(&xh, rows, &mut ok, th);
                            l[3].matmul_threads(&xh, rows, &mut oh, th);
                            l[4].matmul_threads(&xh, rows, &mut of, th);
                            l[5].matmul_threads(&xh, rows, &mut of, th);
                            l[6].matmul_threads(&xf, rows, &mut oh, th);
                        }
                        lm_head.matmul_threads(&xh, rows, &mut ov, th);
                    },
                    if quick { 3 } else { 7 },
                    Duration::from_millis(1),
                );
                println!(
                    "  streamed, layers {format}, rows {rows}, {th} thread(s): {:>7.2} ms per call = {:>6.2} ms/token → {:>5.0} tok/s, {:.1} GB/s of weights",
                    t * 1e3,
                    t * 1e3 / rows as f64,
                    rows as f64 / t,
                    bytes as f64 / t / 1e9
                );
            }
        }
    }
}
