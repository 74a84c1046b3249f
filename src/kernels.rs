//! Quantized matrix multiplication for GGML `Q4_1` and `Q8_0` weights, without candle.
//!
//! A [`QuantizedMatrix`] holds an `out_features × in_features` weight matrix (rows = output
//! features, as GGUF stores them) and computes `out[r][o] = Σ_i W[o][i] · x[r][i]` for a batch of
//! `rows` activation rows.
//!
//! # Arithmetic (the same on every code path)
//!
//! Each activation row is quantized once per call into blocks of 32: `dx = max|x| / 127`,
//! `qx = round_half_even(x / dx)` (computed as `x · (1/dx)`) clamped to ±127, and for `Q4_1` also
//! `sx = dx · Σ qx`. Per weight block the integer dot product `isum = Σ qw · qx` is exact in `i32`,
//! and each output accumulates, block by block in increasing order, starting from `0.0`:
//!
//! * `Q8_0`: `acc = acc + (dw · dx) · isum`
//! * `Q4_1`: `acc = acc + ((dw · dx) · isum + mw · sx)`
//!
//! with every operation an IEEE-754 `f32` operation (no fused multiply-add). The scalar, AVX2 and
//! wasm `simd128` paths all evaluate exactly this expression (the SIMD paths put different output
//! features in different lanes, never different blocks), so their results are bit-for-bit equal,
//! for any thread count too. (NaN results are NaN on every path; wasm does not pin NaN payload
//! bits.)
//!
//! The only approximation relative to `dequantize()` followed by an exact matmul is the
//! activation rounding: `|x − dx·qx| ≤ dx/2`, so `|out − exact| ≤ Σ_blocks (dx/2) · Σ_block |W|`
//! plus `f32` rounding (tests/kernels.rs derives and checks the full bound). A NaN or ±∞ in an
//! activation row makes that row's outputs NaN (`dx = NaN` for its block) rather than silently
//! rounding it away.
//!
//! # Instruction sets
//!
//! [`Isa::detect`] picks AVX2 (+F16C) on x86-64 at run time, `simd128` in wasm builds compiled
//! with `-C target-feature=+simd128`, else portable scalar code; [`QuantizedMatrix::matmul_with`]
//! can force one (tests compare them).
//!
//! # Storage
//!
//! At construction the GGML blocks are re-packed (losslessly: [`QuantizedMatrix::to_ggml`] gives
//! the original bytes back) into groups of 8 output rows: per group and block, the 8 (for
//! `Q4_1`: 8 + 8) `f16` scales are contiguous, and the quant bytes sit in a 64-byte-aligned
//! stream, interleaved 4 bytes per row (`[row0 q0..4, row1 q0..4, …, row7 q0..4, row0 q4..8, …]`),
//! so that a 32-byte vector holds the same 4 inputs (8 for `Q4_1`) of 8 rows and a broadcast
//! of 4 activation bytes meets it: every 32-bit lane then belongs to one output, and no
//! horizontal reduction is needed. The storage has the same size as the GGML data (plus the
//! padding of the last group to 8 rows).

use std::fmt;
use std::ops::Range;

/// Number of weights per GGML block (`QK4_1 = QK8_0 = 32`).
pub const BLOCK_SIZE: usize = 32;

/// Output rows per storage group (one AVX2 register of `f32` accumulators).
const GROUP: usize = 8;

/// Below this many multiply-accumulates per thread, [`QuantizedMatrix::matmul_threads`] uses
/// fewer threads (spawning one costs tens of microseconds).
const MIN_MACS_PER_THREAD: usize = 1 << 21;
/// The same for the threaded wasm build, whose helpers are already running (no spawn to pay for).
const MIN_MACS_PER_POOL_THREAD: usize = 1 << 17;

/// GGML block formats supported by [`QuantizedMatrix`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum WeightFormat {
    /// 32 weights = `f16 d`, `f16 m`, 16 bytes of nibbles; `w[j] = d·(qs[j] & 15) + m`,
    /// `w[j + 16] = d·(qs[j] >> 4) + m` for `j < 16`.
    Q4_1,
    /// 32 weights = `f16 d`, 32 × `i8 q`; `w[j] = d·q[j]`.
    Q8_0,
}

impl WeightFormat {
    /// Bytes of one GGML block (32 weights): 20 for `Q4_1`, 34 for `Q8_0`.
    pub const fn ggml_block_bytes(self) -> usize {
        match self {
            WeightFormat::Q4_1 => 20,
            WeightFormat::Q8_0 => 34,
        }
    }

    /// Bytes of GGML data for an `out_features × in_features` matrix.
    pub const fn ggml_bytes(self, out_features: usize, in_features: usize) -> usize {
        out_features * (in_features / BLOCK_SIZE) * self.ggml_block_bytes()
    }

    /// Quant bytes per row and block in the packed layout.
    const fn quant_bytes(self) -> usize {
        match self {
            WeightFormat::Q4_1 => 16,
            WeightFormat::Q8_0 => 32,
        }
    }

    /// `f16` scales per row and block (`d`, plus `m` for `Q4_1`).
    const fn scales_per_block(self) -> usize {
        match self {
            WeightFormat::Q4_1 => 2,
            WeightFormat::Q8_0 => 1,
        }
    }
}

impl fmt::Display for WeightFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WeightFormat::Q4_1 => "Q4_1",
            WeightFormat::Q8_0 => "Q8_0",
        })
    }
}

/// Why a [`QuantizedMatrix`] could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelError {
    /// A dimension is zero.
    EmptyShape { out_features: usize, in_features: usize },
    /// `in_features` is not a multiple of the 32-weight block.
    InFeaturesNotBlockMultiple { in_features: usize },
    /// The GGML byte buffer does not have the size the shape implies.
    ByteLength { format: WeightFormat, out_features: usize, in_features: usize, expected: usize, actual: usize },
    /// The `f32` weight slice does not have `out_features × in_features` values.
    ValueCount { out_features: usize, in_features: usize, actual: usize },
    /// A block scale is infinite or NaN.
    NonFiniteScale { format: WeightFormat, row: usize, block: usize },
    /// An `f32` weight to quantize is infinite or NaN.
    NonFiniteWeight { index: usize },
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            KernelError::EmptyShape { out_features, in_features } => {
                write!(f, "weight matrix shape {out_features}×{in_features} is empty; both dimensions must be positive")
            }
            KernelError::InFeaturesNotBlockMultiple { in_features } => {
                write!(f, "in_features = {in_features} is not a multiple of the quantization block size {BLOCK_SIZE}")
            }
            KernelError::ByteLength { format, out_features, in_features, expected, actual } => write!(
                f,
                "{format} data for a {out_features}×{in_features} matrix must be {expected} bytes \
                 ({out_features} rows × {} blocks × {} bytes), got {actual}",
                in_features / BLOCK_SIZE,
                format.ggml_block_bytes()
            ),
            KernelError::ValueCount { out_features, in_features, actual } => write!(
                f,
                "a {out_features}×{in_features} matrix needs {} values, got {actual}",
                out_features * in_features
            ),
            KernelError::NonFiniteScale { format, row, block } => {
                write!(f, "{format} block {block} of row {row} has an infinite or NaN scale")
            }
            KernelError::NonFiniteWeight { index } => {
                write!(f, "weight {index} is infinite or NaN and cannot be quantized")
            }
        }
    }
}

impl std::error::Error for KernelError {}

/// Instruction sets the kernels can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable Rust, every target.
    Scalar,
    /// x86-64 AVX2 + F16C, detected at run time.
    Avx2,
    /// WebAssembly `simd128`, chosen at compile time (`-C target-feature=+simd128`).
    Simd128,
}

thread_local! {
    /// An instruction set forced on this thread by [`Isa::with_forced`].
    static FORCED: std::cell::Cell<Option<Isa>> = const { std::cell::Cell::new(None) };
}

impl Isa {
    /// Run `f` with every kernel call that picks its instruction set on this thread using `isa` (for tests: the
    /// whole model on the scalar path). Panics if `isa` is not available here.
    pub fn with_forced<T>(isa: Isa, f: impl FnOnce() -> T) -> T {
        assert!(isa.is_available(), "{isa:?} is not available here");
        let previous = FORCED.replace(Some(isa));
        let out = f();
        FORCED.set(previous);
        out
    }

    /// The fastest instruction set available on this machine / build (or the one forced on this thread).
    pub fn detect() -> Isa {
        if let Some(isa) = FORCED.get() {
            return isa;
        }
        if Isa::Avx2.is_available() {
            Isa::Avx2
        } else if Isa::Simd128.is_available() {
            Isa::Simd128
        } else {
            Isa::Scalar
        }
    }

