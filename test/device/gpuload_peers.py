"""Python side of test/device/gpuload-limit.sh (issue 15): one load by one peer, in a fresh process.
  python3 gpuload_peers.py WHAT DIR LABEL ROUND CACHE
WHAT: safetensors (safetensors.torch.load_file(device="cuda") per shard), transformers
(AutoModelForCausalLM.from_pretrained(device_map="cuda")), fastsafetensors (SafeTensorsFileLoader, nogds),
instanttensor (its safe_open(device=0) per shard, every tensor cloned out of its reused buffer, as its README asks).
Prints one JSON line: importSeconds (launch → torch imported and the CUDA context made), loadSeconds (the load,
synchronised), totalSeconds (launch → loaded). Launch time comes from CS_LAUNCH_EPOCH (set by the shell just
before it started this process and, for the prefetch runs, `coldstart prefetch` beside it)."""

import glob
import json
import os
import sys
import time

t_start = time.time()
launched = float(os.environ.get("CS_LAUNCH_EPOCH") or t_start)
what, d, label, rnd, cache = sys.argv[1:6]
out = {"what": what, "label": label, "round": int(rnd), "cache": cache}
try:
    import torch

    if what == "transformers":
        import transformers  # noqa: F401  (its import is part of the stack's start)
    if what == "fastsafetensors":
        from fastsafetensors import SafeTensorsFileLoader, SingleGroup
    if what == "safetensors":
        from safetensors.torch import load_file
    if what == "instanttensor":
        import instanttensor
    torch.zeros(1, device="cuda")
    torch.cuda.synchronize()
    t_ready = time.time()
    files = sorted(glob.glob(os.path.join(d, "*.safetensors")))
    t0 = time.perf_counter()
    if what == "safetensors":
        sd = {}
        for p in files:
            sd.update(load_file(p, device="cuda"))
        torch.cuda.synchronize()
        n = sum(t.numel() * t.element_size() for t in sd.values())
    elif what == "transformers":
        from transformers import AutoModelForCausalLM

        try:
            m = AutoModelForCausalLM.from_pretrained(d, device_map="cuda", dtype=torch.bfloat16)
        except TypeError:
            m = AutoModelForCausalLM.from_pretrained(d, device_map="cuda", torch_dtype=torch.bfloat16)
        torch.cuda.synchronize()
        n = sum(p.numel() * p.element_size() for p in m.state_dict().values())
    elif what == "fastsafetensors":
        loader = SafeTensorsFileLoader(SingleGroup(), device="cuda:0", nogds=True)
        loader.add_filenames({0: files})
        fb = loader.copy_files_to_device()
        sd = {k: fb.get_tensor(k) for k in loader.get_keys()}
        torch.cuda.synchronize()
        n = sum(t.numel() * t.element_size() for t in sd.values())
        out["version"] = getattr(sys.modules.get("fastsafetensors"), "__version__", None)
    elif what == "instanttensor":
        sd = {}
        for p in files:
            with instanttensor.safe_open(p, framework="pt", device=0) as f:
                for name, t in f.tensors():
                    sd[name] = t.clone()
        torch.cuda.synchronize()
        n = sum(t.numel() * t.element_size() for t in sd.values())
        out["version"] = getattr(instanttensor, "__version__", None)
    else:
        raise SystemExit(f"unknown peer {what}")
    t1 = time.perf_counter()
    out.update(
        bytes=n,
        importSeconds=t_ready - launched,
        loadSeconds=t1 - t0,
        totalSeconds=time.time() - launched,
        bytesPerSecond=n / (t1 - t0),
    )
    if what == "fastsafetensors":
        fb.close()
        loader.close()
except Exception as e:  # one line, never a traceback in the results
    out["error"] = f"{type(e).__name__}: {e}"
print(json.dumps(out), flush=True)
