#!/usr/bin/env bash
# Device proof for issue 15 (one GPU; ~7 minutes, hard-capped by BUDGET_S, default 420 s of measuring after setup).
#
#   OUT=/tmp/out NODE=.dev/node bash test/device/gpuload-limit.sh
#
# Needs: dist/, build/Release/coldstart.node, node_modules (carried), python3 with torch + safetensors + transformers,
# optionally the peers fastsafetensors and InstantTensor importable (installed, or built beforehand into PEER_PATH).
# In ONE run, each load in a fresh process, two interleaved rounds (warm set, cold set, warm set, cold set):
#   coldstart ring (default threads), ring with threads = cores, mapped (cuMemHostRegister READ_ONLY of the page
#   cache), each with --limits (pinned H2D and read limits measured in the same process) and --verify;
#   fastsafetensors (nogds) and InstantTensor (safe_open over the shard list, device 0) when importable; safetensors.load_file(device="cuda"); transformers
#   from_pretrained(device_map="cuda"); cold: safetensors and transformers again with `coldstart prefetch DIR &`
#   started at the same moment as the Python process (the container-start pattern); prefetch alone per strategy.
# Writes to $OUT (flat): env.txt, log.txt, results.jsonl, summary.json, summary.md.
# Exit: 0 when every measurement ran and verify saw 0 mismatches; 1 otherwise (missing pieces say "not measured").
set -u
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/coldstart-gpuload-limit}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
NODE="${NODE:-node}"
command -v "$NODE" >/dev/null || { [ -x .dev/node ] && NODE=$PWD/.dev/node; }
PY="${COLDSTART_PYTHON:-python3}"
ROOT="${CKPT_ROOT:-/tmp/cs-limit}"
BUDGET_S="${BUDGET_S:-420}"
R="$OUT/results.jsonl"
: >"$R"
H=test/device/gpuload-limit.mjs
P=test/device/gpuload_peers.py
T0=$(date +%s)
log() { echo "=== $(date +%T) $*"; }
note() { echo "{\"what\":\"note\",\"text\":\"$*\"}" >>"$R"; log "$*"; }
left() { echo $((BUDGET_S - ($(date +%s) - TM))); }
CORES=$(nproc)

{ date -u; uname -r; nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.current,pcie.link.width.current --format=csv 2>&1; echo "cores $CORES"; free -g; df -h /tmp; "$NODE" --version 2>&1; $PY -c 'import torch,safetensors,transformers;print("torch",torch.__version__,"safetensors",safetensors.__version__,"transformers",transformers.__version__)' 2>&1; } >"$OUT/env.txt"
cat "$OUT/env.txt"
if ! "$NODE" --version >/dev/null 2>&1; then note "not measured: no node (set NODE)"; exit 1; fi
if ! [ -f build/Release/coldstart.node ] || ! [ -d dist ]; then note "not measured: dist/ or build/Release/coldstart.node missing (carry them)"; exit 1; fi
if ! nvidia-smi >/dev/null 2>&1; then
  note "not measured: no GPU (nvidia-smi failed): coldstart ran in host mode and the peers could not load"
  # ALLOW_NO_GPU=1 (with CS_MODEL=demo) exercises the whole pipeline on a CPU host; otherwise stop here.
  [ "${ALLOW_NO_GPU:-0}" = 1 ] || exit 1
fi

# The peers (fastsafetensors, InstantTensor) are used when importable: installed, or built beforehand from their
# public sources into folders named by PEER_PATH (colon-separated, prepended to PYTHONPATH). This repository never
# carries their code or a recipe that builds it.
PEERS="${PEER_PATH:-}"
peer_ok() { PYTHONPATH="$PEERS${PYTHONPATH:+:$PYTHONPATH}" $PY -c "import $1" >/dev/null 2>&1; }
log "synthetic ${CS_MODEL:-llama3-8b} (shape-accurate, random bytes)"
"$NODE" $H write "$ROOT" | tee -a "$R"
DIR=$(tail -1 "$R" | $PY -c 'import json,sys;print(json.load(sys.stdin).get("dir",""))')
[ -n "$DIR" ] && [ -f "$DIR/config.json" ] || { note "not measured: the synthetic checkpoint was not written"; exit 1; }
FST_OK=0 IT_OK=0
peer_ok fastsafetensors && FST_OK=1 || note "fastsafetensors not measured: not importable (install it or set PEER_PATH)"
peer_ok instanttensor && IT_OK=1 || note "instanttensor not measured: not importable (install it or set PEER_PATH)"
TM=$(date +%s)

