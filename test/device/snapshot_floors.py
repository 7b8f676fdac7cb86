"""Same-run floors for test/device/snapshot-gpu.sh: what this machine allows for each way back.

  python snapshot_floors.py IMAGE_DIR OUT.json [--drop]

Measures, on the image's own page files: the disk read rate (page cache dropped first with --drop, as root) and the
page-cache read rate; a host memory copy rate (1 GiB, torch), the pinned host-to-device copy rate (1 GiB, CUDA
events, best of 4) and the pageable one (best of 3) when a GPU is there. Writes them as JSON (bytes per second; null: not measured, with why).
"""
import json
import os
import subprocess
import sys
import time

import torch

image, out = sys.argv[1], sys.argv[2]
drop = "--drop" in sys.argv[3:]
files = [os.path.join(image, f) for f in sorted(os.listdir(image)) if f.startswith("pages-")]
total = sum(os.path.getsize(f) for f in files)


def read_all():
    t = time.perf_counter()
    for f in files:
        with open(f, "rb", buffering=0) as fh:
            while fh.read(16 << 20):
                pass
    return time.perf_counter() - t


res = {"pagesBytes": total, "notes": []}
if drop:
    subprocess.run("sync; echo 3 > /proc/sys/vm/drop_caches", shell=True, check=False)
    res["diskBytesPerSecond"] = total / read_all()
else:
    res["diskBytesPerSecond"] = None
    res["notes"].append("disk rate not measured: page cache not dropped (no --drop)")
res["pageCacheBytesPerSecond"] = total / read_all()

n = 1 << 30
a = torch.empty(n, dtype=torch.uint8)
b = torch.empty(n, dtype=torch.uint8)
a.fill_(1)
b.copy_(a)
t = time.perf_counter()
for _ in range(3):
    b.copy_(a)
res["memcpyBytesPerSecond"] = 3 * n / (time.perf_counter() - t)
if torch.cuda.is_available():
    src = torch.empty(n, dtype=torch.uint8).pin_memory()
    dst = torch.empty(n, dtype=torch.uint8, device="cuda")
    best = None
    for _ in range(4):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        dst.copy_(src, non_blocking=True)
        e.record()
        torch.cuda.synchronize()
        sec = s.elapsed_time(e) / 1000
        best = sec if best is None else min(best, sec)
    res["pinnedH2DBytesPerSecond"] = n / best
    # The same copy from pageable memory (the driver stages it): what cuda-checkpoint's restore is up against if it
    # copies the process's own (pageable) host memory, as its rates on 2026-12-05 suggest.
    best = None
    for _ in range(3):
        t = time.perf_counter()
        dst.copy_(a)
        torch.cuda.synchronize()
        sec = time.perf_counter() - t
        best = sec if best is None else min(best, sec)
    res["pageableH2DBytesPerSecond"] = n / best
else:
    res["pinnedH2DBytesPerSecond"] = None
    res["pageableH2DBytesPerSecond"] = None
    res["notes"].append("pinned and pageable H2D not measured: no CUDA device")
with open(out, "w") as fh:
    json.dump(res, fh, indent=1)
print(json.dumps(res))
