import type { Command } from 'commander';
import type { Context, Runner } from './context.js';
import { withFlagNames } from './flag-names.js';
import { choiceFlag, intFlag } from '../core/flags.js';
import { pythonCandidates } from '../python/runner.js';
import { PREFETCH_DEFAULTS, PREFETCH_STRATEGIES, prefetchModel, prefetchText, type PrefetchModelOptions, type PrefetchRun } from '../load/prefetch.js';
import { imagePrefetchText, imageToPrefetch, prefetchImage, type ImagePrefetchRun } from '../snapshot/prefetch-image.js';

interface PrefetchFlags {
  strategy: string;
  threads: string;
  revision?: string;
  evict?: boolean;
  /** `--stack` alone is true: the interpreter coldstart would use ($COLDSTART_PYTHON, else python3). */
  stack?: string | boolean;
}

/** Every flag of `coldstart prefetch`, parsed once into the prefetch's typed options. */
function prefetchOptions(ctx: Context, f: PrefetchFlags): PrefetchModelOptions {
  return {
    strategy: choiceFlag('--strategy', f.strategy, PREFETCH_STRATEGIES),
    threads: intFlag('--threads', f.threads, 1, 256),
    evictFirst: !!f.evict,
    ...(f.stack ? { stack: typeof f.stack === 'string' ? f.stack : pythonCandidates(ctx.env)[0]! } : {}),
    revision: f.revision,
    env: ctx.env,
    cwd: ctx.cwd,
    signal: ctx.signal,
  };
}

async function prefetchCommand(ctx: Context, target: string, flags: PrefetchFlags): Promise<number> {
  const opts = prefetchOptions(ctx, flags);
  // A redrawn line on stderr, only on a TTY (never in CI logs or under --json/--quiet).
  const bar = ctx.out.progress('prefetch');
  const onProgress = (d: number, t: number) => bar.update(d, t);
  // A snapshot image (its manifest names its files) is read as its restore will read it; anything else is a model.
  const image = imageToPrefetch(target, ctx.cwd);
  const { env: _env, cwd: _cwd, revision: _revision, ...reading } = opts; // what an image is read with
  const r = await withFlagNames<PrefetchRun | ImagePrefetchRun>({ strategy: '--strategy', threads: '--threads' }, () =>
    image ? prefetchImage(image, { ...reading, onProgress }, target) : prefetchModel(target, { ...opts, onProgress }),
  ).finally(() => bar.end());
  if (ctx.out.json) ctx.out.writeJson(r);
  else ctx.out.print(r.source === 'snapshot-image' ? imagePrefetchText(r) : prefetchText(r));
  return 0;
}

/** `coldstart prefetch <model|dir>` (issue 15). */
export function registerPrefetch(program: Command, run: Runner): void {
  program
    .command('prefetch')
    .description("read a model's weight files into the page cache in parallel, at the disk's rate (start it beside your server: `coldstart prefetch DIR & exec server`)")
    .argument('<model|dir>', 'a weights file, a directory, the built-in demo, a model alias / Hub repo id in the HF cache, or a snapshot image (read ahead of its restore)')
    .option('--strategy <strategy>', `how to fill the page cache: ${PREFETCH_STRATEGIES.join(', ')}`, PREFETCH_DEFAULTS.strategy)
    .option('--threads <n>', 'parallel readers', String(PREFETCH_DEFAULTS.threads))
    .option('--revision <rev>', 'Hub revision (a model id in the HF cache)')
    .option('--stack [python]', "first read the server's Python stack (its standard library, torch, the CUDA libraries, transformers, vLLM…) so a cold node's imports do not queue behind the weights (default interpreter: $COLDSTART_PYTHON, else python3)")
    .option('--evict', 'drop the files from the page cache first (benchmarks: measure a cold read)')
    .action(run(async (ctx, target: string, flags: PrefetchFlags) => prefetchCommand(ctx, target, flags)));
}
