"""`warmup --framework torch|transformers`: import, load and the first forward (or generate) timed apart, then
steady runs. Offline by construction (the caller sets HF_HUB_OFFLINE=1) and never trust_remote_code.

argv: framework, model path, runs, max_new_tokens, shapes JSON, device (auto|cpu|cuda).
Events (common.emit): import, then result, or missing / error (with the exit codes src/warmup/framework.ts maps).
"""

import os
import sys
import time

T0 = time.perf_counter()

import json  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import clock, emit, fail, first_line, generate_step, load_hf, make_ids, need, pick_device  # noqa: E402


def transformers_step(torch, path, device, shapes, max_new):
    hf, load = clock(lambda: load_hf(path, device), device)
    seq = int((shapes.get("input_ids") or [1, shapes.get("sequence", [16])[0]])[-1])
    batch = int((shapes.get("input_ids") or [shapes.get("batch", [1])[0], 0])[0])
    ids = make_ids(hf.vocab(), batch, seq, device)
    if hf.causal:
        step, what = generate_step(hf, ids, max_new), f"generate {max_new} tokens"
    else:
        mask = torch.ones_like(ids)
        step, what = (lambda: hf.model(input_ids=ids, attention_mask=mask)), "forward"
    return step, load, {**hf.info(), "inputShape": [batch, seq], "step": what}


def torch_step(torch, path, device, shapes):
    if path.endswith(".pt2"):
        ep, load = clock(lambda: torch.export.load(path), device)
        model = ep.module()
        args, kwargs = getattr(ep, "example_inputs", None) or ((), {})
        what = "forward (torch.export program)"
    else:
        model, load = clock(lambda: torch.jit.load(path, map_location=device), device)
        model.eval()
        args, kwargs = (), {}
        what = "forward (TorchScript)"
    if shapes:

        def make(name, shape):
            if any(k in name.lower() for k in ("ids", "mask", "token")):
                return torch.ones(shape, dtype=torch.long)
            g = torch.Generator().manual_seed(0)
            return torch.rand(shape, generator=g) * 2 - 1

        args, kwargs = tuple(make(k, v) for k, v in shapes.items()), {}
    if not args and not kwargs:
        fail(
            "no-inputs",
            "a TorchScript module does not declare its input shapes; pass --shape NAME=DIMS for each positional input, in order",
            code=6,
        )
    args = tuple(a.to(device) if hasattr(a, "to") else a for a in args)
    kwargs = {k: (v.to(device) if hasattr(v, "to") else v) for k, v in kwargs.items()}
    if path.endswith(".pt2"):
        model = model.to(device) if hasattr(model, "to") else model
    info = {"class": type(model).__name__, "inputShapes": [list(a.shape) for a in args if hasattr(a, "shape")], "step": what}
    return (lambda: model(*args, **kwargs)), load, info


def main():
    kind, path, runs, max_new = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    shapes, want = json.loads(sys.argv[5]), sys.argv[6]
    torch = need("torch")
    transformers = need("transformers") if kind == "transformers" else None
    emit(
        "import",
        seconds=time.perf_counter() - T0,
        torch=torch.__version__,
        transformers=(transformers.__version__ if transformers else None),
        what="import torch" + (", transformers" if transformers else ""),
    )
    device = pick_device(torch, want)
    try:
        if kind == "transformers":
            step, load, info = transformers_step(torch, path, device, shapes, max_new)
        else:
            step, load, info = torch_step(torch, path, device, shapes)
        with torch.inference_mode():
            _, first = clock(step, device)
            samples = [clock(step, device)[1] for _ in range(runs)]
        emit(
            "result",
            load=load,
            first=first,
            samples=samples,
            device=device,
            cuda=(torch.cuda.get_device_name(0) if device == "cuda" else None),
            **info,
        )
    except SystemExit:
        raise
    except BaseException as e:
        fail("load", first_line(e), type=type(e).__name__)


if __name__ == "__main__":
    main()
