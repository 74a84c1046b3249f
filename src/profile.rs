//! Where a decoding step spends its time, by phase of the forward pass — measured on request (`destein bench
//! --profile`, the benchmark pages), off otherwise, when each phase costs one relaxed atomic load.
//!
//! The totals are process-wide (one engine per wasm instance; natively, profile one model at a time). The clock is
//! `performance.now()` in the browser (microsecond resolution) and `Instant` natively.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The phases of a step, in the order the forward meets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Token ids → embedding rows (dequantized from the table).
    Embed,
    /// RMS norms.
    Norm,
    /// The seven weight matrices of each layer (q, k, v, o, gate, up, down): our quantized kernels.
    Matmul,
    /// Rotary position embedding of q and k.
    Rope,
    /// KV cache append, q·kᵀ over the visible positions, softmax, ·v.
    Attention,
    /// The activation hook: steering fusion and the projection read-out.
    Hook,
    /// Residual additions and the SwiGLU product.
    Elementwise,
    /// The final norm's output times the 49152 × 576 output matrix.
    LmHead,
    /// Sampling the next token from the logits (and copying them out of the tensor).
    Sampling,
}

impl Phase {
    pub const ALL: [Phase; 9] = [
        Phase::Embed,
        Phase::Norm,
        Phase::Matmul,
        Phase::Rope,
        Phase::Attention,
        Phase::Hook,
        Phase::Elementwise,
        Phase::LmHead,
        Phase::Sampling,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Embed => "embedding",
            Phase::Norm => "rms norms",
            Phase::Matmul => "layer matmuls (q k v o gate up down)",
            Phase::Rope => "rope",
            Phase::Attention => "attention (cache, scores, softmax, ·v)",
            Phase::Hook => "steering hook",
            Phase::Elementwise => "residuals + SwiGLU",
            Phase::LmHead => "lm-head",
            Phase::Sampling => "sampling",
        }
    }
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; Phase::ALL.len()] = [const { AtomicU64::new(0) }; Phase::ALL.len()];

/// Turn profiling on or off; turning it on clears the totals.
pub fn enable(on: bool) {
    if on {
        NANOS.iter().for_each(|n| n.store(0, Ordering::Relaxed));
    }
    ENABLED.store(on, Ordering::Relaxed);
}

/// Run `f`, adding its duration to `phase` when profiling is on.
#[inline]
pub fn timed<T>(phase: Phase, f: impl FnOnce() -> T) -> T {
    if !ENABLED.load(Ordering::Relaxed) {
        return f();
    }
    let start = now_ms();
    let out = f();
    let nanos = ((now_ms() - start) * 1e6).max(0.0) as u64;
    NANOS[phase as usize].fetch_add(nanos, Ordering::Relaxed);
    out
}

/// Milliseconds per phase since profiling was turned on.
pub fn totals_ms() -> Vec<(&'static str, f64)> {
    Phase::ALL.iter().map(|&p| (p.name(), NANOS[p as usize].load(Ordering::Relaxed) as f64 / 1e6)).collect()
}

/// Milliseconds from an arbitrary origin.
#[cfg(not(target_arch = "wasm32"))]
pub fn now_ms() -> f64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e3
}

/// Milliseconds from an arbitrary origin.
#[cfg(target_arch = "wasm32")]
pub fn now_ms() -> f64 {
    performance_now()
}

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    // `performance` exists in windows and workers alike (and in Node).
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}
