#!/usr/bin/env node
// Which files of a snapshot's working set the page cache never holds, however often they are read ahead. On the lent
// H100 hosts (2026-12-06) restore's read-ahead of the 8B server's working set (0.09 GB, 99.4-99.97 % resident before)
// took 0.58-0.67 s: the addon's fadvise wait saw some pages never arrive, sat out its 0.5 s and read them with pread.
// Not a memory filesystem (the device proof named none). This reads each file's ranges ahead twice, one file at a
// time, and names those whose ranges are still not all resident the second time: path, filesystem type, size, the
// bytes missing, and how long each read ahead took. Prints one JSON document. Needs `npm run build` (dist/, addon).
//   node bench/snapshot/ws-stuck.mjs IMAGE_DIR   (the kept working-set.restored.json if there, else the manifest's)
import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { planWorkingSet, addonReadRanges } from '../../dist/snapshot/working-set.js';

const image = process.argv[2];
if (!image) {
  console.error('usage: node bench/snapshot/ws-stuck.mjs IMAGE_DIR');
  process.exit(2);
}
const kept = join(image, 'working-set.restored.json');
const keptDoc = existsSync(kept) ? JSON.parse(readFileSync(kept, 'utf8')) : null;
const ws = keptDoc?.workingSet ?? JSON.parse(readFileSync(join(image, 'manifest.json'), 'utf8')).workingSet;
if (!ws?.files) {
  console.error(`${image}: no working set (neither ${kept} nor the manifest's)`);
  process.exit(2);
}
const plan = await planWorkingSet(ws);
const signal = new AbortController().signal;
const fsType = (p) => spawnSync('stat', ['-f', '-c', '%T', p], { encoding: 'utf8' }).stdout.trim() || null;
const stuck = [];
let slowest = 0;
let slowestFile = null; // the first pass that took longest: which file, its filesystem, what the addon did for it
for (let i = 0; i < plan.paths.length; i++) {
  const path = plan.paths[i];
  const ranges = plan.ranges[i];
  const first = await addonReadRanges([path], [ranges], signal);
  const again = await addonReadRanges([path], [ranges], signal);
  if (first.seconds > slowest) {
    slowest = first.seconds;
    slowestFile = { path, fs: null, bytes: first.bytes, residentBefore: first.residentBefore, seconds: first.seconds, fallbackBytes: first.fallbackBytes, readvisedBytes: first.readvisedBytes };
  }
  if (again.residentBefore !== null && again.residentBefore < again.bytes) {
    const size = ws.files.find((f) => f.path === path)?.bytes ?? null;
    const lastEnd = Math.max(...ranges.filter((_, k) => k % 2 === 0).map((off, k) => off + ranges[2 * k + 1]));
    stuck.push({ path, fs: fsType(path), size, bytes: again.bytes, missing: again.bytes - again.residentBefore, rangesToEof: size !== null && lastEnd >= size, seconds: [first.seconds, again.seconds], fallbackBytes: [first.fallbackBytes, again.fallbackBytes] });
  }
}
if (slowestFile) slowestFile.fs = fsType(slowestFile.path);
const all = await addonReadRanges(plan.paths, plan.ranges, signal);
console.log(JSON.stringify({ source: keptDoc?.workingSet ? kept : 'manifest', files: plan.paths.length, bytes: plan.bytes, skipped: plan.skipped.length, slowestFileSeconds: slowest, slowestFile, wholeSetAgain: all, stuck }, null, 1));
