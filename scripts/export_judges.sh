#!/usr/bin/env bash
# Re-export the offline toxicity judges (data/judges/*) and their reference scores
# (tests/fixtures/judge_reference.json) from the pinned PyPI packages; see the docstring of
# scripts/export_judges.py for what is exported and how. Needs python3 (3.11 was used: the
# Unicode tables of Python's str.lower() and `\w` are part of the reference) and PyPI access.
# The venv lives outside the repository (JUDGES_VENV, default /tmp/destein-judges-venv) and is
# reused when it already has the pinned packages. Only this export needs TensorFlow; the Rust
# judges and their tests read the committed files.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${JUDGES_VENV:-/tmp/destein-judges-venv}
PY=${PYTHON:-python3}
PKGS=(
  "tensorflow==2.21.0" "tf-keras==2.21.0" "keras-preprocessing==1.1.2"
  "tox-block==0.1.2" "alt-profanity-check==1.9.1" "scikit-learn==1.9.1" "joblib==1.6.0"
)
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -m pip show tox-block alt-profanity-check tf-keras keras-preprocessing >/dev/null 2>&1; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PKGS[@]}"
fi
TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2 "$VENV/bin/python" scripts/export_judges.py "$@"
