"""The three ways back, each against its own floor, from one run of test/device/snapshot-gpu.sh.

  python snapshot_summary.py OUT MODE      → OUT/summary-MODE.json (and printed)

unpark: GPU bytes / pinned H2D; restore from the page cache: image bytes / memcpy + GPU bytes / H2D; restore from a
cold disk: image bytes / disk rate + the GPU restore measured. Efficiency = floor / yours. Missing inputs give null
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
if ok(hooks):
    hd = hooks["details"]
    shrunk = snap["details"]["imageBytes"] - hd["imageBytes"] if ok(snap) else None
    res["hooks"] = {"imageBytes": hd["imageBytes"], "kinds": hd["kinds"], "shrunkBytes": shrunk, "cold": hd["cold"]}
    for tag in ("warm", "warm-huge", "cold", "cold-huge"):
        r = load(f"restore-{mode}-hooks-{tag}.json")
        if ok(r):
            rr = r["details"]["restored"]
            key = "restoreCold" if tag == "cold" else f"restore-{tag}"
            res["hooks"][key] = {"totalSeconds": rr["totalSeconds"], "phases": {p["name"]: p["seconds"] for p in r["phases"]},
                                 "identical": (rr.get("firstRequest") or {}).get("sameAsSnapshot"), "speedup": r["details"]["speedup"]}
elif hooks is not None:
    res["hooks"] = {"error": hooks.get("error")}
if snap is not None and not ok(snap):
    res["snapshotError"] = snap.get("error")
json.dump(res, open(os.path.join(out, f"summary-{mode}.json"), "w"), indent=1)
print(json.dumps(res, indent=1))
