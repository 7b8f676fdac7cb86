"""Starts coldstart's server watchdog (./shim.cjs) as a child subreaper.

Usage: python3 -I subreaper.py NODE shim.cjs GRACE CMD...

Sets PR_SET_CHILD_SUBREAPER (prctl option 36, kept across execve) on this process, reports on fd 3 whether that
worked ({"event":"subreaper","ok":true|false}, the shim's status protocol), then execs NODE with the rest of the
arguments. A descendant of the server that double-forks then re-parents to the watchdog instead of init, so the
watchdog's /proc scan always finds it. Node cannot call prctl itself; without python3 the watchdog runs unchanged.
"""

import ctypes
import json
import os
import sys

PR_SET_CHILD_SUBREAPER = 36


def main() -> None:
    try:
        ok = ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except Exception:
        ok = False
    try:
        os.write(3, (json.dumps({"event": "subreaper", "ok": ok}) + "\n").encode())
    except OSError:
        pass
    os.execv(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
