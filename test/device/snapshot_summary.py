"""The three ways back, each against its own floor, from one run of test/device/snapshot-gpu.sh.

  python snapshot_summary.py OUT MODE      → OUT/summary-MODE.json (and printed)

unpark: GPU bytes / pinned H2D; restore from the page cache: image bytes / memcpy + GPU bytes / H2D; restore from a
cold disk: image bytes / disk rate + the GPU restore measured; a level-2 hooked restore adds the weights its wake-up
reads back (weights.json) at the link's rate (page cache) or the disk's. Efficiency = floor / yours. Missing inputs give null
with the reason, never a zero.
"""
import json
import os
import sys

out, mode = sys.argv[1], sys.argv[2]


def load(name):
    p = os.path.join(out, name)
    return json.load(open(p)) if os.path.exists(p) else None


floors = load(f"floors-{mode}.json") or {}
snap = load(f"snapshot-{mode}.json")
hooks = load(f"snapshot-{mode}-hooks.json")
res = {"mode": mode, "floors": floors, "notes": []}
# FLOORS_FIRST=1: the same probes before the restores; the disk's drift over the run is the ratio of the two
first = load(f"floors-{mode}-first.json")
if first is not None:
    res["floorsFirst"] = first
    a, b = first.get("diskBytesPerSecond"), floors.get("diskBytesPerSecond")
    res["diskDrift"] = b / a if a and b else None


def ok(doc):
    return doc is not None and "details" in doc


def rate(key):
    return floors.get(key)


if ok(snap):
    d = snap["details"]
    img = d["imageBytes"]
    kinds = d["kinds"] if isinstance(d["kinds"], dict) else {}
    gpu = kinds.get("gpuStateBytes")
    res["image"] = {"bytes": img, "kinds": kinds, "cold": d["cold"], "snapshotSeconds": d["snapshotSeconds"]}
    for tag in ("warm", "warm-huge", "cold", "cold-huge"):
        r = load(f"restore-{mode}-{tag}.json")
        if not ok(r):
            res[f"restore-{tag}"] = None
            continue
        rd = r["details"]
        first = (rd["restored"].get("firstRequest") or {}).get("seconds")
        gpu_s = (rd["restored"].get("gpuRestoreSeconds") or 0) + (rd["restored"].get("gpuUnlockSeconds") or 0)
        h2d = rate("pinnedH2DBytesPerSecond")
        if tag.startswith("warm"):
            gpu_floor = gpu / h2d if gpu and h2d else 0
            floor = img / rate("memcpyBytesPerSecond") + gpu_floor if rate("memcpyBytesPerSecond") else None
        else:
            floor = img / rate("diskBytesPerSecond") + gpu_s if rate("diskBytesPerSecond") else None
        total = rd["restored"]["totalSeconds"]
        gpu_rate = gpu / gpu_s if gpu and gpu_s else None
        pageable = rate("pageableH2DBytesPerSecond")
        res[f"restore-{tag}"] = {"totalSeconds": total, "firstRequestSeconds": first, "phases": {p["name"]: p["seconds"] for p in r["phases"]},
                                 "floorSeconds": floor, "efficiency": floor / total if floor else None, "speedup": rd["speedup"],
                                 "identical": (rd["restored"].get("firstRequest") or {}).get("sameAsSnapshot"),
                                 "verifyBytesPerSecond": rd.get("verifyBytesPerSecond"), "residentBefore": rd.get("imageResidentBytes"),
                                 "gpuRestoreBytesPerSecond": gpu_rate,
                                 "gpuRestoreOfPinnedH2D": gpu_rate / h2d if gpu_rate and h2d else None,
                                 "gpuRestoreOfPageableH2D": gpu_rate / pageable if gpu_rate and pageable else None}
park, unpark, ans = load("park.json"), load("unpark.json"), load("unpark-answer.json")
if ok(park) and ok(unpark):
    moved = (park["details"].get("gpuMemoryUsedBefore") or 0) - (park["details"].get("gpuMemoryUsedAfter") or 0)
    h2d = rate("pinnedH2DBytesPerSecond")
    floor = moved / h2d if h2d and moved > 0 else None
    res["unpark"] = {"seconds": unpark["total"]["seconds"], "parkSeconds": park["total"]["seconds"], "gpuBytes": moved, "floorSeconds": floor,
                     "efficiency": floor / unpark["total"]["seconds"] if floor else None, "firstAnswer": ans}
ph, uh = load("park-huge.json"), load("unpark-huge.json")
if ok(ph) and ok(uh) and res.get("unpark"):
    floor = res["unpark"]["floorSeconds"]
    res["unpark-huge"] = {"seconds": uh["total"]["seconds"], "parkSeconds": ph["total"]["seconds"], "floorSeconds": floor,
                          "efficiency": floor / uh["total"]["seconds"] if floor else None}
# PARK_HOOKS: each way's unpark against what it put back on the GPU (NVML after - before) at the pinned link's rate
for tag in ("plain", "huge", "level2", "level2-cs", "level1"):
    pk, up, an = load(f"park-{tag}.json"), load(f"unpark-{tag}.json"), load(f"unpark-{tag}-answer.json")
    if not (ok(pk) and ok(up)):
        continue
    back = (up["details"].get("gpuMemoryUsedAfter") or 0) - (up["details"].get("gpuMemoryUsedBefore") or 0)
    h2d = rate("pinnedH2DBytesPerSecond")
    floor = back / h2d if h2d and back > 0 else None
    secs = up["total"]["seconds"]
    res[f"park-{tag}"] = {"parkSeconds": pk["total"]["seconds"], "parkPhases": {p["name"]: p["seconds"] for p in pk["phases"]},
                          "unparkSeconds": secs, "unparkPhases": {p["name"]: p["seconds"] for p in up["phases"]},
                          "gpuBytesBack": back, "floorSeconds": floor, "efficiency": floor / secs if floor else None, "firstAnswer": an}
