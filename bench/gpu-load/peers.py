"""Times the peers on the bench checkpoint, warm and cold page cache, same files as coldstart's loader:
safetensors.torch.load_file(path, device="cuda") over the safetensors shards, torch.load(map_location="cuda")
over the .bin shards, and pinned H2D through torch as a cross-check of the native limit.
Cold = fsync + posix_fadvise(DONTNEED) on every file first (test/device/disk_probes.py evict, what coldstart's
--cache cold does).
Usage: python3 peers.py DIR WARM_RUNS COLD_RUNS  → one JSON line per measurement."""
import glob
import json
import os
import statistics
import sys
import time

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test", "device"))
from disk_probes import evict  # noqa: E402  (one page-cache eviction for every device script)

d = sys.argv[1]
warm_runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
cold_runs = int(sys.argv[3]) if len(sys.argv) > 3 else 2
st = sorted(glob.glob(os.path.join(d, "model-*.safetensors")))
bins = sorted(glob.glob(os.path.join(d, "pytorch_model-*.bin")))
torch.zeros(1, device="cuda")  # CUDA context outside the timings (it is the cuda-init phase)
torch.cuda.synchronize()


def warm(paths):
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while f.read(64 << 20):
                pass


def nbytes(sd):
    return sum(t.numel() * t.element_size() for t in sd.values())


def run(name, paths, load, cache, runs):
    times, total = [], 0
    for _ in range(runs):
        if cache == "cold":
            evict(paths)
        else:
            warm(paths)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = [load(p) for p in paths]
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        total = sum(nbytes(o) for o in out)
        assert all(t.is_cuda for o in out for t in o.values())
        del out
        torch.cuda.empty_cache()
    med = statistics.median(times)
    print(json.dumps({"what": name, "cache": cache, "bytes": total, "seconds": med, "runs": times, "bytesPerSecond": total / med}), flush=True)


for cache, runs in (("warm", warm_runs), ("cold", cold_runs)):
    run("safetensors.load_file", st, lambda p: load_file(p, device="cuda"), cache, runs)
    run("torch.load", bins, lambda p: torch.load(p, map_location="cuda", weights_only=True), cache, max(1, runs - 1) if cache == "warm" else runs)

# Pinned H2D / D2H through torch (1 GiB, 8 copies, events), a cross-check of coldstart's transferLimits.
n = 1 << 30
h = torch.empty(n, dtype=torch.uint8, pin_memory=True)
h.fill_(7)
dv = torch.empty(n, dtype=torch.uint8, device="cuda")
for direction in ("h2d", "d2h"):
    dv.copy_(h, non_blocking=True) if direction == "h2d" else h.copy_(dv, non_blocking=True)
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    for _ in range(8):
        dv.copy_(h, non_blocking=True) if direction == "h2d" else h.copy_(dv, non_blocking=True)
    e1.record()
    torch.cuda.synchronize()
    s = e0.elapsed_time(e1) / 1e3
    print(json.dumps({"what": f"torch pinned {direction}", "bytes": 8 * n, "seconds": s, "bytesPerSecond": 8 * n / s}), flush=True)
