#!/usr/bin/env node
// `coldstart prefetch --hold` under memory pressure: does a warm node stay warm? Two files of the same size, both read
// into the page cache; one held (`prefetch FILE --hold`), the other not (the control, in the same run). Then a process
// takes all but --leave GiB of the memory still available (bench/lib/take-memory.mjs: anonymous memory, touched, as a
// server's heap is), keeps it a moment and ends. After: each file's residency (mincore) and the time to read it whole
// (the control first: what it lost comes from the disk). Rounds alternate which file is held. Usage:
//   node bench/prefetch/hold-pressure.mjs [--gib 2] [--leave 1] [--rounds 3] [--dir /var/tmp] [--out FILE.jsonl]
import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, fsyncSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliArgs } from '../lib/args.mjs';

const cli = cliArgs();
const a = { gib: Number(cli.opt('--gib', '2')), leave: Number(cli.opt('--leave', '1')), rounds: Number(cli.opt('--rounds', '3')), dir: cli.opt('--dir', '/var/tmp'), out: cli.opt('--out', '') };
const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const bin = here('../../bin/coldstart.js');
const { requireNative } = await import(here('../../dist/native.js'));
const addon = requireNative('bench');
const GiB = 2 ** 30;
const now = () => Number(process.hrtime.bigint()) / 1e9;

const dir = mkdtempSync(join(a.dir, 'cs-hold-bench-'));
const files = ['x.bin', 'y.bin'].map((n) => join(dir, n));
const chunk = Buffer.alloc(64 << 20);
for (const f of files) {
  const fd = openSync(f, 'w');
  for (let i = 0; i < (a.gib * GiB) / chunk.length; i++) writeSync(fd, randomFillSync(chunk));
  fsyncSync(fd);
  closeSync(fd);
}
const resident = async (p) => {
  const [e] = await addon.pageCache({ paths: [p], action: 'query' });
  return e.residentBytes / e.bytes;
};
const readWhole = (p) => {
  const fd = openSync(p, 'r');
  const t = now();
  let n = 0;
  for (let r; (r = readSync(fd, chunk, 0, chunk.length, n)) > 0; ) n += r;
  closeSync(fd);
  return n / (now() - t);
};
/** bench/lib/take-memory.mjs: a process takes all but --leave GiB of the memory available, keeps it 2 s, and ends. */
const pressure = () =>
  new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [here('../lib/take-memory.mjs'), '--leave', String(a.leave), '--keep-ms', '2000'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.on('exit', (code, sig) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`take-memory ended ${code ?? sig}`))));
  });
const holder = (p) =>
  new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [bin, 'prefetch', p, '--hold', '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d) => {
      out += d;
      try {
        resolve({ child: c, doc: JSON.parse(out) });
      } catch {
        /* not whole yet */
      }
    });
    c.on('exit', (code) => reject(new Error(`prefetch --hold ended ${code}`)));
  });

try {
  for (let round = 0; round < a.rounds; round++) {
    const [held, control] = round % 2 ? [files[1], files[0]] : [files[0], files[1]];
    for (const f of files) readWhole(f); // both in the page cache
    const h = await holder(held);
    const before = { held: await resident(held), control: await resident(control) };
    const t = now();
    const { took: take, room } = await pressure();
    const pressureSeconds = now() - t;
    const after = { held: await resident(held), control: await resident(control) };
    // The control first: what it lost comes from the disk (the disk floor of this run); then the held file.
    const controlRate = readWhole(control);
    const heldRate = readWhole(held);
    h.child.kill('SIGTERM');
    await new Promise((r) => h.child.on('exit', r));
    const row = {
      round,
      date: new Date().toISOString(),
      fileBytes: a.gib * GiB,
      took: take,
      room,
      pressureSeconds,
      residentBefore: before,
      residentAfter: after,
      readBytesPerSecond: { held: heldRate, control: controlRate },
      heldOverControl: heldRate / controlRate,
      holdSeconds: h.doc.hold.seconds,
    };
    console.log(JSON.stringify(row));
    if (a.out) appendFileSync(a.out, `${JSON.stringify(row)}\n`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
