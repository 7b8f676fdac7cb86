"""coldstart's loader, for a server's own wake-up: byte ranges of files into the server's GPU (or host) memory.

A server that released its weights (vLLM's sleep level 2; the device proof's test/device/flat_weights.py) and reads
them back when it wakes can hand the reads to the engine `coldstart profile` measures (pread into a pinned ring,
copies on several streams: 49-50 GB/s from the page cache on an H100, BENCHMARKS.md) instead of Python threads.

    import coldstart_load
    coldstart_load.load([(path, file_offset, length, dst), ...], device=0)

`dst` is a device address valid in the device's primary context (torch: `tensor.data_ptr()` of a CUDA tensor), or
a host address with device=None. The memory behind dst is the caller's and must hold `length` bytes; coldstart
allocates nothing there. Errors raise LoadError with `.code` (coldstart's native vocabulary: BAD_ARG, NOT_FOUND,
CORRUPT_FILE, PERMISSION, NO_GPU, ...) and a one-line message naming the file or argument.

Weights staged on the GPU: while CRIU restores a server, `coldstart restore --stage WEIGHTS` loads those files onto
the same GPU in coldstart's own process and lists them in the stage directory (stage_dir(): COLDSTART_STAGE_DIR, else
/dev/shm/coldstart-stage-<uid>). load() copies every range a listed file holds GPU to GPU from there (the file
matched by device, inode, size and modification time, in an entry listing this process among the restored server's;
a CUDA IPC handle opened and closed within the call) and reads
the rest from the files; when a staged copy cannot be used it reads those ranges from the files too and says why in
`staged_error`. A directory not owned by this user, or writable by others, is never read.

The library is libcoldstart_load.so of the installed coldstart package (a source build's build/Release/, else the
shipped prebuilds/linux-<arch>/), or the file COLDSTART_LOAD_LIBRARY names. `coldstart doctor` shows which.
No third-party imports: the standard library only.
"""

import ctypes
import json
import os
import platform
import stat
import tempfile

ABI = 4
STAGE_VERSION = 1
_STAGE_ENTRY_MAX = 1 << 20  # bytes of one stage entry read at most
# gpu-load's measured defaults (src/load/gpu-load.ts DEFAULTS; test/load/python-loader.test.ts keeps them equal):
# 8 MiB chunks, one reader thread per available core, 2 to 16.
CHUNK_BYTES = 8 << 20
THREADS = max(2, min(16, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2))
# How a chunk the page cache does not hold whole is read (chunks it holds are read from it by every thread either way):
#   "direct"  around the page cache (O_DIRECT, straight into the pinned ring), at most 4 chunks at the disk at once:
#             on three lent GPU hosts the wake-up read its 15.5 GB from the disk 10-16% faster this way than through
#             the page cache in every adjacent pair (2.02-2.46 vs 1.79-2.24 GB/s; 1 reader was slower, 16 no faster;
#             BENCHMARKS.md 2026-12-06, hosts D1-D3; again on 2026-12-07 host Q5, 8 readers 2-3% ahead of 4, but not
#             on host Q4, where one buffered stream read 1.94 GB/s and 4 readers around 1.72; on hosts G1-G2, every
#             way read side by side with nothing else running, it was the best or within the disk's drift, and through
#             the page cache the slowest, test/device/disk_ways.py). What it reads is not
#             kept in the page cache (it is left as found), as gpu-load reads weights the page cache does not hold, by
#             default (src/load/gpu-load.ts `direct`).
#   "cached"  through the page cache (buffered preads, readahead), at most 1 chunk at the disk at once, lowest offset
#             first: what it reads stays cached, for a node that will load the same files again.
COLD = "direct"
# Reader threads at the disk at once for each way (0: no bound; a local NVMe array, which wants many requests in
# flight, is not measured: pass disk_streams=0 or N there).
DISK_STREAMS = {"direct": 4, "cached": 1}
_COLD_READS = {"direct": 1, "cached": 0}  # cs_load's cold_reads
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # src/python or dist/python
_ARCH = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}


class LoadError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class _Range(ctypes.Structure):
    _fields_ = [("path", ctypes.c_char_p), ("offset", ctypes.c_uint64), ("length", ctypes.c_uint64), ("dst", ctypes.c_uint64)]


class _Staged(ctypes.Structure):
    _fields_ = [("handle", ctypes.c_char_p), ("offset", ctypes.c_uint64), ("length", ctypes.c_uint64), ("dst", ctypes.c_uint64)]


class _Result(ctypes.Structure):
    _fields_ = [
        ("bytes", ctypes.c_uint64),
        ("seconds", ctypes.c_double),
        ("read_seconds", ctypes.c_double),
        ("copy_seconds", ctypes.c_double),
        ("cold_bytes", ctypes.c_uint64),
        ("disk_readers_max", ctypes.c_uint64),
        ("direct_refused", ctypes.c_uint64),
        ("code", ctypes.c_char * 32),
        ("error", ctypes.c_char * 1024),
    ]