weights = load("weights.json")  # HOOK_LEVEL=2: the weights the wake-up reads back from their files
if ok(hooks):
    hd = hooks["details"]
    img = hd["imageBytes"]
    hk = hd["kinds"] if isinstance(hd["kinds"], dict) else {}
    gpu = hk.get("gpuStateBytes") or 0
    wb = weights["bytes"] if weights else 0
    shrunk = snap["details"]["imageBytes"] - img if ok(snap) else None
    res["hooks"] = {"imageBytes": img, "kinds": hd["kinds"], "shrunkBytes": shrunk, "cold": hd["cold"], "weights": weights}
    # every way this run restored the hooked image (HOOK_RESTORES: warm, cold, -huge, -pf, -cs)
    prefix = f"restore-{mode}-hooks-"
    tags = sorted(f[len(prefix):-5] for f in os.listdir(out) if f.startswith(prefix) and f.endswith(".json"))
    res["hooks"]["coldStartFromColdDisk"] = os.path.exists(os.path.join(out, "cold-start-disk.json"))
    for tag in tags:
        r = load(f"{prefix}{tag}.json")
        if ok(r):
            rr = r["details"]["restored"]
            key = "restoreCold" if tag == "cold" else f"restore-{tag}"
            # The floor counts the weights the wake-up reads back (level 2): from the page cache at the link's rate,
            # from a cold disk at the disk's.
            gpu_s = (rr.get("gpuRestoreSeconds") or 0) + (rr.get("gpuUnlockSeconds") or 0)
            if tag.startswith("warm"):
                m, h2d = rate("memcpyBytesPerSecond"), rate("pinnedH2DBytesPerSecond")
                floor = img / m + (gpu + wb) / h2d if m and h2d else None
            else:
                d = rate("diskBytesPerSecond")
                floor = (img + wb) / d + gpu_s if d else None
            total = rr["totalSeconds"]
            # the prefetch's rate against the probe that reads as it reads (one thread of 16 MiB preads): its own way
            # of reading vs the disk's state, when the probe ran
            pf = r["details"].get("prefetch") or {}
            way = rate("diskPreadSeqBytesPerSecond")
            pf_ratio = pf["coldBytesPerSecond"] / way if pf.get("coldBytesPerSecond") and way else None
            # what the disk delivered during the restore (snapshot-gpu.sh disk-*.json, /proc/diskstats sectors read)
            disk = load(f"disk-{mode}-hooks-{tag}.json") or {}
            read = (disk["after"][1] - disk["before"][1]) * 512 if disk.get("before") and disk.get("after") else None
            # PROBE_AROUND=1: the floor at the disk's best rate measured right after this restore (one stream, O_DIRECT
            # or coldstart_load's own way, whichever was fastest; the disk drifts)
            probe = load(f"probe-{mode}-hooks-{tag}.json") or {}
            beside = probe.get("diskBytesPerSecond") or probe.get("diskOneStreamAllBytesPerSecond")
            floor_beside = (img + wb) / beside + gpu_s if beside and not tag.startswith("warm") else None
            # The same with everything else the restore needs and no way can skip: the server's library pages it read
            # from the disk (its working set, not in the image) and the server's own answer (AFTER_ANSWERS: the median of
            # its answers after the first, the decode with nothing of the restore left)
            ws = r["details"].get("workingSet") or {}
            libs = max(0, (ws.get("bytes") or 0) - (ws.get("residentBefore") or 0))
            after = (load(f"answers-{mode}-hooks-{tag}.json") or {}).get("seconds") or []
            own = sorted(after)[len(after) // 2] if after else None
            floor_all = (img + wb + libs) / beside + gpu_s + own if beside and own is not None and not tag.startswith("warm") else None
            res["hooks"][key] = {"imageRead": r["details"].get("imageRead"), "diskBesideBytesPerSecond": beside, "floorBesideSeconds": floor_beside,
                                 "efficiencyBeside": floor_beside / total if floor_beside else None, "prefetchVsPreadProbe": pf_ratio,
                                 "diskBesideOneStreamBytesPerSecond": probe.get("diskOneStreamAllBytesPerSecond"),
                                 "diskBesideDirectBytesPerSecond": probe.get("diskDirectBytesPerSecond"),
                                 "libraryBytesFromDisk": libs, "serverAnswerSeconds": own, "floorBesideAllSeconds": floor_all,
                                 "efficiencyBesideAll": floor_all / total if floor_all else None,
                                 "diskReadBytes": read, "workingSet": r["details"].get("workingSet"),
                                 "totalSeconds": total, "phases": {p["name"]: p["seconds"] for p in r["phases"]},
                                 "floorSeconds": floor, "efficiency": floor / total if floor else None,
                                 "firstRequestSeconds": (rr.get("firstRequest") or {}).get("seconds"),
                                 "identical": (rr.get("firstRequest") or {}).get("sameAsSnapshot"), "speedup": r["details"]["speedup"]}
elif hooks is not None:
    res["hooks"] = {"error": hooks.get("error")}
if snap is not None and not ok(snap):
    res["snapshotError"] = snap.get("error")
json.dump(res, open(os.path.join(out, f"summary-{mode}.json"), "w"), indent=1)
print(json.dumps(res, indent=1))
