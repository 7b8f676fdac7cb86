#!/usr/bin/env node
// Tensor-parallel loads on a machine with fewer GPUs than ranks (issue #29's one-GPU run): every rank on the same
// card (device 0, its primary context shared, each rank on its own streams), straight through the addon (profile
// --tp wants distinct GPUs). Checks what a multi-GPU run will check — each chunk read once, every copy's first row
// verified, per-rank finish — and compares the rate with the plain load of the same files in the same run.
//   node bench/gpu-load/tp-one-gpu.mjs WEIGHTS [--tp 2,4] [--cache warm|cold|as-is]
// One JSON line per load. Without a GPU the ranks are host buffers (the code path the tests cover).
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { cliArgs } from '../lib/args.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { runGpuLoad, prepareFiles, planChunks, planSamples, DEFAULTS } = await import(join(root, 'dist', 'load', 'gpu-load.js'));
const { planTp, readTpConfig } = await import(join(root, 'dist', 'load', 'tp.js'));
const { weightsAt } = await import(join(root, 'dist', 'load', 'weights.js'));
const { requireNative } = await import(join(root, 'dist', 'native.js'));

const { args, opt } = cliArgs();
const files = weightsAt(args.find((a) => !a.startsWith('--')), { formats: ['safetensors'] }).files;
const cache = opt('--cache', 'warm');
const addon = requireNative('tp bench');
const plain = await runGpuLoad({ files, cache, limits: true });
const gpu = plain.mode === 'gpu';
console.log(JSON.stringify({ label: 'plain', mode: plain.mode, bytes: plain.bytes, seconds: plain.seconds, GBps: plain.bytesPerSecond / 1e9, h2dGBps: (plain.limits?.h2dBytesPerSecond ?? 0) / 1e9 }));
const prep = prepareFiles(files);
const chunkBytes = DEFAULTS.chunkBytes;
for (const tp of opt('--tp', '2,4').split(',').map(Number)) {
  const plan = planTp(prep.headers, prep.paths, tp, chunkBytes, readTpConfig(prep.paths[0]));
  if (cache === 'cold') await addon.pageCache({ paths: prep.paths, action: 'evict' });
  if (cache === 'warm') await runGpuLoad({ files, cache: 'warm', host: true, hostSink: 'discard' });
  const r = await addon.gpuLoad({
    mode: gpu ? 'gpu' : 'host',
    sink: gpu ? 'device' : 'memory',
    files: prep.paths.map((path, i) => ({ path, begin: prep.headers[i].dataOffset, end: prep.headers[i].dataOffset + prep.headers[i].dataSize, device: gpu ? 0 : -1 })),
    plan: planChunks(prep.headers.map((h) => ({ begin: h.dataOffset, end: h.dataOffset + h.dataSize })), chunkBytes),
    chunkBytes,
    threads: DEFAULTS.threads,
    buffers: DEFAULTS.threads + 2,
    streams: 2,
    ring: 'register',
    samples: planSamples(prep.headers).subarray(0, 3),
    tp: { devices: plan.ranks.map(() => (gpu ? 0 : -1)), bytes: plan.ranks.map((k) => k.bytes), ops: plan.ops },
  });
  console.log(
    JSON.stringify({
      label: `tp${tp}-one-card`,
      mode: r.mode,
      readBytes: r.bytes,
      readOnce: r.bytes === plan.readBytes,
      deliveredBytes: plan.deliveredBytes,
      seconds: r.seconds,
      GBpsDelivered: plan.deliveredBytes / r.seconds / 1e9,
      copies: plan.ops.length / 8,
      verify: r.verify,
      ranks: r.tp.ranks.map((k, i) => ({ rank: i, bytes: k.bytes, seconds: k.seconds })),
    }),
  );
  if (r.verify?.mismatches) process.exitCode = 1;
}
