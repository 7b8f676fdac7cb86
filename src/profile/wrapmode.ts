/**
 * Wrap mode (`profile [MODEL] -- <server command>`): the server's own phases from its logs, unexplained time shown as
 * such, and the floor beside its weights-loading stage (the weights' bytes ÷ rates measured after it stopped).
 */
import { resolve } from 'node:path';
import type { Context } from '../cli/context.js';
import { invalidArg } from '../core/errors.js';
import { skippedPhase, type PhaseResult } from '../core/phases.js';
import { newReport, summarizeRuns } from '../core/report.js';
import { emitReport, type EmitOptions } from '../core/emit.js';
import type { Stopwatch } from '../core/clock.js';
import { repeatRuns } from '../core/repeat.js';
import { durationFlag, intFlag } from '../core/flags.js';
import { pathEntryExists, statInput } from '../core/files.js';
import { formatBytes, formatDuration, formatPercent, formatRate } from '../core/format.js';
import type { PhaseSummary } from '../core/report.js';
import { pageCacheFraction } from '../load/prefetch.js';
import { describeSkipped, resolveWeights } from '../load/weights.js';
import { indexFormatOf, weightFormatOf } from '../formats/weights.js';
import { resolveRepoId } from '../models/table.js';
import { parseStageFlag, WRAP_PHASES, type WrapResult } from '../server/wrap.js';
import { whatIfRows, computeFindings } from './findings.js';
import { predictLoadSeconds } from './estimate.js';
import { probe } from './prepare.js';
import { yoursFloorLines } from './render.js';
import type { Engines } from './engines.js';
import type { ProfileFlags, State } from './state.js';

export function posNum(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw invalidArg(flag, 'a positive number', v);
  return n;
}

/** The phases of one wrapped run; `noCompletion`: --no-completion left the first request out by choice (outside the total). */
function wrapPhases(r: WrapResult, noCompletion: boolean): PhaseResult[] {
  const phases: PhaseResult[] = [];
  phases.push(skippedPhase('container', 'wrap mode: the server was started as a process on this host', true));
  phases.push(skippedPhase('cuda-init', 'wrap mode: inside the server process, not separable from its logs (counted in unexplained)', true));
  for (const name of WRAP_PHASES) {
    const st = r.stages.filter((x) => x.phase === name);
    if (st.length === 0) {
      // The time is not lost: it is inside "unexplained" (start → ready not covered by a log line).
      phases.push(skippedPhase(name, `${r.engine ? `no ${r.engine} log line for this phase` : r.engineNote ?? 'no known engine log lines (vLLM, TGI, SGLang, llama.cpp)'}; its time is inside unexplained`, true));
      continue;
    }
    phases.push({
      name,
      status: 'ok',
      seconds: st.reduce((a, x) => a + (x.ownSeconds ?? x.end - x.start), 0),
      note: `from ${r.engine ?? '--stage'} log lines`,
      steps: st.map((x) => ({ name: x.stage, seconds: x.ownSeconds ?? x.end - x.start, note: `${formatDuration(x.start)} → ${formatDuration(x.end)} after start${x.reportedSeconds !== undefined ? `; engine reported ${formatDuration(x.reportedSeconds)}` : ''}` })),
      metrics: {},
    });
  }
  phases.push({ name: 'unexplained', status: 'ok', seconds: r.unexplainedSeconds, note: 'start → ready not covered by any known log line (imports, process start, engine set-up)', steps: [], metrics: {} });
  if ('seconds' in r.firstCompletion) phases.push({ name: 'first-completion', status: 'ok', seconds: r.firstCompletion.seconds, note: `POST ${r.firstCompletion.url}`, steps: [], metrics: { status: r.firstCompletion.status } });
  else phases.push(skippedPhase('first-completion', r.firstCompletion.skipped, noCompletion));
  return phases;
}

/** The weights a wrapped server loads, for the floor beside its weights-loading stage. */
export interface WrapWeights {
  files: string[];
  bytes: number;
  /** safetensors and .bin as the load model has them; GGUF and ONNX are read whole, like safetensors. */
  format: 'safetensors' | 'bin' | 'other';
  /** MODEL before `--`, or the argument of the command it was found in. */
  from: string;
  /** What the resolver left out and why (describeSkipped), or null. */
  skipped: string | null;
}

async function weightsOf(target: string, shown: string, ctx: Pick<Context, 'cwd' | 'env' | 'signal'>, revision: string | undefined, writeSynthetic: boolean): Promise<WrapWeights> {
  // The same resolver as floor mode (and prefetch): the same folder gives the same files in both modes.
  const w = await resolveWeights(target, { env: ctx.env, cwd: ctx.cwd, revision, shown, writeSynthetic, signal: ctx.signal });
  const format = w.format === 'safetensors' || w.format === 'bin' ? w.format : 'other';
  return { files: w.files, bytes: w.bytes, format, from: shown, skipped: describeSkipped(w) };
}

/**
 * MODEL given before `--` (its errors are the user's to see), else the first argument of the server command that
 * names a local weights file or directory, or a Hub repo id in the HF cache (`vllm serve ./llama`,
 * `--model=org/name`, `llama-server -m x.gguf`). Null with the reason when none is found.
 */
