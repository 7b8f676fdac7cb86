#!/usr/bin/env node
// One process, many loads of the same checkpoint through coldstart's gpu-load engine (dist/load/gpu-load.js):
//   node bench/gpu-load/sweep.mjs DIR --cache warm|cold --grid '[{"threads":8,"chunkBytes":8388608,...}]'
//        [--repeat 2] [--verify] [--limits] [--label X] [--deadline EPOCH_SECONDS]
// warm: the files are read once first (host, discard), then every load finds them in the page cache ('as-is').
// cold: every load drops the files first (fdatasync + POSIX_FADV_DONTNEED) and reads with O_DIRECT.
// One JSON line per load: {label, cache, config, seconds, GBps, efficiency, h2dGBps, readLimitGBps, verify, ...};
// a load past --deadline is not started ({skipped: "deadline"}).
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { cliArgs } from '../lib/args.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { runGpuLoad } = await import(join(root, 'dist', 'load', 'gpu-load.js'));
const { weightsAt } = await import(join(root, 'dist', 'load', 'weights.js'));
const { args, opt, flag } = cliArgs();
const dir = args.find((a) => !a.startsWith('--') && a !== opt('--cache') && a !== opt('--grid') && a !== opt('--repeat') && a !== opt('--label') && a !== opt('--deadline'));
const files = weightsAt(dir, { formats: ['safetensors'] }).files;
const cache = opt('--cache', 'warm');
const grid = JSON.parse(opt('--grid', '[{}]'));
const repeat = Number(opt('--repeat', '1'));
const deadline = Number(opt('--deadline', '0'));
const label = opt('--label', `sweep-${cache}`);

if (cache === 'warm') await runGpuLoad({ files, host: true, hostSink: 'discard', cache: 'warm', limits: false });
for (const cfg of grid) {
  for (let i = 0; i < repeat; i++) {
    if (deadline && Date.now() / 1000 > deadline) {
      console.log(JSON.stringify({ label, cache, config: cfg, skipped: 'deadline' }));
      continue;
    }
    try {
      const r = await runGpuLoad({ files, ...cfg, cache: cache === 'warm' ? 'as-is' : 'cold', ...(cache === 'cold' ? { direct: true } : {}), verify: flag('--verify'), limits: flag('--limits') });
      console.log(
        JSON.stringify({
          label,
          cache,
          repeat: i,
          files: files.length,
          config: { ...r.config, ...cfg },
          bytes: r.bytes,
          seconds: r.seconds,
          GBps: r.bytesPerSecond / 1e9,
          efficiency: r.efficiency,
          h2dGBps: r.limits?.h2dBytesPerSecond ? r.limits.h2dBytesPerSecond / 1e9 : undefined,
          readLimitGBps: r.limits?.readBytesPerSecond ? r.limits.readBytesPerSecond / 1e9 : undefined,
          overlap: r.overlapFraction,
          residentBefore: r.cache.residentFractionBefore,
          residentAfter: r.cache.residentFractionAfter,
          verify: r.verify,
          mode: r.mode,
          notes: r.notes,
        }),
      );
    } catch (e) {
      console.log(JSON.stringify({ label, cache, config: cfg, error: `${e.code ?? ''} ${e.message}` }));
    }
  }
}
