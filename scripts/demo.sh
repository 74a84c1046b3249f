#!/usr/bin/env bash
# Set up what is missing, then serve the browser demo on 127.0.0.1 (the URL is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
for site in heads attn_out; do
  f=www/vectors/smollm2-135m.$site.safetensors
  [ -f "$f" ] || { echo "error: $f is missing (it is committed; re-derive with: cargo run --release -- derive --site $site --count 200 --seed 0 --out $f)" >&2; exit 1; }
done
exec node scripts/serve.mjs
