/**
 * Wrap mode (`profile [MODEL] -- <server command>`): the server's own phases from its logs, unexplained time shown as
 * such, and the floor beside its weights-loading stage (the weights' bytes ÷ rates measured after it stopped).
 */
import { resolve } from 'node:path';
import { skippedPhase, type PhaseResult } from '../core/phases.js';
import { newReport, summarizeRuns } from '../core/report.js';
import type { Stopwatch } from '../core/clock.js';
import { repeatRuns } from '../core/repeat.js';
import { pathEntryExists, statInput } from '../core/files.js';
import { formatBytes, formatDuration, formatPercent, formatRate } from '../core/format.js';
import type { PhaseSummary } from '../core/report.js';
import { pageCacheFraction } from '../load/prefetch.js';
import { describeSkipped, resolveWeights } from '../load/weights.js';
import { indexFormatOf, weightFormatOf } from '../formats/weights.js';
import { resolveRepoId } from '../models/table.js';
import type { WrapResult } from '../server/wrap.js';
import { WRAP_PHASES } from '../server/rules/index.js';
import { whatIfRows, computeFindings } from './findings.js';
import { predictLoadSeconds, type Rates } from './estimate.js';
import { measureProbe } from './prepare.js';
import { yoursFloorLines } from './render.js';
import type { Engines } from './engines.js';
import type { ProfileDeps, WrapPlan } from './plan.js';
import type { ProfileOutcome } from './report.js';

/** Where weights are looked for: the working directory, the environment (HF cache), and the run's signal. */
type Where = Pick<ProfileDeps, 'cwd' | 'env' | 'signal'>;

