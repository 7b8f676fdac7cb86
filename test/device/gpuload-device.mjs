#!/usr/bin/env node
// GPU checks of the gpu-load engine (not part of CI: needs a CUDA GPU). Run from the repo root after building:
//   node test/device/gpuload-device.mjs [BENCH_DIR]
// Prints PASS/FAIL per check and exits 1 if any failed. BENCH_DIR (a big checkpoint, e.g. the one
// bench/gpu-load/make_checkpoint.py writes) makes the cancellation and O_DIRECT checks meaningful.
import { closeSync, mkdtempSync, openSync, rmSync, writeSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { runGpuLoad, planChunks, planSamples, prepareFiles } = await import(join(root, 'dist/load/gpu-load.js'));
const { weightsAt } = await import(join(root, 'dist/load/weights.js'));
const safetensorsIn = (p) => weightsAt(p, { formats: ['safetensors'] }).files;
const { requireNative } = await import(join(root, 'dist/native.js'));
const { buildHeader } = await import(join(root, 'dist/formats/safetensors.js'));
const addon = requireNative('device test');
const benchDir = process.argv[2];
let failures = 0;
const results = [];
async function check(name, fn) {
  try {
    const info = await fn();
    results.push({ name, ok: true, info });
    console.log(`PASS ${name}${info ? ` — ${info}` : ''}`);
  } catch (e) {
    failures++;
    results.push({ name, ok: false, error: String(e?.stack ?? e) });
    console.log(`FAIL ${name} — ${e?.code ?? ''} ${e?.message ?? e}`);
  }
}
const assert = (c, m) => {
  if (!c) throw new Error(m);
};
const GiB = 2 ** 30;
const fixtures = [...safetensorsIn(join(root, 'fixtures/gpuload/sharded')), join(root, 'fixtures/gpuload/single.safetensors')];
const probe = await addon.cudaProbe({ context: false });
assert(probe.available, `no GPU: ${probe.reason}`);
const count = probe.devices.length;
const free0 = (await addon.deviceMemInfo(0)).free;

await check('fixtures load onto GPU 0 and verify (4 KiB chunks, 2-buffer ring, 4 threads)', async () => {
  const r = await runGpuLoad({ files: fixtures, verify: true, chunkBytes: 4096, threads: 4, buffers: 2, cache: 'cold' });
  assert(r.mode === 'gpu', `mode ${r.mode}`);
  assert(r.verify.mismatches === 0 && r.verify.checked > 30, JSON.stringify(r.verify));
  return `${r.bytes} bytes, ${r.verify.checked} samples equal`;
});

await check('a corrupted byte on the GPU is caught by verify', async () => {
  const prep = prepareFiles(fixtures);
  const files = prep.paths.map((path, i) => ({ path, begin: prep.headers[i].dataOffset, end: prep.headers[i].dataOffset + prep.headers[i].dataSize, device: 0 }));
  const r = await addon.gpuLoad({ mode: 'gpu', sink: 'device', files, plan: planChunks(files, 1 << 20), samples: planSamples(prep.headers), chunkBytes: 1 << 20, threads: 2, buffers: 4, testCorrupt: true });
  assert(r.verify.mismatches === 1, JSON.stringify(r.verify));
  return r.verify.firstMismatch;
});

await check('more than the card has free is refused before anything is allocated', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cs-oom-'));
  try {
    const n = Math.ceil((free0 + 2 * GiB) / 8) * 8;
    const { bytes } = buildHeader([{ name: 'huge', dtype: 'U8', shape: [n] }]);
    const p = join(dir, 'huge.safetensors');
    const fd = openSync(p, 'w');
    writeSync(fd, bytes);
    ftruncateSync(fd, bytes.length + n); // sparse
    closeSync(fd);
    const before = (await addon.deviceMemInfo(0)).free;
    let err;
    try {
      await runGpuLoad({ files: [p] });
    } catch (e) {
      err = e;
    }
    assert(err?.code === 'GPU_OOM' && err.exitCode === 3, `expected GPU_OOM, got ${err?.code}: ${err?.message}`);
    const after = (await addon.deviceMemInfo(0)).free;
    assert(Math.abs(after - before) < 16 * 2 ** 20, `free memory moved: ${before} → ${after}`);
    return err.message;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

if (benchDir) {
  const files = safetensorsIn(benchDir);
  await check('device memory is released after a load (free before == after)', async () => {
    const before = (await addon.deviceMemInfo(0)).free;
    const r = await runGpuLoad({ files, cache: 'warm' });
    const after = (await addon.deviceMemInfo(0)).free;
    assert(Math.abs(after - before) < 16 * 2 ** 20, `free ${before} → ${after}`);
    return `${(r.bytesPerSecond / 1e9).toFixed(2)} GB/s, free ${before} → ${after}`;
  });
  await check('cancelling mid-load rejects with INTERRUPTED and releases device memory', async () => {
    const before = (await addon.deviceMemInfo(0)).free;
    const ac = new AbortController();
    let seen = 0;
    let err;
    try {
      await runGpuLoad({
        files,
        cache: 'cold',
        signal: ac.signal,
        onProgress: (done) => {
          seen = done;
          if (done > 0) ac.abort();
        },
      });
    } catch (e) {
      err = e;
    }
    assert(err?.code === 'INTERRUPTED', `expected INTERRUPTED, got ${err?.code}: ${err?.message}`);
    const after = (await addon.deviceMemInfo(0)).free;
    assert(Math.abs(after - before) < 16 * 2 ** 20, `free ${before} → ${after}`);
    return `stopped after ${seen} bytes`;
  });
  await check('O_DIRECT load, cold, verified', async () => {
    const r = await runGpuLoad({ files, cache: 'cold', direct: true, verify: true, threads: 16 });
    assert(r.verify.mismatches === 0, JSON.stringify(r.verify));
    return `${(r.bytesPerSecond / 1e9).toFixed(2)} GB/s, direct=${r.files.map((f) => f.direct).join(',')}, notes: ${r.notes.join('; ') || 'none'}`;
  });
  await check('huge-page registered ring (ring: register), warm, verified', async () => {
    const r = await runGpuLoad({ files, cache: 'warm', ring: 'register', verify: true });
    assert(r.verify.mismatches === 0 && r.config.ring === 'register', JSON.stringify(r.verify));
    return `${(r.bytesPerSecond / 1e9).toFixed(2)} GB/s, ring ${r.ringSeconds.toFixed(3)} s (summed over threads)`;
  });
  if (count > 1) {
    await check(`files spread over ${count} GPUs, verified`, async () => {
      const devices = [...Array(count).keys()];
      const r = await runGpuLoad({ files, devices, cache: 'warm', verify: true, limits: true });
      assert(r.devices.length === Math.min(count, files.length), `devices used: ${r.devices.length}`);
      assert(r.verify.mismatches === 0, JSON.stringify(r.verify));
      return r.devices.map((d) => `GPU ${d.index} ${(d.bytesPerSecond / 1e9).toFixed(2)} GB/s`).join(', ') + `; aggregate ${(r.bytesPerSecond / 1e9).toFixed(2)} GB/s`;
    });
  }
}
await check('device index beyond the visible GPUs is a usage error (exit 2)', async () => {
  let err;
  try {
    await runGpuLoad({ files: fixtures, devices: [count] });
  } catch (e) {
    err = e;
  }
  assert(err?.exitCode === 2, `got ${err?.code}`);
  return err.message;
});
console.log(JSON.stringify({ deviceChecks: results.length, failures }));
process.exit(failures ? 1 : 0);
