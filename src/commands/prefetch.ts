import type { Command } from 'commander';
import type { Context, Runner } from './context.js';
import { withFlagNames } from './flag-names.js';
import { choiceFlag, intFlag } from '../core/flags.js';
import { pythonCandidates } from '../python/runner.js';
import { PREFETCH_DEFAULTS, PREFETCH_SET_SCHEMA, PREFETCH_STRATEGIES, prefetchModel, prefetchText, type PrefetchModelOptions, type PrefetchRun } from '../load/prefetch.js';
import { imagePrefetchText, imageToPrefetch, prefetchImage, type ImagePrefetchRun } from '../snapshot/prefetch-image.js';
import { holdFiles, holdUntilStopped } from '../load/hold.js';
import { formatBytes, formatDuration } from '../core/format.js';
import { requireNative } from '../native.js';
import { ColdstartError } from '../core/errors.js';

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

type Run = PrefetchRun | ImagePrefetchRun;

/**
 * How one target is read, now and again when a hold sees its files change: `image` (imageToPrefetch's answer, taken
 * once per target) as its restore reads it, else a model.
 */
function readerFor(target: string, image: string | null, opts: PrefetchModelOptions): (progress?: (done: number, total: number) => void) => Promise<Run> {
  const { env: _env, cwd: _cwd, revision: _revision, ...reading } = opts; // what an image is read with
  return (progress) =>
    withFlagNames<Run>({ strategy: '--strategy', threads: '--threads' }, () =>
      image ? prefetchImage(image, { ...reading, onProgress: progress }, target) : prefetchModel(target, { ...opts, onProgress: progress }),
    );
}

const textOf = (r: Run) => (r.source === 'snapshot-image' ? imagePrefetchText(r) : prefetchText(r));
const pathsOf = (r: Run) => r.files.map((f) => f.path);

/**
 * `coldstart prefetch TARGET…`: each target read in turn (an image and the weights its server reads back, say); one
 * target's document is `coldstart/prefetch@1` as ever, several are `coldstart/prefetch-set@1` (`targets`: theirs).
 * `--stack` reads the Python stack once, before the first model; `--revision` names one repo's revision, so it takes
 * one target.
 */
async function prefetchCommand(ctx: Context, targets: string[], flags: PrefetchFlags): Promise<number> {
  const opts = prefetchOptions(ctx, flags);
  if (targets.length > 1 && opts.revision !== undefined) {
    throw new ColdstartError('BAD_FLAG', `--revision: names the revision of one Hub repo id, and ${targets.length} targets were given`, { hint: 'Run one `coldstart prefetch REPO --revision REV` per repo.' });
  }
  const addon = flags.hold ? requireNative('prefetch --hold') : null; // before anything is read
  // A snapshot image (its manifest names its files) is read as its restore will read it; anything else is a model.
  const images = targets.map((t) => imageToPrefetch(t, ctx.cwd));
  // The stack before the first model (an image imports nothing; with only images, the first refuses --stack).
  const { stack: _stack, ...noStack } = opts;
  const withStack = Math.max(0, images.indexOf(null));
  const readers = targets.map((t, i) => readerFor(t, images[i] ?? null, i === withStack ? opts : noStack));
  // A redrawn line on stderr, only on a TTY (never in CI logs or under --json/--quiet).
  const bar = ctx.out.progress('prefetch');
  const runs: Run[] = [];
  try {
    for (const read of readers) runs.push(await read((d, t) => bar.update(d, t)));
  } finally {
    bar.end();
  }
  // --hold: what each target read, locked in memory until coldstart is stopped (src/load/hold.ts).
  const holds: Array<Awaited<ReturnType<typeof holdFiles>>> = [];
  if (addon) for (const r of runs) holds.push(await holdFiles(addon, pathsOf(r)));
  const hold = addon ? { files: sum(holds, (h) => h.now.files), bytes: sum(holds, (h) => h.now.bytes), seconds: sum(holds, (h) => h.now.seconds), pid: process.pid } : null;
  if (ctx.out.json) {
    const withHold = hold ? { hold } : {};
    ctx.out.writeJson(runs.length === 1 ? { ...runs[0]!, ...withHold } : { schema: PREFETCH_SET_SCHEMA, targets: runs, ...withHold });
  } else ctx.out.print(runs.length === 1 ? textOf(runs[0]!) : runs.map((r, i) => `${targets[i]}:\n${textOf(r)}`).join('\n\n'));
  if (!addon || !hold) return 0;
  // Read again when the files change: neither the stack nor an eviction first (those are for the first read).
  const again = targets.map((t, i) => readerFor(t, images[i] ?? null, { ...noStack, evictFirst: false }));
  ctx.out.info(`holding ${formatBytes(hold.bytes)} of ${hold.files} file(s) in memory (locked in ${formatDuration(hold.seconds)}: the kernel keeps these pages however much memory is asked for); following the files as they change. Stop with Ctrl-C or \`kill ${hold.pid}\`.`);
  return Promise.all(
    holds.map((h, i) =>
      holdUntilStopped(
        { hold: h.hold, paths: pathsOf(runs[i]!) },
        { read: async () => pathsOf(await again[i]!()), signal: ctx.signal, say: (line) => ctx.out.progressLine(line), addon, what: targets[i]! },
      ),
    ),
  ).then(() => 0);
}

function sum<T>(xs: readonly T[], f: (x: T) => number): number {
  return xs.reduce((a, x) => a + f(x), 0);
}

/** `coldstart prefetch <model|dir|image…>` (issue 15; several targets and --hold: issue 26). */
export function registerPrefetch(program: Command, run: Runner): void {
  program
    .command('prefetch')
    .description("read a model's weight files into the page cache in parallel, at the disk's rate (start it beside your server: `coldstart prefetch DIR & exec server`)")
    .argument('<targets...>', 'what to read, in turn: a weights file, a directory, the built-in demo, a model alias / Hub repo id in the HF cache, or a snapshot image (read ahead of its restore)')
    .option('--strategy <strategy>', `how to fill the page cache: ${PREFETCH_STRATEGIES.join(', ')}`, PREFETCH_DEFAULTS.strategy)
    .option('--threads <n>', 'parallel readers', String(PREFETCH_DEFAULTS.threads))
    .option('--revision <rev>', 'Hub revision (a model id in the HF cache)')
    .option('--stack [python]', "first read the server's Python stack (its standard library, torch, the CUDA libraries, transformers, vLLM…) so a cold node's imports do not queue behind the weights (default interpreter: $COLDSTART_PYTHON, else python3)")
    .option('--evict', 'drop the files from the page cache first (benchmarks: measure a cold read)')
    .option('--hold', 'then keep them in memory (locked: mlock) until stopped, read again and held when they change — a node that restores an image or restarts a server keeps them warm under memory pressure (needs root or CAP_IPC_LOCK)')
    .action(run(async (ctx, targets: string[], flags: PrefetchFlags) => prefetchCommand(ctx, targets, flags)));
}
