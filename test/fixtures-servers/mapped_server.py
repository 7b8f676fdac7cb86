"""A server that maps a data file the way a server maps its libraries (read-only, shared) and reads a few of its
pages — for restore's working-set test (test/snapshot/snapshot.test.ts): the snapshot records those pages, restore
reads exactly them ahead, and the restored server reads them again.

  python mapped_server.py DATA PORT

GET /health answers "ok"; GET /sum the sum of the first 64 bytes of pages 0, 1000, 1001 and 3000 of DATA (a file of
at least 5001 pages), as JSON. At start it also reads page 5000, which no request reads again (a server's start-up
code): snapshot's second warmup learns that the server does not need it to answer.
"""

import json
import mmap
import os
import sys

from fixture_http import serve

PAGES = (0, 1000, 1001, 3000)
data = mmap.mmap(os.open(sys.argv[1], os.O_RDONLY), 0, prot=mmap.PROT_READ)
data.madvise(mmap.MADV_RANDOM)  # no readaround when the server faults a page in: the test counts pages


def total():
    return sum(sum(data[p * 4096 : p * 4096 + 64]) for p in PAGES)


total()
_ = data[5000 * 4096]
serve(int(sys.argv[2]), lambda path: b"ok" if path == "/health" else json.dumps({"sum": total()}).encode())
