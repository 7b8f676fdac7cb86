/**
 * `coldstart profile`: a short orchestrator over the phase modules. Three modes:
 * - no stack: the floor profile (phases.ts) — what a cold start of this model could be on this machine;
 * - `--framework`: the user's stack in its own process (stack.ts), the floor beside each step;
 * - `-- <server>`: wrap mode (wrapmode.ts), phases from the server's logs.
 * Totals are the measured wall clock of what was profiled (phases + unexplained); incomplete when a phase that
 * applies was not measured.
 */
import { performance } from 'node:perf_hooks';
import type { Context } from '../cli/context.js';
import { emitOptions, localInputs } from '../cli/context.js';
import { ColdstartError, ERROR_CODES, ExitCode, invalidArg, isColdstartError, type ErrorCode } from '../core/errors.js';
import { missingPhases, skippedPhase, publicPhase, PHASES, isPhaseName, type PhaseResult } from '../core/phases.js';
import { newReport, runTotal, summarizeRuns, type Report } from '../core/report.js';
import { emitReport } from '../core/emit.js';
import { Stopwatch } from '../core/clock.js';
import { parseCount, repeatRuns } from '../core/repeat.js';
import { intFlag } from '../core/flags.js';
import { formatDuration } from '../core/format.js';
import { type SyntheticFormat } from '../formats/synthetic.js';
import { describeLoadModel, type Rates } from './estimate.js';
import { whatIfRows, computeFindings, type ModelFacts } from './findings.js';
import { defaultEngines, type Engines } from './engines.js';
import { resolveTarget } from './target.js';
import { FRAMEWORKS, type Framework, type StackTimes } from './framework.js';
import { containerPhase, cudaInitPhase, downloadPhase, gpuLoadPhase, warmupPhase } from './phases.js';
import { parseSince } from '../platform/container.js';
import { stackPhases } from './stack.js';
import { prepare, probe } from './prepare.js';
import { wrapMode, posNum } from './wrapmode.js';
import { modelFacts, whatIfLines, yoursFloorLines } from './render.js';
import type { ProfileFlags, State } from './state.js';

export type { ProfileFlags } from './state.js';

/** Splits `coldstart profile [model] -- cmd …`: what commander saw as operands, cut at the literal `--`. */
export function splitWrap(argv: readonly string[], operands: readonly string[]): { model?: string; command: string[] } {
  const i = argv.indexOf('--');
  if (i < 0) return { model: operands[0], command: [] };
  const command = argv.slice(i + 1);
  const before = operands.slice(0, Math.max(0, operands.length - command.length));
  return { model: before[0], command };
}

type Body = (s: State) => Promise<PhaseResult & { cause?: unknown }>;

function selected(s: State, name: string): boolean {
  return !s.only || s.only.has(name);
}

async function phase(s: State, name: string, body: Body): Promise<PhaseResult & { cause?: unknown; elapsed: number }> {
  if (!selected(s, name)) return { ...skippedPhase(name, 'not selected (--only): the total covers the selected phases', true), elapsed: 0 };
  const sw = new Stopwatch();
  const p = await body(s);
  if (p.status === 'failed' && isColdstartError(p.cause) && p.cause.exitCode === ExitCode.USAGE) throw p.cause;
  return { ...p, elapsed: sw.elapsed() };
}

const outsideSum = (s: State) => Object.values(s.outside).reduce((a, b) => a + b, 0);

function unexplainedRow(seconds: number, note: string): PhaseResult {
  return { name: 'unexplained', status: 'ok', seconds: Math.max(0, seconds), note, steps: [], metrics: {} };
}

/**
 * One floor run: container (from /proc or --since/--image, before coldstart's own clock), then cuda-init,
 * download, gpu-load and warmup in sequence; what their wall clock holds beyond the phases is "unexplained".
 */
async function floorRun(s: State): Promise<PhaseResult[]> {
  const out: PhaseResult[] = [await phase(s, 'container', containerPhase)];
  const sw = new Stopwatch();
  const before = outsideSum(s);
  const seq = [await phase(s, 'cuda-init', cudaInitPhase), await phase(s, 'download', downloadPhase), await phase(s, 'gpu-load', gpuLoadPhase), await phase(s, 'warmup', warmupPhase)];
  // Time spent in phases that were not measured (a host read without a GPU) is not part of this cold start.
  const wall = sw.elapsed() - (outsideSum(s) - before) - seq.filter((p) => p.status !== 'ok').reduce((a, p) => a + p.elapsed, 0);
  const explained = seq.reduce((a, p) => a + (p.status === 'ok' ? (p.seconds ?? 0) : 0), 0);
  out.push(...seq);
  if (seq.some((p) => p.status === 'ok')) out.push(unexplainedRow(wall - explained, "between the phases (coldstart's own bookkeeping)"));
  return out;
}