def candidates():
    """Where the library is looked for, in order."""
    if os.environ.get("COLDSTART_LOAD_LIBRARY"):
        return [os.environ["COLDSTART_LOAD_LIBRARY"]]
    arch = _ARCH.get(platform.machine().lower(), platform.machine().lower())
    return [os.path.join(_ROOT, "build", "Release", "libcoldstart_load.so"), os.path.join(_ROOT, "prebuilds", f"linux-{arch}", "libcoldstart_load.so")]


_lib = None


def library():
    """The loaded library (once per process); LoadError MISSING with what to do when none loads."""
    global _lib
    if _lib is not None:
        return _lib
    tried = []
    for path in candidates():
        if not os.path.isfile(path):
            tried.append(f"{path} (not there)")
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path} ({e})")
            continue
        lib.cs_abi_version.restype = ctypes.c_int
        if lib.cs_abi_version() != ABI:
            tried.append(f"{path} (ABI {lib.cs_abi_version()}, this module needs {ABI}: a different coldstart version)")
            continue
        # ranges, n, device, threads, chunk_bytes, disk_streams, cold_reads, out
        lib.cs_load.argtypes = [
            ctypes.POINTER(_Range),
            ctypes.c_uint64,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_uint64,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Result),
        ]
        lib.cs_load.restype = ctypes.c_int
        lib.cs_copy_staged.argtypes = [ctypes.POINTER(_Staged), ctypes.c_uint64, ctypes.c_int, ctypes.POINTER(_Result)]
        lib.cs_copy_staged.restype = ctypes.c_int
        _lib = lib  # its path: lib._name
        return _lib
    raise LoadError(
        "MISSING",
        "libcoldstart_load.so did not load: "
        + "; ".join(tried)
        + ". Possible solutions: `npm rebuild coldstart` (builds it from source with a C++ compiler), or set"
        " COLDSTART_LOAD_LIBRARY to the library's path",
    )


def stage_dir():
    """Where `coldstart restore --stage` lists what it staged (src/snapshot/stage.ts stageDir: the same rule)."""
    if os.environ.get("COLDSTART_STAGE_DIR"):
        return os.environ["COLDSTART_STAGE_DIR"]
    base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    return os.path.join(base, f"coldstart-stage-{os.geteuid()}")


