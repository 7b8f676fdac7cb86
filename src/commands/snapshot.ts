/**
 * `coldstart snapshot` / `restore` / `park` / `unpark`: parse the flags once into typed options, call the snapshot
 * capability (src/snapshot/) with its engines, report through the one emitter.
 */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { addReportOptions, addTelemetryOptions, emitOptions, type Context, type ReportFlags, type Runner } from './context.js';
import { emitReport } from '../core/emit.js';
import { ColdstartError, invalidArg } from '../core/errors.js';
import { choiceFlag, durationFlag, httpUrlFlag, regexFlag } from '../core/flags.js';
import type { RecordedRequest } from '../server/api.js';
import { defaultSnapshotEngines, type SnapshotEngines } from '../snapshot/engines.js';
import { PID_MAX } from '../snapshot/manifest.js';
import { parkOrUnpark } from '../snapshot/park.js';
import type { Reported } from '../snapshot/report.js';
import { restoreImage } from '../snapshot/restore.js';
import { takeSnapshot } from '../snapshot/snapshot.js';

interface SnapshotFlags extends ReportFlags {
  output: string;
  readyUrl?: string;
  readyLog?: string;
  warmup?: string;
  warmupData?: string;
  timeout: string;
  lockTimeout: string;
  force?: boolean;
  beforeSnapshot?: string;
  beforeSnapshotMethod: string;
  afterRestore?: string;
  afterRestoreMethod: string;
}

interface RestoreFlags extends ReportFlags {
  timeout: string;
  hugePages?: boolean;
  readyUrl?: string;
  firstRequest: boolean;
  afterRestore?: string;
  afterRestoreMethod: string;
}

/** A hook flag (--before-snapshot / --after-restore) and its method flag as a request with no body; null when not given. */
function hookFlag(flag: string, url: string | undefined, method: string): RecordedRequest | null {
  const m = choiceFlag(`${flag}-method`, method.toUpperCase(), ['GET', 'POST'] as const);
  return url === undefined ? null : { url: httpUrlFlag(flag, url), method: m, body: null };
}

function pidArg(v: string): number {
  const pid = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(pid) || pid < 1 || pid > PID_MAX) throw invalidArg('PID', `a process id (1 to ${PID_MAX})`, v);
  return pid;
}

/** Budgets and export paths are checked first; the engine's steps go to one progress line (a TTY only); one emitter. */
async function report(ctx: Context, flags: ReportFlags | null, work: (step: (text: string) => void) => Promise<Reported>, label = ''): Promise<number> {
  const opts = flags ? emitOptions(ctx, flags) : {};
  const p = label ? ctx.out.progress(label) : null;
  let r: Reported;
  try {
    r = await work((text) => p?.say(text));
  } finally {
    p?.end();
  }
  return emitReport(ctx.out, r.report, ctx.cwd, { ...opts, human: r.human });
}

