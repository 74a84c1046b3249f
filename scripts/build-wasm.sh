#!/usr/bin/env bash
# Build the browser engine: the crate for wasm32 (simd128, see .cargo/config.toml), then wasm-bindgen's
# JS glue into pkg/ (--target web: plain ES modules, no bundler); and again with relaxed SIMD into pkg/relaxed/.
# Idempotent: cargo rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

# wasm-bindgen-cli must be exactly the version of the wasm-bindgen crate in Cargo.lock.
want=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  echo "installing wasm-bindgen-cli $want (found: ${have:-none})"
  # --locked first (the versions its authors tested); if one of those has since been yanked from crates.io (as
  # webpki-roots 1.0.11 was), let cargo pick the newest compatible ones instead.
  cargo install --locked wasm-bindgen-cli --version "$want" ||
    cargo install wasm-bindgen-cli --version "$want"
fi

target_dir="${CARGO_TARGET_DIR:-target}"
cargo build --release --lib --target wasm32-unknown-unknown
wasm-bindgen --target web --out-dir pkg --no-typescript "$target_dir/wasm32-unknown-unknown/release/destein.wasm"
# The second build, for browsers with relaxed SIMD (www/worker.js picks it at run time; same results, faster Q4_1
# kernel). Its own target dir, so the two feature sets do not rebuild each other.
RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" \
  cargo build --release --lib --target wasm32-unknown-unknown --target-dir "$target_dir/wasm-relaxed"
wasm-bindgen --target web --out-dir pkg/relaxed --no-typescript "$target_dir/wasm-relaxed/wasm32-unknown-unknown/release/destein.wasm"
ls -l pkg/destein_bg.wasm pkg/relaxed/destein_bg.wasm | awk '{printf "%s: %.1f MB\n", $9, $5/1e6}'
