"""Same-run floors for test/device/snapshot-gpu.sh: what this machine allows for each way back.

  python snapshot_floors.py IMAGE_DIR OUT.json [--drop] [--probe-only]

Measures, on the image's own page files: the disk read rate (page cache dropped first with --drop, as root) and the
page-cache read rate, each read by one stream as CRIU reads; then the disk rate over everything a cold restore reads —
the page files and, with CS_WEIGHTS set (HOOK_LEVEL=2), the weights the wake-up reads back — by one stream and by 8
threads of 8 MiB preads, as a loader reads, by one thread of 16 MiB preads advised sequential, as restore's
--prefetch reads, by 4 threads of 8 MiB O_DIRECT preads, and by coldstart_load itself into host memory (its defaults,
as the wake-up reads what the page cache lacks; diskBytesPerSecond is the fastest of the five over those same bytes:
the floor is the disk's best over what the restore reads; the image-only one-stream reading is kept beside it);
a host memory copy rate (1 GiB, torch), the pinned host-to-device copy rate (1 GiB, CUDA
events, best of 4) and the pageable one (best of 3) when a GPU is there. Writes them as JSON (bytes per second; null: not measured, with why).
--probe-only (with --drop): only the one-stream, the O_DIRECT and the loader's disk rates over the page files and
CS_WEIGHTS, taken beside one restore (diskBytesPerSecond: the fastest).
"""
import json
import os
import sys
import time

from disk_probes import drop_caches, read_all, read_loader, read_parallel, read_pread_seq

image, out = sys.argv[1], sys.argv[2]
drop = "--drop" in sys.argv[3:]
probe_only = "--probe-only" in sys.argv[3:]
files = [os.path.join(image, f) for f in sorted(os.listdir(image)) if f.startswith("pages-")]
total = sum(os.path.getsize(f) for f in files)
weights_dir = os.environ.get("CS_WEIGHTS")
weights = sorted(os.path.join(weights_dir, f) for f in os.listdir(weights_dir) if f.endswith(".safetensors")) if weights_dir else []

res = {"pagesBytes": total, "weightsBytes": sum(os.path.getsize(f) for f in weights), "notes": []}
everything = files + weights
all_bytes = total + res["weightsBytes"]
if probe_only:
    if not drop:
        sys.exit("--probe-only needs --drop (a disk rate from a cold page cache)")
    drop_caches()
    res["diskOneStreamAllBytesPerSecond"] = all_bytes / read_all(everything)
    d = read_parallel(everything, 4, direct=True)
    res["diskDirectBytesPerSecond"] = all_bytes / d if d else None
    drop_caches()  # the loader reads what the page cache holds from it: nothing, for a disk rate
    d = read_loader(everything, res["notes"])[0]
    res["diskLoaderBytesPerSecond"] = all_bytes / d if d else None
    res["diskBytesPerSecond"] = max(res["diskOneStreamAllBytesPerSecond"], res["diskDirectBytesPerSecond"] or 0, res["diskLoaderBytesPerSecond"] or 0)
    with open(out, "w") as fh:
        json.dump(res, fh, indent=1)
    print(json.dumps(res))
    sys.exit(0)
if drop:
    drop_caches()
    res["diskOneStreamBytesPerSecond"] = total / read_all(files)
    if weights:
        # one stream over the same bytes as the parallel probe: the image-only reading above can be a burst the disk
        # does not keep up over 18 GB (2.08 vs 1.79 GB/s on one H100 host, 2026-12-05), so the floor compares rates
        # over the bytes a cold restore reads, and the image-only one stays a reading of its own
        drop_caches()
        res["diskOneStreamAllBytesPerSecond"] = all_bytes / read_all(everything)
    drop_caches()
    res["diskParallelBytesPerSecond"] = all_bytes / read_parallel(everything)
    res["diskParallelBytes"] = all_bytes
    # around the page cache (O_DIRECT): after one drop, the loader too finds nothing of it resident
    drop_caches()
    d = read_parallel(everything, 4, direct=True)
    res["diskDirectBytesPerSecond"] = all_bytes / d if d else None
    if d is None:
        res["notes"].append("O_DIRECT refused by the filesystem: no direct probe")
    d = read_loader(everything, res["notes"])[0]
    res["diskLoaderBytesPerSecond"] = all_bytes / d if d else None
    # last: it leaves the files in the page cache, where the page-cache probes below read them
    drop_caches()
    res["diskPreadSeqBytesPerSecond"] = all_bytes / read_pread_seq(everything)
    res["diskBytesPerSecond"] = max(res.get("diskOneStreamAllBytesPerSecond", res["diskOneStreamBytesPerSecond"]),
                                    res["diskParallelBytesPerSecond"], res["diskPreadSeqBytesPerSecond"],
                                    res["diskDirectBytesPerSecond"] or 0, res["diskLoaderBytesPerSecond"] or 0)
else:
    res["diskBytesPerSecond"] = res["diskOneStreamBytesPerSecond"] = res["diskParallelBytesPerSecond"] = None
    res["diskPreadSeqBytesPerSecond"] = res["diskDirectBytesPerSecond"] = res["diskLoaderBytesPerSecond"] = None
    res["notes"].append("disk rate not measured: page cache not dropped (no --drop)")
res["pageCacheBytesPerSecond"] = total / read_all(files)
res["pageCacheParallelBytesPerSecond"] = total / read_parallel(files)

import torch  # noqa: E402 (the disk probes above need none of it; --probe-only never pays for the import)

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