export function registerSnapshot(program: Command, run: Runner, engines: SnapshotEngines = defaultSnapshotEngines): void {
  addReportOptions(
    program
      .command('snapshot')
      .description('start a server, wait until ready and warmed, checkpoint its GPU state and CRIU-dump it into an image directory')
      .requiredOption('-o, --output <dir>', 'image directory to write (atomically)')
      .option('--ready-url <url>', 'ready when this URL answers 2xx')
      .option('--ready-log <regex>', "ready when the server's output matches")
      .option('--warmup <url>', 'send this request after ready (timed as the first request; repeated and compared on restore)')
      .option('--warmup-data <json>', 'POST this JSON body with --warmup (default: GET)')
      .option('--timeout <seconds>', 'give up waiting for the server after this long', '600')
      .option('--lock-timeout <seconds>', 'wait this long for in-flight GPU work when locking CUDA', '30')
      .option('--before-snapshot <url>', 'send this request after the warmup, before the GPU lock and the dump (e.g. vLLM /sleep?level=1: what the server drops stays out of the image)')
      .option('--before-snapshot-method <method>', 'GET or POST', 'POST')
      .option('--after-restore <url>', 'recorded in the image: restore sends it after the restore, before ready (e.g. vLLM /wake_up)')
      .option('--after-restore-method <method>', 'GET or POST', 'POST')
      .option('--force', 'replace an existing image directory')
      .argument('<command...>', 'the server command (after --)'),
  ).action(
    run((ctx, command: string[], f: SnapshotFlags) => {
      if (!f.readyUrl && !f.readyLog) throw new ColdstartError('USAGE', 'snapshot: give --ready-url or --ready-log so coldstart knows when the server is ready');
      const o = {
        command,
        output: resolve(ctx.cwd, f.output),
        timeoutSeconds: durationFlag('--timeout', f.timeout, { bareSeconds: true }),
        lockTimeoutSeconds: durationFlag('--lock-timeout', f.lockTimeout, { bareSeconds: true }),
        readyLog: regexFlag('--ready-log', f.readyLog),
        readyUrl: f.readyUrl === undefined ? undefined : httpUrlFlag('--ready-url', f.readyUrl),
        warmup: f.warmup ? { url: httpUrlFlag('--warmup', f.warmup), method: f.warmupData ? ('POST' as const) : ('GET' as const), body: f.warmupData ?? null } : null,
        beforeSnapshot: hookFlag('--before-snapshot', f.beforeSnapshot, f.beforeSnapshotMethod),
        afterRestore: hookFlag('--after-restore', f.afterRestore, f.afterRestoreMethod),
        force: !!f.force,
        cwd: ctx.cwd,
        env: ctx.env,
        signal: ctx.signal,
        progress: (line: string) => ctx.out.progressLine(line),
      };
      return report(ctx, f, (step) => takeSnapshot({ ...o, step }, engines), 'snapshot');
    }),
  );

  addTelemetryOptions(addReportOptions(
    program
      .command('restore')
      .description('restore a snapshot image (CRIU, then CUDA restore + unlock), wait until ready and compare with the cold start')
      .argument('<image>', 'image directory written by `coldstart snapshot`')
      .option('--ready-url <url>', 'override the ready URL recorded in the image')
      .option('--timeout <seconds>', 'give up waiting for readiness after this long', '300')
      .option('--no-first-request', 'do not repeat the warmup request after the restore')
      .option('--huge-pages', "set transparent huge pages to `always` (system-wide) while CRIU restores the pages, then put back the mode found: CRIU otherwise fills memory with 4 KiB page faults")
      .option('--after-restore <url>', "send this request after the restore, before ready (replaces the image's recorded --after-restore)")
      .option('--after-restore-method <method>', 'GET or POST', 'POST'),
  )).action(
    run((ctx, image: string, f: RestoreFlags) => {
      const o = {
        image: resolve(ctx.cwd, image),
        timeoutSeconds: durationFlag('--timeout', f.timeout, { bareSeconds: true }),
        readyUrl: f.readyUrl === undefined ? undefined : httpUrlFlag('--ready-url', f.readyUrl),
        firstRequest: f.firstRequest,
        hugePages: !!f.hugePages,
        afterRestore: hookFlag('--after-restore', f.afterRestore, f.afterRestoreMethod),
        env: ctx.env,
        signal: ctx.signal,
      };
      return report(ctx, f, (step) => restoreImage({ ...o, step }, engines), 'restore');
    }),
  );

  for (const which of ['park', 'unpark'] as const) {
    const cmd = program
      .command(which)
      .description(which === 'park' ? "free a running CUDA process's GPU: lock and checkpoint its GPU memory into host memory (the process stays)" : 'bring a parked process back onto the GPU: restore its GPU memory and unlock it')
      .argument('<pid>', 'process id')
      .option('--lock-timeout <seconds>', which === 'park' ? 'wait this long for in-flight GPU work' : 'unused; accepted for symmetry with park', '30');
    if (which === 'park') cmd.option('--huge-pages', 'set transparent huge pages to `always` (system-wide) while the GPU memory moves into host memory, then put back the mode found: park and the later unpark both run faster');
    cmd.action(
      run((ctx, pid: string, f: { lockTimeout: string; hugePages?: boolean }) => {
        const o = { which, pid: pidArg(pid), lockTimeoutSeconds: durationFlag('--lock-timeout', f.lockTimeout, { bareSeconds: true }), hugePages: !!f.hugePages };
        return report(ctx, null, () => parkOrUnpark(o, engines));
      }),
    );
  }
}