def _own(st, kind):
    """st is `kind` (stat.S_ISDIR / S_ISREG), this user's, and writable by nobody else."""
    return kind(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def staged_files():
    """The staged files of every live holder: {(st_dev, st_ino, st_size, st_mtime_ns): (begin, end, handle)}; entries
    that are not this user's, malformed or whose holder has ended are skipped."""
    d = stage_dir()
    try:
        if not _own(os.lstat(d), stat.S_ISDIR):
            return {}
        names = sorted(os.listdir(d))
    except OSError:
        return {}
    out = {}
    for name in names:
        if not name.endswith(".json"):
            continue
        p = os.path.join(d, name)
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if not _own(st, stat.S_ISREG) or st.st_size > _STAGE_ENTRY_MAX:
                continue
            e = json.loads(os.read(fd, _STAGE_ENTRY_MAX).decode())
            if e.get("version") != STAGE_VERSION or not isinstance(e.get("pid"), int) or not _alive(e["pid"]):
                continue
            if not isinstance(e.get("pids"), list) or os.getpid() not in e["pids"]:
                continue  # staged for another restored server
            for f in e["files"]:
                key = (int(f["dev"]), int(f["ino"]), int(f["size"]), int(f["mtimeNs"]))
                begin, end, handle = int(f["begin"]), int(f["end"]), str(f["handle"])
                if 0 <= begin <= end and len(handle) == 128:
                    out[key] = (begin, end, handle)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        finally:
            os.close(fd)
    return out


def _split_staged(ranges):
    """(staged items (handle, offset in the staged copy, length, dst, range index), the ranges left to read)."""
    files = staged_files()
    if not files:
        return [], list(ranges)
    staged, rest, keys = [], [], {}  # keys: each path stat'ed once (a shard holds many ranges)
    for i, r in enumerate(ranges):
        path, offset, length, dst = r
        if path not in keys:
            try:
                st = os.stat(path)
                keys[path] = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            except OSError:
                keys[path] = None
        f = files.get(keys[path]) if keys[path] else None
        if f and f[0] <= offset and offset + length <= f[1]:
            staged.append((f[2], offset - f[0], length, dst, i))
        else:
            rest.append(r)
    return staged, rest


def _copy_staged(items, device):
    arr = (_Staged * max(1, len(items)))()
    keep = []
    for i, (handle, offset, length, dst, _) in enumerate(items):
        b = handle.encode()
        keep.append(b)
        arr[i] = _Staged(b, offset, length, dst)
    out = _Result()
    if library().cs_copy_staged(arr, len(items), device, ctypes.byref(out)) != 0:
        raise LoadError(out.code.decode() or "NATIVE", out.error.decode(errors="replace") or "cs_copy_staged failed")
    return out.bytes, out.seconds


def load(ranges, device=None, threads=None, chunk_bytes=None, disk_streams=None, cold=None, staged=True):
    """Copies each (path, offset, length, dst) range of a file to dst; returns bytes and seconds (read/copy busy),
    cold_bytes (what the page cache lacked of the ranges when the call began: read from the disk; None when residency
    could not be told), disk_readers_max and direct_refused (files read through the page cache because their
    filesystem refused O_DIRECT), staged_bytes (copied GPU to GPU from what `coldstart restore --stage` put on the
    card) and staged_error (why a staged copy could not be used, and its ranges were read from the files; else None).

    device: a CUDA ordinal (dst are device addresses in its primary context) or None (dst are host addresses).
    threads, chunk_bytes: reader threads and bytes per read (default THREADS, CHUNK_BYTES).
    cold: how a chunk the page cache does not hold is read, "direct" (around it) or "cached" (through it); default COLD.
    disk_streams: at most this many threads read what the page cache does not hold at once (default DISK_STREAMS[cold];
    0: no bound).
    staged: use staged copies where there are some (device loads only); False reads every range from its file.
    The call blocks until every byte is in place (the copies are synchronised) or raises LoadError.
    """
    ranges = list(ranges)
    for i, r in enumerate(ranges):
        if not isinstance(r, (tuple, list)) or len(r) != 4:
            raise LoadError("BAD_ARG", f"coldstart_load.load: range {i} must be (path, offset, length, dst), got {r!r}")
        path, offset, length, dst = r
        for name, v in (("offset", offset), ("length", length), ("dst", dst)):
            if not isinstance(v, int) or v < 0 or v >= 1 << 64:
                raise LoadError("BAD_ARG", f"coldstart_load.load: range {i} ({path}): {name} must be an integer in 0..2^64-1, got {v!r}")
    if device is not None and (not isinstance(device, int) or device < 0):
        raise LoadError("BAD_ARG", f"coldstart_load.load: device must be a CUDA ordinal or None, got {device!r}")
    if (COLD if cold is None else cold) not in _COLD_READS:
        raise LoadError("BAD_ARG", f'coldstart_load.load: cold must be "direct" or "cached", got {cold!r}')
    staged_bytes, staged_seconds, staged_error = 0, 0.0, None
    rest = ranges
    if staged and device is not None and ranges:
        items, rest = _split_staged(ranges)
        if items:
            try:
                staged_bytes, staged_seconds = _copy_staged(items, device)
            except LoadError as e:
                staged_bytes, staged_error = 0, f"{e.code}: {e}"
                rest = rest + [ranges[it[4]] for it in items]
    r = _load_files(rest, device, threads, chunk_bytes, disk_streams, cold) if rest or not ranges else _NOTHING_READ
    return {**r, "bytes": r["bytes"] + staged_bytes, "seconds": r["seconds"] + staged_seconds, "staged_bytes": staged_bytes, "staged_error": staged_error}


_NOTHING_READ = {"bytes": 0, "seconds": 0.0, "read_seconds": 0.0, "copy_seconds": 0.0, "cold_bytes": 0, "disk_readers_max": 0, "direct_refused": 0}


def _load_files(ranges, device, threads, chunk_bytes, disk_streams, cold):
    arr = (_Range * max(1, len(ranges)))()
    keep = []  # the encoded paths live as long as the call
    for i, (path, offset, length, dst) in enumerate(ranges):
        b = os.fsencode(path)
        keep.append(b)
        arr[i] = _Range(b, offset, length, dst)
    out = _Result()
    threads = THREADS if threads is None else int(threads)
    chunk_bytes = CHUNK_BYTES if chunk_bytes is None else int(chunk_bytes)
    cold = COLD if cold is None else cold  # load() has checked it
    disk_streams = DISK_STREAMS[cold] if disk_streams is None else int(disk_streams)
    rc = library().cs_load(arr, len(ranges), -1 if device is None else device, threads, chunk_bytes, disk_streams, _COLD_READS[cold], ctypes.byref(out))
    if rc != 0:
        raise LoadError(out.code.decode() or "NATIVE", out.error.decode(errors="replace") or f"cs_load failed ({rc})")
    return {
        "bytes": out.bytes,
        "seconds": out.seconds,
        "read_seconds": out.read_seconds,
        "copy_seconds": out.copy_seconds,
        "cold_bytes": None if out.cold_bytes == (1 << 64) - 1 else out.cold_bytes,
        "disk_readers_max": out.disk_readers_max,
        "direct_refused": out.direct_refused,
    }