    /// Whether this instruction set can be used here.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Avx2 => avx2_available(),
            Isa::Simd128 => cfg!(all(target_arch = "wasm32", target_feature = "simd128")),
        }
    }

    /// Every instruction set available here, scalar first.
    pub fn available() -> Vec<Isa> {
        [Isa::Scalar, Isa::Avx2, Isa::Simd128].into_iter().filter(|i| i.is_available()).collect()
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2_available() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("f16c")
}

#[cfg(not(target_arch = "x86_64"))]
fn avx2_available() -> bool {
    false
}

/// 64 bytes, 64-byte aligned: the unit of the aligned buffers below.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Chunk([u8; 64]);

fn chunks_as_bytes(c: &[Chunk]) -> &[u8] {
    // SAFETY: `Chunk` is `repr(C)` around `[u8; 64]` with no padding (size 64, align 64).
    unsafe { std::slice::from_raw_parts(c.as_ptr() as *const u8, c.len() * 64) }
}

fn chunks_as_bytes_mut(c: &mut [Chunk]) -> &mut [u8] {
    // SAFETY: as above; the borrow is unique.
    unsafe { std::slice::from_raw_parts_mut(c.as_mut_ptr() as *mut u8, c.len() * 64) }
}

/// A quantized weight matrix, `out_features × in_features`, ready for [`QuantizedMatrix::matmul`].
#[derive(Clone)]
pub struct QuantizedMatrix {
    format: WeightFormat,
    out_features: usize,
    in_features: usize,
    /// Blocks per row.
    nb: usize,
    /// Groups of 8 rows (the last one zero-padded).
    groups: usize,
    /// `f16` bits; per group, per block: `d` of the 8 rows, then (`Q4_1`) `m` of the 8 rows.
    scales: Vec<u16>,
    /// Per group, per block, `8 × quant_bytes`: GGML quant byte `j` of row `k` (the nibble byte
    /// for `Q4_1`, holding weights `j` and `j + 16`) at [`quant_offset`]`(k, j)`.
    quants: Vec<Chunk>,
}

impl fmt::Debug for QuantizedMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuantizedMatrix")
            .field("format", &self.format)
            .field("out_features", &self.out_features)
            .field("in_features", &self.in_features)
            .finish_non_exhaustive()
    }
}

impl QuantizedMatrix {
    /// Wraps GGML blocks (row-major, `out_features` rows of `in_features / 32` blocks, exactly as
    /// stored in a GGUF tensor of shape `[in_features, out_features]`).
    pub fn from_ggml(
        format: WeightFormat,
        data: &[u8],
        out_features: usize,
        in_features: usize,
    ) -> Result<Self, KernelError> {
        check_shape(out_features, in_features)?;
        let expected = format.ggml_bytes(out_features, in_features);
        if data.len() != expected {
            return Err(KernelError::ByteLength { format, out_features, in_features, expected, actual: data.len() });
        }
        let mut m = Self::zeroed(format, out_features, in_features);
        let bb = format.ggml_block_bytes();
        for (o, row) in data.chunks_exact(m.nb * bb).enumerate() {
            for (b, block) in row.chunks_exact(bb).enumerate() {
                let d = u16::from_le_bytes([block[0], block[1]]);
                let (mn, qs) = match format {
                    WeightFormat::Q4_1 => (Some(u16::from_le_bytes([block[2], block[3]])), &block[4..]),
                    WeightFormat::Q8_0 => (None, &block[2..]),
                };
                if !f16_is_finite(d) || mn.is_some_and(|v| !f16_is_finite(v)) {
                    return Err(KernelError::NonFiniteScale { format, row: o, block: b });
                }
                m.set_block(o, b, d, mn, qs);
            }
        }
        Ok(m)
    }

    /// Quantizes `f32` weights (row-major `out_features × in_features`) to `Q8_0` exactly as
    /// GGML's reference `quantize_row_q8_0` does (`d = max|w|/127` stored as `f16`,
    /// `q = roundf(w · (1/d))` in `f32`), so the bytes match `llama.cpp`/`gguf` output. (A block
    /// whose `max|w|` is below ~1.5e-36, where `1/d` overflows, gets `d = q = 0`; GGML's output
    /// there is undefined.)
    pub fn quantize_q8_0(weights: &[f32], out_features: usize, in_features: usize) -> Result<Self, KernelError> {
        check_shape(out_features, in_features)?;
        if weights.len() != out_features * in_features {
            return Err(KernelError::ValueCount { out_features, in_features, actual: weights.len() });
        }
        if let Some(index) = weights.iter().position(|w| !w.is_finite()) {
            return Err(KernelError::NonFiniteWeight { index });
        }
        let mut m = Self::zeroed(WeightFormat::Q8_0, out_features, in_features);
        let mut q = [0u8; BLOCK_SIZE];
        for (o, row) in weights.chunks_exact(in_features).enumerate() {
            for (b, w) in row.chunks_exact(BLOCK_SIZE).enumerate() {
                let amax = w.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                let id = if id.is_finite() { id } else { 0.0 };
                for (qj, &wj) in q.iter_mut().zip(w) {
                    *qj = round_half_away(wj * id).clamp(-127, 127) as i8 as u8;
                }
                m.set_block(o, b, f32_to_f16(d), None, &q);
            }
        }
        Ok(m)
    }

    fn zeroed(format: WeightFormat, out_features: usize, in_features: usize) -> Self {
        let nb = in_features / BLOCK_SIZE;
        let groups = out_features.div_ceil(GROUP);
        let scales = vec![0u16; groups * nb * GROUP * format.scales_per_block()];
        let quant_chunks = groups * nb * GROUP * format.quant_bytes() / 64;
        QuantizedMatrix {
            format,
            out_features,
            in_features,
            nb,
            groups,
            scales,
            quants: vec![Chunk([0; 64]); quant_chunks],
        }
    }

    /// Offsets of `(group, block)` in `scales` and in the quant bytes.
    #[inline]
    fn offsets(&self, g: usize, b: usize) -> (usize, usize) {
        let gb = g * self.nb + b;
        (gb * GROUP * self.format.scales_per_block(), gb * GROUP * self.format.quant_bytes())
    }

    fn set_block(&mut self, o: usize, b: usize, d: u16, m: Option<u16>, qs: &[u8]) {
        let (g, k) = (o / GROUP, o % GROUP);
        let (so, qo) = self.offsets(g, b);
        self.scales[so + k] = d;
        if let Some(m) = m {
            self.scales[so + GROUP + k] = m;
        }
        let bytes = &mut chunks_as_bytes_mut(&mut self.quants)[qo..qo + GROUP * qs.len()];
        // Four bytes at a time: `quant_offset(k, 4c + i) = 32c + 4k + i`.
        for (c, q4) in qs.chunks_exact(4).enumerate() {
            bytes[32 * c + 4 * k..32 * c + 4 * k + 4].copy_from_slice(q4);
        }
    }

    /// `(d, m, quant bytes)` of row `o`, block `b`, in GGML order.
    fn get_block(&self, o: usize, b: usize) -> (u16, u16, [u8; 32]) {
        let (g, k) = (o / GROUP, o % GROUP);
        let (so, qo) = self.offsets(g, b);
        let d = self.scales[so + k];
        let m = if self.format == WeightFormat::Q4_1 { self.scales[so + GROUP + k] } else { 0 };
        let bytes = chunks_as_bytes(&self.quants);
        let mut q = [0u8; 32];
        for (j, q) in q[..self.format.quant_bytes()].iter_mut().enumerate() {
            *q = bytes[qo + quant_offset(k, j)];
        }
        (d, m, q)
    }

    pub fn format(&self) -> WeightFormat {
        self.format
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }

    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Bytes held (scales + quants, including the padding of the last group of 8 rows).
    pub fn storage_bytes(&self) -> usize {
        self.scales.len() * 2 + self.quants.len() * 64
    }

