#!/usr/bin/env node
// A cold restore's first phase, in isolation: the image read by one stream (restore's image stream: one thread of
// 16 MiB preads) while the server's working set — the pages of its libraries it had mapped — is read ahead beside it
// (restore's readWorkingSet: posix_fadvise(WILLNEED) of each range, queued at once). On the lent GPU hosts the two
// together ran at 1.4–1.5 GB/s where the disk reads one stream at 2.3–2.4 (BENCHMARKS.md 2026-12-06, hosts D1–D3).
// Does coalescing the working set's runs with a larger gap (fewer, larger requests; more bytes) help? Does opening its
// files from more threads (restore opens them from one; after echo 3 each open resolves its path from the disk) help?
//
// The working set is a real one: with --snapshot DIR, a snapshot image's own (its manifest's workingSet, recorded from
// the server's pagemap; the stream is then the image's files, in the manifest's order); without, a Python process
// that imported torch and ran a matmul (the venv's torch libraries, recorded by the product's own mappedFilePages).
// Either way coalesced by the product's own coalesce at each gap. Each round, for each gap, interleaved: the page
// cache dropped (echo 3: cold pages, dentries and inodes, as a cold node), then the stream and the working set read
// together; the time to the end of both, each one's own time, and what the disk delivered (/proc/diskstats); the same
// with the working set read first and the stream after it; and each alone, once per round. Prints one JSON document.
// Needs root (drop_caches), `npm run build` (dist/ and the addon) and, without --snapshot, the Python peers.
//   node bench/snapshot/working-set-gap.mjs --rounds 3 [--snapshot DIR | --image-gib 1.5] [--gaps 131072,1048576,8388608]
//     [--ws-threads 1,8]
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync, statSync, writeSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliArgs } from '../lib/args.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { opt } = cliArgs();
const rounds = Number(opt('--rounds', '3'));
const imageBytes = Math.round(Number(opt('--image-gib', '1.5')) * 2 ** 30);
const gaps = opt('--gaps', '131072,524288,2097152,8388608').split(',').map(Number);
const wsThreads = opt('--ws-threads', '1').split(',').map(Number);
const snapshot = opt('--snapshot', null);
const streamFile = opt('--stream-file', '/var/tmp/cs-wsgap-image.bin');
const { requireNative } = await import(join(root, 'dist', 'native.js'));
const { mappedFilePages } = await import(join(root, 'dist', 'platform', 'procfs.js'));
const { coalesce } = await import(join(root, 'dist', 'snapshot', 'working-set.js'));
const addon = requireNative('bench');
const now = () => Number(process.hrtime.bigint()) / 1e9;

