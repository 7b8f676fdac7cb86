/**
 * The Python that `warmup --compile` runs (through python.ts's runPythonSnippet). Each prints one JSON object a
 * line. The fingerprint is computed by the same function in the probe and in the compile run, so the run can
 * prove it compiled for the fingerprint its artefact is filed under.
 */
import { SYNC_CLOCK_PY } from '../../python/runner.js';

const FINGERPRINT_PY = String.raw`
def fingerprint(torch, want):
    import platform, importlib.metadata as md
    def ver(*names):
        for n in names:
            try:
                return md.version(n)
            except Exception:
                pass
        return None
    device = "cuda" if (want == "cuda" or (want == "auto" and torch.cuda.is_available())) else "cpu"
    fp = {"python": platform.python_version(), "torch": torch.__version__, "triton": ver("triton", "pytorch-triton", "pytorch-triton-rocm"),
          "vllm": ver("vllm"), "cuda": torch.version.cuda, "device": device, "gpu": "cpu", "compute capability": None, "driver": None,
          "cpu isa": None}
    try:
        fp["cpu isa"] = torch.backends.cpu.get_cpu_capability()
    except Exception:
        pass
    if device == "cuda":
        fp["gpu"] = torch.cuda.get_device_name(0)
        fp["compute capability"] = "%d.%d" % torch.cuda.get_device_capability(0)
        try:
            with open("/proc/driver/nvidia/version") as f:
                import re
                m = re.search(r"Kernel Module(?: for \S+)?\s+([0-9][0-9.]+)", f.read())
                fp["driver"] = m.group(1) if m else None
        except Exception:
            pass
        if fp["driver"] is None:
            try:
                v = torch._C._cuda_getDriverVersion()
                fp["driver"] = "cuda-driver-api %d.%d" % (v // 1000, (v % 1000) // 10)
            except Exception:
                pass
    return fp
`;

/** argv: device want (auto|cpu|cuda). Emits {event:"fingerprint", ...} or {event:"missing"} / {event:"error"}. */
export const PROBE_SNIPPET = String.raw`
import json, sys, time
def emit(**kw):
    print(json.dumps(kw), flush=True)
T0 = time.perf_counter()
try:
    import torch
except Exception as e:
    emit(event="missing", package="torch", error=f"{type(e).__name__}: {e}"); sys.exit(4)
${FINGERPRINT_PY}
want = sys.argv[1]
if want == "cuda" and not torch.cuda.is_available():
    emit(event="error", kind="no-gpu", message="torch sees no CUDA device (torch.cuda.is_available() is False)"); sys.exit(5)
fp = fingerprint(torch, want)
emit(event="fingerprint", seconds=time.perf_counter() - T0, fingerprint=fp,
     hasCacheArtifacts=hasattr(torch.compiler, "save_cache_artifacts") and hasattr(torch.compiler, "load_cache_artifacts"))
`;

/**
 * argv: model path, mode, device want, shapes JSON, runs, phase (cold|cached), artifacts file ("" for none).
 * Cache dirs come from the environment (TORCHINDUCTOR_CACHE_DIR, TRITON_CACHE_DIR), set by the caller.
 * cold: compiles, then writes torch.compiler.save_cache_artifacts() to the artifacts file.
 * cached: loads the artifacts file with torch.compiler.load_cache_artifacts() first (timed), then compiles.
 */
