import type { Command } from 'commander';
import { addReportOptions, addTelemetryOptions, collect, emitOptions, localInputs, type Context, type ReportFlags, type Runner } from './context.js';
import { withFlagNames } from './flag-names.js';
import { addWrapOptions, splitWrap, wrapServer, type WrapFlags } from './wrap-flags.js';
import { ColdstartError, invalidArg } from '../core/errors.js';
import { requireServerCommand } from '../server/lifecycle.js';
import { choiceFlag, intFlag, intListFlag, positiveFlag } from '../core/flags.js';
import { parseCount } from '../core/repeat.js';
import { emitReport } from '../core/emit.js';
import { PHASES, isPhaseName, type PhaseName } from '../core/phases.js';
import { parseDtypeName } from '../formats/dtypes.js';
import { parseSince } from '../platform/container.js';
import { defaultEngines, type Engines } from '../profile/engines.js';
import { FRAMEWORKS } from '../profile/framework.js';
import { runProfile } from '../profile/run.js';
import type { ProfileEvents, ProfileOptions } from '../profile/options.js';

interface ProfileFlags extends ReportFlags, WrapFlags {
  runs: string; warmup: string; only?: string; synthetic?: boolean; format: string; dtype?: string; estimate?: boolean;
  image?: string; containerRuntime?: string; containerArg?: string[]; since?: string; devices?: string; tp?: string; verify?: boolean;
  cache: string; download: boolean; floor: boolean; revision?: string; framework?: string; url?: string;
  gpuPrice?: string; warmInstances: string; probeBytes?: string; remeasure?: boolean; direct?: boolean; buffered?: boolean;
}

/** Every flag of `coldstart profile`, parsed once into typed options (a bad one exits 2 before anything runs). */
export function profileOptions(ctx: Context, cmd: Command): ProfileOptions {
  const f = cmd.opts() as ProfileFlags;
  const { model, command } = splitWrap(ctx.proc.argv, cmd.args);
  const wrapping = ctx.proc.argv.includes('--');
  if (wrapping) requireServerCommand('profile', { command, readyUrl: f.readyUrl, readyLog: f.readyLog });
  if (!wrapping && cmd.args.length > 1) throw new ColdstartError('USAGE', `profile takes one model, got ${cmd.args.length}: ${cmd.args.join(' ')}`, { hint: 'To wrap a server, put its command after --.' });
  const only = f.only ? new Set(f.only.split(',').map((x) => x.trim()).filter(Boolean)) : null;
  for (const p of only ?? []) if (!isPhaseName(p)) throw invalidArg('--only', `phases from ${PHASES.join(', ')}`, p);
  const dtype = f.dtype === undefined ? undefined : (parseDtypeName(f.dtype) ?? undefined);
  if (f.dtype !== undefined && !dtype) throw invalidArg('--dtype', 'bf16, fp16 or fp32', f.dtype);
  const options: ProfileOptions = {
    model,
    runs: parseCount('--runs', f.runs, 1),
    warmup: parseCount('--warmup', f.warmup, 0),
    only: only as Set<PhaseName> | null,
    synthetic: !!f.synthetic,
    format: choiceFlag('--format', f.format, ['safetensors', 'bin'] as const),
    dtype,
    estimate: !!f.estimate,
    // A bad --since is a usage error (exit 2), not a failed container phase.
    container: { image: f.image, runtime: f.containerRuntime === undefined ? undefined : choiceFlag('--container-runtime', f.containerRuntime, ['podman', 'docker'] as const), runArgs: f.containerArg, since: f.since === undefined ? undefined : { text: f.since, epochSeconds: parseSince(f.since, undefined, '--since') } },
    devices: f.devices ? intListFlag('--devices', f.devices, 0) : undefined,
    ...(f.tp !== undefined ? { tp: intFlag('--tp', f.tp, 1) } : {}),
    verify: !!f.verify, remeasure: !!f.remeasure,
    cache: choiceFlag('--cache', f.cache, ['cold', 'warm', 'as-is'] as const),
    ...(f.direct || f.buffered ? { direct: !!f.direct } : {}),
    download: f.download !== false,
    floor: f.floor !== false,
    revision: f.revision,
    framework: f.framework === undefined ? undefined : choiceFlag('--framework', f.framework, FRAMEWORKS),
    url: f.url,
    gpuPricePerHour: f.gpuPrice === undefined ? null : positiveFlag('--gpu-price', f.gpuPrice),
    warmInstances: intFlag('--warm-instances', f.warmInstances, 1),
    probeBytes: f.probeBytes ? intFlag('--probe-bytes', f.probeBytes, 1 << 20) : Number(ctx.env.COLDSTART_PROBE_BYTES) || undefined,
    ...(wrapping ? { wrap: wrapServer(f, command) } : {}),
  };
  // Each flag's value is checked above; how they go together below (the order warmup keeps too).
  if (!wrapping && (f.readyUrl || f.readyLog)) throw new ColdstartError('USAGE', '--ready-url/--ready-log are for wrap mode: put the server command after --');
  if (f.direct && f.buffered) throw new ColdstartError('USAGE', '--direct and --buffered exclude each other: pick one');
  if (options.tp !== undefined && options.devices !== undefined && options.devices.length !== options.tp) {
    throw new ColdstartError('USAGE', `--tp ${options.tp} needs ${options.tp} GPUs, one per rank; --devices ${f.devices} names another number`, { hint: `Give --devices ${options.tp} indexes, or leave it out (0..${options.tp - 1}).` });
  }
  // The floor is what floor mode and --estimate measure; skipping it only makes sense beside a stack.
  if (!options.floor && !wrapping && (!options.framework || options.estimate)) {
    throw new ColdstartError('USAGE', '--no-floor needs --framework or a wrapped server (profile -- CMD): without a stack the floor is the profile', { hint: 'Drop --no-floor, or add --framework transformers|torch|safetensors.' });
  }
  // --tp shapes coldstart's own load; a stack, a wrapped server or an estimate load (or not) the way they do.
  if (options.tp !== undefined && (wrapping || options.framework || options.estimate)) {
    const why = wrapping ? 'a wrapped server loads its weights itself' : options.framework ? '--framework: your stack loads the weights itself' : '--estimate moves no weight bytes';
    throw new ColdstartError('USAGE', `--tp shapes coldstart's own load of the weights; ${why}`, { hint: 'Drop --tp, or profile the model without a stack to see the sharded load.' });
  }
  return options;
}

