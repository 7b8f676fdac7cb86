"""Which files are in the page cache now, and how much of each (mincore over a read-only mapping; nothing is read).

  python pagecache_census.py OUT.txt [--exclude PATH]... ROOT...

Walks each ROOT (staying on its filesystem), and writes "RESIDENT SIZE PATH" lines for every regular file with a
resident byte, largest first; prints the total. The device proof runs it after a cold restore (the page cache
dropped before it) to see what the restore read from the disk besides the image and the weights — where util-linux
`fincore` is missing.
"""

import ctypes
import mmap
import os
import stat
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
PAGE = mmap.PAGESIZE
MAP_FAILED = ctypes.c_void_p(-1).value


def resident(path, size):
    """Bytes of PATH in the page cache (None when it cannot be mapped)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, MAP_FAILED):
            return None
        try:
            pages = (size + PAGE - 1) // PAGE
            vec = (ctypes.c_ubyte * pages)()
            if libc.mincore(addr, size, vec) != 0:
                return None
            return sum(v & 1 for v in vec) * PAGE
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)


def main(argv):
    out, rest = argv[0], argv[1:]
    exclude, roots = set(), []
    while rest:
        a = rest.pop(0)
        if a == "--exclude":
            exclude.add(os.path.realpath(rest.pop(0)))
        else:
            roots.append(a)
    rows = []
    for root in roots:
        dev = os.stat(root).st_dev
        for d, dirs, files in os.walk(root):
            dirs[:] = [x for x in dirs if os.path.realpath(os.path.join(d, x)) not in exclude
                       and os.lstat(os.path.join(d, x)).st_dev == dev]
            for f in files:
                p = os.path.join(d, f)
                try:
                    st = os.lstat(p)
                    if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
                        continue
                    r = resident(p, st.st_size)
                except OSError:
                    continue
                if r:
                    rows.append((r, st.st_size, p))
    rows.sort(reverse=True)
    with open(out, "w") as fh:
        for r, s, p in rows:
            fh.write(f"{r} {s} {p}\n")
    print(f"{sum(r for r, _, _ in rows) / 1e9:.3f} GB in {len(rows)} files")


if __name__ == "__main__":
    main(sys.argv[1:])
