/**
 * `coldstart snapshot` / `restore` (and, through ./park.ts, `park` / `unpark`): parse the flags once into typed
 * options, call the snapshot capability (src/snapshot/) with its engines, report through the one emitter.
 */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { addReportOptions, addTelemetryOptions, collect, type ReportFlags, type Runner } from './context.js';
import { registerPark } from './park.js';
import { hookFlag, hookFlags, report } from './snapshot-flags.js';
import { ColdstartError } from '../core/errors.js';
import { requireServerCommand } from '../server/lifecycle.js';
import { durationFlag, httpUrlFlag, intFlag, regexFlag } from '../core/flags.js';
import { resolveWeights } from '../load/weights.js';
import { defaultSnapshotEngines, type SnapshotEngines } from '../snapshot/engines.js';
import { RESTORE_PREFETCH, restoreImage } from '../snapshot/restore.js';
import { takeSnapshot } from '../snapshot/snapshot.js';

interface SnapshotFlags extends ReportFlags {
  output: string;
  readyUrl?: string;
  readyLog?: string;
  warmup?: string;
  warmupData?: string;
  workingSetWarmup: boolean;
  timeout: string;
  lockTimeout: string;
  force?: boolean;
  beforeSnapshot?: string;
  beforeSnapshotMethod: string;
  afterRestore?: string[];
  afterRestoreMethod: string;
}

interface RestoreFlags extends ReportFlags {
  timeout: string;
  hugePages?: boolean;
  imageStream: boolean;
  readyUrl?: string;
  firstRequest: boolean;
  afterRestore?: string[];
  afterRestoreMethod: string;
  prefetch?: string;
  prefetchThreads?: string;
  stage?: string;
  verifyThreads?: string;
  gpus?: string;
  floor?: boolean;
}

