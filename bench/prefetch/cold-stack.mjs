#!/usr/bin/env node
// Issue 25: does `coldstart prefetch` beside a cold Python stack help or hurt it? Each trial drops the stack's own
// files (the interpreter's stdlib and packages, as `prefetch --stack` finds them) and the weights from the page cache
// (posix_fadvise DONTNEED through the addon: no root needed), then starts bench/prefetch/stack_start.py (import torch
// + transformers, load the weights) in one of three ways, interleaved:
//   none     the stack alone
//   weights  `coldstart prefetch DIR &` started with it (the weights only)
//   stack    `coldstart prefetch DIR --stack PY &` (its stack first, then the weights)
// and records the stack's import seconds, load seconds and wall. Usage:
//   node bench/prefetch/cold-stack.mjs --python PY --weights DIR [--rounds 3] [--out FILE.jsonl]
import { spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { cliArgs } from '../lib/args.mjs';

const cli = cliArgs();
const a = { python: cli.opt('--python', 'python3'), weights: cli.opt('--weights', ''), rounds: cli.opt('--rounds', '3'), out: cli.opt('--out', '') };
if (!a.weights) throw new Error('--weights DIR (a folder of .safetensors)');
const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const bin = here('../../bin/coldstart.js');
const { requireNative } = await import(here('../../dist/native.js'));
const { stackFiles } = await import(here('../../dist/load/stack-files.js'));
const { resolveWeights } = await import(here('../../dist/load/weights.js'));
const addon = requireNative('bench');
const stack = await stackFiles(a.python, process.env);
const weights = (await resolveWeights(a.weights, { env: process.env, anyFile: true })).files;
const resident = async (paths) => {
  const q = await addon.pageCache({ paths, action: 'query' });
  return q.reduce((s, e) => s + (e.residentBytes ?? 0), 0) / Math.max(1, q.reduce((s, e) => s + e.bytes, 0));
};
const evict = async () => {
  await addon.pageCache({ paths: stack.files, action: 'evict' });
  await addon.pageCache({ paths: weights, action: 'evict' });
  return { stack: await resident(stack.files), weights: await resident(weights) };
};
const run = (cmd, args) =>
  new Promise((resolve) => {
    const t = process.hrtime.bigint();
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.on('close', (code) => resolve({ code, out, seconds: Number(process.hrtime.bigint() - t) / 1e9 }));
  });

console.error(`stack: ${stack.files.length} files, ${(stack.bytes / 1e9).toFixed(2)} GB (${stack.packages.map((p) => p.name).join(', ')}); weights: ${weights.length} files`);
for (let round = 1; round <= Number(a.rounds); round++) {
  for (const mode of ['none', 'weights', 'stack']) {
    const before = await evict();
    const pf = mode === 'none' ? null : run(process.execPath, [bin, 'prefetch', a.weights, '--json', ...(mode === 'stack' ? ['--stack', a.python] : [])]);
    const s = await run(a.python, [here('stack_start.py'), a.weights]);
    const p = pf ? await pf : null;
    const j = JSON.parse(s.out.trim().split('\n').at(-1));
    const row = { round, mode, residentBefore: before, wallSeconds: s.seconds, ...j, prefetchSeconds: p?.seconds ?? null, stackBytes: stack.bytes, weightsBytes: j.bytes, date: new Date().toISOString() };
    console.log(JSON.stringify(row));
    if (a.out) appendFileSync(a.out, `${JSON.stringify(row)}\n`);
  }
}
