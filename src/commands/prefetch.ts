import type { Command } from 'commander';
import type { Context, Runner } from '../cli/context.js';
import { intFlag } from '../core/flags.js';
import { invalidArg } from '../core/errors.js';
import { formatBytes, formatDuration, formatPercent, formatRate } from '../core/format.js';
import { PREFETCH_DEFAULTS, PREFETCH_STRATEGIES, runPrefetch, type PrefetchResult, type PrefetchStrategy } from '../load/prefetch.js';
import { describeSkipped, resolveWeights } from '../load/weights.js';
import { withFlagNames } from '../cli/flag-names.js';

interface PrefetchFlags {
  strategy: string;
  threads: string;
  revision?: string;
  evict?: boolean;
}

/** A redrawn line on stderr, only on a TTY (never in CI logs or under --json/--quiet). */
function bar(ctx: Context): { update(done: number, total: number): void; end(): void } {
  let drawn = false;
  const t0 = process.hrtime.bigint();
  return {
    update(done, total) {
      if (!ctx.out.interactive) return;
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      const frac = total > 0 ? done / total : 1;
      const width = 30;
      const fill = Math.round(frac * width);
      ctx.out.proc.stderr.write(
        `\r\u001b[2Kprefetch [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${(frac * 100).toFixed(0).padStart(3)}%  ${formatBytes(done)} / ${formatBytes(total)}  ${formatRate(s > 0 ? done / s : 0)}`,
      );
      drawn = true;
    },
    end() {
      if (drawn) ctx.out.proc.stderr.write('\r\u001b[2K');
    },
  };
}

function pct(x: number | null): string {
  return x === null ? 'unknown' : formatPercent(x);
}

function human(r: PrefetchResult): string {
  const lines = [
    `prefetched ${r.files.length} file${r.files.length === 1 ? '' : 's'}, ${formatBytes(r.bytes)} in ${formatDuration(r.seconds)} (${formatRate(r.bytesPerSecond)}, ${r.strategy}, ${r.threads} threads)`,
    `page cache: ${pct(r.residency.before)} resident before, ${pct(r.residency.after)} after`,
  ];
  if (r.coldBytesPerSecond !== null) lines.push(`disk read rate: ${formatRate(r.coldBytesPerSecond)}`);
  for (const n of r.notes) lines.push(`note: ${n}`);
  return lines.join('\n');
}

async function prefetchCommand(ctx: Context, target: string, flags: PrefetchFlags): Promise<number> {
  if (!(PREFETCH_STRATEGIES as readonly string[]).includes(flags.strategy)) throw invalidArg('--strategy', PREFETCH_STRATEGIES.join(', '), flags.strategy);
  const threads = intFlag('--threads', flags.threads, 1, 256);
  // Any file named is read as it is; a folder, the demo or a cached repo gives its weights (the one resolver).
  const w = await resolveWeights(target, { env: ctx.env, cwd: ctx.cwd, revision: flags.revision, anyFile: true, signal: ctx.signal });
  const skipped = describeSkipped(w);
  const b = bar(ctx);
  let r: PrefetchResult;
  try {
    const opts = { files: w.files, strategy: flags.strategy as PrefetchStrategy, threads, evictFirst: !!flags.evict, signal: ctx.signal, onProgress: (d: number, t: number) => b.update(d, t) };
    r = await withFlagNames({ strategy: '--strategy', threads: '--threads' }, () => runPrefetch(opts));
  } finally {
    b.end();
  }
  if (skipped) r.notes.push(skipped);
  if (ctx.out.json) ctx.out.writeJson({ ...r, target, source: w.source, skipped: w.skipped });
  else ctx.out.print(human(r));
  return 0;
}

/** `coldstart prefetch <model|dir>` (issue 15). cli.ts: add registerPrefetch to its register list. */
export function registerPrefetch(program: Command, run: Runner): void {
  program
    .command('prefetch')
    .description("read a model's weight files into the page cache in parallel, at the disk's rate (start it beside your server: `coldstart prefetch DIR & exec server`)")
    .argument('<model|dir>', 'a weights file, a directory, the built-in demo, or a model alias / Hub repo id in the HF cache')
    .option('--strategy <s>', `how to fill the page cache: ${PREFETCH_STRATEGIES.join(', ')}`, PREFETCH_DEFAULTS.strategy)
    .option('--threads <n>', 'parallel readers', String(PREFETCH_DEFAULTS.threads))
    .option('--revision <rev>', 'Hub revision (a model id in the HF cache)')
    .option('--evict', 'drop the files from the page cache first (benchmarks: measure a cold read)')
    .action(run(async (ctx, target: string, flags: PrefetchFlags) => prefetchCommand(ctx, target, flags)));
}
