#!/usr/bin/env bash
# Build the browser engine: the crate for wasm32 (simd128, see .cargo/config.toml), then wasm-bindgen's
# JS glue into pkg/ (--target web: plain ES modules, no bundler). Idempotent: cargo rebuilds only what changed.
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

cargo build --release --lib --target wasm32-unknown-unknown
wasm-bindgen --target web --out-dir pkg --no-typescript "${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/release/destein.wasm"
ls -l pkg/destein_bg.wasm | awk '{printf "pkg/destein_bg.wasm: %.1f MB\n", $5/1e6}'