/** One stack run: container and download as in the floor profile, then the stack's own process. */
async function stackRun(s: State, fw: Framework, last: { times: StackTimes | null }): Promise<PhaseResult[]> {
  const out: PhaseResult[] = [await phase(s, 'container', containerPhase)];
  out.push(await phase(s, 'download', downloadPhase));
  // The native CUDA probe is the floor of cuda-init (its row comes from the stack); it runs after the stack.
  const r = await stackPhases(s, fw, cudaInitPhase);
  last.times = r.times;
  out.push(...r.rows);
  out.push(unexplainedRow(r.unexplainedSeconds, 'process spawn and exit, pipes: the stack wall clock (Node) minus its events'));
  return out;
}

/** --estimate: container and cuda-init are measured; download and gpu-load predicted from the rates; warmup cannot be. */
async function estimateRun(s: State, probeBytes: number | undefined): Promise<PhaseResult[]> {
  const c = await phase(s, 'container', containerPhase);
  const ci = await phase(s, 'cuda-init', cudaInitPhase);
  await probe(s, probeBytes);
  return [c, ci, await phase(s, 'download', downloadPhase), await phase(s, 'gpu-load', gpuLoadPhase), await phase(s, 'warmup', warmupPhase)];
}

export async function profileCommand(ctx: Context, modelArg: string | undefined, wrapCommand: string[], flags: ProfileFlags, engines: Engines = defaultEngines): Promise<number> {
  const wall = new Stopwatch();
  const runs = parseCount('--runs', flags.runs, 1);
  const warmup = parseCount('--warmup', flags.warmup, 0);
  const only = flags.only ? new Set(flags.only.split(',').map((x) => x.trim()).filter(Boolean)) : null;
  for (const p of only ?? []) if (!isPhaseName(p)) throw invalidArg('--only', `phases from ${PHASES.join(', ')}`, p);
  if (flags.format && flags.format !== 'safetensors' && flags.format !== 'bin') throw invalidArg('--format', 'safetensors or bin', flags.format);
  if (!['cold', 'warm', 'as-is'].includes(flags.cache)) throw invalidArg('--cache', 'cold, warm or as-is', flags.cache);
  if (flags.framework && !(FRAMEWORKS as readonly string[]).includes(flags.framework)) throw invalidArg('--framework', FRAMEWORKS.join(', '), flags.framework);
  const gpuPrice = flags.gpuPrice !== undefined ? posNum('--gpu-price', flags.gpuPrice) : null;
  const warmInstances = flags.warmInstances !== undefined ? intFlag('--warm-instances', flags.warmInstances, 1) : 1;
  const devices = flags.devices ? flags.devices.split(',').map((d) => intFlag('--devices', d.trim(), 0)) : undefined;
  const probeBytes = flags.probeBytes ? intFlag('--probe-bytes', flags.probeBytes, 1 << 20) : Number(ctx.env.COLDSTART_PROBE_BYTES) || undefined;
  // Checked before anything runs: a bad --since is a usage error (exit 2), not a failed container phase.
  if (flags.since !== undefined) parseSince(flags.since);
  const opts = emitOptions(ctx, flags, localInputs(ctx, modelArg));

  // The floor is what floor mode and --estimate measure; skipping it only makes sense beside a stack.
  if (flags.floor === false && wrapCommand.length === 0 && (!flags.framework || flags.estimate)) {
    throw new ColdstartError('USAGE', '--no-floor needs --framework or a wrapped server (profile -- CMD): without a stack the floor is the profile', { hint: 'Drop --no-floor, or add --framework transformers|torch|safetensors.' });
  }
  if (wrapCommand.length > 0) return wrapMode(ctx, engines, modelArg, wrapCommand, flags, runs, warmup, probeBytes, opts, wall);

  const target = resolveTarget(modelArg, ctx.cwd, { synthetic: flags.synthetic, format: flags.format as SyntheticFormat | undefined, dtype: flags.dtype });
  const report: Report = newReport('profile');
  const s: State = { ctx, flags, engines, target, only, cache: flags.cache as State['cache'], devices, cuda: null, cudaReason: null, rates: null, assumptions: target.skipped ? [`weights: ${target.skipped}`] : [], gpuLoad: null, floorLoad: null, gpuLoadWarm: null, downloaded: null, outside: {} };
  await prepare(s);

  const fw = flags.framework && !flags.estimate ? (flags.framework as Framework) : null;
  const mode = flags.estimate ? 'estimate' : fw ? 'stack' : 'floor';
  const last: { times: StackTimes | null } = { times: null };
  const measured: PhaseResult[][] = [];
  if (mode === 'estimate') measured.push(await estimateRun(s, probeBytes));
  else {
    // --no-download needs the network rate before the download phase; otherwise rates come after the runs, so
    // the probe file cannot disturb the measured (cold) page cache.
    const probeFirst = !flags.download;
    if (probeFirst) await probe(s, probeBytes);
    const onRun = ({ index, warmup: w, phases }: { index: number; warmup: boolean; phases: readonly PhaseResult[] }) => {
      const t = runTotal(phases);
      if (runs + warmup > 1) ctx.out.progressLine(`run ${index + 1}/${warmup + runs}${w ? ' (warmup, not counted)' : ''}: ${t === null ? `incomplete (${missingPhases(phases).join(', ')} not measured)` : formatDuration(t)}`);
    };
    measured.push(...(await repeatRuns({ runs, warmup, signal: ctx.signal, onRun }, () => (fw ? stackRun(s, fw, last) : floorRun(s)))));
    if (!probeFirst && flags.floor !== false) await probe(s, probeBytes);
    // The same load with a warm page cache, measured by the loader (outside the phases: not part of a cold start).
    const fl = s.floorLoad;
    if (fl && s.cache === 'cold' && (target.bytes ?? Infinity) < report.host.memoryBytes * 0.8) {
      const sw = new Stopwatch();
      s.gpuLoadWarm = await engines.gpuLoad.runGpuLoad({ files: fl.files.map((f) => f.path), devices: s.devices, cache: 'warm', limits: false, signal: ctx.signal });
      s.outside.warmLoad = sw.elapsed();
    }
  }

  const sum = summarizeRuns(measured.map((r) => r.map((p) => publicPhase(stripElapsed(p)))));
  for (const p of measured[measured.length - 1] ?? []) {
    const c = (p as { cause?: unknown }).cause;
    if (p.status === 'failed' && isColdstartError(c) && c.hint) report.warnings.push(`${p.name}: ${c.hint}`);
  }
  report.phases = sum.phases;
  report.total = { ...sum.total, ...(mode === 'estimate' ? {} : { wallSeconds: sum.total.seconds ?? undefined, unexplainedSeconds: report.phases.find((p) => p.name === 'unexplained')?.seconds ?? undefined }) };
  report.warnings.push(...sum.warnings);
  report.runs = { count: measured.length, warmup: mode === 'estimate' ? 0 : warmup, samples: sum.samples };

  const source: ModelFacts['source'] = target.synthetic ? 'synthetic' : target.kind === 'dir' || target.kind === 'file' ? 'local' : s.downloaded && !s.downloaded.fromCache && s.downloaded.bytes > 0 ? 'downloaded' : 'cached';
  const facts = modelFacts(s, source);
  const inputs = {
    phases: report.phases,
    total: report.total.seconds,
    rates: s.rates,
    model: facts,
    gpuPricePerHour: gpuPrice,
    warmInstances,
    hostMemoryBytes: report.host.memoryBytes,
    warmLoadSeconds: s.gpuLoad && s.gpuLoadWarm ? s.gpuLoadWarm.seconds : null,
    coldWarmRead: s.floorLoad && s.gpuLoadWarm && s.cache === 'cold' ? { coldSeconds: s.floorLoad.seconds, warmSeconds: s.gpuLoadWarm.seconds } : null,
  };
  const rows = whatIfRows(inputs);
  report.findings = computeFindings(inputs, rows);
  report.target = {
    name: target.name,
    kind: target.kind,
    ...(target.spec ? { alias: target.spec.alias } : {}),
    ...(target.repo ? { repo: target.repo } : {}),
    synthetic: target.synthetic,
    dir: target.dir,
    files: target.files,
    format: target.format,
    dtype: target.dtype,
    bytes: target.bytes,
    parameters: target.parameters,
  };
  report.details = {
    mode,
    label: mode === 'floor' ? 'floor: what a cold start of this model could be on this machine (coldstart\'s own loader; no stack given)' : mode === 'stack' ? `your stack: ${fw} in its own Python process, the floor beside each step` : 'estimate: predicted from measured rates, no weight bytes moved',
    cache: s.cache,
    rates: s.rates,
    assumptions: mode === 'estimate' ? [...describeLoadModel(s.rates ?? ({} as Rates)), ...s.assumptions] : s.assumptions,
    whatIf: rows,
    stack: last.times,
    ...(flags.floor === false ? { floor: { measured: false, reason: 'not measured: --no-floor' } } : {}),
    gpuLoad: s.gpuLoad,
    floorLoad: s.floorLoad,
    gpuLoadWarm: s.gpuLoadWarm,
    wall: { seconds: wall.elapsed(), processSeconds: performance.now() / 1000, outside: s.outside },
  };

  const extra: string[] = [String(report.details.label)];
  extra.push(...yoursFloorLines(report.phases, ctx));
  if (flags.floor === false) extra.push('', 'floor: not measured (--no-floor): your stack\'s numbers only');
  extra.push(...whatIfLines(rows, ctx));
  if (mode === 'estimate' && !ctx.out.opts.quiet) extra.push('', ctx.out.style.bold('assumptions'), ...(report.details.assumptions as string[]).map((a) => `  - ${a}`));
  // A phase that broke (pull failure, runtime refused, …) is reported in the table and decides the exit code (the
  // JSON document's exitCode too).
  const failed = report.phases.find((p) => p.status === 'failed');
  const broke = failed?.error ? (ERROR_CODES[failed.error.code as ErrorCode] ?? ExitCode.ENV) : undefined;
  return emitReport(ctx.out, report, ctx.cwd, { ...opts, extraHuman: extra, exitCode: broke });
}

function stripElapsed(p: PhaseResult & { elapsed?: number }): PhaseResult & { cause?: unknown } {
  const { elapsed: _e, ...rest } = p;
  return rest;
}
