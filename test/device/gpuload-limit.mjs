#!/usr/bin/env node
// Node side of test/device/gpuload-limit.sh (issue 15). Each call is a fresh process.
//   node test/device/gpuload-limit.mjs write ROOT                 → writes the synthetic Llama 3 8B (bf16) under ROOT, prints {dir, files, bytes}
//   node test/device/gpuload-limit.mjs evict DIR                  → drops DIR's files from the page cache, prints {residentFraction}
//   node test/device/gpuload-limit.mjs load DIR LABEL ROUND JSON  → one runGpuLoad with the options in JSON, prints one result line
//   node test/device/gpuload-limit.mjs checks DIR                 → mapped-path release checks (GPU), prints one line
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { readdirSync } from 'node:fs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dist = (p) => import(join(root, 'dist', p));
const [cmd, ...args] = process.argv.slice(2);
const launched = Number(process.env.CS_LAUNCH_EPOCH || 0);

if (cmd === 'write') {
  const { ensureSyntheticModel } = await dist('models/synthetic.js');
  const { findModel } = await dist('models/table.js');
  const m = await ensureSyntheticModel(findModel(process.env.CS_MODEL || 'llama3-8b'), 'safetensors', args[0]);
  console.log(JSON.stringify({ what: 'synthetic', dir: m.dir, files: m.files.length, bytes: m.bytes, seconds: m.seconds, created: m.created }));
} else if (cmd === 'evict') {
  const { requireNative } = await dist('native.js');
  const paths = readdirSync(args[0]).map((n) => join(args[0], n));
  const r = await requireNative('evict').pageCache({ paths, action: 'evict' });
  const total = r.reduce((a, e) => a + e.bytes, 0);
  const res = r.reduce((a, e) => a + (e.residentBytes ?? Number.NaN), 0);
  console.log(JSON.stringify({ what: 'evict', residentFraction: total ? res / total : 1, notes: r.filter((e) => e.note).map((e) => e.note) }));
} else if (cmd === 'load') {
  const [dir, label, round, json] = args;
  const { runGpuLoad } = await dist('load/gpu-load.js');
  const { weightsAt } = await dist('load/weights.js');
  const opts = JSON.parse(json || '{}');
  const t0 = Date.now() / 1000;
  try {
    const r = await runGpuLoad({ files: weightsAt(dir, { formats: ['safetensors'] }).files, ...opts });
    const limitH2d = r.limits?.h2dBytesPerSecond ?? null;
    const limitRead = r.limits?.readBytesPerSecond ?? null;
    console.log(
      JSON.stringify({
        what: 'coldstart',
        label,
        round: Number(round),
        cache: r.cache.requested,
        residentBefore: r.cache.residentFractionBefore,
        bytes: r.bytes,
        loadSeconds: r.seconds,
        totalSeconds: launched ? Date.now() / 1000 - launched : Date.now() / 1000 - t0,
        bytesPerSecond: r.bytesPerSecond,
        h2dBytesPerSecond: limitH2d,
        readBytesPerSecond: limitRead,
        efficiency: r.efficiency,
        efficiencyVsLink: limitH2d ? r.bytesPerSecond / limitH2d : null,
        efficiencyVsDisk: limitRead ? r.bytesPerSecond / limitRead : null,
        readSeconds: r.readSeconds,
        copySeconds: r.copySeconds,
        overlap: r.overlapFraction,
        setupSeconds: r.setupSeconds,
        registerSeconds: r.registerSeconds ?? null,
        verify: r.verify ?? null,
        config: r.config,
        mode: r.mode,
        notes: [...(r.cache.note ? [r.cache.note] : []), ...r.notes],
      }),
    );
  } catch (e) {
    console.log(JSON.stringify({ what: 'coldstart', label, round: Number(round), cache: opts.cache, error: `${e.code ?? 'ERROR'}: ${e.message}` }));
    process.exitCode = 1;
  }
} else if (cmd === 'checks') {
  // The mapped path releases what it pins and allocates: free device memory is the same before and after a
  // verified load and after a load cancelled midway (registrations undone, device memory freed).
  const { runGpuLoad } = await dist('load/gpu-load.js');
  const { weightsAt } = await dist('load/weights.js');
  const { requireNative } = await dist('native.js');
  const addon = requireNative('checks');
  const files = weightsAt(args[0], { formats: ['safetensors'] }).files;
  const out = { what: 'mapped-checks', checks: [] };
  const check = async (name, fn) => {
    try {
      out.checks.push({ name, ok: true, info: await fn() });
    } catch (e) {
      out.checks.push({ name, ok: false, info: `${e.code ?? ''} ${e.message}` });
    }
  };
  await check('mapped: verified, device memory released', async () => {
    const before = (await addon.deviceMemInfo(0)).free;
    const r = await runGpuLoad({ files, cache: 'warm', verify: true, path: 'mapped', chunkBytes: 64 << 20 });
    const after = (await addon.deviceMemInfo(0)).free;
    if (r.config.path !== 'mapped') throw new Error(`ran ${r.config.path}`);
    if (r.verify.mismatches !== 0) throw new Error(JSON.stringify(r.verify));
    if (Math.abs(before - after) > 64 << 20) throw new Error(`free ${before} → ${after}`);
    return `${(r.bytesPerSecond / 1e9).toFixed(1)} GB/s, register ${r.registerSeconds?.toFixed(3)} s summed`;
  });
  await check('mapped: cancelled midway → INTERRUPTED, device memory released', async () => {
    const before = (await addon.deviceMemInfo(0)).free;
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 30);
    let err;
    try {
      await runGpuLoad({ files, cache: 'as-is', path: 'mapped', chunkBytes: 16 << 20, signal: ac.signal });
    } catch (e) {
      err = e;
    }
    const after = (await addon.deviceMemInfo(0)).free;
    if (err?.code !== 'INTERRUPTED') throw new Error(`expected INTERRUPTED, got ${err?.code ?? 'success'}`);
    if (Math.abs(before - after) > 64 << 20) throw new Error(`free ${before} → ${after}`);
    return 'released';
  });
  out.failures = out.checks.filter((c) => !c.ok).length;
  console.log(JSON.stringify(out));
  process.exitCode = out.failures ? 1 : 0;
} else {
  console.error('usage: gpuload-limit.mjs write ROOT | evict DIR | load DIR LABEL ROUND JSON');
  process.exit(2);
}
