/**
 * `coldstart optimize [MODEL] [--persist DIR] [--snapshot] --ready-url URL -- <server…>`: parse the flags once into
 * OptimizeOptions, run the optimize capability (src/optimize/), report through the one emitter.
 */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { addReportOptions, addTelemetryOptions, emitOptions, localInputs, type Context, type ReportFlags, type Runner } from './context.js';
import { ColdstartError, invalidArg } from '../core/errors.js';
import { requireServerCommand } from '../server/lifecycle.js';
import { choiceFlag } from '../core/flags.js';
import { emitReport } from '../core/emit.js';
import { parseDtypeName } from '../formats/dtypes.js';
import { runOptimize, type SnapshotStep } from '../optimize/run.js';
import { defaultEngines } from '../profile/engines.js';
import type { OptimizeOptions } from '../optimize/options.js';
import { addWrapOptions, splitWrap, wrapServer, type WrapFlags } from './wrap-flags.js';

interface OptimizeFlags extends ReportFlags, WrapFlags {
  persist: string; cache: string; prefetch: boolean; dtype?: string; revision?: string; snapshot?: boolean;
}

function optimizeOptions(ctx: Context, cmd: Command): OptimizeOptions {
  const f = cmd.opts() as OptimizeFlags;
  const { model, command } = splitWrap(ctx.proc.argv, cmd.args);
  requireServerCommand('optimize', { command, readyUrl: f.readyUrl, readyLog: f.readyLog });
  const dtype = f.dtype === undefined ? undefined : (parseDtypeName(f.dtype) ?? undefined);
  if (f.dtype !== undefined && !dtype) throw invalidArg('--dtype', 'bf16, fp16 or fp32', f.dtype);
  return {
    server: wrapServer(f, command),
    persistDir: resolve(ctx.cwd, f.persist),
    model,
    revision: f.revision,
    cache: choiceFlag('--cache', f.cache, ['cold', 'as-is'] as const),
    prefetch: f.prefetch !== false,
    dtype,
    snapshot: !!f.snapshot,
    coldstartCommand: 'coldstart',
  };
}

/** --snapshot: the snapshot capability, loaded only when asked (CRIU checked before anything starts). */
async function snapshotStep(): Promise<SnapshotStep> {
  const { defaultSnapshotEngines: engines } = await import('../snapshot/engines.js');
  const { takeSnapshot } = await import('../snapshot/snapshot.js');
  const { restoreImage } = await import('../snapshot/restore.js');
  return {
    async check(env) {
      if (!engines.host.isRoot()) throw new ColdstartError('PERMISSION', 'optimize --snapshot needs root: CRIU dumps processes through ptrace and /proc', { hint: 'Run as root, or drop --snapshot.' });
      await engines.criu.require(env);
    },
    async run(o) {
      const snap = await takeSnapshot({ command: o.command, output: o.image, readyUrl: o.readyUrl, readyLog: o.readyLog, warmup: o.firstRequest, timeoutSeconds: o.timeoutSeconds, lockTimeoutSeconds: 30, beforeSnapshot: null, afterRestore: [], force: true, cwd: o.cwd, env: o.env, signal: o.signal }, engines);
      // Restored as the recipe tells the user to restore it (--huge-pages), so the proof times what they will get.
      const r = await restoreImage({ image: o.image, timeoutSeconds: o.timeoutSeconds, firstRequest: true, afterRestore: null, hugePages: true, env: o.env, signal: o.signal }, engines);
      // A proof, not a deployment: the restored server is stopped (the image stays for `coldstart restore`).
      const pid = (r.report.details as { pid?: number }).pid;
      if (pid) await engines.server.adopt(pid, { what: 'restore', command: o.command, stopGraceSeconds: 10 }).stop();
      const d = r.report.details as { imageBytes?: number; imageResidentBytes?: number | null; hugePages?: unknown };
      return { phases: r.report.phases.map((p) => ({ name: p.name, seconds: p.seconds })), total: r.report.total.seconds, answer: r.firstAnswer, image: { bytes: d.imageBytes ?? null, residentBytesBefore: d.imageResidentBytes ?? null, kinds: (snap.report.details as { kinds?: unknown }).kinds ?? null }, hugePages: d.hugePages ?? null, notes: [...snap.report.warnings, ...r.report.warnings] };
    },
  };
}

export function registerOptimize(program: Command, run: Runner): void {
  addTelemetryOptions(addReportOptions(addWrapOptions(
    program
      .command('optimize')
      .description('measure a server\'s cold start, apply the remedies that need no change to it (compile caches, prefetch, cache), prove the gain and write a recipe')
      .usage('[options] [model] --ready-url URL -- <server…>')
      .argument('[model]', 'the weights the server loads (local folder or Hub repo id), when its command does not name them')
      .allowExcessArguments(true)
      .option('--persist <dir>', 'where the compile/JIT caches, their fingerprint and the recipe go', '.coldstart/optimize')
      .option('--cache <mode>', 'page cache for the weights before each start: cold (drop them) or as-is', 'cold')
      .option('--no-prefetch', 'do not read the weights ahead beside the optimized start')
      .option('--dtype <dtype>', 'the dtype answers are judged in (default: the weights\' config.json, else bf16)')
      .option('--revision <rev>', 'Hub revision of MODEL')
      .option('--snapshot', 'also snapshot the optimized server and time a restore (CRIU, root)'),
  ))).action(
    run(async (ctx, ...args: unknown[]) => {
      const cmd = args[args.length - 1] as Command;
      const options = optimizeOptions(ctx, cmd);
      const emit = emitOptions(ctx, cmd.opts() as OptimizeFlags, localInputs(ctx, options.model));
      const snapshot = options.snapshot ? await snapshotStep() : undefined;
      const events = {
        step: (text: string) => ctx.out.progressLine(text),
        ...(ctx.global.debug ? { serverLine: (t: number, text: string) => ctx.out.debug(`[server ${t.toFixed(2)}s] ${text}`) } : {}),
      };
      const out = await runOptimize(options, { env: ctx.env, cwd: ctx.cwd, signal: ctx.signal, events, engines: defaultEngines, ...(snapshot ? { snapshot } : {}) });
      return emitReport(ctx.out, out.report, ctx.cwd, { ...emit, extraHuman: out.lines, exitCode: out.exitCode });
    }),
  );
}
