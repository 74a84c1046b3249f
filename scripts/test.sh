#!/usr/bin/env bash
# All tests: native unit and integration tests against the real model, the wasm32 build, and the
# end-to-end browser test in real headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --test
cargo test --release
tests/wasm_kernels.sh
python3 tests/python_reads_vectors.py
python3 tests/control_vector_reads.py
DESTEIN_E2E_REQUIRE_REAL=1 node --test tests/e2e/demo.spec.mjs
