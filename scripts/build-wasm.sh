#!/usr/bin/env bash
# Build the browser engine: the crate for wasm32 (simd128, see .cargo/config.toml), then wasm-bindgen's
# JS glue into pkg/ (--target web: plain ES modules, no bundler); the same with relaxed SIMD into pkg/relaxed/ (a
# faster Q4_1 kernel, the same results); then the threaded build, also with relaxed SIMD, into pkg/threads/
# (shared memory and atomics: std itself must be rebuilt with them, which takes the pinned nightly toolchain's
# build-std). The worker uses the threaded build only when the page is cross-origin isolated, pkg/relaxed/ when the
# browser has relaxed SIMD; pkg/ always works. Idempotent: cargo rebuilds only what changed. DESTEIN_NO_THREADS=1
# skips the threaded build.
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
# Its own target dir, so that the two feature sets do not rebuild each other.
RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" \
  cargo build --release --lib --target wasm32-unknown-unknown --target-dir "${CARGO_TARGET_DIR:-target}/relaxed"
wasm-bindgen --target web --out-dir pkg/relaxed --no-typescript \
  "${CARGO_TARGET_DIR:-target}/relaxed/wasm32-unknown-unknown/release/destein.wasm"
ls -l pkg/relaxed/destein_bg.wasm | awk '{printf "pkg/relaxed/destein_bg.wasm: %.1f MB\n", $5/1e6}'

[ "${DESTEIN_NO_THREADS:-}" = 1 ] && exit 0
# The nightly this was built and measured with (the one these machines ship); another one is installed beside it.
pinned_date=2026-05-19 # rustc's commit date; its rustup channel is nightly-2026-05-20
toolchain=nightly
if ! rustc +nightly -V 2>/dev/null | grep -q "$pinned_date"; then
  toolchain=nightly-2026-05-20
  rustup toolchain list | grep -q "^$toolchain" || rustup toolchain install "$toolchain" --profile minimal
fi
rustup component list --toolchain "$toolchain" --installed | grep -qx rust-src || rustup component add rust-src --toolchain "$toolchain"
rustup target list --toolchain "$toolchain" --installed | grep -qx wasm32-unknown-unknown ||
  rustup target add wasm32-unknown-unknown --toolchain "$toolchain"
# Shared, imported memory (up to 2 GiB) and the thread-local storage exports wasm-bindgen needs to start threads.
threads_flags="-C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128,+relaxed-simd"
for a in --shared-memory --max-memory=2147483648 --import-memory --export=__wasm_init_tls --export=__tls_size \
  --export=__tls_align --export=__tls_base; do
  threads_flags="$threads_flags -C link-arg=$a"
done
RUSTFLAGS="$threads_flags" cargo "+$toolchain" build --release --lib --target wasm32-unknown-unknown \
  -Z build-std=panic_abort,std --target-dir "${CARGO_TARGET_DIR:-target}/threads"
wasm-bindgen --target web --out-dir pkg/threads --no-typescript \
  "${CARGO_TARGET_DIR:-target}/threads/wasm32-unknown-unknown/release/destein.wasm"
ls -l pkg/threads/destein_bg.wasm | awk '{printf "pkg/threads/destein_bg.wasm: %.1f MB\n", $5/1e6}'
