"""A CPU server holding 1.5 GiB of random bytes in one anonymous mapping (with MADV_HUGEPAGE when argv[2] is "huge"),
answering GET with "ok": the image restore --huge-pages was measured on (BENCHMARKS.md, 2026-12-05).
"""

import http.server
import mmap
import os
import sys

port, huge = int(sys.argv[1]), sys.argv[2] == "huge"
n = 1536 << 20
m = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
if huge:
    m.madvise(mmap.MADV_HUGEPAGE)
blk = os.urandom(1 << 20)
for i in range(0, n, 1 << 20):
    m[i : i + (1 << 20)] = blk


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
