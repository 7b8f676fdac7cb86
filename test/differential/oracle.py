"""The differential oracle: torch.load(weights_only=True) of each path read from stdin, one JSON line per path.

{"verdict": "ok", "tensors": {name: {"dtype": "F32", "shape": [..], "sha256": hex}}} for a dict of tensors,
{"verdict": "ok", "tensors": null, "type": "..."} for anything else torch loads, and
{"verdict": "refused", "error": "<first line>"} when torch raises. Runs as one long-lived process (torch is
imported once) so the harness and the fuzzer can ask it about thousands of files. Tensors larger than
COLDSTART_ORACLE_MAX_BYTES (default 64 MiB) are described without a hash ("sha256": null).
"""
import hashlib
import io
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
        c = t.detach().contiguous().reshape(-1)
        d["sha256"] = hashlib.sha256(c.view(torch.uint8).numpy().tobytes() if c.numel() else b"").hexdigest()
    return d


import pickle as _pickle  # noqa: E402

from torch._weights_only_unpickler import _get_allowed_globals  # noqa: E402


class _AllowlistUnpickler(_pickle.Unpickler):
    """CPython's full unpickler restricted to exactly torch's weights_only allowlist of globals."""

    def find_class(self, module, name):
        allowed = _get_allowed_globals()
        full = f"{module}.{name}"
        if full in allowed:
            return allowed[full]
        raise _pickle.UnpicklingError(f"global {full} is not on the weights_only allowlist")


class _AllowlistPickle:
    Unpickler = _AllowlistUnpickler
    __name__ = "allowlist_pickle"

    @staticmethod
    def load(f, **kw):
        return _AllowlistUnpickler(f, **kw).load()


# opcodes that construct objects or resolve globals indirectly: torch's weights_only reader refuses them and so
# does coldstart, so a file holding any of them is never judged by the widened reference below
_OBJECT_OPS = {"INST", "OBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4", "PERSID", "NEXT_BUFFER", "READONLY_BUFFER"}


def _object_opcodes(p):
    """The object-construction opcodes in the file's pickles (None when they cannot be listed)."""
    import pickletools

    found = set()
    try:
        if open(p, "rb").read(4) == b"PK\x03\x04":
            # torch's own zip reader (miniz), which is what torch.load used
            r = torch._C.PyTorchFileReader(p)
            blobs = [io.BytesIO(r.get_record(n)) for n in r.get_all_records() if n.endswith("data.pkl")]
        else:
            f = open(p, "rb")
            blobs = [f] * 4  # magic, protocol, sys_info, the main pickle: genops stops at each STOP
        for b in blobs:
            for op, _arg, _pos in pickletools.genops(b):
                if op.name in _OBJECT_OPS:
                    found.add(op.name)
    except Exception:  # noqa: BLE001
        return None
    return found


def _err(e):
    lines = str(e).strip().splitlines() or [type(e).__name__]
    # torch's weights_only failure puts the reason on a later line ("WeightsUnpickler error: ...")
    at = next((k for k, ln in enumerate(lines) if "WeightsUnpickler error" in ln), None)
    msg = lines[0] if at is None else " ".join(ln.strip() for ln in lines[at:] if ln.strip() and not ln.startswith("Check the documentation"))
    return f"{type(e).__name__}: {msg}"[:400]


def one(p):
    widened = False
    try:
        obj = torch.load(p, weights_only=True, map_location="cpu")
    except BaseException as e:  # noqa: BLE001 - any failure is a refusal; the process must survive
        if isinstance(e, KeyboardInterrupt):
            raise
        err = _err(e)
        if "Unsupported operand" not in err or _object_opcodes(p) != set():
            return {"verdict": "refused", "error": err}
        # torch's weights_only reader lacks a data-only opcode coldstart reads on purpose (FRAME, MEMOIZE,
        # SHORT_BINUNICODE, STACK_GLOBAL... of protocols 3-5): the reference is then CPython's own unpickler
        # restricted to the same allowlist of globals.
        try:
            obj = torch.load(p, weights_only=False, map_location="cpu", pickle_module=_AllowlistPickle)
            widened = True
        except BaseException as e2:  # noqa: BLE001
            if isinstance(e2, KeyboardInterrupt):
                raise
            return {"verdict": "refused", "error": err, "widened_error": _err(e2)}
    if isinstance(obj, dict) and obj and all(isinstance(k, str) for k in obj) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        try:
            return {"verdict": "ok", "widened": widened, "tensors": {k: describe(v) for k, v in obj.items()}}
        except BaseException as e:  # noqa: BLE001
            return {"verdict": "ok", "tensors": None, "type": f"unreadable tensors: {type(e).__name__}: {str(e)[:200]}"}
    return {"verdict": "ok", "widened": widened, "tensors": None, "type": type(obj).__name__}


for line in sys.stdin:
    p = line.rstrip("\n")
    if not p:
        continue
    sys.stdout.write(json.dumps(one(p)) + "\n")
    sys.stdout.flush()
