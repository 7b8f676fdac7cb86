"""Drives src/python/coldstart_load.py (libcoldstart_load.so) as a server's wake-up would, on the host (device=None),
against the real safetensors as the oracle; prints one JSON document for test/load/python-loader.test.ts.

argv: module dir (src/python), scratch dir, a scratch dir whose filesystem honours posix_fadvise(DONTNEED) (the cold
reads: what the page cache does not hold, read by at most disk_streams threads at once, around the page cache or
through it).
"""

import ctypes
import json
import mmap
import os
import sys

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, sys.argv[1])
import coldstart_load  # noqa: E402  (first: the module under test is argv[1]'s, whatever flat_weights adds to the path)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "device"))
from flat_weights import read_header  # noqa: E402  (the device proof's safetensors header reader)

tmp = sys.argv[2]
out = {
    "library": None,
    "tensors": 0,
    "equal": 0,
    "bytes": 0,
    "errors": {},
    "defaults": {
        "chunkBytes": coldstart_load.CHUNK_BYTES,
        "threads": coldstart_load.THREADS,
        "diskStreams": coldstart_load.DISK_STREAMS,
        "cold": coldstart_load.COLD,
    },
    "cold": {},
}


def error_of(fn):
    try:
        fn()
    except coldstart_load.LoadError as e:
        return {"code": e.code, "message": str(e)}
    return None


# Two shards written by safetensors itself: dtypes of 1, 2, 4 and 8 bytes, odd sizes, a tensor over many 4 KiB
# chunks, an empty one.
g = torch.Generator().manual_seed(7)
shards = {
    "a.safetensors": {
        "embed": torch.randn(257, 131, generator=g).to(torch.bfloat16),
        "norm": torch.randn(131, generator=g),
        "ids": torch.arange(1001, dtype=torch.int64),
        "empty": torch.zeros(0, 5, dtype=torch.float16),
    },
    "b.safetensors": {"mask": torch.rand(77, 3, generator=g) > 0.5, "w": torch.randn(64, 1000, generator=g).to(torch.float16)},
}
for name, tensors in shards.items():
    save_file(tensors, os.path.join(tmp, name))

# Each tensor into its own (host) tensor, as a server fills its parameters; then compared bit for bit with the oracle.
for name in shards:
    path = os.path.join(tmp, name)
    start, h = read_header(path)
    want = load_file(path)
    mine = {k: torch.zeros_like(v) for k, v in want.items()}
    ranges = [(path, start + t["data_offsets"][0], t["data_offsets"][1] - t["data_offsets"][0], mine[k].data_ptr()) for k, t in h.items()]
    r = coldstart_load.load(ranges, device=None, threads=3, chunk_bytes=4096)
    out["bytes"] += r["bytes"]
    for k in want:
        out["tensors"] += 1
        out["equal"] += int(torch.equal(want[k].view(-1).view(torch.uint8), mine[k].view(-1).view(torch.uint8)))
out["library"] = coldstart_load.library()._name
out["expectBytes"] = sum(t.numel() * t.element_size() for s in shards.values() for t in s.values())

# One range for a whole data section into a flat buffer (the flat_weights layout), with the default chunk size.
path = os.path.join(tmp, "b.safetensors")
start, _h = read_header(path)
size = os.path.getsize(path) - start
flat = torch.zeros(size, dtype=torch.uint8)
coldstart_load.load([(path, start, size, flat.data_ptr())])
with open(path, "rb") as f:
    f.seek(start)
    out["flatEqual"] = bytes(flat.numpy()) == f.read()
out["none"] = coldstart_load.load([])["bytes"]

# Cold reads: 48 MiB of random bytes, evicted from the page cache (whole, or its first half), read back by 4 threads
# of 1 MiB around the page cache (O_DIRECT, the default) or through it, with the disk bounded to the default readers,
# one, two, or unbounded; every byte compared, and the page cache's pages counted before and after each read.
cold = os.path.join(sys.argv[3], "cold.bin")
blob = os.urandom(48 << 20)
with open(cold, "wb") as f:
    f.write(blob)
    f.flush()
    os.fsync(f.fileno())


def evict(off=0, length=0):
    fd = os.open(cold, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, off, length, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def read_back(disk_streams, mode, off=0, end=None):
    """The file's bytes [off, end) read back by the loader, compared with what was written."""
    end = len(blob) if end is None else end
    dst = torch.zeros(end - off, dtype=torch.uint8)
    r = coldstart_load.load([(cold, off, end - off, dst.data_ptr())], threads=4, chunk_bytes=1 << 20, disk_streams=disk_streams, cold=mode)
    return {
        "coldBytes": r["cold_bytes"],
        "readersMax": r["disk_readers_max"],
        "directRefused": r["direct_refused"],
        "equal": bytes(dst.numpy()) == blob[off:end],
    }


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]


