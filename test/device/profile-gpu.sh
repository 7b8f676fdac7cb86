#!/usr/bin/env bash
# Device proof for `coldstart profile` (run on a GPU machine; needs only node, dist/, build/Release/coldstart.node
# and the runtime node_modules; python3 is used for the independent measurements, torch when present).
#
#   test/device/profile-gpu.sh                 # llama3-8b, synthetic safetensors (16 GB)
#   MODEL=tinyllama-1.1b test/device/profile-gpu.sh
#
# 1. writes the synthetic checkpoint (not timed: not part of a cold start);
# 2. --estimate first (moves no weight bytes), then a measured run with --cache cold, timed from outside;
# 3. independent measurements of the same steps in fresh processes: cuInit / primary context through Python
#    ctypes on libcuda, a naive sequential loader (read into pinned memory + cuMemcpyHtoD, cold cache), and
#    torch's own CUDA init and safetensors→cuda load when torch is installed;
# 4. a run with --framework safetensors when torch + safetensors are installed;
# 5. checks: each phase vs its independent measurement, predicted/measured gpu-load within ±25%, and the sum of
#    the phases (plus the work coldstart reports as outside the phases) vs the wall clock within 5%.
# Exit 0 when every check passes, 1 otherwise. Artifacts in $OUT (default /tmp/coldstart-profile-gpu).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL="${MODEL:-llama3-8b}"
OUT="${OUT:-/tmp/coldstart-profile-gpu}"
mkdir -p "$OUT"
export COLDSTART_CACHE="${COLDSTART_CACHE:-$OUT/cache}"
export HF_HUB_OFFLINE=1
CS=(node bin/coldstart.js)
PY="${COLDSTART_PYTHON:-python3}"
log() { echo "== $*" >&2; }

log "machine"
nvidia-smi --query-gpu=name,memory.total,pcie.link.gen.max,pcie.link.width.max,driver_version --format=csv,noheader >&2 || true
node -v >&2
"${CS[@]}" --version >&2

log "1. synthetic $MODEL (written once, cached in $COLDSTART_CACHE)"
"${CS[@]}" profile "$MODEL" --synthetic --only cuda-init -q > /dev/null
DIR="$COLDSTART_CACHE/synthetic/$MODEL-bf16-safetensors"
ls -la "$DIR" >&2

log "2a. estimate (no weight bytes moved)"
"${CS[@]}" profile "$MODEL" --synthetic --estimate --cache cold --json > "$OUT/estimate.json" || true

log "2b. measured run, --cache cold, wall clock from outside"
node -e '
const { spawnSync } = require("child_process"); const fs = require("fs");
const [out, model] = process.argv.slice(1);
const t0 = process.hrtime.bigint();
const r = spawnSync(process.execPath, ["bin/coldstart.js", "profile", model, "--synthetic", "--cache", "cold", "--json", "--export-markdown", out + "/profile.md"], { encoding: "utf8", maxBuffer: 1 << 26 });
const wall = Number(process.hrtime.bigint() - t0) / 1e9;
fs.writeFileSync(out + "/profile.json", r.stdout); process.stderr.write(r.stderr);
fs.writeFileSync(out + "/wall.json", JSON.stringify({ wallSeconds: wall, exit: r.status }));
' "$OUT" "$MODEL"
"${CS[@]}" profile "$MODEL" --synthetic --cache cold | tee "$OUT/profile.txt" >&2 || true

