"""coldstart_load's side of `restore --stage` without a GPU: which ranges it takes from the stage directory's entries
and which it reads from the files, and every entry it must not trust (test/load/python-stage.test.ts runs it).

argv: module_dir, tmp (a folder of this test's own), entry (an entry `restore --stage` wrote, src/snapshot/stage.ts,
for the files in tmp/w), holder pid (alive). Prints one JSON object.
"""

import json
import os
import shutil
import sys

sys.path.insert(0, sys.argv[1])
import coldstart_load as c  # noqa: E402

tmp, entry, holder = sys.argv[2], sys.argv[3], int(sys.argv[4])
stage = os.path.dirname(entry)
os.environ["COLDSTART_STAGE_DIR"] = stage
with open(entry) as f:
    listed = json.load(f)
out = {"stageDir": c.stage_dir(), "pidsListed": listed["pids"]}
# This process stands in for the restored server restore listed: its pid put among the entry's.
with open(entry, "w") as f:
    json.dump({**listed, "pids": [*listed["pids"], os.getpid()]}, f)
a, b = os.path.join(tmp, "w", "a.bin"), os.path.join(tmp, "w", "b.bin")


def split(ranges):
    staged, rest = c._split_staged(ranges)
    return {"staged": [[h[:4], off, n, dst] for h, off, n, dst, _ in staged], "rest": [[os.path.basename(p), off, n, dst] for p, off, n, dst in rest]}


size = os.path.getsize(a)
# The entry as restore wrote it: both files staged whole; a range inside is copied, one past the end is read.
out["asWritten"] = split([(a, 0, size, 1), (a, 10, 20, 2), (b, 4096, 100, 3), (a, size - 1, 2, 4), ("/nonexistent", 0, 1, 5)])
# The same bytes by another path (a hard link: same device and inode) are the same file.
os.link(a, os.path.join(tmp, "w", "a-link.bin"))
out["hardLink"] = split([(os.path.join(tmp, "w", "a-link.bin"), 0, 8, 6)])
# A copy (another inode) is not.
shutil.copyfile(a, os.path.join(tmp, "w", "a-copy.bin"))
out["copy"] = split([(os.path.join(tmp, "w", "a-copy.bin"), 0, 8, 7)])
# Host loads never use a staged copy: load(device=None) reads the file into host memory.
buf = bytearray(8)
addr = (c.ctypes.c_char * 8).from_buffer(buf)
r = c.load([(a, 0, 8, c.ctypes.addressof(addr))], device=None)
out["hostLoad"] = {"bytes": r["bytes"], "staged_bytes": r["staged_bytes"], "equal": bytes(buf) == open(a, "rb").read(8)}
del addr
# A device load whose staged copy cannot be made (no driver here) falls back to the files, which then fail NO_GPU.
try:
    c.load([(a, 0, 8, 1 << 40)], device=0)
    out["deviceLoad"] = "no error"
except c.LoadError as e:
    out["deviceLoad"] = e.code
# cs_copy_staged's own refusals, before any driver is asked.
REFUSALS = (
    ("badHandle", [("zz" * 64, 0, 8, 1)], 0),
    ("shortHandle", [("ab" * 10, 0, 8, 1)], 0),
    ("badDevice", [("ab" * 64, 0, 8, 1)], -1),
    ("overflow", [("ab" * 64, (1 << 64) - 4, 8, 1)], 0),
    ("noDriver", [("ab" * 64, 0, 8, 1)], 0),
)
for name, items, dev in REFUSALS:
    try:
        c._copy_staged([(h, off, n, dst, 0) for h, off, n, dst in items], dev)
        out[name] = "no error"
    except c.LoadError as e:
        out[name] = e.code

# What must not be trusted: each case changes one thing, is split, and is put back.
one = [(a, 0, 8, 1)]
with open(entry) as f:
    good = json.load(f)


def rewrite(doc, mode=0o600):
    os.chmod(entry, 0o600)
    with open(entry, "w") as f:
        f.write(doc if isinstance(doc, str) else json.dumps(doc))
    os.chmod(entry, mode)


cases = {}
cases["good"] = split(one)
rewrite(good, 0o666)
cases["entryWritableByOthers"] = split(one)
rewrite(good)
os.chown(entry, 65534, -1)
cases["entryOfAnotherUser"] = split(one)
os.chown(entry, os.geteuid(), -1)
os.chmod(stage, 0o777)
cases["dirWritableByOthers"] = split(one)
os.chmod(stage, 0o700)
os.chown(stage, 65534, -1)
cases["dirOfAnotherUser"] = split(one)
os.chown(stage, os.geteuid(), -1)
rewrite("{not json")
cases["malformed"] = split(one)
rewrite({**good, "version": 2})
cases["otherVersion"] = split(one)
rewrite({**good, "pid": 2**22 + 12345})
cases["holderGone"] = split(one)
rewrite({**good, "pids": [1]})
cases["anotherServer"] = split(one)
rewrite({**good, "pids": str(os.getpid())})
cases["pidsNotAList"] = split(one)
rewrite({**good, "files": [{**good["files"][0], "handle": "ab"}]})
cases["shortHandle"] = split(one)
rewrite({**good, "files": [{**good["files"][0], "begin": 100, "end": 50}]})
cases["backwardsRange"] = split(one)
rewrite({**good, "files": "nope"})
cases["filesNotAList"] = split(one)
rewrite(json.dumps(good) + " " * (1 << 20))
cases["overOneMiB"] = split(one)
rewrite(good)
os.rename(entry, entry + ".real")
os.symlink(entry + ".real", entry)
cases["symlinkEntry"] = split(one)
os.unlink(entry)
os.mkfifo(entry)
cases["fifoEntry"] = split(one)  # never blocks: opened O_NONBLOCK and skipped as not a regular file
os.unlink(entry)
os.rename(entry + ".real", entry)
cases["putBack"] = split(one)
# The file changed after it was staged (its modification time): not the staged bytes any more.
st = os.stat(a)
os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
cases["fileChanged"] = split(one)
out["cases"] = cases
print(json.dumps(out))
