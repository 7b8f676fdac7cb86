"""What a restored server's coldstart_load finds in the stage directory (test/snapshot/orchestration.test.ts, at its
stand-in wake-up): the pids each entry was listed for, then — this process standing in for that server, its pid put
among theirs — whether each argv file is found staged, by coldstart_load's own os.stat. argv[1]: coldstart_load's
folder. Prints one JSON object.
"""

import json
import os
import sys

sys.path.insert(0, sys.argv[1])
import coldstart_load  # noqa: E402

d = coldstart_load.stage_dir()
listed = []
for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
    p = os.path.join(d, name)
    with open(p) as f:
        e = json.load(f)
    listed.append(e["pids"])
    with open(p, "w") as f:
        json.dump({**e, "pids": [*e["pids"], os.getpid()]}, f)
found = coldstart_load.staged_files()
keys = {p: (lambda s: (s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns))(os.stat(p)) for p in sys.argv[2:]}
print(json.dumps({"pids": listed, "found": [[p, k in found] for p, k in sorted(keys.items())]}, separators=(",", ":")))