log "3. independent measurements (fresh processes)"
"$PY" - "$DIR" > "$OUT/independent.json" <<'PY'
import ctypes, glob, json, os, sys, time
d = sys.argv[1]
files = sorted(glob.glob(os.path.join(d, "*.safetensors")))
out = {}
t = time.perf_counter(); cu = ctypes.CDLL("libcuda.so.1"); out["dlopen"] = time.perf_counter() - t
t = time.perf_counter(); assert cu.cuInit(0) == 0; out["cuInit"] = time.perf_counter() - t
n = ctypes.c_int(); dev = ctypes.c_int()
t = time.perf_counter(); cu.cuDeviceGetCount(ctypes.byref(n)); cu.cuDeviceGet(ctypes.byref(dev), 0); out["enumerate"] = time.perf_counter() - t
ctx = ctypes.c_void_p(); free = ctypes.c_size_t(); tot = ctypes.c_size_t()
t = time.perf_counter()
assert cu.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev) == 0
assert cu.cuCtxSetCurrent(ctx) == 0
assert cu.cuMemGetInfo_v2(ctypes.byref(free), ctypes.byref(tot)) == 0
out["context"] = time.perf_counter() - t
# Naive sequential loader: cold cache, read 64 MiB into pinned memory, copy to the GPU, repeat.
CH = 64 << 20
total = sum(os.path.getsize(f) for f in files)
dptr = ctypes.c_uint64(); hptr = ctypes.c_void_p()
assert cu.cuMemAlloc_v2(ctypes.byref(dptr), ctypes.c_size_t(total)) == 0
assert cu.cuMemHostAlloc(ctypes.byref(hptr), ctypes.c_size_t(CH), 0) == 0
buf = (ctypes.c_char * CH).from_address(hptr.value)
mv = memoryview(buf).cast("B")
for f in files:
    fd = os.open(f, os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
t = time.perf_counter(); off = 0; rd = 0.0
for f in files:
    with open(f, "rb", buffering=0) as fh:
        while True:
            r0 = time.perf_counter(); k = fh.readinto(mv); rd += time.perf_counter() - r0
            if not k: break
            assert cu.cuMemcpyHtoD_v2(ctypes.c_uint64(dptr.value + off), hptr, ctypes.c_size_t(k)) == 0
            off += k
cu.cuCtxSynchronize()
out["naiveLoad"] = {"seconds": time.perf_counter() - t, "readSeconds": rd, "bytes": off}
cu.cuMemFree_v2(dptr); cu.cuMemFreeHost(hptr)
print(json.dumps(out))
PY
cat "$OUT/independent.json" >&2
if "$PY" -c "import torch, safetensors; assert torch.cuda.is_available()" 2>/dev/null; then
  "$PY" - "$DIR" > "$OUT/torch.json" <<'PY'
import glob, json, os, sys, time
t = time.perf_counter(); import torch; from safetensors.torch import load_file; imp = time.perf_counter() - t
t = time.perf_counter(); torch.cuda.init(); torch.zeros(1, device="cuda"); torch.cuda.synchronize(); init = time.perf_counter() - t
files = sorted(glob.glob(os.path.join(sys.argv[1], "*.safetensors")))
for f in files:
    fd = os.open(f, os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
t = time.perf_counter(); n = 0; keep = []
for f in files:
    sd = load_file(f, device="cuda"); keep.append(sd); n += sum(v.numel() * v.element_size() for v in sd.values())
torch.cuda.synchronize(); load = time.perf_counter() - t
print(json.dumps({"import": imp, "cudaInit": init, "load": load, "bytes": n, "torch": torch.__version__}))
PY
  cat "$OUT/torch.json" >&2
  log "4. --framework safetensors (your stack next to the floor)"
  "${CS[@]}" profile "$MODEL" --synthetic --cache cold --framework safetensors --json > "$OUT/framework.json" || true
  "${CS[@]}" profile "$MODEL" --synthetic --cache cold --framework safetensors | tee "$OUT/framework.txt" >&2 || true
else
  echo '{}' > "$OUT/torch.json"
  log "4. torch/safetensors with CUDA not installed: framework comparison skipped"
fi

log "5. checks"
node - "$OUT" <<'JS'
const fs = require('fs');
const dir = process.argv[2];
const rd = (f) => JSON.parse(fs.readFileSync(`${dir}/${f}`, 'utf8'));
const prof = rd('profile.json'), est = rd('estimate.json'), ind = rd('independent.json'), torch = rd('torch.json'), wall = rd('wall.json');
const ph = (r, n) => r.phases.find((p) => p.name === n);
let failed = 0;
const check = (name, ok, detail) => { console.log(`${ok ? 'PASS' : 'FAIL'} ${name}: ${detail}`); if (!ok) failed++; };
const near = (a, b, rel, abs) => Math.abs(a - b) <= Math.max(abs, rel * Math.max(a, b));
const ci = ph(prof, 'cuda-init');
check('cuda-init measured', ci.status === 'ok', ci.status === 'ok' ? `${ci.seconds.toFixed(3)} s` : ci.reason);
if (ci.status === 'ok') {
  const step = (n) => ci.steps.find((s) => s.name.startsWith(n))?.seconds ?? NaN;
  check('cuInit vs ctypes cuInit', near(step('cuInit'), ind.cuInit, 0.5, 0.05), `coldstart ${step('cuInit').toFixed(3)} s, ctypes ${ind.cuInit.toFixed(3)} s`);
  check('primary context vs ctypes', near(step('primary context gpu0'), ind.context, 0.5, 0.05), `coldstart ${step('primary context gpu0').toFixed(3)} s, ctypes ${ind.context.toFixed(3)} s`);
  if (torch.cudaInit) console.log(`info torch's own CUDA init (cudart + context): ${torch.cudaInit.toFixed(3)} s vs coldstart cuda-init ${ci.seconds.toFixed(3)} s`);
}
const gl = ph(prof, 'gpu-load');
if (gl.status === 'ok') {
  const bytes = gl.metrics.bytes ?? prof.details.gpuLoad?.bytes;
  check('gpu-load bytes = files', Math.abs(bytes - ind.naiveLoad.bytes) <= ind.naiveLoad.bytes * 0.001, `${bytes} vs ${ind.naiveLoad.bytes}`);
  check('gpu-load not slower than a naive sequential loader', gl.seconds <= ind.naiveLoad.seconds * 1.25, `coldstart ${gl.seconds.toFixed(2)} s, naive ${ind.naiveLoad.seconds.toFixed(2)} s (read ${ind.naiveLoad.readSeconds.toFixed(2)} s)`);
  if (torch.load) check('torch safetensors load (cold) is not faster than the floor', torch.load >= gl.seconds * 0.8, `torch ${torch.load.toFixed(2)} s, coldstart ${gl.seconds.toFixed(2)} s`);
  const e = ph(est, 'gpu-load');
  if (e && e.status === 'estimated') check('estimate within ±25%', Math.abs(e.seconds / gl.seconds - 1) <= 0.25, `predicted ${e.seconds.toFixed(2)} s, measured ${gl.seconds.toFixed(2)} s (${((e.seconds / gl.seconds - 1) * 100).toFixed(1)}%)`);
} else {
  const host = gl.metrics.hostReadBytesPerSecond;
  console.log(`info gpu-load skipped (${gl.reason}); host read ${(host / 1e9).toFixed(2)} GB/s vs naive read ${(ind.naiveLoad.bytes / ind.naiveLoad.readSeconds / 1e9).toFixed(2)} GB/s (cold)`);
  check('gpu-load measured on a GPU machine', false, 'the GPU loader engine is not in this build');
}
// Sum of phases (what ran inside this process) + the work reported outside the phases vs the wall clock.
const inside = prof.phases.reduce((a, p) => a + (p.status === 'ok' ? p.seconds : 0), 0) - (ph(prof, 'container')?.steps.find((s) => s.name.startsWith('init'))?.seconds ?? 0);
const o = prof.details.wall.outside ?? {};
const outside = Object.values(o).reduce((a, b) => a + b, 0);
console.log(`info outside the phases: ${JSON.stringify(o)}`);
const internalWall = prof.details.wall.seconds;
const inOutside = outside - (o.nodeStartup ?? 0);
check('phases + reported extras vs internal wall within 5%', Math.abs(inside + inOutside - internalWall) <= 0.05 * internalWall, `phases ${inside.toFixed(3)} s + outside ${inOutside.toFixed(3)} s vs ${internalWall.toFixed(3)} s`);
check('sum of phases vs wall clock (outside the process) within 5%', Math.abs(inside + outside - wall.wallSeconds) <= 0.05 * wall.wallSeconds, `phases ${inside.toFixed(3)} s + outside ${outside.toFixed(3)} s vs wall ${wall.wallSeconds.toFixed(3)} s (node start-up and exit included)`);
process.exit(failed ? 1 : 0);
JS
