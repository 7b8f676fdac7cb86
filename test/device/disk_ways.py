"""The ways of reading a cold disk side by side on one host: which one a wake-up's loader should use there.

  python disk_ways.py DIR OUT.json [--gib N] [--file-mib M] [--rounds R] [--ways way,way,...]

Writes N GiB (default 8; a fraction for a small check) of incompressible data into DIR as M MiB files (default
2048; kept and reused when they are already there, at that size), then, for each round, reads them from the disk
once per way, in an order that turns round each round (the disk's drift over the run falls on every way alike).
Before each reading the files are evicted from the page cache (POSIX_FADV_DONTNEED: no root needed, nothing else on
the machine touched; on 2026-12-07's hosts G1-G2 the whole page cache was dropped instead) and their residency is
counted (mincore): a reading that would come from the page cache is refused. Ways:

  one-stream          one thread of 16 MiB read()s (test/device/disk_probes.py read_all; the floors' probe)
  one-stream-seq      the same, each file advised sequential first (POSIX_FADV_SEQUENTIAL: twice the readahead window)
  pread-seq           one thread of 16 MiB preads advised sequential (restore's --prefetch)
  pread               the same preads, not advised
  loader-direct-N     coldstart_load around the page cache (O_DIRECT), at most N readers at the disk (4: its default)
  loader-direct-N-32m the same with 32 MiB chunks
  loader-cached-N     coldstart_load through the page cache, at most N readers at the disk (0: no bound)

Writes each reading (way, round, seconds, bytes per second, coldstart_load's cold bytes and readers) and each way's
median to OUT.json, and a table to stdout.
"""

import json
import os
import statistics
import sys

from disk_probes import evict, read_all, read_loader, read_pread_seq
from pagecache_census import resident

BLOCK = 64 << 20
# The ways that are not the loader, each a reading of the paths; the loader's are named loader-COLD-N[-Mm]
PLAIN = {
    "one-stream": read_all,
    "one-stream-seq": lambda paths: read_all(paths, advise=True),
    "pread": lambda paths: read_pread_seq(paths, advise=False),
    "pread-seq": read_pread_seq,
}
WAYS = list(PLAIN) + ["loader-direct-4", "loader-direct-8", "loader-direct-16", "loader-direct-4-32m", "loader-cached-1", "loader-cached-0"]


def arg(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def make_files(folder, total, file_bytes):
    """TOTAL bytes (rounded up to whole files) in files of FILE_BYTES of random blocks (each block's first bytes its
    own index: no two blocks alike)."""
    os.makedirs(folder, exist_ok=True)
    block = bytearray(os.urandom(min(BLOCK, file_bytes)))
    paths = []
    for i in range(max(1, -(-total // file_bytes))):
        p = os.path.join(folder, f"ways-{i}.bin")
        paths.append(p)
        if os.path.exists(p) and os.path.getsize(p) == file_bytes:
            continue
        with open(p + ".part", "wb") as fh:
            for k in range(file_bytes // len(block)):
                block[:16] = f"{i:07d}-{k:08d}".encode()
                fh.write(block)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(p + ".part", p)
    return paths


def resident_share(paths):
    """The share of PATHS' bytes in the page cache (pagecache_census.resident: mincore); None when it cannot be told."""
    held = [resident(p, os.path.getsize(p)) for p in paths]
    if any(h is None for h in held):
        return None
    total = sum(os.path.getsize(p) for p in paths)
    return sum(held) / total if total else None


def read(way, paths, notes):
    """(seconds, coldstart_load's result or None) for one reading of PATHS by WAY."""
    if way in PLAIN:
        return PLAIN[way](paths), None
    parts = way.split("-")  # loader-direct-4, loader-direct-4-32m, loader-cached-0
    how = {"cold": parts[1], "disk_streams": int(parts[2])}
    if len(parts) > 3:
        how["chunk_bytes"] = int(parts[3].rstrip("m")) << 20
    return read_loader(paths, notes, **how)


def main():
    folder, out = sys.argv[1], sys.argv[2]
    gib, file_mib, rounds = float(arg("--gib", "8")), int(arg("--file-mib", "2048")), int(arg("--rounds", "2"))
    if not (0 < gib <= 1024 and 1 <= file_mib <= 65536 and 1 <= rounds <= 100):
        sys.exit("disk_ways.py: --gib must be in (0, 1024], --file-mib in 1..65536 and --rounds in 1..100")
    ways = arg("--ways", ",".join(WAYS)).split(",")
    for w in ways:
        if w not in PLAIN and not w.startswith(("loader-direct-", "loader-cached-")):
            sys.exit(f"disk_ways.py: unknown way {w!r} (one of {', '.join(WAYS)}, or loader-direct-N / loader-cached-N)")
    paths = make_files(folder, int(gib * (1 << 30)), file_mib << 20)
    total = sum(os.path.getsize(p) for p in paths)
    res = {"bytes": total, "files": len(paths), "readings": [], "notes": []}
    for r in range(rounds):
        order = ways if r % 2 == 0 else list(reversed(ways))
        order = order[r // 2 % len(order) :] + order[: r // 2 % len(order)]
        for way in order:
            evict(paths)
            share = resident_share(paths)
            if share is None or share > 0.01:
                sys.exit(f"disk_ways.py: the page cache still holds {share} of the files after evicting them (mapped by a process?): no disk reading")
            sec, lr = read(way, paths, res["notes"])
            if sec is None:
                continue
            one = {"way": way, "round": r, "seconds": round(sec, 4), "bytesPerSecond": round(total / sec)}
            if lr:
                one.update({"coldBytes": lr["cold_bytes"], "diskReadersMax": lr["disk_readers_max"], "directRefused": lr["direct_refused"]})
            res["readings"].append(one)
            print(f"round {r} {way:>22}: {total / sec / 1e9:.3f} GB/s ({sec:.2f} s)", flush=True)
    res["medianBytesPerSecond"] = {}
    for w in ways:
        got = [x["bytesPerSecond"] for x in res["readings"] if x["way"] == w]
        if got:
            res["medianBytesPerSecond"][w] = round(statistics.median(got))
    best = max(res["medianBytesPerSecond"].values()) if res["medianBytesPerSecond"] else None
    for w, v in sorted(res["medianBytesPerSecond"].items(), key=lambda kv: -kv[1]):
        print(f"median {w:>22}: {v / 1e9:.3f} GB/s  {v / best:.3f} of the best", flush=True)
    with open(out, "w") as fh:
        json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
