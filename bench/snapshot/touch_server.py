"""A process holding MiB of random bytes in private anonymous memory (argv[1] MiB), the page restore's subject in
bench/snapshot/criu-pages.sh: it writes its pid to argv[2] when filled; on SIGUSR1 it reads one byte of every 4 KiB page
(as a restored server's first work touches its memory) and writes "seconds checksum" to argv[3].
"""

import mmap
import os
import signal
import sys
import time

n = int(sys.argv[1]) << 20
ready, done = sys.argv[2], sys.argv[3]
buf = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
blk = os.urandom(1 << 20)
for off in range(0, n, 1 << 20):
    buf[off : off + (1 << 20)] = blk


def touch(*_):
    t = time.perf_counter()
    s = 0
    for off in range(0, n, 4096):
        s += buf[off]
    with open(done, "w") as fh:
        fh.write(f"{time.perf_counter() - t:.4f} {s}\n")


signal.signal(signal.SIGUSR1, touch)
with open(ready, "w") as fh:
    fh.write(str(os.getpid()))
while True:
    time.sleep(0.01)