export function registerSnapshot(program: Command, run: Runner, engines: SnapshotEngines = defaultSnapshotEngines): void {
  addReportOptions(
    program
      .command('snapshot')
      .description('start a server, wait until ready and warmed, checkpoint its GPU state and CRIU-dump it into an image directory')
      .usage('[options] -o IMAGE --ready-url URL -- <server…>')
      .requiredOption('-o, --output <dir>', 'image directory to write (atomically)')
      .option('--ready-url <url>', 'ready when this URL answers 2xx')
      .option('--ready-log <regex>', "ready when the server's output matches")
      .option('--warmup <url>', 'send this request after ready (timed as the first request; repeated and compared on restore)')
      .option('--warmup-data <json>', 'POST this JSON body with --warmup (default: GET)')
      .option('--no-working-set-warmup', "record every page of its files the server has mapped (default with --warmup: page them out and send the warmup again, so the image's working set holds what answering needs and a cold restore reads less)")
      .option('--timeout <duration>', 'give up waiting for the server after this long', '600')
      .option('--lock-timeout <duration>', 'wait this long for in-flight GPU work when locking CUDA', '30')
      .option('--before-snapshot <url>', 'send this request after the warmup, before the GPU lock and the dump (e.g. vLLM /sleep?level=1: what the server drops stays out of the image)')
      .option('--before-snapshot-method <method>', 'GET or POST', 'POST')
      .option('--after-restore <url>', 'recorded in the image: restore sends it after the restore, before ready (e.g. vLLM /wake_up); repeatable, sent in order; a space and JSON after the URL is its body', collect)
      .option('--after-restore-method <method>', 'GET or POST', 'POST')
      .option('--force', 'replace an existing image directory')
      .argument('[command...]', 'the server command (after --)'),
  ).action(
    run((ctx, command: string[], f: SnapshotFlags) => {
      requireServerCommand('snapshot', { command, readyUrl: f.readyUrl, readyLog: f.readyLog });
      const o = {
        command,
        output: resolve(ctx.cwd, f.output),
        timeoutSeconds: durationFlag('--timeout', f.timeout, { bareSeconds: true }),
        lockTimeoutSeconds: durationFlag('--lock-timeout', f.lockTimeout, { bareSeconds: true }),
        readyLog: regexFlag('--ready-log', f.readyLog),
        readyUrl: f.readyUrl === undefined ? undefined : httpUrlFlag('--ready-url', f.readyUrl),
        warmup: f.warmup ? { url: httpUrlFlag('--warmup', f.warmup), method: f.warmupData ? ('POST' as const) : ('GET' as const), body: f.warmupData ?? null } : null,
        workingSetWarmup: f.workingSetWarmup !== false,
        beforeSnapshot: hookFlag('--before-snapshot', f.beforeSnapshot, f.beforeSnapshotMethod),
        afterRestore: hookFlags('--after-restore', f.afterRestore, f.afterRestoreMethod),
        force: !!f.force,
        cwd: ctx.cwd,
        env: ctx.env,
        signal: ctx.signal,
        progress: (line: string) => ctx.out.progressLine(line),
      };
      if (f.workingSetWarmup === false && !f.warmup) throw new ColdstartError('BAD_FLAG', '--no-working-set-warmup: only with --warmup (without one the working set is every page the server has mapped)');
      return report(ctx, f, (step) => takeSnapshot({ ...o, step }, engines), 'snapshot');
    }),
  );

  addTelemetryOptions(addReportOptions(
    program
      .command('restore')
      .description('restore a snapshot image (CRIU, then CUDA restore + unlock), wait until ready and compare with the cold start')
      .argument('<image>', 'image directory written by `coldstart snapshot`')
      .option('--ready-url <url>', 'override the ready URL recorded in the image')
      .option('--timeout <duration>', 'give up waiting for readiness after this long', '300')
      .option('--no-first-request', 'do not repeat the warmup request after the restore')
      .option('--huge-pages', "set transparent huge pages to `always` (system-wide) while CRIU restores the pages, then put back the mode found: CRIU otherwise fills memory with 4 KiB page faults")
      .option('--after-restore <url>', "send this request after the restore, before ready (replaces the image's recorded ones); repeatable, as snapshot's", collect)
      .option('--after-restore-method <method>', 'GET or POST', 'POST')
      .option('--prefetch <model>', 'read these weights (a folder, file or cached repo) into the page cache alongside the restore, for an --after-restore hook that reads them back (vLLM sleep level 2)')
      .option('--stage <model>', "load these weights (a folder, file or cached repo) onto the server's GPU while CRIU restores it, for an --after-restore hook whose wake-up reads them back through coldstart_load: it copies them GPU to GPU instead of reading the page cache (a warm node; the GPU needs room for the copy beside the server, freed after the first answer)")
      .option('--prefetch-threads <n>', `readers for --prefetch (default ${RESTORE_PREFETCH.threads}; one stream can beat several on a virtual disk, many suit NVMe)`)
      .option('--verify-threads <n>', 'threads hashing the image alongside CRIU (default: one fewer than the cores; fewer leave CRIU\'s one-thread page restore a core of its own)')
      .option('--no-image-stream', 'let the hash threads read an image that is not in the page cache themselves, in parallel (default: one stream reads it in order and they hash behind it, then the --prefetch weights; one stream beat parallel reads on the virtual disks measured, many readers may suit NVMe)')
      .option('--gpus <list>', "restore the GPU state onto these GPUs (indexes or UUIDs, comma-separated), one for each GPU the image's server used, in order; default: the same GPUs, else free ones of the same model")
      .option('--floor', "once the server answers, measure this machine's floor for the restore and compare: the image (and --prefetch or --stage weights) read again from where the restore found them — from a cold disk they are dropped from the page cache first — and the GPU state at pinned H2D; the server already serves meanwhile"),
  )).action(
    run(async (ctx, image: string, f: RestoreFlags) => {
      const threads = f.prefetchThreads === undefined ? undefined : intFlag('--prefetch-threads', f.prefetchThreads, 1, 64);
      const verifyThreads = f.verifyThreads === undefined ? undefined : intFlag('--verify-threads', f.verifyThreads, 1, 256);
      const timeoutSeconds = durationFlag('--timeout', f.timeout, { bareSeconds: true });
      const readyUrl = f.readyUrl === undefined ? undefined : httpUrlFlag('--ready-url', f.readyUrl);
      const afterRestore = f.afterRestore === undefined ? null : hookFlags('--after-restore', f.afterRestore, f.afterRestoreMethod);
      if (threads !== undefined && f.prefetch === undefined) throw new ColdstartError('BAD_FLAG', '--prefetch-threads: only with --prefetch (the weights read alongside the restore)');
      // Resolved (the one weights resolver) before anything is restored: a wrong path is exit 2 with nothing touched.
      const weights = (flag: string, v: string | undefined) => (v === undefined ? null : resolveWeights(v, { env: ctx.env, cwd: ctx.cwd, anyFile: true, signal: ctx.signal }).then((r) => ({ target: v, files: r.files }), (e: unknown) => Promise.reject(e instanceof ColdstartError ? new ColdstartError(e.code, `${flag}: ${e.message}`, { hint: e.hint, details: e.details, cause: e }) : e)));
      const [w, st] = [await weights('--prefetch', f.prefetch), await weights('--stage', f.stage)];
      const o = {
        ...(verifyThreads ? { verifyThreads } : {}),
        // COLDSTART_STAGE_START=verified: staging waits for the verification (measured against the default, at CRIU's spawn)
        stage: st ? { ...st, start: ctx.env.COLDSTART_STAGE_START === 'verified' ? ('verified' as const) : ('spawn' as const) } : null,
        prefetch: w ? { ...w, ...(threads ? { threads } : {}) } : null,
        image: resolve(ctx.cwd, image),
        timeoutSeconds,
        readyUrl,
        firstRequest: f.firstRequest,
        hugePages: !!f.hugePages,
        imageStream: f.imageStream,
        gpus: f.gpus === undefined ? null : f.gpus.split(','),
        afterRestore,
        floor: !!f.floor,
        env: ctx.env,
        signal: ctx.signal,
      };
      return report(ctx, f, (step) => restoreImage({ ...o, step }, engines), 'restore');
    }),
  );

  registerPark(program, run, engines);
}
