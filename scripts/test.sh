#!/usr/bin/env bash
# All tests: native unit and integration tests against the real model, the wasm32 build, and the
# end-to-end browser tests in real headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --test
# The page's scripts, type-checked from their JSDoc (`// @ts-check` in each; the worker's with the webworker library).
npx tsc --noEmit -p tsconfig.json && npx tsc --noEmit -p tsconfig.worker.json
# Our dependencies' licences (compatible with Apache-2.0), bans and sources (crates.io only): deny.toml.
cargo deny check licenses bans sources
# Style: rustfmt.toml's format, and no clippy warning natively (every target) or in the wasm32 library (its
# simd128 flag comes from .cargo/config.toml, as for scripts/build-wasm.sh; then with relaxed SIMD too, in the
# relaxed build's target dir). --release: clippy then shares the dependencies' build scripts with `cargo test --release`.
cargo fmt --check
cargo clippy --release --all-targets -- -D warnings
cargo clippy --release --lib --target wasm32-unknown-unknown -- -D warnings
RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" cargo clippy --release --lib --target wasm32-unknown-unknown \
  --target-dir "${CARGO_TARGET_DIR:-target}/relaxed" -- -D warnings
cargo test --release
tests/wasm_kernels.sh
python3 scripts/check-concepts.py
python3 tests/python_reads_vectors.py
python3 tests/control_vector_reads.py
# The browser engine derives the CLI's vector files byte for byte (wasm under Node, then in Chromium: lab.spec).
node --test tests/wasm_derive.mjs
# Same seed, prompt and α schedule: the same tokens on every run of the wasm engine (natively: tests/vectors.rs).
node --test tests/wasm_determinism.mjs
# The page on scripts/serve.mjs (demo, lab, its security, a long session and real-engine faults), then as published:
# scripts/build-site.sh's folder on python3 -m http.server.
DESTEIN_E2E_REQUIRE_REAL=1 node --test --test-concurrency=1 tests/e2e/demo.spec.mjs tests/e2e/lab.spec.mjs \
  tests/e2e/security.spec.mjs tests/e2e/reliability.spec.mjs tests/e2e/site.spec.mjs
