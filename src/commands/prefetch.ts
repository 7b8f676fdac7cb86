import type { Command } from 'commander';
import type { Context, Runner } from './context.js';
import { withFlagNames } from './flag-names.js';
import { choiceFlag, intFlag } from '../core/flags.js';
import { pythonCandidates } from '../python/runner.js';
import { PREFETCH_DEFAULTS, PREFETCH_STRATEGIES, prefetchModel, prefetchText, type PrefetchModelOptions, type PrefetchRun } from '../load/prefetch.js';
import { imagePrefetchText, imageToPrefetch, prefetchImage, type ImagePrefetchRun } from '../snapshot/prefetch-image.js';
import { holdFiles, holdUntilStopped } from '../load/hold.js';
import { formatBytes, formatDuration } from '../core/format.js';
import { requireNative } from '../native.js';

interface PrefetchFlags {
  strategy: string;
  threads: string;
  revision?: string;
  evict?: boolean;
  /** `--stack` alone is true: the interpreter coldstart would use ($COLDSTART_PYTHON, else python3). */
  stack?: string | boolean;
  hold?: boolean;
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
  const read = (progress?: (d: number, t: number) => void) =>
    withFlagNames<PrefetchRun | ImagePrefetchRun>({ strategy: '--strategy', threads: '--threads' }, () =>
      image ? prefetchImage(image, { ...reading, onProgress: progress }, target) : prefetchModel(target, { ...opts, onProgress: progress }),
    );
  const addon = flags.hold ? requireNative('prefetch --hold') : null; // before anything is read
  const r = await read(onProgress).finally(() => bar.end());
  if (!addon) {
    if (ctx.out.json) ctx.out.writeJson(r);
    else ctx.out.print(r.source === 'snapshot-image' ? imagePrefetchText(r) : prefetchText(r));
    return 0;
  }
  // --hold: the files just read, locked in memory until coldstart is stopped (src/load/hold.ts).
  const paths = r.files.map((f) => f.path);
  const first = await holdFiles(addon, paths);
  const hold = { ...first.now, pid: process.pid };
  if (ctx.out.json) ctx.out.writeJson({ ...r, hold });
  else ctx.out.print(r.source === 'snapshot-image' ? imagePrefetchText(r) : prefetchText(r));
  ctx.out.info(`holding ${formatBytes(hold.bytes)} of ${hold.files} file(s) in memory (locked in ${formatDuration(hold.seconds)}: the kernel keeps these pages however much memory is asked for); following the files as they change. Stop with Ctrl-C or \`kill ${hold.pid}\`.`);
  return holdUntilStopped(
    { hold: first.hold, paths },
    { read: async () => (await read()).files.map((f) => f.path), signal: ctx.signal, say: (line) => ctx.out.progressLine(line), addon, what: target },
  );
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
    .option('--hold', 'then keep them in memory (locked: mlock) until stopped, read again and held when they change — a node that restores an image or restarts a server keeps them warm under memory pressure (needs root or CAP_IPC_LOCK)')
    .action(run(async (ctx, target: string, flags: PrefetchFlags) => prefetchCommand(ctx, target, flags)));
}
