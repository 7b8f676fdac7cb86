// One cold prefetch of the given files by one build of the addon (bench/gpu-load/prefetch-host.md, "per-call
// limit"): evicts them, prefetches with the given strategy on 8 threads, prints one JSON line (seconds, GB/s, what
// was left to the pread fallback and what was advised again, residency after by mincore).
//   node bench/gpu-load/prefetch-advise.mjs build/Release/coldstart.node readahead f1.bin f2.bin
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const [addonPath, strategy, ...paths] = process.argv.slice(2);
const a = require(addonPath);
await a.pageCache({ paths, action: 'evict' });
const q = await a.pageCache({ paths, action: 'query' });
const before = q.reduce((s, f) => s + f.residentBytes, 0);
const t = process.hrtime.bigint();
const r = await a.prefetch({ paths, strategy, threads: 8 });
const s = Number(process.hrtime.bigint() - t) / 1e9;
const q2 = await a.pageCache({ paths, action: 'query' });
console.log(JSON.stringify({ addon: addonPath, strategy, s: +s.toFixed(3), GBps: +(r.bytes / s / 1e9).toFixed(2), fallbackMiB: +(r.fallbackBytes / 2 ** 20).toFixed(1), readvisedMiB: r.readvisedBytes === undefined ? null : +(r.readvisedBytes / 2 ** 20).toFixed(2), before, after: q2.reduce((x, f) => x + f.residentBytes, 0) / r.bytes }));