def page_vector():
    """The file's pages, 1 where the page cache holds one, by mincore (the oracle beside the loader's own count)."""
    fd = os.open(cold, os.O_RDONLY)
    try:
        a = _libc.mmap(None, len(blob), mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if a in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap failed")
        try:
            vec = (ctypes.c_ubyte * (len(blob) // 4096))()
            if _libc.mincore(a, len(blob), vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
            return [v & 1 for v in vec]
        finally:
            _libc.munmap(a, len(blob))
    finally:
        os.close(fd)


def resident_pages():
    """Pages of the file in the page cache."""
    return sum(page_vector())


def lacked_bytes(vec, start, stop):
    """The bytes of [start, stop) whose pages VEC (page_vector) shows not in the page cache."""
    return sum(min(stop, (i + 1) * 4096) - max(start, i * 4096) for i in range(start // 4096, (stop + 4095) // 4096) if not vec[i])


def make_resident():
    """The whole file in the page cache before a case starts, read in order and checked (up to three reads: a load
    through the disk gate has been seen to leave a 64-256 KiB folio of what it read out of the page cache on Linux 6.18)."""
    for _ in range(3):
        with open(cold, "rb") as f:
            while f.read(1 << 20):
                pass
        if resident_pages() == len(blob) // 4096:
            return True
    return False


# Each case starts from the whole file resident, then evicts its part: the whole file, or the first half (where the
# readers start). "resident": nothing evicted. "unaligned": a range that starts and ends inside a 4 KiB page (O_DIRECT
# reads whole pages: the chunks are planned on page boundaries and only the range's bytes land).
# residentBefore/After: the file's pages in the page cache around the read; lacked: the range's bytes whose pages the
# page cache lacked just before it (what the loader's cold_bytes must say, however far readahead runs ahead).
CASES = (
    ("one", None, 0, None, (0, None)),
    ("two", 2, 0, None, (0, None)),
    ("unbounded", 0, 0, None, (0, None)),
    ("halfOne", None, 24 << 20, None, (0, None)),
    ("resident", None, None, None, (0, None)),
    ("unaligned", None, 0, None, (12345, len(blob) - 777)),
    ("cachedOne", None, 0, "cached", (0, None)),
    ("cachedHalf", None, 24 << 20, "cached", (0, None)),
    ("cachedUnbounded", 0, 0, "cached", (0, None)),
)
# A case whose file lost pages it did not evict while it ran (the page cache as the load left it: as found for reads
# around it, whole for reads through it) met memory pressure from outside — the whole suite runs beside it on a
# 2-core VM, and a run there saw 1 MiB of a resident file go between the reading of its pages and the load — and is run
# again, up to three times; `attempts` says how many it took.
for name, streams, length, mode, (start, stop) in CASES:
    attempts = 0
    for _ in range(3):
        attempts += 1
        ready = make_resident()
        if length is not None:
            evict(0, length)
        vec = page_vector()  # one reading for both: the pages before, and the range's bytes they lack
        before, lacked = sum(vec), lacked_bytes(vec, start, len(blob) if stop is None else stop)
        got = read_back(streams, mode, start, stop)
        after = resident_pages()
        if after == (len(blob) // 4096 if mode == "cached" else before):
            break
    out["cold"][name] = {**got, "residentFirst": ready, "residentBefore": before, "lacked": lacked, "residentAfter": after, "pages": len(blob) // 4096}
    out["cold"][name]["attempts"] = attempts

# Refusals: a one-line error naming the file or argument, the code, and the destination untouched.
dst = torch.zeros(4096, dtype=torch.uint8)
p = dst.data_ptr()
truncated = os.path.join(tmp, "truncated.safetensors")
with open(os.path.join(tmp, "a.safetensors"), "rb") as f:
    data = f.read()
with open(truncated, "wb") as f:
    f.write(data[: len(data) // 2])
fifo = os.path.join(tmp, "fifo")
os.mkfifo(fifo)
cases = {
    "missing": lambda: coldstart_load.load([(os.path.join(tmp, "nope.safetensors"), 0, 8, p)]),
    "truncated": lambda: coldstart_load.load([(truncated, len(data) // 2 - 100, 200, p)]),
    "fifo": lambda: coldstart_load.load([(fifo, 0, 8, p)]),
    "directory": lambda: coldstart_load.load([(tmp, 0, 8, p)]),
    "overflow": lambda: coldstart_load.load([(truncated, (1 << 64) - 8, 16, p)]),
    "dstOverflow": lambda: coldstart_load.load([(truncated, 0, 16, (1 << 64) - 8)]),
    "nullDst": lambda: coldstart_load.load([(truncated, 0, 16, 0)]),
    "negative": lambda: coldstart_load.load([(truncated, -1, 16, p)]),
    "shape": lambda: coldstart_load.load([(truncated, 0, 16)]),
    "threads": lambda: coldstart_load.load([(truncated, 0, 16, p)], threads=0),
    "chunk": lambda: coldstart_load.load([(truncated, 0, 16, p)], chunk_bytes=1000),
    "diskStreams": lambda: coldstart_load.load([(truncated, 0, 16, p)], disk_streams=-1),
    "cold": lambda: coldstart_load.load([(truncated, 0, 16, p)], cold="sideways"),
    "gpu": lambda: coldstart_load.load([(truncated, 0, 16, p)], device=0),
    "device": lambda: coldstart_load.load([(truncated, 0, 16, p)], device=-2),
}
for k, fn in cases.items():
    out["errors"][k] = error_of(fn)


def raw_cold_reads(value):
    """cs_load called as another ctypes caller would, with a cold_reads value the module never passes."""
    arr = (coldstart_load._Range * 1)(coldstart_load._Range(os.fsencode(truncated), 0, 16, p))
    res = coldstart_load._Result()
    rc = coldstart_load.library().cs_load(arr, 1, -1, 1, 4096, 1, value, ctypes.byref(res))
    return {"rc": rc, "code": res.code.decode(), "message": res.error.decode()}


out["errors"]["coldReads"] = raw_cold_reads(2)
out["untouched"] = int(dst.count_nonzero())

# A library that is not there: MISSING, with what to do.
coldstart_load._lib = None
os.environ["COLDSTART_LOAD_LIBRARY"] = os.path.join(tmp, "libnothere.so")
out["errors"]["library"] = error_of(lambda: coldstart_load.load([]))
print(json.dumps(out))
