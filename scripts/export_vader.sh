#!/usr/bin/env bash
# Re-export the VADER sentiment judge (data/judges/vader_lexicon.tsv, its section of
# data/judges/LICENSES.md) and its reference scores (tests/fixtures/vader_reference.json) from the
# pinned PyPI package; see the docstring of scripts/export_vader.py. Needs python3 (3.11 was used:
# from 3.12 on, Python's sum() of floats is compensated and may differ from ours in the last bits)
# and PyPI access. The venv lives outside the repository (VADER_VENV, default
# /tmp/destein-vader-venv) and is reused when it has the package. The sdist is downloaded too, for
# the texts of the ground-truth sets it ships.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VADER_VENV:-/tmp/destein-vader-venv}
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -m pip show vaderSentiment >/dev/null 2>&1; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "vaderSentiment==3.3.2"
fi
SDIST_DIR="$VENV/sdist"
if [ ! -f "$SDIST_DIR/vaderSentiment-3.3.2.tar.gz" ]; then
  "$VENV/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
    "vaderSentiment==3.3.2" -d "$SDIST_DIR"
fi
"$VENV/bin/python" scripts/export_vader.py --sdist "$SDIST_DIR/vaderSentiment-3.3.2.tar.gz" "$@"
