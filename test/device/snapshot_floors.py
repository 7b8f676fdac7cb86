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
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

image, out = sys.argv[1], sys.argv[2]
drop = "--drop" in sys.argv[3:]
probe_only = "--probe-only" in sys.argv[3:]
files = [os.path.join(image, f) for f in sorted(os.listdir(image)) if f.startswith("pages-")]
total = sum(os.path.getsize(f) for f in files)
weights_dir = os.environ.get("CS_WEIGHTS")
weights = sorted(os.path.join(weights_dir, f) for f in os.listdir(weights_dir) if f.endswith(".safetensors")) if weights_dir else []
PIECE, THREADS = 8 << 20, 8


def read_all(paths=None):
    """The page files (or PATHS) by one stream, file after file (as CRIU reads them); seconds."""
    t = time.perf_counter()
    for f in files if paths is None else paths:
        with open(f, "rb", buffering=0) as fh:
            while fh.read(16 << 20):
                pass
    return time.perf_counter() - t


def read_pread_seq(paths):
    """PATHS by one thread of 16 MiB preads into one reused buffer, each file advised sequential: the way restore's
    --prefetch reads (native/src/pagecache.cc), beside the one-stream read() above, to tell its own rate from the
    disk's drift over the run; seconds."""
    buf = bytearray(16 << 20)
    t = time.perf_counter()
    for f in paths:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            off = 0
            while (n := os.preadv(fd, [buf], off)) > 0:
                off += n
        finally:
            os.close(fd)
    return time.perf_counter() - t


def read_parallel(paths, threads=THREADS, direct=False):
    """THREADS threads taking PIECE-sized preads in file order from one shared list (as a loader reads); seconds.
    direct: around the page cache (O_DIRECT, into page-aligned buffers), as coldstart_load reads what the page cache
    lacks (its default cold="direct", 4 readers at the disk); None when the filesystem refuses O_DIRECT."""
    import mmap

    pieces = iter([(f, o) for f in paths for o in range(0, os.path.getsize(f), PIECE)])
    fds = {}
    try:
        for f in paths:
            fds[f] = os.open(f, os.O_RDONLY | (os.O_DIRECT if direct else 0))
    except OSError:
        for fd in fds.values():
            os.close(fd)
        if direct:
            return None
        raise
    lock = threading.Lock()

    def worker():
        # one buffer per thread, reused: no 8 MiB allocation per read (an anonymous mapping is page-aligned)
        buf = mmap.mmap(-1, PIECE) if direct else bytearray(PIECE)
        while True:
            with lock:
                p = next(pieces, None)
            if p is None:
                return
            os.preadv(fds[p[0]], [buf], p[1])

    t = time.perf_counter()
    try:
        with ThreadPoolExecutor(threads) as ex:
            for f in [ex.submit(worker) for _ in range(threads)]:
                f.result()
    finally:
        for fd in fds.values():
            os.close(fd)
    return time.perf_counter() - t


def read_loader(paths):
    """PATHS read by coldstart_load itself with its defaults (what the page cache lacks around it, O_DIRECT, 4 readers
    at the disk), one range per file as the wake-up reads, every file into the same host buffer (the bytes are not
    kept: the disk's rate is what is measured), faulted in before the clock starts; seconds, or None when the library
    does not load (its error in the notes)."""
    import ctypes
    import mmap

    import coldstart_py  # noqa: F401  (coldstart_load's folder on sys.path)

    try:
        import coldstart_load

        coldstart_load.library()
    except Exception as e:  # noqa: BLE001 (any failure to load is a probe not taken, said why)
        res["notes"].append(f"coldstart_load did not load, no loader probe: {e}")
        return None
    size = max(os.path.getsize(f) for f in paths)
    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0))
    dst = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    t = time.perf_counter()
    coldstart_load.load([(f, 0, os.path.getsize(f), dst) for f in paths], device=None)
    return time.perf_counter() - t


def drop_caches():
    subprocess.run("sync; echo 3 > /proc/sys/vm/drop_caches", shell=True, check=False)


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
    d = read_loader(everything)
    res["diskLoaderBytesPerSecond"] = all_bytes / d if d else None
    res["diskBytesPerSecond"] = max(res["diskOneStreamAllBytesPerSecond"], res["diskDirectBytesPerSecond"] or 0, res["diskLoaderBytesPerSecond"] or 0)
    with open(out, "w") as fh:
        json.dump(res, fh, indent=1)
    print(json.dumps(res))
    sys.exit(0)
if drop:
    drop_caches()
    res["diskOneStreamBytesPerSecond"] = total / read_all()
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
    d = read_loader(everything)
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
res["pageCacheBytesPerSecond"] = total / read_all()
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