export async function wrapWeights(modelArg: string | undefined, command: readonly string[], ctx: Pick<Context, 'cwd' | 'env' | 'signal'>, revision?: string): Promise<WrapWeights | { reason: string }> {
  if (modelArg) return weightsOf(modelArg, modelArg, ctx, revision, true);
  for (const a of command.slice(1)) {
    const c = a.startsWith('-') ? (a.includes('=') ? a.slice(a.indexOf('=') + 1) : '') : a;
    if (!c) continue;
    try {
      const p = resolve(ctx.cwd, c);
      if (pathEntryExists(p)) {
        // A file that is not weights (a chat template, a config) is some other argument.
        if (statInput(p).isFile() && !weightFormatOf(p) && !indexFormatOf(p)) continue;
      } else if (!resolveRepoId(c)) continue;
      // Scanning never writes the demo's synthetic checkpoint: a server command does not load it.
      return await weightsOf(c, c, ctx, revision, false);
    } catch {
      /* not weights (a directory without any, a repo not in the cache): the next argument */
    }
  }
  return { reason: 'no weights found in the server command: name them before -- (coldstart profile MODEL_DIR -- CMD) for the floor beside the weights-loading stage' };
}

/** Fraction of the weights resident in the page cache (mincore), null when it cannot be told. */
async function residency(engines: Engines, files: readonly string[]): Promise<number | null> {
  const n = engines.native();
  if (!n.ok) return null;
  try {
    return pageCacheFraction(await n.addon.pageCache({ paths: [...files], action: 'query' }));
  } catch {
    return null;
  }
}

/**
 * The floor of the weights-loading stage: the weights' bytes ÷ the rates the native loader measures on a probe
 * (after the server stopped, so nothing it does disturbs the server's cold start), cold and warm mixed by the
 * fraction the page cache held before the server started.
 */
async function wrapFloor(ctx: Context, engines: Engines, flags: ProfileFlags, w: WrapWeights, resident: number | null, probeBytes: number | undefined): Promise<{ floor: NonNullable<PhaseSummary['floor']>; rates: State['rates']; assumptions: string[] } | { reason: string }> {
  const n = engines.native();
  if (!n.ok) return { reason: `not measured: the native addon is unavailable (${n.reason})` };
  const cuda = await n.addon.cudaProbe({ context: false }).catch(() => null);
  const s: State = {
    ctx,
    flags,
    engines,
    target: { name: w.from, kind: w.files.length === 1 ? 'file' : 'dir', synthetic: false, dir: null, files: w.files, format: w.format === 'bin' ? 'bin' : 'safetensors', dtype: null, bytes: w.bytes, parameters: null },
    only: null,
    cache: 'as-is',
    cuda,
    cudaReason: null,
    rates: null,
    assumptions: [],
    gpuLoad: null,
    floorLoad: null,
    gpuLoadWarm: null,
    downloaded: null,
    outside: {},
  };
  try {
    await probe(s, probeBytes);
  } catch (e) {
    // The floor is beside the server's numbers, never in their way: a probe that cannot run is "not measured".
    if (ctx.signal?.aborted) throw e;
    return { reason: `not measured: the rate probe failed (${(e as Error).message.split('\n')[0]})` };
  }
  if (!s.rates) return { reason: 'not measured: the rate probe gave no rates' };
  const gpu = !!cuda?.available;
  const format = w.format === 'bin' ? 'bin' : 'safetensors';
  const cold = predictLoadSeconds(s.rates, { bytes: w.bytes, format, cache: 'cold', gpu });
  const warm = predictLoadSeconds(s.rates, { bytes: w.bytes, format, cache: 'warm', gpu });
  if (cold === null || warm === null) return { reason: 'not measured: no read rate could be measured' };
  const f = resident ?? 0;
  const seconds = f * warm + (1 - f) * cold;
  const r = s.rates;
  const cache = resident === null ? 'page cache state unknown (counted cold)' : `${formatPercent(f)} in the page cache at start`;
  const source = `${formatBytes(w.bytes)} ÷ measured rates (${cache}; read ${formatRate(r.diskReadBytesPerSecond ?? NaN)} cold, ${formatRate(r.pageCacheBytesPerSecond ?? NaN)} warm${gpu && r.h2dBytesPerSecond ? `, host→device ${formatRate(r.h2dBytesPerSecond)}` : ', no GPU: host read only'})`;
  const assumptions = [...s.assumptions, `floor of gpu-load: ${w.files.length} file(s) from ${w.from}${w.format === 'other' ? ' (GGUF/ONNX: read whole, predicted like safetensors)' : ''}${w.skipped ? `; ${w.skipped}` : ''}`];
  return { floor: { seconds, source }, rates: r, assumptions };
}

