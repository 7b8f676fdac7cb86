// What the real driver answers when a cuCheckpointProcess* call comes in the wrong state or past its lock timeout —
// the errors src/snapshot/native.ts checkpointHint explains — recorded on a GPU machine, each call with the process's
// state before and after, to $OUT/checkpoint-errors.json (committed under fixtures/cuda-checkpoint/ with a .source
// note; test/snapshot/checkpoint-errors.test.ts checks the hints against it). Run from the staged folder
// (bench/gpu-load/stage.sh): `bash device-run.sh node test/device/checkpoint-errors.mjs`.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { loadNative } from '../../dist/native.js';
import { checkpointHint } from '../../dist/snapshot/native.js';

const n = loadNative();
if (!n.ok) throw new Error(n.reason);
const addon = n.addon;
const py = spawn('python3', [new URL('./cuda_sleeper.py', import.meta.url).pathname], { stdio: ['pipe', 'pipe', 'inherit'] });
const lines = createInterface({ input: py.stdout });
// The sleeper's lines in order, none lost before someone waits for them; its exit ends every wait.
const got = [];
const waiting = [];
lines.on('line', (l) => (waiting.length ? waiting.shift()(l) : got.push(l)));
py.on('exit', (c) => waiting.splice(0).forEach((w) => w(`EXIT ${c}`)));
const next = () => (got.length ? Promise.resolve(got.shift()) : new Promise((resolve) => waiting.push(resolve)));
const expectLine = async (want) => {
  const l = await next();
  if (l !== want) throw new Error(`the CUDA process said ${l}, expected ${want}`);
};
const state = async (pid) => (await addon.cudaCheckpoint({ pid, action: 'state' }).catch((e) => ({ state: `error ${e.code}` }))).state;
const calls = [];
async function call(label, action, o = {}, pid = py.pid) {
  const before = await state(pid);
  const t0 = performance.now();
  const r = await addon.cudaCheckpoint({ pid, action, ...o }).then(
    () => ({ ok: true }),
    (e) => ({ ok: false, code: e.code, message: e.message }),
  );
  const row = { label, action, ...o, before, after: await state(pid), seconds: (performance.now() - t0) / 1000, ...r, hint: r.ok ? null : checkpointHint(r.code, action) };
  calls.push(row);
  console.log(JSON.stringify(row));
  return row;
}

await expectLine('READY');
await call('unlock while running', 'unlock');
await call('checkpoint while running (not locked)', 'checkpoint');
await call('restore while running', 'restore');
await call('lock', 'lock');
await call('lock while locked', 'lock');
await call('restore while locked', 'restore');
await call('unlock', 'unlock');
// A kernel spinning ~8 s: the lock waits for submitted work, here longer than its timeout.
py.stdin.write('spin 8\n');
await expectLine('SPINNING');
const timed = await call('lock with in-flight work past a 500 ms timeout', 'lock', { timeoutMs: 500 });
if (timed.ok) await call('unlock (the lock did not wait)', 'unlock');
await expectLine('SPUN');
await call('lock', 'lock');
await call('checkpoint', 'checkpoint');
await call('checkpoint while checkpointed', 'checkpoint');
await call('unlock while checkpointed', 'unlock');
await call('lock while checkpointed', 'lock');
await call('restore', 'restore');
await call('unlock', 'unlock');
const sleeper = spawn('sleep', ['30']);
await call('state of a process without CUDA', 'state', {}, sleeper.pid);
await call('lock of a process without CUDA', 'lock', {}, sleeper.pid);
sleeper.kill();
py.stdin.end();
const mem = await addon.gpuMemory().catch(() => null);
writeFileSync(join(process.env.OUT ?? '/tmp', 'checkpoint-errors.json'), `${JSON.stringify({ date: new Date().toISOString(), driver: mem?.driverVersion ?? null, gpu: mem?.devices?.[0]?.name ?? null, calls }, null, 1)}\n`);
