"""The differential oracle: torch.load(weights_only=True) of each path read from stdin, one JSON line per path.

{"verdict": "ok", "tensors": {name: {"dtype": "F32", "shape": [..], "sha256": hex}}} for a dict of tensors,
{"verdict": "ok", "tensors": null, "type": "..."} for anything else torch loads, and
{"verdict": "refused", "error": "<first line>"} when torch raises. Runs as one long-lived process (torch is
imported once) so the harness and the fuzzer can ask it about thousands of files. Tensors larger than
COLDSTART_ORACLE_MAX_BYTES (default 64 MiB) are described without a hash ("sha256": null).
"""
import hashlib
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
import torch  # noqa: E402

MAX = int(os.environ.get("COLDSTART_ORACLE_MAX_BYTES", str(64 << 20)))
ST = {
    torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL", torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2",
    torch.uint16: "U16", torch.uint32: "U32", torch.uint64: "U64",
}


def describe(t):
    d = {"dtype": ST.get(t.dtype, str(t.dtype)), "shape": list(t.shape), "sha256": None}
    if t.layout == torch.strided and t.dtype in ST and t.numel() * t.element_size() <= MAX:
        c = t.detach().contiguous()
        d["sha256"] = hashlib.sha256(c.view(torch.uint8).numpy().tobytes() if c.numel() else b"").hexdigest()
    return d


def one(p):
    try:
        obj = torch.load(p, weights_only=True, map_location="cpu")
    except BaseException as e:  # noqa: BLE001 - any failure is a refusal; the process must survive
        if isinstance(e, KeyboardInterrupt):
            raise
        lines = str(e).strip().splitlines() or [type(e).__name__]
        # torch's weights_only failure puts the reason on a later line ("WeightsUnpickler error: ...")
        msg = next((ln.strip() for ln in lines if "WeightsUnpickler error" in ln), lines[0])
        return {"verdict": "refused", "error": f"{type(e).__name__}: {msg}"[:400]}
    if isinstance(obj, dict) and obj and all(isinstance(k, str) for k in obj) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        try:
            return {"verdict": "ok", "tensors": {k: describe(v) for k, v in obj.items()}}
        except BaseException as e:  # noqa: BLE001
            return {"verdict": "ok", "tensors": None, "type": f"unreadable tensors: {type(e).__name__}: {str(e)[:200]}"}
    return {"verdict": "ok", "tensors": None, "type": type(obj).__name__}


for line in sys.stdin:
    p = line.rstrip("\n")
    if not p:
        continue
    sys.stdout.write(json.dumps(one(p)) + "\n")
    sys.stdout.flush()
