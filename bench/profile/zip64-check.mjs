#!/usr/bin/env node
// Exercises the torch writer's ZIP64 paths (a record larger than 4 GiB and offsets past 4 GiB) and checks the
// result with the real readers: torch.load(weights_only=True, mmap=True) and Python's zipfile (CRC of every
// record). Needs ~4.4 GB of free disk in the target dir and the peer Python (COLDSTART_PYTHON).
// Usage: node bench/profile/zip64-check.mjs [dir]
import { closeSync, openSync, rmSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { writeTorchCheckpoint } from '../../dist/formats/torch-writer.js';

const dir = process.argv[2] ?? '/tmp';
const path = join(dir, `zip64-check-${process.pid}.bin`);
const big = 4_400_000_000; // > 4 GiB: needs ZIP64 sizes; the next record needs a ZIP64 offset
const tensors = [
  { name: 'big', dtype: 'U8', shape: [big] },
  { name: 'after', dtype: 'F32', shape: [3, 4] },
];
const t0 = performance.now();
const fd = openSync(path, 'wx');
try {
  await writeTorchCheckpoint(fd, tensors, (i, chunk, off) => {
    if (i === 1) for (let k = 0; k < chunk.length; k++) chunk[k] = (off + k) & 0xff;
    else chunk.fill((off / chunk.length) & 0xff);
  }, { chunkBytes: 64 << 20 });
} finally {
  closeSync(fd);
}
const wrote = (performance.now() - t0) / 1000;
const py = process.env.COLDSTART_PYTHON ?? 'python3';
const r = spawnSync(py, ['-c', `
import sys, zipfile, torch
z = zipfile.ZipFile(sys.argv[1])
infos = {i.filename: i for i in z.infolist()}
assert infos["archive/data/0"].file_size == ${big}, infos["archive/data/0"].file_size
assert infos["archive/data/1"].header_offset > 2**32
bad = z.testzip()
assert bad is None, bad
sd = torch.load(sys.argv[1], weights_only=True, mmap=True)
assert sd["big"].shape == (${big},) and sd["big"].dtype == torch.uint8
assert sd["after"].view(-1).view(torch.uint8).tolist() == [k & 0xff for k in range(48)]
print("ok: zip64 size and offset records read by zipfile (CRC verified) and torch.load(weights_only=True, mmap=True)")
`, path], { encoding: 'utf8' });
const size = statSync(path).size;
rmSync(path, { force: true });
process.stdout.write(`wrote ${(size / 1e9).toFixed(2)} GB in ${wrote.toFixed(1)} s\n${r.stdout}${r.stderr}`);
process.exit(r.status ?? 1);
