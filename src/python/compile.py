"""`warmup --compile`: one torch.compile run (Inductor) in a fresh process, cold or from persisted caches.

argv: model path, mode, device want, shapes JSON, runs, phase (cold|cached), artifacts file ("" for none).
Cache dirs come from the environment (TORCHINDUCTOR_CACHE_DIR, TRITON_CACHE_DIR), set by the caller.
cold: compiles, then writes torch.compiler.save_cache_artifacts() to the artifacts file.
cached: loads the artifacts file with torch.compiler.load_cache_artifacts() first (timed), then compiles.
Events (common.emit): import, fingerprint (the same function as compile_probe.py), stage (what runs now, for
progress), result, or missing / error.
"""

import os
import sys
import time

T0 = time.perf_counter()

import hashlib  # noqa: E402
import json  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import clock, emit, fail, fingerprint, first_line, load_hf, make_ids, need, pick_device  # noqa: E402


def hf_inputs(path, device, shapes):
    hf, load = clock(lambda: load_hf(path, device), device)
    seq = int((shapes.get("input_ids") or [1, shapes.get("sequence", [16])[0]])[-1])
    batch = int((shapes.get("input_ids") or [shapes.get("batch", [1])[0], 0])[0])
    kwargs = {"input_ids": make_ids(hf.vocab(), batch, seq, device)}
    if hf.causal:
        kwargs["use_cache"] = False
    return hf.model, load, (), kwargs, {**hf.info(), "inputShape": [batch, seq]}


def export_inputs(torch, path, device):
    ep, load = clock(lambda: torch.export.load(path), device)
    model = ep.module()
    args, kwargs = getattr(ep, "example_inputs", None) or ((), {})
    args = tuple(a.to(device) if hasattr(a, "to") else a for a in args)
    kwargs = {k: (v.to(device) if hasattr(v, "to") else v) for k, v in kwargs.items()}
    model = model.to(device) if hasattr(model, "to") else model
    info = {"class": type(model).__name__, "inputShapes": [list(a.shape) for a in args if hasattr(a, "shape")]}
    return model, load, args, kwargs, info


def main():
    path, mode, want, shapes = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    runs, phase, artifacts = int(sys.argv[5]), sys.argv[6], sys.argv[7]
    torch = need("torch")
    is_dir = os.path.isdir(path)
    if is_dir:
        need("transformers")
    emit("import", seconds=time.perf_counter() - T0, torch=torch.__version__, what="import torch" + (", transformers" if is_dir else ""))
    pick_device(torch, want)
    fp = fingerprint(torch, want)
    emit("fingerprint", fingerprint=fp)
    device = fp["device"]
    try:
        emit("stage", what="loading the model")
        if is_dir:
            model, load, args, kwargs, info = hf_inputs(path, device, shapes)
        elif path.endswith(".pt2"):
            model, load, args, kwargs, info = export_inputs(torch, path, device)
        else:
            fail(
                "unsupported",
                "torch.compile needs a Hugging Face model directory (config.json) or a torch.export program (.pt2); "
                "TorchScript modules are not compiled by Inductor",
                code=6,
            )
        loaded_artifacts = None
        if phase == "cached" and artifacts and os.path.exists(artifacts):
            if hasattr(torch.compiler, "load_cache_artifacts"):
                with open(artifacts, "rb") as f:
                    blob = f.read()
                _, t_art = clock(lambda: torch.compiler.load_cache_artifacts(blob), device)
                loaded_artifacts = {"seconds": t_art, "bytes": len(blob)}
        from torch._dynamo.utils import counters

        compiled = torch.compile(model, mode=(None if mode == "default" else mode), backend="inductor", dynamic=False)

        def step():
            out = compiled(*args, **kwargs)
            if hasattr(out, "logits"):
                out = out.logits
            elif isinstance(out, (tuple, list)):
                out = out[0]
            elif hasattr(out, "last_hidden_state"):
                out = out.last_hidden_state
            return out

        emit("stage", what="first call (Inductor compiles" + (", or loads from the cache)" if phase == "cached" else ")"))
        with torch.inference_mode():
            out, first = clock(step, device)
            # The first output, hashed before any later call can reuse its (CUDA-graph-owned) memory.
            flat = out.detach().float().cpu().contiguous()
            digest = hashlib.sha256(flat.numpy().tobytes()).hexdigest()
            shape = list(out.shape)
            # For diagnosis when two digests differ: how far apart, not only that they are.
            summary = {
                "sum": float(flat.sum()),
                "absMax": float(flat.abs().max()) if flat.numel() else 0.0,
                "first": [float(v) for v in flat.reshape(-1)[:4]],
            }
            emit("stage", what=f"{runs} steady call(s)")
            samples = [clock(step, device)[1] for _ in range(runs)]
        c = {
            "fxgraphHit": int(counters["inductor"].get("fxgraph_cache_hit", 0)),
            "fxgraphMiss": int(counters["inductor"].get("fxgraph_cache_miss", 0)),
            "autogradHit": int(counters["aot_autograd"].get("autograd_cache_hit", 0)),
            "autogradMiss": int(counters["aot_autograd"].get("autograd_cache_miss", 0)),
            "graphs": int(counters["stats"].get("unique_graphs", 0)),
            "cudagraphSkips": int(counters["inductor"].get("cudagraph_skips", 0)),
        }
        saved = None
        if phase == "cold" and artifacts and hasattr(torch.compiler, "save_cache_artifacts"):
            r = torch.compiler.save_cache_artifacts()
            if r is not None:
                blob, cinfo = r
                with open(artifacts, "wb") as f:
                    f.write(blob)
                saved = {"bytes": len(blob), "keys": {k: list(v) for k, v in getattr(cinfo, "artifacts", {}).items()}}
        emit(
            "result",
            load=load,
            first=first,
            samples=samples,
            device=device,
            outputSha256=digest,
            outputShape=shape,
            outputSummary=summary,
            counters=c,
            savedArtifacts=saved,
            loadedArtifacts=loaded_artifacts,
            cuda=(torch.cuda.get_device_name(0) if device == "cuda" else None),
            **info,
        )
    except SystemExit:
        raise
    except BaseException as e:
        fail("run", first_line(e), type=type(e).__name__)


if __name__ == "__main__":
    main()
