"""An exported llama.cpp control vector is readable by PyPI's `gguf` package (the reader of llama.cpp's own
Python tools and of repeng's import) and holds what we promise: direction.l = -n(z_l) * m_l for l = 1..29."""
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from gguf import GGUFReader, GGMLQuantizationType
from safetensors import safe_open

root = Path(__file__).resolve().parent.parent
source = root / "www" / "vectors" / "smollm2-135m.attn_out.safetensors"


def text(field):
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def number(field):
    return field.parts[field.data[0]][0]


with tempfile.TemporaryDirectory() as tmp:
    out = Path(tmp) / "detox.gguf"
    subprocess.run(
        ["cargo", "run", "--release", "--quiet", "--", "vectors", "export", "--format", "llama-cpp-control-vector",
         "--out", str(out), str(source)],
        cwd=root, check=True, stdout=subprocess.DEVNULL,
    )
    reader = GGUFReader(str(out))
    fields = reader.fields
    tensors = {t.name: t for t in reader.tensors}
    norms = np.array([fields["destein.attn_out_norms"].parts[i][0] for i in fields["destein.attn_out_norms"].data])

with safe_open(str(source), framework="numpy") as f:
    z = f.get_tensor("direction").reshape(30, -1)

checks = {
    "architecture is controlvector": text(fields["general.architecture"]) == "controlvector",
    "model_hint is llama": text(fields["controlvector.model_hint"]) == "llama",
    "layer_count is 29": int(number(fields["controlvector.layer_count"])) == 29,
    "tensors are direction.1 .. direction.29": sorted(tensors) == sorted(f"direction.{l}" for l in range(1, 30)),
    "every tensor is F32 of shape (576,)": all(
        t.tensor_type == GGMLQuantizationType.F32 and tuple(int(d) for d in t.shape) == (576,) for t in tensors.values()
    ),
    "one positive norm per layer": norms.shape == (30,) and bool((norms > 0).all()),
}
worst_cos, worst_len = 1.0, 0.0
for l in range(1, 30):
    v = np.asarray(tensors[f"direction.{l}"].data, dtype=np.float64)
    want = -z[l] / np.linalg.norm(z[l]) * norms[l]
    worst_cos = min(worst_cos, float(v @ want / (np.linalg.norm(v) * np.linalg.norm(want))))
    worst_len = max(worst_len, abs(float(np.linalg.norm(v)) / norms[l] - 1.0))
checks[f"direction.l along -z_l (min cos {worst_cos:.7f})"] = worst_cos > 0.9999
checks[f"|direction.l| = m_l (max rel. error {worst_len:.1e})"] = worst_len < 1e-5

failed = 0
for name, ok in checks.items():
    print(f"{'ok' if ok else 'FAIL'}: {name}")
    failed += not ok
print(f"{len(checks) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