export const COMPILE_SNIPPET = String.raw`
import json, os, sys, time, hashlib
def emit(**kw):
    print(json.dumps(kw), flush=True)
T0 = time.perf_counter()
path, mode, want, shapes, runs, phase, artifacts = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7]
try:
    import torch
except Exception as e:
    emit(event="missing", package="torch", error=f"{type(e).__name__}: {e}"); sys.exit(4)
is_dir = os.path.isdir(path)
if is_dir:
    try:
        import transformers
    except Exception as e:
        emit(event="missing", package="transformers", error=f"{type(e).__name__}: {e}"); sys.exit(4)
emit(event="import", seconds=time.perf_counter() - T0, torch=torch.__version__)
${FINGERPRINT_PY}
if want == "cuda" and not torch.cuda.is_available():
    emit(event="error", kind="no-gpu", message="torch sees no CUDA device (torch.cuda.is_available() is False)"); sys.exit(5)
fp = fingerprint(torch, want)
emit(event="fingerprint", fingerprint=fp)
device = fp["device"]
${SYNC_CLOCK_PY}
try:
    if is_dir:
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM
        cfg = AutoConfig.from_pretrained(path, local_files_only=True)
        archs = list(getattr(cfg, "architectures", None) or [])
        causal = any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in archs)
        cls = AutoModelForCausalLM if causal else AutoModel
        model, load = clock(lambda: cls.from_pretrained(path, local_files_only=True, torch_dtype="auto").to(device).eval())
        vocab = int(getattr(cfg, "vocab_size", 0) or 100)
        seq = int((shapes.get("input_ids") or [1, shapes.get("sequence", [16])[0]])[-1])
        batch = int((shapes.get("input_ids") or [shapes.get("batch", [1])[0], 0])[0])
        ids = ((torch.arange(batch * seq, dtype=torch.long).reshape(batch, seq) * 7919) % max(vocab - 1, 1)) + 1
        ids = ids.to(device)
        kwargs = {"input_ids": ids}
        if causal:
            kwargs["use_cache"] = False
        args = ()
        info = {"class": type(model).__name__, "architectures": archs, "parameters": sum(p.numel() for p in model.parameters()),
                "dtype": str(next(model.parameters()).dtype).replace("torch.", ""), "inputShape": [batch, seq]}
    elif path.endswith(".pt2"):
        ep, load = clock(lambda: torch.export.load(path))
        model = ep.module()
        args, kwargs = getattr(ep, "example_inputs", None) or ((), {})
        args = tuple(a.to(device) if hasattr(a, "to") else a for a in args)
        kwargs = {k: (v.to(device) if hasattr(v, "to") else v) for k, v in kwargs.items()}
        model = model.to(device) if hasattr(model, "to") else model
        info = {"class": type(model).__name__, "inputShapes": [list(a.shape) for a in args if hasattr(a, "shape")]}
    else:
        emit(event="error", kind="unsupported", message="torch.compile needs a Hugging Face model directory (config.json) or a torch.export program (.pt2); TorchScript modules are not compiled by Inductor"); sys.exit(6)
    loaded_artifacts = None
    if phase == "cached" and artifacts and os.path.exists(artifacts):
        if hasattr(torch.compiler, "load_cache_artifacts"):
            with open(artifacts, "rb") as f:
                blob = f.read()
            _, t_art = clock(lambda: torch.compiler.load_cache_artifacts(blob))
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
    with torch.inference_mode():
        out, first = clock(step)
        # The first output, hashed before any later call can reuse its (CUDA-graph-owned) memory.
        flat = out.detach().float().cpu().contiguous()
        digest = hashlib.sha256(flat.numpy().tobytes()).hexdigest()
        shape = list(out.shape)
        # For diagnosis when two digests differ: how far apart, not only that they are.
        summary = {"sum": float(flat.sum()), "absMax": float(flat.abs().max()) if flat.numel() else 0.0, "first": [float(v) for v in flat.reshape(-1)[:4]]}
        samples = [clock(step)[1] for _ in range(runs)]
    c = {"fxgraphHit": int(counters["inductor"].get("fxgraph_cache_hit", 0)), "fxgraphMiss": int(counters["inductor"].get("fxgraph_cache_miss", 0)),
         "autogradHit": int(counters["aot_autograd"].get("autograd_cache_hit", 0)), "autogradMiss": int(counters["aot_autograd"].get("autograd_cache_miss", 0)),
         "graphs": int(counters["stats"].get("unique_graphs", 0)), "cudagraphSkips": int(counters["inductor"].get("cudagraph_skips", 0))}
    saved = None
    if phase == "cold" and artifacts and hasattr(torch.compiler, "save_cache_artifacts"):
        r = torch.compiler.save_cache_artifacts()
        if r is not None:
            blob, cinfo = r
            with open(artifacts, "wb") as f:
                f.write(blob)
            saved = {"bytes": len(blob), "keys": {k: list(v) for k, v in getattr(cinfo, "artifacts", {}).items()}}
    emit(event="result", load=load, first=first, samples=samples, device=device, outputSha256=digest, outputShape=shape, outputSummary=summary,
         counters=c, savedArtifacts=saved, loadedArtifacts=loaded_artifacts,
         cuda=(torch.cuda.get_device_name(0) if device == "cuda" else None), **info)
except SystemExit:
    raise
except BaseException as e:
    msg = str(e).strip()
    emit(event="error", kind="run", type=type(e).__name__, message=msg.splitlines()[0][:400] if msg else type(e).__name__)
    sys.exit(3)
`;
