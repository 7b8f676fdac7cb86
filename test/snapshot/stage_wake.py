"""A server's wake-up as restore --stage meets it (test/snapshot/stage-e2e.test.ts): each argv range PATH:OFFSET:LENGTH
read back through coldstart_load.load(..., device=0) into memory of this process (the stand-in driver's device
addresses are this process's), then compared with the file. argv[1]: coldstart_load's folder. Prints one JSON object.
"""

import ctypes
import json
import os
import sys

sys.path.insert(0, sys.argv[1])
import coldstart_load  # noqa: E402

# This process stands in for the restored server the entries were listed for: its pid put among theirs.
d = coldstart_load.stage_dir()
for name in os.listdir(d) if os.path.isdir(d) else []:
    p = os.path.join(d, name)
    with open(p) as f:
        e = json.load(f)
    with open(p, "w") as f:
        json.dump({**e, "pids": [*e["pids"], os.getpid()]}, f)

ranges, bufs, want = [], [], []
for arg in sys.argv[2:]:
    path, off, n = arg.rsplit(":", 2)
    off, n = int(off), int(n)
    b = ctypes.create_string_buffer(n)
    bufs.append(b)
    with open(path, "rb") as f:
        f.seek(off)
        want.append(f.read(n))
    ranges.append((path, off, n, ctypes.addressof(b)))
r = coldstart_load.load(ranges, device=0)
equal = [b.raw == w for b, w in zip(bufs, want)]
print(json.dumps({"bytes": r["bytes"], "staged_bytes": r["staged_bytes"], "staged_error": r["staged_error"], "equal": equal}))