/** What the profile tells while it runs, shown through Output (progress on a TTY, run lines, --debug server log). */
function events(ctx: Context): ProfileEvents {
  return {
    progress: (label) => ctx.out.progress(label, 'starting…', { plainEverySeconds: 5 }),
    note: (text) => ctx.out.info(text), run: (text) => ctx.out.progressLine(text),
    ...(ctx.global.debug ? { serverLine: (t: number, text: string) => ctx.out.debug(`[server ${t.toFixed(2)}s] ${text}`) } : {}),
  };
}

/** `engines` are the real ones by default; tests pass stand-ins (an object of functions). */
export function registerProfile(program: Command, run: Runner, engines: Engines = defaultEngines): void {
  addTelemetryOptions(addReportOptions(addWrapOptions(
    program
      .command('profile')
      .description('profile a cold start phase by phase (default model: the built-in demo)')
      .usage('[options] [model]\n       coldstart profile [options] [model] --ready-url URL -- <server…>')
      .argument('[model]', 'alias (llama3-8b…), Hub repo id, local model directory or weights file (default: demo)')
      .allowExcessArguments(true)
      .option('--runs <n>', 'measured runs', '1')
      .option('--warmup <n>', 'unmeasured warmup runs first', '0')
      .option('--only <phases>', 'comma-separated phases to run (container,cuda-init,download,gpu-load,warmup)')
      .option('--synthetic', 'build a shape-accurate synthetic checkpoint for an alias (random bytes, cached)')
      .option('--format <format>', 'synthetic checkpoint format: safetensors or bin', 'safetensors')
      .option('--dtype <dtype>', 'synthetic checkpoint dtype: bf16, fp16 or fp32 (default: the model\'s)')
      .option('--estimate', 'predict every phase from measured rates; move no weight bytes')
      .option('--cache <mode>', 'page cache for gpu-load: cold (drop the files first), warm or as-is', 'cold')
      .option('--direct', 'gpu-load reads with O_DIRECT and leaves the page cache as found (default for weights not in the page cache)')
      .option('--buffered', 'gpu-load reads through the page cache and leaves the weights there for the next start')
      .option('--devices <list>', 'GPU indexes to use, e.g. 0,1 (after CUDA_VISIBLE_DEVICES)')
      .option('--tp <n>', 'gpu-load: tensor-parallel degree; each of N GPUs (--devices, default 0..N-1) receives only its slices, as vLLM shards the model')
      .option('--verify', 'gpu-load: copy a sample of every tensor back and compare it with the file (exit 1 on a mismatch)')
      .option('--no-download', 'do not download: estimate the download from Hub file sizes and a measured rate')
      .option('--revision <rev>', 'Hub revision (branch, tag or commit)')
      .option('--framework <name>', 'profile your stack: torch, safetensors or transformers in its own Python process, the floor beside each step')
      .option('--url <url>', 'warm up a running inference server at this URL')
      .option('--image <image>', 'time a container start of this image with podman/docker run --rm (pull when absent)')
      .option('--container-runtime <runtime>', 'podman or docker (default: the first that works)')
      .option('--since <time>', 'when the start was scheduled (RFC 3339 or Unix epoch seconds, e.g. the pod\'s creationTimestamp): adds scheduled → started')
      .option('--container-arg <arg>', 'extra argument for `run`, e.g. --container-arg=--runtime=runc (repeatable)', collect)
      .option('--gpu-price <usd>', 'GPU price per hour, for the warm-pool trade-off')
      .option('--warm-instances <n>', 'warm instances the warm-pool trade-off prices', '1')
      .option('--no-floor', 'with --framework or a wrapped server: your numbers only; skip the floor (native probe, loader, rate probe) that runs after your stack')
      .option('--probe-bytes <n>', 'size of the rate-probe file (default: the model size, 64 MiB–1 GiB)')
      .option('--remeasure', "measure the rates again (default: reuse this machine's from the last 7 days)"),
    'wrap mode: ',
  ))).action(
    run(async (ctx, ...args: unknown[]) => {
      const cmd = args[args.length - 1] as Command;
      const options = profileOptions(ctx, cmd);
      const emit = emitOptions(ctx, cmd.opts() as ProfileFlags, localInputs(ctx, options.model));
      const out = await withFlagNames({ devices: '--devices', tp: '--tp', cache: '--cache', synthetic: '--synthetic' }, () => runProfile(options, { engines, env: ctx.env, cwd: ctx.cwd, signal: ctx.signal, events: events(ctx) }));
      return emitReport(ctx.out, out.report, ctx.cwd, { ...emit, extraHuman: out.lines({ style: ctx.out.style, quiet: ctx.out.opts.quiet }), exitCode: out.exitCode });
    }),
  );
}