evict() { "$NODE" $H evict "$DIR" >>"$R"; }
warm() { "$NODE" bin/coldstart.js prefetch "$DIR" --json | $PY -c 'import json,sys;d=json.load(sys.stdin);d["what"]="prefetch-warmup";print(json.dumps({k:d[k] for k in ("what","bytes","seconds","residency")}))' >>"$R"; }
cs() { # label round cache json
  [ "$(left)" -gt 20 ] || { note "not measured: $1 round $2 ($3): time budget spent"; return; }
  evict_or_warm "$3"
  CS_LAUNCH_EPOCH=$(date +%s.%N) "$NODE" $H load "$DIR" "$1" "$2" "$4" | tee -a "$R"
}
peer() { # what round cache [prefetch]
  local label=$1; [ -n "${4:-}" ] && label="$1+prefetch"
  [ "$1" = fastsafetensors ] && [ $FST_OK = 0 ] && return
  [ "$1" = instanttensor ] && [ $IT_OK = 0 ] && return
  [ "$(left)" -gt 30 ] || { note "not measured: $label round $2 ($3): time budget spent"; return; }
  evict_or_warm "$3"
  local pf=""
  export CS_LAUNCH_EPOCH=$(date +%s.%N)
  if [ -n "${4:-}" ]; then
    "$NODE" bin/coldstart.js prefetch "$DIR" --json >/tmp/cs-pf.json 2>/dev/null &
    pf=$!
  fi
  PYTHONPATH="$PEERS${PYTHONPATH:+:$PYTHONPATH}" $PY $P "$1" "$DIR" "$label" "$2" "$3" | tee -a "$R"
  if [ -n "$pf" ]; then
    wait $pf
    $PY -c 'import json,sys;d=json.load(open("/tmp/cs-pf.json"));print(json.dumps({"what":"prefetch-beside","with":sys.argv[1],"round":int(sys.argv[2]),"bytes":d["bytes"],"seconds":d["seconds"],"rate":d["bytesPerSecond"],"residency":d["residency"],"strategy":d["strategy"]}))' "$1" "$2" >>"$R" 2>/dev/null
  fi
  unset CS_LAUNCH_EPOCH
}
evict_or_warm() { if [ "$1" = cold ]; then evict; else warm; fi; }

log "device checks: RAII after the native rework (existing gpuload-device.mjs + mapped-path checks)"
"$NODE" test/device/gpuload-device.mjs "$DIR" 2>&1 | tee /tmp/cs-devchecks.txt | tail -12
tail -1 /tmp/cs-devchecks.txt | grep '^{' | $PY -c 'import json,sys;d=json.load(sys.stdin);d["what"]="device-checks";print(json.dumps(d))' >>"$R" || note "device checks did not finish (see log.txt)"
"$NODE" $H checks "$DIR" | tee -a "$R"

