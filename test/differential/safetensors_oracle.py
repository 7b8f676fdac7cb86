"""The safetensors reference reader as an oracle (issue #22): for each file named on stdin (one path a line),
prints one JSON line {"verdict": "ok"|"refused", "error"?, "tensors"?: {name: [dtype, shape]}, "metadata"?}.
A file is accepted only when both entry points of the real (Rust) reader accept it: `deserialize(bytes)` and
`safe_open(path)` (the mmap path loaders use); they must agree, or the line says so."""
import json
import sys

from safetensors import deserialize, safe_open


def one(path):
    with open(path, "rb") as f:
        data = f.read()
    a = b = None
    try:
        a = {name: [t["dtype"], list(t["shape"])] for name, t in deserialize(data)}
    except Exception as e:  # noqa: BLE001 - any refusal is the verdict
        a = str(e)
    try:
        with safe_open(path, framework="np") as f:
            meta = f.metadata()
            b = {"keys": sorted(f.keys()), "metadata": meta}
    except Exception as e:  # noqa: BLE001
        b = str(e)
    if isinstance(a, str) and isinstance(b, str):
        return {"verdict": "refused", "error": a}
    if isinstance(a, str) or isinstance(b, str):
        return {"verdict": "inconsistent", "error": a if isinstance(a, str) else b}
    return {"verdict": "ok", "tensors": a, "metadata": b["metadata"] or {}}


for line in sys.stdin:
    p = line.rstrip("\n")
    if p:
        print(json.dumps(one(p)), flush=True)
