#!/usr/bin/env node
// How close `profile --estimate` lands to the load it predicts, on a machine without a GPU: a local safetensors
// model of random bytes (nothing compresses), and for each cache state interleaved pairs of (the estimate, the
// native loader in host mode on the whole model) — a drift of a shared disk or CPUs hits both sides of a pair
// alike — then the median of the pair ratios. The target is 0.75–1.25 (it was a unit-test assert until
// 2026-12-05; timing asserts live here). Prints one JSON document; exit 1 when a median is outside the target.
// Usage: npm run build && node bench/profile/estimate-accuracy.mjs [--pairs 5] [--mib 256] [--probe-mib 128] [--dir /tmp]
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildHeader } from '../../dist/formats/safetensors.js';
import { cliArgs } from '../lib/args.mjs';

const { opt } = cliArgs();
const pairs = Number(opt('--pairs', 5));
const mib = Number(opt('--mib', 256));
const probeMib = Number(opt('--probe-mib', 128));
const root = fileURLToPath(new URL('../../', import.meta.url));
const bin = join(root, 'bin/coldstart.js');
const tmp = mkdtempSync(join(opt('--dir', '/tmp'), 'cs-estimate-'));
const model = join(tmp, 'model');
const env = { ...process.env, COLDSTART_CACHE: join(tmp, 'cache'), HF_HUB_OFFLINE: '1', HF_HOME: join(tmp, 'hf') };

function write() {
  mkdirSync(model, { recursive: true });
  const shard = 64;
  const n = Math.max(1, Math.round(mib / shard));
  const { bytes: header } = buildHeader(Array.from({ length: n }, (_, i) => ({ name: `w${i}`, dtype: 'U8', shape: [shard << 20] })));
  const fd = openSync(join(model, 'model.safetensors'), 'w');
  const buf = Buffer.allocUnsafe(16 << 20);
  try {
    writeSync(fd, header);
    for (let i = 0; i < (n * shard) / 16; i++) writeSync(fd, randomFillSync(buf));
  } finally {
    closeSync(fd);
  }
}

function gpuLoad(args) {
  const out = execFileSync(process.execPath, [bin, 'profile', model, '--json', '--probe-bytes', String(probeMib << 20), ...args], { env, encoding: 'utf8', maxBuffer: 64 << 20 });
  return JSON.parse(out).phases.find((p) => p.name === 'gpu-load');
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

try {
  write();
  const result = { date: new Date().toISOString(), cpus: cpus().length, cpu: cpus()[0]?.model, loadavg: loadavg(), node: process.version, modelMiB: mib, probeMiB: probeMib, pairs, caches: {} };
  let ok = true;
  for (const cache of ['cold', 'warm']) {
    const predicted = [];
    const measured = [];
    for (let i = 0; i < pairs; i++) {
      const est = gpuLoad(['--estimate', '--cache', cache]);
      if (est.status !== 'estimated') throw new Error(`--estimate --cache ${cache}: gpu-load is ${est.status}, not estimated`);
      predicted.push(est.seconds);
      measured.push(gpuLoad(['--cache', cache, '--only', 'gpu-load']).metrics.hostReadSeconds);
    }
    const ratios = predicted.map((e, i) => e / measured[i]);
    const med = median(ratios);
    const pass = med > 0.75 && med < 1.25;
    ok &&= pass;
    result.caches[cache] = { predicted, measured, ratios, medianRatio: med, target: '0.75–1.25', pass };
  }
  console.log(JSON.stringify(result, null, 2));
  process.exitCode = ok ? 0 : 1;
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