    /// The GGML bytes this matrix was built from (or quantized to).
    pub fn to_ggml(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.format.ggml_bytes(self.out_features, self.in_features));
        for o in 0..self.out_features {
            for b in 0..self.nb {
                let (d, m, q) = self.get_block(o, b);
                out.extend_from_slice(&d.to_le_bytes());
                match self.format {
                    WeightFormat::Q4_1 => {
                        out.extend_from_slice(&m.to_le_bytes());
                        out.extend_from_slice(&q[..16]);
                    }
                    WeightFormat::Q8_0 => out.extend_from_slice(&q),
                }
            }
        }
        out
    }

    /// Dequantizes row `o` into `out` (`in_features` values): `d·q + m` (`Q4_1`) or `d·q`
    /// (`Q8_0`) in `f32`, as GGML does. Handy for embedding lookups in a tied `Q8_0` table.
    pub fn dequantize_row_into(&self, o: usize, out: &mut [f32]) {
        assert!(o < self.out_features, "row {o} out of range for {} rows", self.out_features);
        assert_eq!(out.len(), self.in_features, "output row must hold in_features values");
        for (b, dst) in out.chunks_exact_mut(BLOCK_SIZE).enumerate() {
            let (d, m, q) = self.get_block(o, b);
            let d = f16_to_f32(d);
            match self.format {
                WeightFormat::Q4_1 => {
                    let m = f16_to_f32(m);
                    for j in 0..16 {
                        dst[j] = d * (q[j] & 0x0F) as f32 + m;
                        dst[j + 16] = d * (q[j] >> 4) as f32 + m;
                    }
                }
                WeightFormat::Q8_0 => {
                    for j in 0..32 {
                        dst[j] = d * (q[j] as i8) as f32;
                    }
                }
            }
        }
    }

    /// The whole matrix as `f32`, row-major `out_features × in_features` (the reference).
    pub fn dequantize(&self) -> Vec<f32> {
        let mut w = vec![0.0f32; self.out_features * self.in_features];
        for (o, row) in w.chunks_exact_mut(self.in_features).enumerate() {
            self.dequantize_row_into(o, row);
        }
        w
    }

    /// `out[r·out_features + o] = Σ_i W[o][i] · x[r·in_features + i]` for `r < rows`, on the
    /// fastest instruction set, one thread.
    ///
    /// Panics if `x` or `out` do not hold `rows × in_features` / `rows × out_features` values.
    pub fn matmul(&self, x: &[f32], rows: usize, out: &mut [f32]) {
        self.matmul_with(x, rows, out, Isa::detect(), 1);
    }

    /// [`matmul`](Self::matmul) split across up to `threads` threads (by output features; the
    /// result is bit-identical for every thread count). Small products use fewer threads; the
    /// wasm build always uses one.
    pub fn matmul_threads(&self, x: &[f32], rows: usize, out: &mut [f32], threads: usize) {
        self.matmul_with(x, rows, out, Isa::detect(), threads);
    }

    /// [`matmul_threads`](Self::matmul_threads) on a chosen instruction set (all give the same
    /// bits). Panics if `isa` is not available here.
    pub fn matmul_with(&self, x: &[f32], rows: usize, out: &mut [f32], isa: Isa, threads: usize) {
        assert_eq!(
            x.len(),
            rows * self.in_features,
            "matmul input must hold rows ({rows}) × in_features ({}) values",
            self.in_features
        );
        assert_eq!(
            out.len(),
            rows * self.out_features,
            "matmul output must hold rows ({rows}) × out_features ({}) values",
            self.out_features
        );
        assert!(isa.is_available(), "instruction set {isa:?} is not available on this machine/build");
        if rows == 0 {
            return;
        }
        let act = Activations::quantize(x, rows, self.in_features, isa);
        let threads = self.plan_threads(rows, threads);
        if threads <= 1 {
            let mut sink = Sink::new(out, 0, self.out_features, self.out_features);
            self.run_groups(&act, 0..self.groups, &mut sink);
            return;
        }
        self.run_threaded(&act, out, threads);
    }

    /// `threads` contiguous ranges of output-row groups, one per thread. (The single-threaded wasm build has no
    /// threads to split for.)
    #[cfg(any(not(target_arch = "wasm32"), target_feature = "atomics"))]
    fn split_groups(&self, threads: usize) -> Vec<Range<usize>> {
        let per = self.groups.div_ceil(threads);
        (0..self.groups).step_by(per).map(|g0| g0..(g0 + per).min(self.groups)).collect()
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn run_threaded(&self, act: &Activations, out: &mut [f32], threads: usize) {
        let ranges = self.split_groups(threads);
        let parts: Vec<Vec<f32>> = std::thread::scope(|s| {
            let handles: Vec<_> = ranges[1..]
                .iter()
                .map(|r| {
                    let r = r.clone();
                    s.spawn(move || self.run_into_buffer(act, r))
                })
                .collect();
            let mut parts = vec![self.run_into_buffer(act, ranges[0].clone())];
            parts.extend(handles.into_iter().map(|h| h.join().expect("matmul worker panicked")));
            parts
        });
        self.gather(act.rows, &ranges, &parts, out);
    }

    /// The threaded wasm build: the same split, run by the module's helper threads (`pool`), each
    /// writing its own groups straight into `out`.
    #[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
    fn run_threaded(&self, act: &Activations, out: &mut [f32], threads: usize) {
        let ranges = self.split_groups(threads);
        let shared = SharedOut(out.as_mut_ptr(), out.len());
        crate::pool::run(ranges.len(), &|i| {
            if let Some(r) = ranges.get(i) {
                // SAFETY: `out` outlives `pool::run`, and the ranges are disjoint.
                let mut sink = unsafe { Sink::shared(shared, self.out_features, self.out_features) };
                self.run_groups(act, r.clone(), &mut sink);
            }
        });
    }

    #[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
    fn run_threaded(&self, act: &Activations, out: &mut [f32], _threads: usize) {
        let mut sink = Sink::new(out, 0, self.out_features, self.out_features);
        self.run_groups(act, 0..self.groups, &mut sink);
    }

    /// Copies each thread's columns (`run_into_buffer` of its range) into `out`.
    #[cfg(not(target_arch = "wasm32"))]
    fn gather(&self, rows: usize, ranges: &[Range<usize>], parts: &[Vec<f32>], out: &mut [f32]) {
        for (range, part) in ranges.iter().zip(parts) {
            let o0 = range.start * GROUP;
            let o1 = (range.end * GROUP).min(self.out_features);
            let width = range.len() * GROUP;
            for r in 0..rows {
                out[r * self.out_features + o0..r * self.out_features + o1]
                    .copy_from_slice(&part[r * width..r * width + (o1 - o0)]);
            }
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn run_into_buffer(&self, act: &Activations, groups: Range<usize>) -> Vec<f32> {
        let width = groups.len() * GROUP;
        let mut buf = vec![0.0f32; act.rows * width];
        let mut sink = Sink::new(&mut buf, groups.start, width, usize::MAX);
        self.run_groups(act, groups, &mut sink);
        buf
    }

    /// Threads worth using, at most `threads`: fewer for small products; one in the
    /// single-threaded wasm build. (The threaded wasm build's helpers are already running, so
    /// smaller products are worth splitting there.)
    fn plan_threads(&self, rows: usize, threads: usize) -> usize {
        if cfg!(all(target_arch = "wasm32", not(target_feature = "atomics"))) {
            return 1;
        }
        let min_macs = if cfg!(target_arch = "wasm32") { MIN_MACS_PER_POOL_THREAD } else { MIN_MACS_PER_THREAD };
        let macs = rows * self.out_features * self.in_features;
        threads.min(macs / min_macs).min(self.groups).max(1)
    }

    fn run_groups(&self, act: &Activations, groups: Range<usize>, sink: &mut Sink) {
        match act.isa {
            Isa::Scalar => scalar::run(self, act, groups, sink),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                // SAFETY: `act.isa` is only `Avx2` when `Isa::Avx2.is_available()` said so.
                unsafe { avx2::run(self, act, groups, sink) }
            }
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Isa::Simd128 => simd128::run(self, act, groups, sink),
            #[allow(unreachable_patterns)]
            _ => unreachable!("instruction set {:?} was checked to be available", act.isa),
        }
    }
}

/// Position, within a group-block's quant bytes, of GGML quant byte `j` of row `k` of the group.
#[inline]
const fn quant_offset(k: usize, j: usize) -> usize {
    32 * (j / 4) + 4 * k + j % 4
}

fn check_shape(out_features: usize, in_features: usize) -> Result<(), KernelError> {
    if out_features == 0 || in_features == 0 {
        return Err(KernelError::EmptyShape { out_features, in_features });
    }
    if !in_features.is_multiple_of(BLOCK_SIZE) {
        return Err(KernelError::InFeaturesNotBlockMultiple { in_features });
    }
    Ok(())
}

/// Where a kernel puts the 8 lane results of `(group, row)`.
///
/// A raw pointer rather than a `&mut [f32]`, so that the threaded wasm build's parts can write
/// their own (disjoint) groups of one output buffer at the same time.
struct Sink<'a> {
    out: *mut f32,
    len: usize,
    /// Group stored at column 0 of `out`.
    first_group: usize,
    /// Row stride of `out`.
    width: usize,
    /// Columns at or past this (absolute output feature) are padding and are dropped.
    out_features: usize,
    _out: std::marker::PhantomData<&'a mut [f32]>,
}

impl<'a> Sink<'a> {
    fn new(out: &'a mut [f32], first_group: usize, width: usize, out_features: usize) -> Self {
        Sink { out: out.as_mut_ptr(), len: out.len(), first_group, width, out_features, _out: std::marker::PhantomData }
    }

    /// A sink over `out` for one of several threads.
    ///
    /// # Safety
    /// `out` must stay valid while the sink lives, and sinks over the same buffer used at the same
    /// time must store disjoint groups.
    #[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
    unsafe fn shared(out: SharedOut, width: usize, out_features: usize) -> Self {
        Sink { out: out.0, len: out.1, first_group: 0, width, out_features, _out: std::marker::PhantomData }
    }