LIMITS='"limits":true,"verify":true'
for round in 1 2; do
  log "round $round: warm"
  cs ring "$round" warm "{\"cache\":\"warm\",$LIMITS}"
  cs ring-threads-$CORES "$round" warm "{\"cache\":\"warm\",$LIMITS,\"threads\":$CORES,\"buffers\":$((CORES + 2))}"
  cs mapped "$round" warm "{\"cache\":\"warm\",$LIMITS,\"path\":\"mapped\",\"chunkBytes\":67108864,\"threads\":8}"
  peer fastsafetensors "$round" warm
  peer instanttensor "$round" warm
  peer safetensors "$round" warm
  peer transformers "$round" warm
  log "round $round: cold"
  # The cold read limit costs a disk read: measured in round 1 only.
  if [ "$round" = 1 ]; then cs ring "$round" cold "{\"cache\":\"cold\",$LIMITS}"; else cs ring "$round" cold '{"cache":"cold","verify":true}'; fi
  peer fastsafetensors "$round" cold
  peer instanttensor "$round" cold
  peer safetensors "$round" cold
  peer safetensors "$round" cold prefetch
  peer transformers "$round" cold
  peer transformers "$round" cold prefetch
done
log "prefetch strategies, cold"
for s in readahead pread fadvise; do
  [ "$(left)" -gt 15 ] || { note "not measured: prefetch $s: time budget spent"; continue; }
  "$NODE" bin/coldstart.js prefetch "$DIR" --strategy "$s" --evict --json | $PY -c 'import json,sys;d=json.load(sys.stdin);print(json.dumps({"what":"prefetch","strategy":d["strategy"],"bytes":d["bytes"],"seconds":d["seconds"],"rate":d["bytesPerSecond"],"residency":d["residency"],"fallbackBytes":d["fallbackBytes"]}))' | tee -a "$R"
done

log "summary"
$PY - "$R" "$OUT" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
out = sys.argv[2]
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
def pick(what, label, cache):
    return [r for r in rows if r.get("what") == what and r.get("label") == label and r.get("cache") == cache and "error" not in r]
table, summary = [], {"loaders": {}, "prefetch": {}, "notes": [r["text"] for r in rows if r.get("what") == "note"]}
errors = [r for r in rows if "error" in r]
labels = [("coldstart", l) for l in dict.fromkeys(r["label"] for r in rows if r.get("what") == "coldstart")] + \
         [(w, w) for w in ("fastsafetensors", "instanttensor", "safetensors", "transformers", "safetensors+prefetch", "transformers+prefetch")]
for what, label in labels:
    w = "coldstart" if what == "coldstart" else label.split("+")[0]
    ent = {}
    for cache in ("warm", "cold"):
        rs = pick(w, label, cache)
        if not rs:
            ent[cache] = None
            continue
        e = {"runs": len(rs), "loadSeconds": med([r.get("loadSeconds") for r in rs]), "totalSeconds": med([r.get("totalSeconds") for r in rs]),
             "bytesPerSecond": med([r.get("bytesPerSecond") for r in rs]), "bytes": rs[0].get("bytes")}
        if w == "coldstart":
            e.update(efficiencyVsLink=med([r.get("efficiencyVsLink") for r in rs]), efficiencyVsDisk=med([r.get("efficiencyVsDisk") for r in rs]),
                     h2dBytesPerSecond=med([r.get("h2dBytesPerSecond") for r in rs]), readBytesPerSecond=med([r.get("readBytesPerSecond") for r in rs]),
                     verifyMismatches=sum((r.get("verify") or {}).get("mismatches", 0) for r in rs), verifyChecked=sum((r.get("verify") or {}).get("checked", 0) for r in rs),
                     registerSeconds=med([r.get("registerSeconds") for r in rs]))
        ent[cache] = e
    summary["loaders"][label] = ent
for stack in ("safetensors", "transformers"):
    base = summary["loaders"].get(stack, {}) or {}
    pf = summary["loaders"].get(stack + "+prefetch", {}) or {}
    if base.get("cold") and pf.get("cold"):
        summary["prefetch"][stack] = {
            "coldTotalSeconds": base["cold"]["totalSeconds"], "coldWithPrefetchTotalSeconds": pf["cold"]["totalSeconds"],
            "warmTotalSeconds": (base.get("warm") or {}).get("totalSeconds"),
            "savedSeconds": base["cold"]["totalSeconds"] - pf["cold"]["totalSeconds"]}
    else:
        summary["prefetch"][stack] = "not measured"
