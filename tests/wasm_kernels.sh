#!/usr/bin/env bash
# Runs src/kernels.rs compiled to wasm32 (without simd128, with it, and with relaxed SIMD too) under node and
# checks that every result is bit-identical to the native scalar path.
#
#   tests/wasm_kernels.sh [--bench]
#
# Needs: cargo with the wasm32-unknown-unknown target, node ≥ 16 (simd128). No network.
# It builds a throwaway crate under target/wasm-kernels-check/ that includes src/kernels.rs by
# path (the kernels have no dependencies) and exports a few extern "C" functions; the crate's
# native binary writes the test vectors (inputs + native Scalar outputs), then
# tests/wasm_kernels.mjs runs them in wasm.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${CARGO_TARGET_DIR:-$root/target}/wasm-kernels-check"
crate="$work/crate"
mkdir -p "$crate/src/bin"
unset RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_ENCODED_RUSTFLAGS

cat > "$crate/Cargo.toml" <<'EOF'
[package]
name = "kernels-wasm-check"
version = "0.0.0"
edition = "2021"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[workspace]

[profile.release]
debug = false
EOF

cat > "$crate/src/lib.rs" <<EOF
#[path = "$root/src/kernels.rs"]
pub mod kernels;

#[cfg(target_arch = "wasm32")]
mod exports {
    use crate::kernels::{Isa, QuantizedMatrix, WeightFormat};

    #[no_mangle]
    pub extern "C" fn alloc(n: usize) -> *mut u8 {
        Box::leak(vec![0u8; n.max(1)].into_boxed_slice()).as_mut_ptr()
    }

    /// # Safety
    /// \`p\`, \`n\` from one \`alloc\` call.
    #[no_mangle]
    pub unsafe extern "C" fn dealloc(p: *mut u8, n: usize) {
        drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, n.max(1))));
    }

    #[no_mangle]
    pub extern "C" fn simd128_available() -> i32 {
        Isa::Simd128.is_available() as i32
    }

    /// # Safety
    /// \`w\` must point to \`w_len\` readable bytes.
    #[no_mangle]
    pub unsafe extern "C" fn make_matrix(format: u32, w: *const u8, w_len: usize, out_f: usize, in_f: usize) -> *mut QuantizedMatrix {
        let format = if format == 0 { WeightFormat::Q4_1 } else { WeightFormat::Q8_0 };
        match QuantizedMatrix::from_ggml(format, std::slice::from_raw_parts(w, w_len), out_f, in_f) {
            Ok(m) => Box::into_raw(Box::new(m)),
            Err(_) => std::ptr::null_mut(),
        }
    }

    /// # Safety
    /// \`m\` must come from \`make_matrix\` and not be used afterwards.
    #[no_mangle]
    pub unsafe extern "C" fn free_matrix(m: *mut QuantizedMatrix) {
        drop(Box::from_raw(m));
    }

    /// Runs \`reps\` matmuls; \`isa\`: 0 scalar, 2 simd128. Returns 0, or -2 if \`isa\` is unavailable.
    ///
    /// # Safety
    /// \`m\` from \`make_matrix\`; \`x\`, \`out\` hold rows × in / rows × out floats.
    #[no_mangle]
    pub unsafe extern "C" fn matmul_matrix(m: *const QuantizedMatrix, x: *const f32, rows: usize, out: *mut f32, isa: u32, reps: u32) -> i32 {
        let m = &*m;
        let isa = if isa == 2 { Isa::Simd128 } else { Isa::Scalar };
        if !isa.is_available() {
            return -2;
        }
        let x = std::slice::from_raw_parts(x, rows * m.in_features());
        let out = std::slice::from_raw_parts_mut(out, rows * m.out_features());
        for _ in 0..reps.max(1) {
            m.matmul_with(x, rows, out, isa, 1);
        }
        0
    }
}
EOF

cat > "$crate/src/bin/vectors.rs" <<'EOF'
//! Writes the test vectors: per case, u32 [format, out, in, rows, bytes], GGML bytes, x (f32),
//! and the native Scalar result (f32), all little-endian.
use kernels_wasm_check::kernels::{self, Isa, QuantizedMatrix, WeightFormat};
use std::io::Write;

