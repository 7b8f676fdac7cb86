"""Runs a command as a child subreaper (prctl PR_SET_CHILD_SUBREAPER) and reaps every process that ends under it.

  python reaper.py CMD [ARG...]      → CMD's exit code

A server CRIU restores is reparented when criu exits: on a machine whose PID 1 does not reap (a container's shell),
a killed restored server stays a zombie and keeps its pid, which the next restore of the same image needs. Under this
reaper it is reparented here instead and reaped at once.
"""
import ctypes
import os
import subprocess
import sys

PR_SET_CHILD_SUBREAPER = 36
if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
    print(f"reaper: prctl failed: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
child = subprocess.Popen(sys.argv[1:])
rc = 1
while True:
    try:
        pid, status = os.wait()
    except ChildProcessError:
        break
    if pid == child.pid:
        rc = os.waitstatus_to_exitcode(status)
        break
sys.exit(rc)