export async function wrapMode(ctx: Context, engines: Engines, modelArg: string | undefined, command: string[], flags: ProfileFlags, runs: number, warmup: number, probeBytes: number | undefined, opts: EmitOptions, wall: Stopwatch): Promise<number> {
  let readyLog: RegExp | undefined;
  if (flags.readyLog) {
    try {
      readyLog = new RegExp(flags.readyLog);
    } catch (e) {
      throw invalidArg('--ready-log', 'a regular expression', flags.readyLog, (e as Error).message);
    }
  }
  const readyTimeout = durationFlag('--ready-timeout', flags.readyTimeout, { bareSeconds: true });
  const stopTimeout = durationFlag('--stop-timeout', flags.stopTimeout, { bareSeconds: true });
  const stageRules = (flags.stage ?? []).map(parseStageFlag);
  const weights = flags.floor === false ? { reason: 'not measured: --no-floor' } : await wrapWeights(modelArg, command, ctx, flags.revision);
  const resident: Array<number | null> = [];
  let last: WrapResult | null = null;
  const onRun = ({ index, warmup: w }: { index: number; warmup: boolean }) => {
    if (runs + warmup > 1) ctx.out.progressLine(`run ${index + 1}/${warmup + runs}${w ? ' (warmup, not counted)' : ''}: ready in ${formatDuration(last!.readySeconds)}`);
  };
  const measured = await repeatRuns({ runs, warmup, signal: ctx.signal, onRun }, async () => {
    if ('files' in weights) resident.push(await residency(engines, weights.files));
    last = await engines.wrap.runWrapped({
      command,
      readyUrl: flags.readyUrl,
      readyLog,
      completionUrl: flags.completion === false ? false : flags.completionUrl,
      readyTimeoutSeconds: readyTimeout,
      stopTimeoutSeconds: stopTimeout,
      stageRules,
      env: ctx.env,
      cwd: ctx.cwd,
      signal: ctx.signal,
      onLine: ctx.global.debug ? (l) => ctx.out.debug(`[server ${l.t.toFixed(2)}s] ${l.text}`) : undefined,
    });
    return wrapPhases(last, flags.completion === false);
  });
  const report = newReport('profile');
  const sum = summarizeRuns(measured);
  report.phases = sum.phases;
  report.total = sum.total;
  report.warnings.push(...sum.warnings);
  report.runs = { count: runs, warmup, samples: sum.samples };
  report.target = { name: command.join(' '), kind: 'server', command, engine: last!.engine };
  // The floor beside the weights-loading stage, measured after the server has stopped.
  const fr = resident.slice(-runs);
  const meanResident = fr.length && fr.every((x) => x !== null) ? (fr as number[]).reduce((a, b) => a + b, 0) / fr.length : null;
  const floor = 'files' in weights ? await wrapFloor(ctx, engines, flags, weights, meanResident, probeBytes) : weights;
  const load = report.phases.find((p) => p.name === 'gpu-load');
  if (load && 'floor' in floor) load.floor = floor.floor;
  const inputs = { phases: report.phases, total: report.total.seconds, rates: null, model: null, gpuPricePerHour: flags.gpuPrice ? posNum('--gpu-price', flags.gpuPrice) : null, warmInstances: flags.warmInstances ? intFlag('--warm-instances', flags.warmInstances, 1) : 1 };
  const rows = whatIfRows(inputs);
  // The server's own warmup runs before ready; the first request's cost is the first-completion row.
  report.findings = computeFindings(inputs, rows).filter((f) => f.id !== 'warmup');
  const un = report.phases.find((p) => p.name === 'unexplained');
  if (un?.seconds && report.total.seconds && un.seconds / report.total.seconds > 0.3) {
    report.findings.push({ id: 'unexplained', savesSeconds: null, message: `${formatDuration(un.seconds)} of the start-up is not explained by the server's log lines: run with --debug to see the timed log, or profile the pieces (coldstart profile MODEL)` });
  }
  report.details = {
    mode: 'wrap',
    readyBy: last!.readyBy,
    readySeconds: last!.readySeconds,
    stages: last!.stages,
    stop: last!.stop,
    whatIf: rows,
    floor: 'floor' in floor ? { ...floor.floor, weights: { from: (weights as WrapWeights).from, files: (weights as WrapWeights).files, bytes: (weights as WrapWeights).bytes }, residentFraction: meanResident, rates: floor.rates, assumptions: floor.assumptions } : { measured: false, reason: floor.reason },
    wall: { seconds: wall.elapsed(), serverSeconds: last!.readySeconds + ('seconds' in last!.firstCompletion ? last!.firstCompletion.seconds : 0) },
  };
  const floorLines = 'floor' in floor ? yoursFloorLines(report.phases, ctx) : ['', `floor of gpu-load: ${floor.reason}`];
  return emitReport(ctx.out, report, ctx.cwd, { ...opts, extraHuman: [...floorLines, ...(last!.engineNote ? [last!.engineNote, ...last!.timeline.map((l) => `  ${l.t.toFixed(3).padStart(9)} s  ${l.text.slice(0, 160)}`)] : []), `server ${last!.engine ?? '(engine not recognised)'}: ready after ${formatDuration(last!.readySeconds)} (by ${last!.readyBy}); stopped with ${last!.stop.signal} in ${formatDuration(last!.stop.seconds)}${last!.engineVersion ? `; ${last!.engine} ${last!.engineVersion}` : ''}`] });
}