fn main() {
    let path = std::env::args().nth(1).expect("usage: vectors OUT.bin");
    let mut state = 0x5EEDu64;
    let mut next = move || kernels::splitmix64(&mut state);
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut cases = 0;
    let shapes = [(576, 576), (1536, 576), (576, 1536), (192, 576), (4104, 576), (1, 32), (13, 160), (100, 96)];
    for format in [WeightFormat::Q4_1, WeightFormat::Q8_0] {
        for (o, i) in shapes {
            for rows in [1usize, 2, 3, 5, 25, 42, 4] {
                if o * i * rows > 60_000_000 {
                    continue;
                }
                let n = format.ggml_bytes(o, i);
                let w = kernels::random_ggml(format, o, i, &mut next);
                let mut x: Vec<f32> = (0..rows * i)
                    .map(|k| {
                        let u = (next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
                        if k % i == 7 { u * 30.0 } else if k % 97 == 0 { 0.0 } else { u }
                    })
                    .collect();
                if rows == 4 {
                    // Special blocks: zero, tiny (normal and subnormal scale), huge, NaN, ±inf.
                    let blocks = x.len() / 32;
                    let specials: [&dyn Fn(usize) -> f32; 7] = [
                        &|_| 0.0,
                        &|j| 1e-30 * (j as f32 - 9.0),
                        &|j| 1e-38 * (j as f32 - 15.5) / 16.0,
                        &|j| if j == 3 { 3e38 } else { j as f32 },
                        &|j| if j == 5 { f32::NAN } else { 1.0 },
                        &|j| if j == 6 { f32::INFINITY } else { -1.0 },
                        &|j| if j == 0 { f32::NEG_INFINITY } else { 0.0 },
                    ];
                    for (k, g) in specials.iter().enumerate() {
                        let b = (k * 5) % blocks;
                        for j in 0..32 {
                            x[b * 32 + j] = g(j);
                        }
                    }
                }
                let m = QuantizedMatrix::from_ggml(format, &w, o, i).unwrap();
                let mut out = vec![0f32; rows * o];
                m.matmul_with(&x, rows, &mut out, Isa::Scalar, 1);
                let fmt = if format == WeightFormat::Q4_1 { 0u32 } else { 1 };
                for v in [fmt, o as u32, i as u32, rows as u32, n as u32] {
                    f.write_all(&v.to_le_bytes()).unwrap();
                }
                f.write_all(&w).unwrap();
                for v in x.iter().chain(&out) {
                    f.write_all(&v.to_le_bytes()).unwrap();
                }
                cases += 1;
            }
        }
    }
    eprintln!("{cases} cases written to {path}");
}
EOF

cd "$crate"
cargo run --quiet --release --bin vectors --target-dir "$work/native" -- "$work/vectors.bin"
# Explicit RUSTFLAGS: they override any [target.wasm32-unknown-unknown] rustflags in .cargo/config.toml.
RUSTFLAGS="-C target-feature=+simd128" cargo build --quiet --release --lib --target wasm32-unknown-unknown --target-dir "$work/simd128"
RUSTFLAGS="-C target-feature=-simd128" cargo build --quiet --release --lib --target wasm32-unknown-unknown --target-dir "$work/plain"
status=0
echo "wasm32 + simd128:"
node "$root/tests/wasm_kernels.mjs" "$work/simd128/wasm32-unknown-unknown/release/kernels_wasm_check.wasm" "$work/vectors.bin" --expect=simd128 "$@" || status=1
echo "wasm32 without simd128:"
node "$root/tests/wasm_kernels.mjs" "$work/plain/wasm32-unknown-unknown/release/kernels_wasm_check.wasm" "$work/vectors.bin" --expect=scalar || status=1

# The relaxed-SIMD build (pkg/relaxed/, pkg/threads/). Node 20's V8 needs a flag for relaxed SIMD, later ones do
# not; its baseline compiler (Liftoff, V8 11.3, where the proposal was still experimental) is not trusted with it, so
# the check runs optimized code only (--no-liftoff). The browser tests run the relaxed build in Chromium itself.
RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" cargo build --quiet --release --lib --target wasm32-unknown-unknown --target-dir "$work/relaxed"
relaxed_probe="process.exit(WebAssembly.validate(new Uint8Array([0,97,115,109,1,0,0,0,1,5,1,96,0,1,123,3,2,1,0,10,15,1,13,0,65,1,253,15,65,2,253,15,253,128,2,11]))?0:1)"
node_relaxed=()
if node --no-liftoff -e "$relaxed_probe" 2>/dev/null; then
  node_relaxed=(node --no-liftoff)
elif node --experimental-wasm-relaxed-simd --no-liftoff -e "$relaxed_probe" 2>/dev/null; then
  node_relaxed=(node --experimental-wasm-relaxed-simd --no-liftoff)
fi
if [ ${#node_relaxed[@]} -gt 0 ]; then
  echo "wasm32 + simd128 + relaxed-simd:"
  "${node_relaxed[@]}" "$root/tests/wasm_kernels.mjs" "$work/relaxed/wasm32-unknown-unknown/release/kernels_wasm_check.wasm" "$work/vectors.bin" --expect=simd128 "$@" || status=1
else
  echo "error: this node cannot run relaxed SIMD, so the relaxed build is unchecked" >&2
  status=1
fi
exit $status
