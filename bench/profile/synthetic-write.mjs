#!/usr/bin/env node
// Side by side in one run: writing a synthetic checkpoint (safetensors and torch .bin) vs writing the same
// number of random bytes with a bare loop (same chunk size, same disk). The ratio is the writer's overhead.
// Usage: node bench/profile/synthetic-write.mjs [alias=tinyllama-1.1b] [dir=/tmp]
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { join } from 'node:path';
import { ensureSyntheticModel, planSynthetic } from '../../dist/models/synthetic.js';
import { findModel } from '../../dist/models/table.js';

const alias = process.argv[2] ?? 'tinyllama-1.1b';
const base = mkdtempSync(join(process.argv[3] ?? '/tmp', 'cs-bench-'));
const spec = findModel(alias);
const bytes = planSynthetic(spec, 'safetensors').bytes;
const now = () => Number(process.hrtime.bigint()) / 1e9;
function rawWrite() {
  const t = now();
  const fd = openSync(join(base, 'raw.bin'), 'wx');
  const buf = Buffer.allocUnsafe(16 << 20);
  for (let done = 0; done < bytes; ) {
    const n = Math.min(buf.length, bytes - done);
    randomFillSync(buf, 0, n);
    writeSync(fd, buf, 0, n);
    done += n;
  }
  fsyncSync(fd);
  closeSync(fd);
  const s = now() - t;
  rmSync(join(base, 'raw.bin'));
  return s;
}
try {
  // raw first and last: the mean is the baseline, the spread shows the disk's run-to-run noise.
  const raw1 = rawWrite();
  const rows = [];
  for (const fmt of ['safetensors', 'bin']) {
    const t = now();
    await ensureSyntheticModel(spec, fmt, join(base, fmt));
    rows.push([`synthetic ${fmt}`, now() - t]);
    rmSync(join(base, fmt), { recursive: true, force: true });
  }
  const raw2 = rawWrite();
  const raw = (raw1 + raw2) / 2;
  rows.unshift(['raw random write (1st)', raw1], ['raw random write (2nd)', raw2]);
  console.log(`${alias}: ${(bytes / 1e9).toFixed(2)} GB of tensor data`);
  for (const [name, s] of rows) console.log(`${name.padEnd(22)} ${s.toFixed(2)} s  ${(bytes / s / 1e9).toFixed(2)} GB/s  ×${(s / raw).toFixed(2)} of raw`);
} finally {
  rmSync(base, { recursive: true, force: true });
}
