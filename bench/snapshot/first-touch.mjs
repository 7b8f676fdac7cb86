#!/usr/bin/env node
// How fast fresh memory faults in here, cold and right after it was freed, on 1..N threads (restore's warm-up of free
// memory, src/snapshot/warm-memory.ts): each reading is the addon's warmMemory (native/src/memwarm.cc) over BYTES of
// huge-page-advised memory, touched and unmapped. "cold": after PAUSE seconds with that memory free (a VM with free page
// reporting hands it back to its host meanwhile); "again": straight after the reading before (the same pages, still
// backed). Prints one JSON line per reading and a last one with whether this machine reports free pages.
//   node bench/snapshot/first-touch.mjs [GiB=2] [threads=1,4,8,15] [pause=4]     (needs `npm run build`, the addon)
import { loadNative } from '../../dist/native.js';
import { freePageReporting } from '../../dist/platform/balloon.js';

const gib = Number(process.argv[2] ?? 2);
const threads = (process.argv[3] ?? '1,4,8,15').split(',').map(Number);
const pause = Number(process.argv[4] ?? 4);
const n = loadNative();
if (!n.ok) {
  console.error(`first-touch: the addon is not available: ${n.reason}`);
  process.exit(3);
}
const bytes = Math.round(gib * 2 ** 30);
const sleep = (s) => new Promise((r) => setTimeout(r, s * 1000));
for (const t of threads) {
  await sleep(pause);
  for (const when of ['cold', 'again']) {
    const r = await n.addon.warmMemory({ bytes, threads: t });
    console.log(JSON.stringify({ when, threads: r.threads, bytes: r.bytes, touchSeconds: r.touchSeconds, seconds: r.seconds, touchBytesPerSecond: r.bytes / r.touchSeconds }));
  }
}
console.log(JSON.stringify({ freePageReporting: freePageReporting() }));
