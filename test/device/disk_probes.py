"""The device proof's disk probes: each way of reading a list of files, timed (seconds), and the page-cache drop
before a disk reading. One place for test/device/snapshot_floors.py (a restore's same-run floors) and
test/device/disk_ways.py (the ways side by side on one host).

    read_all(paths, advise)               one stream of 16 MiB read()s, file after file (as CRIU reads its pages)
    read_pread_seq(paths, advise)         one thread of 16 MiB preads, each file advised sequential (restore's --prefetch)
    read_parallel(paths, threads, direct) threads of 8 MiB preads from one shared list, in file order (a loader)
    read_loader(paths, notes, **how)      coldstart_load itself into host memory (the wake-up's reads), None if it
                                          does not load (why, in notes)
"""

import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

PIECE, THREADS = 8 << 20, 8


def drop_caches():
    """Drops the page cache (root), so that the next reading comes from the disk."""
    subprocess.run("sync; echo 3 > /proc/sys/vm/drop_caches", shell=True, check=False)


def evict(paths):
    """Takes PATHS' clean pages out of the page cache (written back first; POSIX_FADV_DONTNEED, no root needed), so
    that the next reading of them comes from the disk and nothing else on the machine loses its cached pages. A page
    some process maps stays: check with a residency count where it matters."""
    for f in paths:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def read_all(paths, advise=False):
    """PATHS by one stream, file after file (as CRIU reads its page files); seconds. advise: each file advised
    sequential first (the kernel's readahead window doubled), to tell that advice's share from the pread's."""
    t = time.perf_counter()
    for f in paths:
        with open(f, "rb", buffering=0) as fh:
            if advise:
                os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
            while fh.read(16 << 20):
                pass
    return time.perf_counter() - t


def read_pread_seq(paths, advise=True):
    """PATHS by one thread of 16 MiB preads into one reused buffer, each file advised sequential: the way restore's
    --prefetch reads (native/src/pagecache.cc), beside the one-stream read() above, to tell its own rate from the
    disk's drift over the run; seconds. advise=False: the same preads, not advised."""
    buf = bytearray(16 << 20)
    t = time.perf_counter()
    for f in paths:
        fd = os.open(f, os.O_RDONLY)
        try:
            if advise:
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


def read_loader(paths, notes, **how):
    """PATHS read by coldstart_load itself (its defaults, or HOW: cold, disk_streams, chunk_bytes, threads), one
    range per file as the wake-up reads, every file into the same host buffer (the bytes are not kept: the disk's rate
    is what is measured), faulted in before the clock starts; (seconds, coldstart_load's result), or (None, None) when
    the library does not load (its error appended to NOTES)."""
    import ctypes
    import mmap

    import coldstart_py  # noqa: F401  (coldstart_load's folder on sys.path)

    try:
        import coldstart_load

        coldstart_load.library()
    except Exception as e:  # noqa: BLE001 (any failure to load is a probe not taken, said why)
        notes.append(f"coldstart_load did not load, no loader probe: {e}")
        return None, None
    size = max(os.path.getsize(f) for f in paths)
    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0))
    dst = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    t = time.perf_counter()
    r = coldstart_load.load([(f, 0, os.path.getsize(f), dst) for f in paths], device=None, **how)
    return time.perf_counter() - t, r
