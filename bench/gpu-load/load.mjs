#!/usr/bin/env node
// Drives coldstart's gpu-load engine directly (dist/load/gpu-load.js), for experiments and the benchmark.
//   node bench/gpu-load/load.mjs PATH [--cache cold|warm|as-is] [--chunk 16M] [--threads N] [--buffers N]
//        [--streams N] [--direct] [--limits] [--verify] [--repeat N] [--host] [--devices 0,1] [--tp N] [--label X]
//   node bench/gpu-load/load.mjs PATH --sweep warm|cold     (one JSON line per setting, best last)
// Prints one JSON line per run: {label, cache, seconds, bytesPerSecond, efficiency, ...}.
import { fileURLToPath } from 'node:url';
import { cliArgs } from '../lib/args.mjs';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { runGpuLoad } = await import(join(root, 'dist', 'load', 'gpu-load.js'));
const { weightsAt } = await import(join(root, 'dist', 'load', 'weights.js'));

const { args, opt, flag } = cliArgs();
const path = args.find((a, i) => !a.startsWith('--') && !(i > 0 && args[i - 1].startsWith('--') && !['--direct', '--limits', '--verify', '--host'].includes(args[i - 1])));
const size = (s) => {
  const m = /^(\d+)([KMG]?)$/i.exec(s);
  if (!m) throw new Error(`bad size ${s}`);
  return Number(m[1]) * { '': 1, K: 1024, M: 1 << 20, G: 1 << 30 }[m[2].toUpperCase()];
};
const files = weightsAt(path, { formats: ['safetensors'] }).files;

function summary(label, r) {
  return {
    label,
    mode: r.mode,
    cache: r.cache.requested,
    residentBefore: r.cache.residentFractionBefore,
    bytes: r.bytes,
    seconds: r.seconds,
    GBps: r.bytesPerSecond / 1e9,
    setupSeconds: r.setupSeconds,
    allocSeconds: r.allocSeconds,
    ringSeconds: r.ringSeconds,
    readSeconds: r.readSeconds,
    copySeconds: r.copySeconds,
    overlap: r.overlapFraction,
    readLimitGBps: r.limits?.readBytesPerSecond ? r.limits.readBytesPerSecond / 1e9 : undefined,
    h2dGBps: r.limits?.h2dBytesPerSecond ? r.limits.h2dBytesPerSecond / 1e9 : undefined,
    d2hGBps: r.limits?.d2hBytesPerSecond ? r.limits.d2hBytesPerSecond / 1e9 : undefined,
    efficiency: r.efficiency,
    verify: r.verify,
    config: r.config,
    devices: r.devices.map((d) => ({ index: d.index, name: d.name, GBps: d.bytesPerSecond / 1e9 })),
    ...(r.tp ? { tp: { ...r.tp, ranks: r.tp.ranks.map((k) => ({ ...k, GBps: k.bytesPerSecond / 1e9 })) } } : {}),
    notes: [...(r.cache.note ? [r.cache.note] : []), ...r.notes],
  };
}

const base = {
  files,
  cache: opt('--cache', 'as-is'),
  verify: flag('--verify'),
  limits: flag('--limits'),
  host: flag('--host'),
  ...(opt('--devices') ? { devices: opt('--devices').split(',').map(Number) } : {}),
  ...(opt('--tp') ? { tp: Number(opt('--tp')) } : {}),
  ...(opt('--chunk') ? { chunkBytes: size(opt('--chunk')) } : {}),
  ...(opt('--threads') ? { threads: Number(opt('--threads')) } : {}),
  ...(opt('--buffers') ? { buffers: Number(opt('--buffers')) } : {}),
  ...(opt('--streams') ? { streams: Number(opt('--streams')) } : {}),
  ...(flag('--direct') ? { direct: true } : {}),
  // --config '{"chunkBytes":…,"threads":…}' (e.g. the config of a sweep's best line)
  ...(opt('--config') ? JSON.parse(opt('--config')) : {}),
};

const sweep = opt('--sweep');
if (sweep) {
  const M = 1 << 20;
  const settings =
    sweep === 'warm'
      ? [
          { chunkBytes: 4 * M, threads: 8, buffers: 10 },
          { chunkBytes: 4 * M, threads: 8, buffers: 10, ring: 'register' },
          { chunkBytes: 2 * M, threads: 8, buffers: 10 },
          { chunkBytes: 2 * M, threads: 8, buffers: 10, ring: 'register' },
          { chunkBytes: 8 * M, threads: 8, buffers: 10, ring: 'register' },
          { chunkBytes: 4 * M, threads: 8, buffers: 16, ring: 'register' },
          { chunkBytes: 4 * M, threads: 12, buffers: 14, ring: 'register' },
          { chunkBytes: 4 * M, threads: 6, buffers: 8 },
          { chunkBytes: 4 * M, threads: 8, buffers: 10 },
          { chunkBytes: 4 * M, threads: 8, buffers: 10, ring: 'register' },
        ]
      : [
          { chunkBytes: 4 * M, threads: 8, buffers: 10, direct: true },
          { chunkBytes: 4 * M, threads: 8, buffers: 10, direct: true, ring: 'register' },
          { chunkBytes: 16 * M, threads: 16, buffers: 32, direct: true },
          { chunkBytes: 16 * M, threads: 16, buffers: 32, direct: true, ring: 'register' },
        ];
  let best;
  for (const s of settings) {
    const r = await runGpuLoad({ ...base, ...s, cache: sweep, verify: false, limits: false });
    const line = summary(`sweep-${sweep}`, r);
    console.log(JSON.stringify(line));
    if (!best || line.GBps > best.GBps) best = line;
  }
  console.log(JSON.stringify({ ...best, label: `best-${sweep}` }));
} else {
  const n = Number(opt('--repeat', '1'));
  for (let i = 0; i < n; i++) {
    const r = await runGpuLoad(base);
    console.log(JSON.stringify(summary(opt('--label', 'coldstart'), r)));
  }
}