/** The phases of one wrapped run (profile and optimize); `noCompletion`: --no-completion left the first request out by choice (outside the total). */
export function wrapPhases(r: WrapResult, noCompletion: boolean): PhaseResult[] {
  const phases: PhaseResult[] = [];
  phases.push(skippedPhase('container', 'wrap mode: the server was started as a process on this host', true));
  phases.push(skippedPhase('cuda-init', 'wrap mode: inside the server process, not separable from its logs (counted in unexplained)', true));
  for (const name of WRAP_PHASES) {
    const st = r.stages.filter((x) => x.phase === name);
    if (st.length === 0) {
      // The time is not lost: it is inside "unexplained" (start → ready not covered by a log line).
      // The long "engine not recognised" paragraph is printed once below the table, never in each row.
      phases.push(skippedPhase(name, `${r.engine ? `no ${r.engine} log line for this phase` : 'engine not recognised (see the timeline below the table)'}; its time is inside unexplained`, true));
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

async function weightsOf(target: string, shown: string, ctx: Where, revision: string | undefined, writeSynthetic: boolean): Promise<WrapWeights> {
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
export async function wrapWeights(modelArg: string | undefined, command: readonly string[], ctx: Where, revision?: string): Promise<WrapWeights | { reason: string }> {
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
 * fraction the page cache held before a start. One probe, one floor per start's fraction (optimize has two starts).
 */
export async function wrapFloor(deps: ProfileDeps, w: WrapWeights, residents: ReadonlyArray<number | null>, probe: { probeBytes?: number; remeasure?: boolean }): Promise<{ floors: Array<NonNullable<PhaseSummary['floor']>>; rates: Rates; assumptions: string[] } | { reason: string }> {
  const n = deps.engines.native();
  if (!n.ok) return { reason: `not measured: the native addon is unavailable (${n.reason})` };
  const cuda = await n.addon.cudaProbe({ context: false }).catch(() => null);
  let measured: Awaited<ReturnType<typeof measureProbe>>;
  try {
    // The server's weights as they are on disk: no Hub repo (no network rate), no devices chosen.
    measured = await measureProbe({ dir: null, files: w.files, bytes: w.bytes, synthetic: false, repo: null, cuda, probeBytes: probe.probeBytes, remeasure: probe.remeasure }, deps);
  } catch (e) {
    // The floor is beside the server's numbers, never in their way: a probe that cannot run is "not measured".
    if (deps.signal?.aborted) throw e;
    return { reason: `not measured: the rate probe failed (${(e as Error).message.split('\n')[0]})` };
  }
  const r = measured.rates;
  const gpu = !!cuda?.available;
  const format = w.format === 'bin' ? 'bin' : 'safetensors';
  const cold = predictLoadSeconds(r, { bytes: w.bytes, format, cache: 'cold', gpu });
  const warm = predictLoadSeconds(r, { bytes: w.bytes, format, cache: 'warm', gpu });
  if (cold === null || warm === null) return { reason: 'not measured: no read rate could be measured' };
  const rates = `read ${formatRate(r.diskReadBytesPerSecond ?? NaN)} cold, ${formatRate(r.pageCacheBytesPerSecond ?? NaN)} warm${gpu && r.h2dBytesPerSecond ? `, host→device ${formatRate(r.h2dBytesPerSecond)}` : ', no GPU: host read only'}`;
  const floors = residents.map((resident) => {
    const f = resident ?? 0;
    const cache = resident === null ? 'page cache state unknown (counted cold)' : `${formatPercent(f)} in the page cache at start`;
    return { seconds: f * warm + (1 - f) * cold, source: `${formatBytes(w.bytes)} ÷ measured rates (${cache}; ${rates})` };
  });
  const assumptions = [...measured.assumptions, `floor of gpu-load: ${w.files.length} file(s) from ${w.from}${w.format === 'other' ? ' (GGUF/ONNX: read whole, predicted like safetensors)' : ''}${w.skipped ? `; ${w.skipped}` : ''}`];
  return { floors, rates: r, assumptions };
}

export async function wrapMode(plan: WrapPlan, deps: ProfileDeps, wall: Stopwatch): Promise<ProfileOutcome> {
  const { options, server } = plan;
  const { runs, warmup } = options;
  const weights = !options.floor ? { reason: 'not measured: --no-floor' } : await wrapWeights(options.model, server.command, deps, options.revision);
  const resident: Array<number | null> = [];
  let last: WrapResult | null = null;
  const onRun = ({ index, warmup: w }: { index: number; warmup: boolean }) => {
    if (runs + warmup > 1) deps.events?.run?.(`run ${index + 1}/${warmup + runs}${w ? ' (warmup, not counted)' : ''}: ready in ${formatDuration(last!.readySeconds)}`);
  };
  const serverLine = deps.events?.serverLine;
  const readyNotes = new Set<string>();
  const measured = await repeatRuns({ runs, warmup, signal: deps.signal, onRun }, async () => {
    if ('files' in weights) resident.push(await residency(deps.engines, weights.files));
    last = await deps.engines.wrap.runWrapped({ ...server, env: deps.env, cwd: deps.cwd, signal: deps.signal, onLine: serverLine ? (l) => serverLine(l.t, l.text) : undefined });
    if (last.readyNote) readyNotes.add(last.readyNote);
    return wrapPhases(last, server.completionUrl === false);
  });
  const w: WrapResult = last!;
  const report = newReport('profile');
  const sum = summarizeRuns(measured);
  report.phases = sum.phases;
  report.total = sum.total;
  report.warnings.push(...sum.warnings);
  report.warnings.push(...readyNotes);
  report.runs = { count: runs, warmup, samples: sum.samples };
  report.target = { name: server.command.join(' '), kind: 'server', command: server.command, engine: w.engine };
  // The floor beside the weights-loading stage, measured after the server has stopped.
  const fr = resident.slice(-runs);
  const meanResident = fr.length && fr.every((x) => x !== null) ? (fr as number[]).reduce((a, b) => a + b, 0) / fr.length : null;
  const measuredFloor = 'files' in weights ? await wrapFloor(deps, weights, [meanResident], options) : weights;
  const floor = 'floors' in measuredFloor ? { floor: measuredFloor.floors[0]!, rates: measuredFloor.rates, assumptions: measuredFloor.assumptions } : measuredFloor;
  const load = report.phases.find((p) => p.name === 'gpu-load');
  if (load && 'floor' in floor) load.floor = floor.floor;
  const inputs = { phases: report.phases, total: report.total.seconds, rates: null, model: null, gpuPricePerHour: options.gpuPricePerHour, warmInstances: options.warmInstances };
  const rows = whatIfRows(inputs);
  // The server's own warmup runs before ready; the first request's cost is the first-completion row.
  report.findings = computeFindings(inputs, rows).filter((f) => f.id !== 'warmup');
  const un = report.phases.find((p) => p.name === 'unexplained');
  if (un?.seconds && report.total.seconds && un.seconds / report.total.seconds > 0.3) {
    report.findings.push({ id: 'unexplained', savesSeconds: null, message: `${formatDuration(un.seconds)} of the start-up is not explained by the server's log lines: run with --debug to see the timed log, or profile the pieces (coldstart profile MODEL)` });
  }
  report.details = {
    mode: 'wrap',
    readyBy: w.readyBy,
    readySeconds: w.readySeconds,
    stages: w.stages,
    stop: w.stop,
    whatIf: rows,
    floor: 'floor' in floor ? { ...floor.floor, weights: { from: (weights as WrapWeights).from, files: (weights as WrapWeights).files, bytes: (weights as WrapWeights).bytes }, residentFraction: meanResident, rates: floor.rates, assumptions: floor.assumptions } : { measured: false, reason: floor.reason },
    wall: { seconds: wall.elapsed(), serverSeconds: w.readySeconds + ('seconds' in w.firstCompletion ? w.firstCompletion.seconds : 0) },
  };
  const phases = report.phases;
  const lines = ({ style }: { style: Parameters<typeof yoursFloorLines>[1] }): string[] => [
    ...('floor' in floor ? yoursFloorLines(phases, style) : ['', `floor of gpu-load: ${floor.reason}`]),
    ...(w.engineNote ? [w.engineNote, ...w.timeline.map((l) => `  ${l.t.toFixed(3).padStart(9)} s  ${l.text.slice(0, 160)}`)] : []),
    `server ${w.engine ?? '(engine not recognised)'}: ready after ${formatDuration(w.readySeconds)} (by ${w.readyBy}); stopped with ${w.stop.signal} in ${formatDuration(w.stop.seconds)}${w.engineVersion ? `; ${w.engine} ${w.engineVersion}` : ''}`,
  ];
  return { report, lines };
}