    #[inline]
    fn store(&mut self, g: usize, r: usize, acc: &[f32; GROUP]) {
        let o0 = g * GROUP;
        let col0 = (g - self.first_group) * GROUP;
        let row = r * self.width;
        for (k, &v) in acc.iter().enumerate() {
            if o0 + k < self.out_features && col0 + k < self.width {
                let i = row + col0 + k;
                assert!(i < self.len, "kernel output index {i} past the buffer ({})", self.len);
                // SAFETY: in bounds (checked); `out` is valid for the sink's lifetime.
                unsafe { self.out.add(i).write(v) };
            }
        }
    }
}

/// An output buffer's address and length, handed to the threaded wasm build's parts.
#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
#[derive(Clone, Copy)]
struct SharedOut(*mut f32, usize);
// SAFETY: only used through `Sink::shared`, whose contract keeps the threads' writes disjoint.
#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
unsafe impl Sync for SharedOut {}

/// Activations quantized to 8-bit blocks, plus the layout the chosen kernel wants.
struct Activations {
    isa: Isa,
    rows: usize,
    /// `rows × nb` block scales `dx`.
    d: Vec<f32>,
    /// `rows × nb` block sums `sx = dx · Σ qx`.
    s: Vec<f32>,
    /// Scalar and AVX2: the `i8` quants, 32 per block. simd128: per block, eight `i16x8`
    /// vectors, vector `t` = quants `4t..4t+4` widened to `i16` and repeated twice; with relaxed
    /// SIMD, then eight `i8x16` vectors, vector `t` = quants `4t..4t+4` four times.
    q: Vec<Chunk>,
}