// The stream's files and the working set's runs per file.
let streamPaths;
const byPath = new Map();
if (snapshot) {
  const m = JSON.parse(readFileSync(join(snapshot, 'manifest.json'), 'utf8'));
  streamPaths = m.files.map((f) => join(snapshot, f.name));
  for (const f of m.workingSet?.files ?? []) {
    const runs = [];
    for (let i = 0; i < f.ranges.length; i += 2) runs.push([f.ranges[i], f.ranges[i + 1]]);
    byPath.set(f.path, runs);
  }
  if (!byPath.size) throw new Error(`${snapshot}: its manifest records no working set`);
} else {
  // random bytes, written once and kept
  if (!existsSync(streamFile) || statSync(streamFile).size !== imageBytes) {
    const fd = openSync(streamFile, 'w');
    const block = Buffer.alloc(64 << 20);
    for (let done = 0; done < imageBytes; done += block.length) writeSync(fd, randomFillSync(block), 0, Math.min(block.length, imageBytes - done));
    closeSync(fd);
  }
  streamPaths = [streamFile];
  const python = process.env.COLDSTART_PYTHON || spawnSync(join(root, 'scripts', 'pyenv.sh'), { encoding: 'utf8' }).stdout.trim().split('\n').pop();
  const child = spawn(python, ['-c', "import sys, torch; x = torch.randn(512, 512); (x @ x).sum().item(); print('ready', flush=True); sys.stdin.read()"], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise((res, rej) => {
    child.stdout.on('data', (d) => String(d).includes('ready') && res());
    child.on('exit', (c) => rej(new Error(`python exited ${c}`)));
  });
  const maps = mappedFilePages(child.pid);
  child.stdin.end();
  child.kill();
  if (!maps) throw new Error('could not read the process pagemap (root?)');
  for (const mp of maps) byPath.set(mp.path, [...(byPath.get(mp.path) ?? []), ...mp.runs]);
}
const files = [...byPath].filter(([p]) => existsSync(p) && statSync(p).isFile());
const plan = (gap) => {
  const paths = [];
  const ranges = [];
  let bytes = 0;
  let count = 0;
  for (const [p, runs] of files) {
    const size = statSync(p).size;
    const r = [];
    for (const [off, len] of coalesce(runs, gap)) {
      const end = Math.min(off + len, size);
      if (off < end) r.push(off, end - off), (bytes += end - off), count++;
    }
    if (r.length) paths.push(p), ranges.push(r);
  }
  return { paths, ranges, bytes, count };
};

// Bytes read by the machine's whole disks, as test/device/snapshot-gpu.sh's disk_reads counts them (the same names:
// partitions and loop/zram devices left out).
const WHOLE_DISK = /^(vd[a-z]+|sd[a-z]+|xvd[a-z]+|nvme[0-9]+n[0-9]+)$/;
const diskRead = () => {
  let sectors = 0;
  for (const line of readFileSync('/proc/diskstats', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length > 5 && WHOLE_DISK.test(f[2])) sectors += Number(f[5]);
  }
  return sectors * 512;
};
const drop = () => spawnSync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);
const stream = () => addon.prefetch({ paths: streamPaths, strategy: 'pread', threads: 1, chunkBytes: 16 << 20 });
const workingSet = (p, threads) => addon.prefetch({ paths: p.paths, ranges: p.ranges, strategy: 'fadvise', threads });
const timed = async (f) => {
  const t = now();
  await f();
  return now() - t;
};

const rows = [];
const run = async (way, gap, threads, fn) => {
  drop();
  const d0 = diskRead();
  const t0 = now();
  const parts = await fn();
  rows.push({ way, gap, threads, seconds: now() - t0, ...parts, diskBytes: diskRead() - d0 });
};
for (let r = 0; r < rounds; r++) {
  await run('stream alone', null, null, async () => ({ streamSeconds: await timed(stream) }));
  for (const gap of gaps) {
    const p = plan(gap);
    for (const t of wsThreads) {
      await run('working set alone', gap, t, async () => ({ workingSetSeconds: await timed(() => workingSet(p, t)), workingSetBytes: p.bytes, ranges: p.count }));
      await run('together', gap, t, async () => {
        const [s, w] = await Promise.all([timed(stream), timed(() => workingSet(p, t))]);
        return { streamSeconds: s, workingSetSeconds: w, workingSetBytes: p.bytes, ranges: p.count };
      });
      await run('working set, then the stream', gap, t, async () => {
        const w = await timed(() => workingSet(p, t));
        return { workingSetSeconds: w, streamSeconds: await timed(stream), workingSetBytes: p.bytes, ranges: p.count };
      });
    }
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const summary = {};
for (const row of rows) {
  const k = row.gap === null ? row.way : `${row.way}, gap ${row.gap / 1024} KiB, ${row.threads} thread(s)`;
  (summary[k] ??= []).push(row);
}
const table = Object.fromEntries(
  Object.entries(summary).map(([k, rs]) => [
    k,
    { seconds: median(rs.map((x) => x.seconds)), all: rs.map((x) => +x.seconds.toFixed(3)), diskGB: +(median(rs.map((x) => x.diskBytes)) / 1e9).toFixed(3), ranges: rs[0].ranges ?? null, workingSetGB: rs[0].workingSetBytes ? +(rs[0].workingSetBytes / 1e9).toFixed(3) : null },
  ]),
);
console.log(JSON.stringify({ date: new Date().toISOString(), snapshot, streamBytes: streamPaths.reduce((a, p) => a + statSync(p).size, 0), files: files.length, rounds, table, rows }, null, 1));