summary["prefetchStrategies"] = [r for r in rows if r.get("what") == "prefetch"]
summary["errors"] = errors
summary["checks"] = [r for r in rows if r.get("what") in ("device-checks", "mapped-checks")]
checkFailures = sum(r.get("failures", 0) for r in summary["checks"])
mm = sum((e or {}).get("verifyMismatches", 0) for l in summary["loaders"].values() for e in l.values() if e)
summary["verifyMismatches"] = mm
def f(x, d=2): return "not measured" if x is None else f"{x:.{d}f}"
def cell(e):
    if not e: return "not measured"
    return f"{f(e['loadSeconds'])} s, {f(e['bytesPerSecond'] / 1e9 if e['bytesPerSecond'] else None, 1)} GB/s (total {f(e['totalSeconds'])} s)"
md = ["# gpu-load at the link's limit (issue 15) — test/device/gpuload-limit.sh", "", open(out + "/env.txt").read().strip().replace("\n", "  \n"), "",
      "Median of the rounds; load = the loader call, synchronised; total = process launch → loaded (imports, CUDA context, load).", "",
      "| loader | warm page cache | cold page cache |", "|---|---|---|"]
for label, ent in summary["loaders"].items():
    md.append(f"| {label} | {cell(ent.get('warm'))} | {cell(ent.get('cold'))} |")
md += ["", "coldstart against its own limits (same process):", "", "| strategy | cache | GB/s | pinned H2D GB/s | read limit GB/s | vs link | vs disk | verify |", "|---|---|---|---|---|---|---|---|"]
for label, ent in summary["loaders"].items():
    for cache in ("warm", "cold"):
        e = ent.get(cache)
        if not e or "efficiencyVsLink" not in e: continue
        md.append(f"| {label} | {cache} | {f(e['bytesPerSecond']/1e9,1)} | {f((e['h2dBytesPerSecond'] or 0)/1e9 or None,1)} | {f((e['readBytesPerSecond'] or 0)/1e9 or None,1)} | {f(e['efficiencyVsLink'])} | {f(e['efficiencyVsDisk'])} | {e['verifyChecked']} checked, {e['verifyMismatches']} mismatches |")
md += ["", "prefetch started together with the stack (cold cache), process totals:", ""]
for k, v in summary["prefetch"].items():
    md.append(f"- {k}: " + (v if isinstance(v, str) else f"cold {f(v['coldTotalSeconds'])} s → with prefetch {f(v['coldWithPrefetchTotalSeconds'])} s (saved {f(v['savedSeconds'])} s; warm {f(v['warmTotalSeconds'])} s)"))
md += ["", "prefetch alone, cold, per strategy:", ""] + [f"- {r['strategy']}: {f(r['seconds'])} s, {f(r['rate']/1e9)} GB/s, residency {r['residency']}" for r in summary["prefetchStrategies"]]
if errors: md += ["", "errors:", ""] + [f"- {r.get('label', r.get('what'))} round {r.get('round')}: {r['error']}" for r in errors]
if summary["notes"]: md += ["", "notes:", ""] + [f"- {n}" for n in summary["notes"]]
md += ["", "device checks: " + ", ".join(f"{r['what']}: {r.get('failures')} failed" for r in summary["checks"]) if summary["checks"] else "device checks: not measured"]
for r in summary["checks"]:
    for c in r.get("checks", []):
        md.append(f"- {'PASS' if c['ok'] else 'FAIL'} {c['name']}: {c['info']}")
md += ["", f"verify mismatches: {mm}"]
json.dump(summary, open(out + "/summary.json", "w"), indent=2)
open(out + "/summary.md", "w").write("\n".join(md) + "\n")
print("\n".join(md))
sys.exit(0 if (mm == 0 and not errors and not summary["notes"] and checkFailures == 0 and summary["checks"]) else 1)
PYEOF
rc=$?
log "done in $(( $(date +%s) - T0 )) s, exit $rc"
rm -rf "$ROOT"
exit $rc
