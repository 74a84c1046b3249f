"""The shipped vector files are readable by the Python `safetensors` package (format interoperability)."""
import sys
from pathlib import Path

from safetensors import safe_open

root = Path(__file__).resolve().parent.parent
failed = 0
for site in ("heads", "attn_out"):
    path = root / "www" / "vectors" / f"smollm2-135m.{site}.safetensors"
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
        direction = f.get_tensor("direction")
        accuracy = f.get_tensor("probe_accuracy")
    ok = (
        direction.shape == (30, 9, 64)
        and accuracy.shape == (30, 9)
        and meta["site"] == site
        and meta["format"] == "destein-vectors"
        and 0.0 <= float(accuracy.min()) <= float(accuracy.max()) <= 1.0
    )
    print(f"{'ok' if ok else 'FAIL'}: {path.name} direction {direction.shape} accuracy {accuracy.shape} site {meta['site']}")
    failed += not ok
print(f"{2 - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