impl Activations {
    fn quantize(x: &[f32], rows: usize, in_features: usize, isa: Isa) -> Self {
        let nb = in_features / BLOCK_SIZE;
        let mut act = Activations {
            isa,
            rows,
            d: vec![0.0; rows * nb],
            s: vec![0.0; rows * nb],
            q: vec![Chunk([0; 64]); (rows * nb * act_block_bytes(isa)).div_ceil(64)],
        };
        let bytes = chunks_as_bytes_mut(&mut act.q);
        match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Isa::Avx2` is only used when available (checked by `matmul_with`).
            Isa::Avx2 => unsafe { avx2::quantize(x, bytes, &mut act.d, &mut act.s) },
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Isa::Simd128 => simd128::quantize(x, bytes, &mut act.d, &mut act.s),
            _ => {
                let mut q = [0i8; BLOCK_SIZE];
                let blocks = x.chunks_exact(BLOCK_SIZE).zip(bytes.chunks_exact_mut(act_block_bytes(isa)));
                for (i, (xb, dst)) in blocks.enumerate() {
                    (act.d[i], act.s[i]) = quantize_block(xb, &mut q);
                    write_act_block(isa, &q, dst);
                }
            }
        }
        act
    }
}

/// Bytes per quantized activation block in `isa`'s layout.
const fn act_block_bytes(isa: Isa) -> usize {
    match isa {
        // The relaxed-SIMD build adds the quants as bytes, vector `t` holding inputs `4t..4t+4` four times.
        Isa::Simd128 if cfg!(target_feature = "relaxed-simd") => 256,
        Isa::Simd128 => 128,
        Isa::Scalar | Isa::Avx2 => 32,
    }
}

/// Lays out one block of activation quants for `isa` (see [`Activations::q`]).
fn write_act_block(isa: Isa, q: &[i8; BLOCK_SIZE], dst: &mut [u8]) {
    if isa == Isa::Simd128 {
        for (j, &v) in q.iter().enumerate() {
            let at = 16 * (j / 4) + 2 * (j % 4);
            let v = (v as i16).to_le_bytes();
            dst[at..at + 2].copy_from_slice(&v);
            dst[at + 8..at + 10].copy_from_slice(&v);
            if dst.len() == 256 {
                for k in 0..4 {
                    dst[128 + 16 * (j / 4) + 4 * k + j % 4] = v[0];
                }
            }
        }
    } else {
        for (d, &v) in dst.iter_mut().zip(q) {
            *d = v as u8;
        }
    }
}

/// How a block of 32 activations is scaled, given `max|x|` and whether it holds a NaN.
enum BlockScale {
    /// All quants 0 and `dx = sx =` this value: 0 for an all-zero block, NaN for a block with
    /// a NaN or an infinity (so that every output of the row becomes NaN instead of silently
    /// finite).
    Special(f32),
    /// `dx`, and `1/dx` to multiply by.
    Mul(f32, f32),
    /// `dx` is subnormal and `1/dx` overflows: divide by `dx` instead (rare; SIMD paths hand
    /// such blocks to [`quantize_block`]).
    Div(f32),
}

#[inline]
fn block_scale(amax: f32, has_nan: bool) -> BlockScale {
    if has_nan || !amax.is_finite() {
        return BlockScale::Special(f32::NAN);
    }
    let d = amax / 127.0;
    if d == 0.0 {
        return BlockScale::Special(0.0);
    }
    let id = 1.0 / d;
    if id.is_finite() {
        BlockScale::Mul(d, id)
    } else {
        BlockScale::Div(d)
    }
}

/// Quantizes 32 activations (the reference every SIMD path reproduces): returns `(dx, sx)`.
fn quantize_block(x: &[f32], q: &mut [i8; BLOCK_SIZE]) -> (f32, f32) {
    let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let has_nan = x.iter().any(|v| v.is_nan());
    let mut sum = 0i32;
    let d = match block_scale(amax, has_nan) {
        BlockScale::Special(v) => {
            q.fill(0);
            return (v, v);
        }
        BlockScale::Mul(d, id) => {
            for (qj, &xj) in q.iter_mut().zip(x) {
                let v = round_half_even_small(xj * id).clamp(-127, 127);
                *qj = v as i8;
                sum += v;
            }
            d
        }
        BlockScale::Div(d) => {
            for (qj, &xj) in q.iter_mut().zip(x) {
                let v = round_half_even_small(xj / d).clamp(-127, 127);
                *qj = v as i8;
                sum += v;
            }
            d
        }
    };
    (d, d * sum as f32)
}

/// `1.5 · 2^23`: adding and subtracting it rounds an `f32` of magnitude below `2^22` to an
/// integer, ties to even (in the default rounding mode, the only one Rust and wasm use).
const ROUND_MAGIC: f32 = 12_582_912.0;

/// Round to nearest, ties to even, for `|v| < 2^22` (the float-add trick: portable, fast, exact,
/// and what the SIMD paths do lane by lane).
#[inline]
fn round_half_even_small(v: f32) -> i32 {
    ((v + ROUND_MAGIC) - ROUND_MAGIC) as i32
}

/// `roundf`: round to nearest, ties away from zero, for `|v| < 2^23`.
#[inline]
fn round_half_away(v: f32) -> i32 {
    let a = v.abs();
    let t = a as i32;
    let r = if a - t as f32 >= 0.5 { t + 1 } else { t };
    if v < 0.0 {
        -r
    } else {
        r
    }
}

#[inline]
fn f16_is_finite(h: u16) -> bool {
    h & 0x7C00 != 0x7C00
}

/// IEEE binary16 → binary32, exact.
#[inline]
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let h = h as u32;
    let sign = (h & 0x8000) << 16;
    if h & 0x7C00 == 0x7C00 {
        return f32::from_bits(sign | 0x7F80_0000 | ((h & 0x03FF) << 13));
    }
    // Shifting the exponent+mantissa into place and scaling by 2^112 re-biases the exponent
    // (15 → 127) and normalizes subnormals, exactly.
    let mag = f32::from_bits((h & 0x7FFF) << 13) * f32::from_bits(0x7780_0000);
    f32::from_bits(mag.to_bits() | sign)
}

/// IEEE binary32 → binary16, round to nearest even (as `_cvtss_sh`, numpy and `half`).
pub(crate) fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let a = b & 0x7FFF_FFFF;
    if a >= 0x7F80_0000 {
        return sign | 0x7C00 | if a > 0x7F80_0000 { 0x0200 | ((a >> 13) & 0x03FF) as u16 } else { 0 };
    }
    if a >= 0x477F_F000 {
        // ≥ 65520 rounds to infinity.
        return sign | 0x7C00;
    }
    if a < 0x3880_0000 {
        // Below 2^-14: subnormal (or zero) in binary16, unit 2^-24. Scaling by 2^24 is exact.
        let v = f32::from_bits(a) * 16_777_216.0;
        return sign | round_half_even_small(v) as u16;
    }
    let e = (a >> 23) - (127 - 15); // ≥ 1: a ≥ 2^-14 here
    let mut h = (e << 10) | ((a >> 13) & 0x03FF);
    let rem = a & 0x1FFF;
    if rem > 0x1000 || (rem == 0x1000 && h & 1 == 1) {
        h += 1;
    }
    sign | h as u16
}

mod scalar {
    use super::*;

    pub(super) fn run(m: &QuantizedMatrix, act: &Activations, groups: Range<usize>, sink: &mut Sink) {
        let nb = m.nb;
        let qbytes = chunks_as_bytes(&m.quants);
        let xbytes = chunks_as_bytes(&act.q);
        let gstride_q = nb * GROUP * m.format.quant_bytes();
        let gstride_s = nb * GROUP * m.format.scales_per_block();
        for g in groups {
            let wq = &qbytes[g * gstride_q..(g + 1) * gstride_q];
            let ws = &m.scales[g * gstride_s..(g + 1) * gstride_s];
            for r in 0..act.rows {
                let xq = &xbytes[r * nb * 32..(r + 1) * nb * 32];
                let dx = &act.d[r * nb..(r + 1) * nb];
                let sx = &act.s[r * nb..(r + 1) * nb];
                let acc = match m.format {
                    WeightFormat::Q4_1 => q4_1_group(wq, ws, xq, dx, sx),
                    WeightFormat::Q8_0 => q8_0_group(wq, ws, xq, dx),
                };
                sink.store(g, r, &acc);
            }
        }
    }

    fn widen(xq: &[u8]) -> [i32; 32] {
        let mut x = [0i32; 32];
        for (xi, &v) in x.iter_mut().zip(xq) {
            *xi = v as i8 as i32;
        }
        x
    }

    // The integer sums may run in any order (they are exact); the loop shapes below were the
    // fastest measured natively and in wasm without simd128. The float updates are the
    // canonical per-row, per-block expression.

    fn q4_1_group(wq: &[u8], ws: &[u16], xq: &[u8], dx: &[f32], sx: &[f32]) -> [f32; GROUP] {
        let mut acc = [0.0f32; GROUP];
        for (b, ((wq, ws), xq)) in wq.chunks_exact(128).zip(ws.chunks_exact(16)).zip(xq.chunks_exact(32)).enumerate() {
            let x = widen(xq);
            let mut isum = [0i32; GROUP];
            for (t, wt) in wq.chunks_exact(32).enumerate() {
                let wt: &[u8; 32] = wt.try_into().unwrap();
                let xl: [i32; 4] = x[4 * t..4 * t + 4].try_into().unwrap();
                let xh: [i32; 4] = x[4 * t + 16..4 * t + 20].try_into().unwrap();
                for (k, isum) in isum.iter_mut().enumerate() {
                    for i in 0..4 {
                        let q = wt[4 * k + i];
                        *isum += (q & 0x0F) as i32 * xl[i] + (q >> 4) as i32 * xh[i];
                    }
                }
            }
            for k in 0..GROUP {
                let dw = f16_to_f32(ws[k]);
                let mw = f16_to_f32(ws[GROUP + k]);
                acc[k] += (dw * dx[b]) * isum[k] as f32 + mw * sx[b];
            }
        }
        acc
    }

    fn q8_0_group(wq: &[u8], ws: &[u16], xq: &[u8], dx: &[f32]) -> [f32; GROUP] {
        let mut acc = [0.0f32; GROUP];
        for (b, ((wq, ws), xq)) in wq.chunks_exact(256).zip(ws.chunks_exact(8)).zip(xq.chunks_exact(32)).enumerate() {
            let x = widen(xq);
            let wq: &[u8; 256] = wq.try_into().unwrap();
            for (k, acc) in acc.iter_mut().enumerate() {
                let mut isum = 0i32;
                for (j, &xj) in x.iter().enumerate() {
                    isum += wq[quant_offset(k, j)] as i8 as i32 * xj;
                }
                *acc += (f16_to_f32(ws[k]) * dx[b]) * isum as f32;
            }
        }
        acc
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;
    use std::arch::x86_64::*;

    /// Rows of activations processed together against one pass over a group's weights.
    const ROW_TILE: usize = 4;

    /// # Safety
    /// AVX2 and F16C must be available; `act` must be laid out for `Isa::Avx2`.
    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn run(m: &QuantizedMatrix, act: &Activations, groups: Range<usize>, sink: &mut Sink) {
        let nb = m.nb;
        let spb = GROUP * m.format.scales_per_block();
        let qpb = GROUP * m.format.quant_bytes();
        assert!(act.q.len() * 64 >= act.rows * nb * 32);
        assert!(groups.end <= m.groups);
        let wq = chunks_as_bytes(&m.quants).as_ptr();
        let xq = chunks_as_bytes(&act.q).as_ptr();
        for g in groups {
            let gq = wq.add(g * nb * qpb);
            let gs = m.scales.as_ptr().add(g * nb * spb);
            let mut r = 0;
            while r < act.rows {
                let n = (act.rows - r).min(ROW_TILE);
                let x = xq.add(r * nb * 32);
                let dx = act.d.as_ptr().add(r * nb);
                let sx = act.s.as_ptr().add(r * nb);
                let mut acc = [[0.0f32; GROUP]; ROW_TILE];
                match (m.format, n) {
                    (WeightFormat::Q4_1, 4) => q4_1::<4>(gq, gs, nb, x, dx, sx, &mut acc),
                    (WeightFormat::Q4_1, 3) => q4_1::<3>(gq, gs, nb, x, dx, sx, &mut acc),
                    (WeightFormat::Q4_1, 2) => q4_1::<2>(gq, gs, nb, x, dx, sx, &mut acc),
                    (WeightFormat::Q4_1, _) => q4_1::<1>(gq, gs, nb, x, dx, sx, &mut acc),
                    (WeightFormat::Q8_0, 4) => q8_0::<4>(gq, gs, nb, x, dx, &mut acc),
                    (WeightFormat::Q8_0, 3) => q8_0::<3>(gq, gs, nb, x, dx, &mut acc),
                    (WeightFormat::Q8_0, 2) => q8_0::<2>(gq, gs, nb, x, dx, &mut acc),
                    (WeightFormat::Q8_0, _) => q8_0::<1>(gq, gs, nb, x, dx, &mut acc),
                }
                for (i, a) in acc[..n].iter().enumerate() {
                    sink.store(g, r + i, a);
                }
                r += n;
            }
        }
    }

    /// [`Activations`] quantization, lane-parallel but op-for-op the same as
    /// [`quantize_block`] (so the quants and scales are identical).
    ///
    /// # Safety
    /// AVX2 must be available.
    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn quantize(x: &[f32], q: &mut [u8], d: &mut [f32], s: &mut [f32]) {
        assert!(q.len() >= x.len() && d.len() * BLOCK_SIZE == x.len() && s.len() == d.len());
        let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF));
        let magic = _mm256_set1_ps(ROUND_MAGIC);
        let (lo, hi) = (_mm256_set1_epi32(-127), _mm256_set1_epi32(127));
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for (i, xb) in x.chunks_exact(BLOCK_SIZE).enumerate() {
            let p = xb.as_ptr();
            let v =
                [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)), _mm256_loadu_ps(p.add(16)), _mm256_loadu_ps(p.add(24))];
            let nan =
                _mm256_or_ps(_mm256_cmp_ps::<_CMP_UNORD_Q>(v[0], v[1]), _mm256_cmp_ps::<_CMP_UNORD_Q>(v[2], v[3]));
            // max of |x| (exact in any order; NaN is handled through `nan`).
            let m = _mm256_max_ps(
                _mm256_max_ps(_mm256_and_ps(v[0], abs_mask), _mm256_and_ps(v[1], abs_mask)),
                _mm256_max_ps(_mm256_and_ps(v[2], abs_mask), _mm256_and_ps(v[3], abs_mask)),
            );
            let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
            let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            let m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
            let dst = q.as_mut_ptr().add(i * BLOCK_SIZE);
            let id = match block_scale(_mm_cvtss_f32(m), _mm256_movemask_ps(nan) != 0) {
                BlockScale::Special(v) => {
                    _mm256_storeu_si256(dst as *mut __m256i, _mm256_setzero_si256());
                    (d[i], s[i]) = (v, v);
                    continue;
                }
                BlockScale::Div(_) => {
                    let mut qb = [0i8; BLOCK_SIZE];
                    (d[i], s[i]) = quantize_block(xb, &mut qb);
                    write_act_block(Isa::Avx2, &qb, &mut q[i * BLOCK_SIZE..(i + 1) * BLOCK_SIZE]);
                    continue;
                }
                BlockScale::Mul(dd, id) => {
                    d[i] = dd;
                    _mm256_set1_ps(id)
                }
            };
            let mut qi = [_mm256_setzero_si256(); 4];
            for (qi, &v) in qi.iter_mut().zip(&v) {
                let r = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(v, id), magic), magic);
                // `r` is integral, so truncation is exact.
                *qi = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvttps_epi32(r), lo), hi);
            }
            let sum = _mm256_add_epi32(_mm256_add_epi32(qi[0], qi[1]), _mm256_add_epi32(qi[2], qi[3]));
            let sum = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
            let sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0b01_00_11_10));
            let sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0b10_11_00_01));
            s[i] = d[i] * _mm_cvtsi128_si32(sum) as f32;
            // i32 → i16 → i8 packs interleave 128-bit lanes; `order` puts the 4-byte groups back.
            let packed = _mm256_packs_epi16(_mm256_packs_epi32(qi[0], qi[1]), _mm256_packs_epi32(qi[2], qi[3]));
            _mm256_storeu_si256(dst as *mut __m256i, _mm256_permutevar8x32_epi32(packed, order));
        }
    }

    /// Activation bytes `4t..4t+4` of a block, in all eight 32-bit lanes.
    #[inline(always)]
    unsafe fn bcast4(x: *const u8, t: usize) -> __m256i {
        _mm256_set1_epi32((x.add(4 * t) as *const i32).read_unaligned())
    }

    /// One group of 8 `Q4_1` rows against `R` activation rows (row stride `nb` blocks).
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn q4_1<const R: usize>(
        wq: *const u8,
        ws: *const u16,
        nb: usize,
        x: *const u8,
        dx: *const f32,
        sx: *const f32,
        out: &mut [[f32; GROUP]; ROW_TILE],
    ) {
        let nib = _mm256_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); R];
        for b in 0..nb {
            let s = ws.add(b * 16);
            let d = _mm256_cvtph_ps(_mm_loadu_si128(s as *const __m128i));
            let m = _mm256_cvtph_ps(_mm_loadu_si128(s.add(8) as *const __m128i));
            // Vector t: bytes 4t..4t+4 of the 8 rows; low nibbles are inputs 4t.., high 16+4t...
            // i16 lanes of `s`: 2 products of a nibble (≤ 15) and |q| ≤ 127 per step, 8 steps:
            // |Σ| ≤ 16·15·127 = 30480 < 2^15, so nothing saturates.
            let q = wq.add(b * 128) as *const __m256i;
            let mut s = [_mm256_setzero_si256(); R];
            for t in 0..4 {
                let v = _mm256_load_si256(q.add(t));
                let lo = _mm256_and_si256(v, nib);
                let hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
                for (r, s) in s.iter_mut().enumerate() {
                    let xb = x.add((r * nb + b) * 32);
                    *s = _mm256_add_epi16(*s, _mm256_maddubs_epi16(lo, bcast4(xb, t)));
                    *s = _mm256_add_epi16(*s, _mm256_maddubs_epi16(hi, bcast4(xb, t + 4)));
                }
            }
            for (r, (acc, s)) in acc.iter_mut().zip(s).enumerate() {
                let isum = _mm256_cvtepi32_ps(_mm256_madd_epi16(s, ones));
                let dxv = _mm256_set1_ps(*dx.add(r * nb + b));
                let sxv = _mm256_set1_ps(*sx.add(r * nb + b));
                let t = _mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(d, dxv), isum), _mm256_mul_ps(m, sxv));
                *acc = _mm256_add_ps(*acc, t);
            }
        }
        for (o, a) in out.iter_mut().zip(acc) {
            _mm256_storeu_ps(o.as_mut_ptr(), a);
        }
    }

    /// One group of 8 `Q8_0` rows against `R` activation rows.
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn q8_0<const R: usize>(
        wq: *const u8,
        ws: *const u16,
        nb: usize,
        x: *const u8,
        dx: *const f32,
        out: &mut [[f32; GROUP]; ROW_TILE],
    ) {
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); R];
        for b in 0..nb {
            let d = _mm256_cvtph_ps(_mm_loadu_si128(ws.add(b * 8) as *const __m128i));
            let q = wq.add(b * 256) as *const __m256i;
            let mut s = [_mm256_setzero_si256(); R];
            for t in 0..8 {
                let w = _mm256_load_si256(q.add(t));
                let a = _mm256_abs_epi8(w);
                for (r, s) in s.iter_mut().enumerate() {
                    let xb = x.add((r * nb + b) * 32);
                    // |w|·(±x): each i16 lane ≤ 2·128·127 = 32512, no saturation.
                    let p = _mm256_maddubs_epi16(a, _mm256_sign_epi8(bcast4(xb, t), w));
                    *s = _mm256_add_epi32(*s, _mm256_madd_epi16(p, ones));
                }
            }
            for (r, (acc, s)) in acc.iter_mut().zip(s).enumerate() {
                let isum = _mm256_cvtepi32_ps(s);
                let dxv = _mm256_set1_ps(*dx.add(r * nb + b));
                *acc = _mm256_add_ps(*acc, _mm256_mul_ps(_mm256_mul_ps(d, dxv), isum));
            }
        }
        for (o, a) in out.iter_mut().zip(acc) {
            _mm256_storeu_ps(o.as_mut_ptr(), a);
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128 {
    use super::*;
    use core::arch::wasm32::*;

    const ROW_TILE: usize = 4;
    const ACT_BYTES: usize = act_block_bytes(Isa::Simd128);
    /// How far ahead of the block it multiplies a kernel reads the weights (see `read_ahead`).
    const AHEAD_BYTES: usize = 1024;

    pub(super) fn run(m: &QuantizedMatrix, act: &Activations, groups: Range<usize>, sink: &mut Sink) {
        let nb = m.nb;
        let spb = GROUP * m.format.scales_per_block();
        let qpb = GROUP * m.format.quant_bytes();
        let wq = chunks_as_bytes(&m.quants);
        let xq = chunks_as_bytes(&act.q);
        assert_eq!(xq.len(), act.rows * nb * ACT_BYTES);
        for g in groups {
            let gq = &wq[g * nb * qpb..]; // the group's blocks, then the rest of the matrix (for `read_ahead`)
            let gs = &m.scales[g * nb * spb..(g + 1) * nb * spb];
            let mut r = 0;
            while r < act.rows {
                let n = (act.rows - r).min(ROW_TILE);
                let x = &xq[r * nb * ACT_BYTES..(r + n) * nb * ACT_BYTES];
                let dx = &act.d[r * nb..(r + n) * nb];
                let sx = &act.s[r * nb..(r + n) * nb];
                let mut acc = [[0.0f32; GROUP]; ROW_TILE];
                // SAFETY: the slices above hold the group's `nb` blocks (`gq` from its first) and `n` rows.
                unsafe {
                    match (m.format, n) {
                        (WeightFormat::Q4_1, 4) => q4_1::<4>(gq, gs, nb, x, dx, sx, &mut acc),
                        (WeightFormat::Q4_1, 3) => q4_1::<3>(gq, gs, nb, x, dx, sx, &mut acc),
                        (WeightFormat::Q4_1, 2) => q4_1::<2>(gq, gs, nb, x, dx, sx, &mut acc),
                        (WeightFormat::Q4_1, _) => q4_1::<1>(gq, gs, nb, x, dx, sx, &mut acc),
                        (WeightFormat::Q8_0, 4) => q8_0::<4>(gq, gs, nb, x, dx, &mut acc),
                        (WeightFormat::Q8_0, 3) => q8_0::<3>(gq, gs, nb, x, dx, &mut acc),
                        (WeightFormat::Q8_0, 2) => q8_0::<2>(gq, gs, nb, x, dx, &mut acc),
                        (WeightFormat::Q8_0, _) => q8_0::<1>(gq, gs, nb, x, dx, &mut acc),
                    }
                }
                for (i, a) in acc[..n].iter().enumerate() {
                    sink.store(g, r + i, a);
                }
                r += n;
            }
        }
    }

    /// [`Activations`] quantization, op-for-op the same as [`quantize_block`].
    pub(super) fn quantize(x: &[f32], q: &mut [u8], d: &mut [f32], s: &mut [f32]) {
        assert!(q.len() >= x.len() / BLOCK_SIZE * ACT_BYTES && d.len() * BLOCK_SIZE == x.len() && s.len() == d.len());
        let magic = f32x4_splat(ROUND_MAGIC);
        let (lo, hi) = (i32x4_splat(-127), i32x4_splat(127));
        for (i, xb) in x.chunks_exact(BLOCK_SIZE).enumerate() {
            let dst = &mut q[i * ACT_BYTES..(i + 1) * ACT_BYTES];
            let mut v = [f32x4_splat(0.0); 8];
            let mut m = f32x4_splat(0.0);
            let mut nan = f32x4_splat(0.0);
            for (t, v) in v.iter_mut().enumerate() {
                // SAFETY: `xb` holds 32 floats.
                *v = unsafe { v128_load(xb.as_ptr().add(4 * t) as *const v128) };
                m = f32x4_max(m, f32x4_abs(*v));
                nan = v128_or(nan, f32x4_ne(*v, *v));
            }
            let amax = f32x4_extract_lane::<0>(m)
                .max(f32x4_extract_lane::<1>(m))
                .max(f32x4_extract_lane::<2>(m))
                .max(f32x4_extract_lane::<3>(m));
            let id = match block_scale(amax, v128_any_true(nan)) {
                BlockScale::Special(v) => {
                    dst.fill(0);
                    (d[i], s[i]) = (v, v);
                    continue;
                }
                BlockScale::Div(_) => {
                    let mut qb = [0i8; BLOCK_SIZE];
                    (d[i], s[i]) = quantize_block(xb, &mut qb);
                    write_act_block(Isa::Simd128, &qb, dst);
                    continue;
                }
                BlockScale::Mul(dd, id) => {
                    d[i] = dd;
                    f32x4_splat(id)
                }
            };
            let mut sum = i32x4_splat(0);
            for (t, &v) in v.iter().enumerate() {
                let r = f32x4_sub(f32x4_add(f32x4_mul(v, id), magic), magic);
                let qi = i32x4_min(i32x4_max(i32x4_trunc_sat_f32x4(r), lo), hi);
                sum = i32x4_add(sum, qi);
                // Vector t of the layout: inputs 4t..4t+4 as i16, twice (with relaxed SIMD, then as bytes, four times).
                let q16 = i16x8_narrow_i32x4(qi, qi);
                // SAFETY: `dst` holds 8 × 16 bytes.
                unsafe { v128_store(dst.as_mut_ptr().add(16 * t) as *mut v128, q16) };
                #[cfg(target_feature = "relaxed-simd")]
                // SAFETY: this build's blocks hold 8 × 16 more bytes.
                unsafe {
                    v128_store(dst.as_mut_ptr().add(128 + 16 * t) as *mut v128, i8x16_narrow_i16x8(q16, q16))
                };
            }
            let total = i32x4_extract_lane::<0>(sum)
                + i32x4_extract_lane::<1>(sum)
                + i32x4_extract_lane::<2>(sum)
                + i32x4_extract_lane::<3>(sum);
            s[i] = d[i] * total as f32;
        }
    }

    /// Reads one byte of each 64-byte cache line `AHEAD_BYTES` past block `b` of `quants` (the matrix's quant bytes
    /// from the first of the group being multiplied), so that memory fetches them while the kernel computes: wasm has
    /// no prefetch instruction. With two rows or more, the kernels without these reads waited on memory and computed
    /// in turn (`tests/wasm_kernels.sh --bench`, under Node, a step's matrices streamed as the engine meets them):
    /// the lm-head after the layers (30 MB, read right after 66 MB, so never in cache) took 7.6 instead of 4.8 ms for
    /// two rows with relaxed SIMD, and without relaxed SIMD the layers took 26–29 instead of 15–16 ms. With one row
    /// they measured no steady gain in Chromium, so the kernels read ahead only for two rows or more.
    #[inline(always)]
    fn read_ahead<const BLOCK: usize>(quants: &[u8], b: usize) {
        for line in (0..BLOCK).step_by(64) {
            if let Some(byte) = quants.get(b * BLOCK + AHEAD_BYTES + line) {
                // SAFETY: a read through a reference; volatile, so that the read of an unused value stays.
                unsafe { core::ptr::read_volatile(byte) };
            }
        }
    }

    /// 8 `f16` (finite: checked at construction) → two `f32x4`, exactly as `f16_to_f32`.
    #[inline(always)]
    unsafe fn f16x8_to_f32(p: *const u16) -> [v128; 2] {
        let h = v128_load(p as *const v128);
        let cvt = |u: v128| {
            let mag =
                f32x4_mul(i32x4_shl(v128_and(u, u32x4_splat(0x7FFF)), 13), f32x4_splat(f32::from_bits(0x7780_0000)));
            v128_or(mag, i32x4_shl(v128_and(u, u32x4_splat(0x8000)), 16))
        };
        [cvt(u32x4_extend_low_u16x8(h)), cvt(u32x4_extend_high_u16x8(h))]
    }

    /// `[Σa, Σb, Σc, Σd]` of `a0 = [a, a, b, b]`, `a1 = [c, c, d, d]` (pairs of partial sums).
    #[inline(always)]
    fn finish(a0: v128, a1: v128) -> v128 {
        f32x4_convert_i32x4(i32x4_add(i32x4_shuffle::<0, 2, 4, 6>(a0, a1), i32x4_shuffle::<1, 3, 5, 7>(a0, a1)))
    }

    // Both kernels: the 16 quant bytes at `2t + h` (16-byte units) of a group-block are rows
    // `4h..4h+4`, 4 bytes each, for inputs `4t..4t+4`; widened to `i16` they make two vectors of
    // two rows each. The activation block of a row is eight `i16x8`, vector `t` holding inputs
    // `4t..4t+4` twice, so `i32x4_dot_i16x8` leaves `[row a, row a, row b, row b]` partial sums.
    // In `q4_1` the loop over `t` is outside the one over `h`, so each row's two activation vectors
    // are loaded once and serve both halves of the group: 7% faster for two rows and 5–10% for
    // prompt tiles (tests/wasm_kernels.sh --bench under Node); the same swap made `q8_0` slower.

    /// The Q4_1 kernel: per block, the integer sums of each row (`block_sums`), then the scalar path's float update
    /// `acc += (dw · dx) · isum + mw · sx`.
    unsafe fn q4_1<const R: usize>(
        wq: &[u8],
        ws: &[u16],
        nb: usize,
        x: &[u8],
        dx: &[f32],
        sx: &[f32],
        out: &mut [[f32; GROUP]; ROW_TILE],
    ) {
        let mut acc = [[f32x4_splat(0.0); 2]; R];
        for b in 0..nb {
            // (Reading ahead measured no steady gain with relaxed SIMD, and in one variant it made two rows slower.)
            #[cfg(not(target_feature = "relaxed-simd"))]
            if R > 1 {
                read_ahead::<128>(wq, b);
            }
            let d = f16x8_to_f32(ws.as_ptr().add(b * 16));
            let m = f16x8_to_f32(ws.as_ptr().add(b * 16 + 8));
            let isums = q4_1_block_sums::<R>(wq.as_ptr().add(b * 128) as *const v128, x, nb, b);
            for (r, (acc, isum)) in acc.iter_mut().zip(isums).enumerate() {
                let dxv = f32x4_splat(dx[r * nb + b]);
                let sxv = f32x4_splat(sx[r * nb + b]);
                for h in 0..2 {
                    let t = f32x4_add(f32x4_mul(f32x4_mul(d[h], dxv), isum[h]), f32x4_mul(m[h], sxv));
                    acc[h] = f32x4_add(acc[h], t);
                }
            }
        }
        store_rows(out, &acc);
    }

    /// Block `b`'s integer sums for each of the `R` rows, as floats: `[rows 0..4, rows 4..8]` of the group. The
    /// relaxed-SIMD build's: `i16x8_relaxed_dot_i8x16_i7x16` multiplies 16 signed activation bytes by 16 weight
    /// nibbles and adds neighbouring pairs (x86: one `pmaddubsw`). It is only "relaxed" when the second operand has
    /// its high bit set; nibbles (0..15) never do, so every sum is exact. A lane gathers 16 products of at most
    /// 15 · 127 in a block, 30,480 < 2¹⁵, so the sums stay in `i16` until the block ends: the result is the same bits
    /// as the other paths.
    #[cfg(target_feature = "relaxed-simd")]
    #[inline(always)]
    unsafe fn q4_1_block_sums<const R: usize>(q: *const v128, x: &[u8], nb: usize, b: usize) -> [[v128; 2]; R] {
        let nib = u8x16_splat(0x0F);
        let mut sums = [[i16x8_splat(0); 2]; R];
        for t in 0..4 {
            // Inputs 4t..4t+4 (low nibbles) and 4t+16..4t+20 (high) as bytes, four times over.
            let mut xs = [[i16x8_splat(0); 2]; R];
            for (r, xs) in xs.iter_mut().enumerate() {
                let xr = x.as_ptr().add((r * nb + b) * ACT_BYTES + 128) as *const v128;
                *xs = [v128_load(xr.add(t)), v128_load(xr.add(t + 4))];
            }
            for h in 0..2 {
                let v = v128_load(q.add(2 * t + h));
                let (lo, hi) = (v128_and(v, nib), v128_and(u16x8_shr(v, 4), nib));
                for (s, [xl, xh]) in sums.iter_mut().zip(xs) {
                    let p = i16x8_add(i16x8_relaxed_dot_i8x16_i7x16(xl, lo), i16x8_relaxed_dot_i8x16_i7x16(xh, hi));
                    s[h] = i16x8_add(s[h], p);
                }
            }
        }
        sums.map(|s| s.map(|s| f32x4_convert_i32x4(i32x4_extadd_pairwise_i16x8(s))))
    }

    /// Block `b`'s integer sums for each of the `R` rows (simd128: nibbles widened to `i16`, `i32x4_dot_i16x8`).
    #[cfg(not(target_feature = "relaxed-simd"))]
    #[inline(always)]
    unsafe fn q4_1_block_sums<const R: usize>(q: *const v128, x: &[u8], nb: usize, b: usize) -> [[v128; 2]; R] {
        let nib = u8x16_splat(0x0F);
        let mut ia = [[[i32x4_splat(0); 2]; 2]; R];
        for t in 0..4 {
            let mut xs = [[i32x4_splat(0); 2]; R];
            for (r, xs) in xs.iter_mut().enumerate() {
                let xr = x.as_ptr().add((r * nb + b) * ACT_BYTES) as *const v128;
                *xs = [v128_load(xr.add(t)), v128_load(xr.add(t + 4))];
            }
            for h in 0..2 {
                let v = v128_load(q.add(2 * t + h));
                // (`u16x8_shr` + mask: x86 has no byte shift, so this is cheaper than `u8x16_shr`.)
                let (lo, hi) = (v128_and(v, nib), v128_and(u16x8_shr(v, 4), nib));
                let (l0, l1) = (u16x8_extend_low_u8x16(lo), u16x8_extend_high_u8x16(lo));
                let (h0, h1) = (u16x8_extend_low_u8x16(hi), u16x8_extend_high_u8x16(hi));
                for (ia, [xl, xh]) in ia.iter_mut().zip(xs) {
                    let ia = &mut ia[h];
                    ia[0] = i32x4_add(ia[0], i32x4_add(i32x4_dot_i16x8(l0, xl), i32x4_dot_i16x8(h0, xh)));
                    ia[1] = i32x4_add(ia[1], i32x4_add(i32x4_dot_i16x8(l1, xl), i32x4_dot_i16x8(h1, xh)));
                }
            }
        }
        ia.map(|[a, b]| [finish(a[0], a[1]), finish(b[0], b[1])])
    }

    /// The `R` rows' accumulators (`[rows 0..4, rows 4..8]` each) into `out`.
    #[inline(always)]
    unsafe fn store_rows<const R: usize>(out: &mut [[f32; GROUP]; ROW_TILE], acc: &[[v128; 2]; R]) {
        for (o, a) in out.iter_mut().zip(acc) {
            v128_store(o.as_mut_ptr() as *mut v128, a[0]);
            v128_store(o.as_mut_ptr().add(4) as *mut v128, a[1]);
        }
    }

    unsafe fn q8_0<const R: usize>(
        wq: &[u8],
        ws: &[u16],
        nb: usize,
        x: &[u8],
        dx: &[f32],
        out: &mut [[f32; GROUP]; ROW_TILE],
    ) {
        let mut acc = [[f32x4_splat(0.0); 2]; R];
        for b in 0..nb {
            if R > 1 {
                read_ahead::<256>(wq, b);
            }
            let d = f16x8_to_f32(ws.as_ptr().add(b * 8));
            let q = wq.as_ptr().add(b * 256) as *const v128;
            for h in 0..2 {
                let mut ia = [[i32x4_splat(0); 2]; R];
                for t in 0..8 {
                    let v = v128_load(q.add(2 * t + h));
                    let (w0, w1) = (i16x8_extend_low_i8x16(v), i16x8_extend_high_i8x16(v));
                    for (r, ia) in ia.iter_mut().enumerate() {
                        let xt = v128_load((x.as_ptr().add((r * nb + b) * ACT_BYTES) as *const v128).add(t));
                        ia[0] = i32x4_add(ia[0], i32x4_dot_i16x8(w0, xt));
                        ia[1] = i32x4_add(ia[1], i32x4_dot_i16x8(w1, xt));
                    }
                }
                for (r, (acc, ia)) in acc.iter_mut().zip(ia).enumerate() {
                    let isum = finish(ia[0], ia[1]);
                    let dxv = f32x4_splat(dx[r * nb + b]);
                    acc[h] = f32x4_add(acc[h], f32x4_mul(f32x4_mul(d[h], dxv), isum));
                }
            }
        }
        store_rows(out, &acc);
    }
}

/// SplitMix64: reproducible pseudo-random numbers for the kernel checks.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Random GGML bytes of an `out_features × in_features` matrix for the kernel checks: random quants, and
/// finite scales in [2^-7, 2^-6) (`Q4_1`: `m = −8d`, centring the nibbles).
pub fn random_ggml(
    format: WeightFormat,
    out_features: usize,
    in_features: usize,
    next: &mut impl FnMut() -> u64,
) -> Vec<u8> {
    let mut w: Vec<u8> = (0..format.ggml_bytes(out_features, in_features)).map(|_| next() as u8).collect();
    for b in w.chunks_exact_mut(format.ggml_block_bytes()) {
        let d = 0x2000u16 | (next() as u16 & 0x3FF);
        b[..2].copy_from_slice(&d.to_le_bytes());
        if format == WeightFormat::Q4_1 {
            b[2..4].copy_from_slice(&(d | 0x8C00).to_le_bytes());
        }
    }
    w
}

/// What [`exactness_check`] found.
#[derive(Clone, Debug, PartialEq)]
pub struct ExactnessReport {
    /// Matrix × batch-size cases run.
    pub cases: usize,
    /// Cases where some path's output differed from the scalar path's in any bit.
    pub mismatches: usize,
    /// Threads the split path used.
    pub threads: usize,
    /// The instruction sets compared (scalar first).
    pub isas: Vec<Isa>,
}

/// Multiplies random `Q4_1` and `Q8_0` matrices of the model's shapes (and odd ones) by random
/// batches of 1, 2, 3 and 9 rows on every available instruction set, one thread and `threads`
/// threads, and counts outputs that differ from the scalar path's in any bit (a NaN matches a
/// NaN). For checking a build where it runs (the browser's wasm, threaded or not).
pub fn exactness_check(seed: u64, threads: usize) -> ExactnessReport {
    let mut state = seed;
    let mut next = move || splitmix64(&mut state);
    let isas = Isa::available();
    let mut report = ExactnessReport { cases: 0, mismatches: 0, threads, isas: isas.clone() };
    for format in [WeightFormat::Q4_1, WeightFormat::Q8_0] {
        for (o, i) in [(576, 576), (1536, 576), (576, 1536), (192, 576), (100, 96)] {
            let w = random_ggml(format, o, i, &mut next);
            let m = QuantizedMatrix::from_ggml(format, &w, o, i).expect("valid random matrix");
            for rows in [1usize, 2, 3, 9] {
                let x: Vec<f32> =
                    (0..rows * i).map(|_| ((next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * 3.0).collect();
                let mut want = vec![0f32; rows * o];
                m.matmul_with(&x, rows, &mut want, Isa::Scalar, 1);
                let mut differs = false;
                for &isa in &isas {
                    for t in [1, threads] {
                        let mut got = vec![0f32; rows * o];
                        m.matmul_with(&x, rows, &mut got, isa, t);
                        differs |= got
                            .iter()
                            .zip(&want)
                            .any(|(a, b)| a.to_bits() != b.to_bits() && !(a.is_nan() && b.is_nan()));
                    }
                }
                report.cases += 1;
                report.mismatches += usize::from(differs);
            }
        }
    }
    report
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn f16_round_trip_is_exact_for_every_finite_value() {
        for h in 0..=u16::MAX {
            let f = f16_to_f32(h);
            if f.is_nan() {
                assert!(f32_to_f16(f) & 0x7C00 == 0x7C00 && f32_to_f16(f) & 0x3FF != 0);
            } else {
                assert_eq!(f32_to_f16(f), h, "{h:#06x} -> {f}");
            }
        }
    }

    #[test]
    fn f32_to_f16_rounds_to_nearest_even() {
        // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1.0).
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11)), 0x3C00);
        assert_eq!(f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)), 0x3C02);
        assert_eq!(f32_to_f16(65504.0), 0x7BFF);
        assert_eq!(f32_to_f16(65519.0), 0x7BFF);
        assert_eq!(f32_to_f16(65520.0), 0x7C00);
        assert_eq!(f32_to_f16(2f32.powi(-24)), 0x0001);
        assert_eq!(f32_to_f16(2f32.powi(-25)), 0x0000);
        assert_eq!(f32_to_f16(3.0 * 2f32.powi(-25)), 0x0002);
        assert_eq!(f32_to_f16(-0.0), 0x8000);
    }

    #[test]
    fn rounding_helpers() {
        for (v, e) in [(0.5f32, 0), (1.5, 2), (2.5, 2), (-0.5, 0), (-1.5, -2), (126.5, 126), (-127.4, -127)] {
            assert_eq!(round_half_even_small(v), e, "{v}");
        }
        for (v, e) in [(0.5f32, 1), (1.5, 2), (2.5, 3), (-0.5, -1), (-2.5, -3), (0.49999997, 0), (-127.0, -127)] {
            assert_eq!(round_half_away(v), e, "{v}");
        }
    }
}
