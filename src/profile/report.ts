/**
 * The end of a profile run: the measured runs and the facts the steps returned, folded into one report (phases,
 * total, findings, details) and the human lines beside its table. The command emits it (budgets, exports).
 */
import { ERROR_CODES, ExitCode, isColdstartError, type ErrorCode, type ExitCodeValue } from '../core/errors.js';
import { publicPhase } from '../core/phases.js';
import { summarizeRuns, type Report } from '../core/report.js';
import { totalText } from '../core/reporters/human.js';
import { processSeconds, type Stopwatch } from '../core/clock.js';
import type { Style } from '../core/output.js';
import { describeLoadModel, type Rates } from './estimate.js';
import { whatIfRows, computeFindings, type ModelFacts } from './findings.js';
import { modelFacts, whatIfLines, yoursFloorLines } from './render.js';
import type { CudaProbeResult } from '../native.js';
import type { GpuLoadResult } from './engines.js';
import type { StackTimes } from './framework.js';
import type { RateFacts } from './prepare.js';
import type { Downloaded, Outside, PhaseRow } from './phases.js';
import type { ModelPlan } from './plan.js';
import type { Target } from './target.js';

/** What the runs measured, folded run by run: the last value of each, outside time and assumptions added up. */
export interface RunFacts {
  /** The weights as the last run loaded them (a Hub model: its files after the download). */
  target: Target;
  cuda: CudaProbeResult | null;
  downloaded: Downloaded | null;
  /** The native loader's load of the weights in either mode (host mode without a GPU). */
  floorLoad: GpuLoadResult | null;
  stack: StackTimes | null;
  outside: Outside;
  assumptions: string[];
}

/** Rates measured outside the runs, and the loader's load again with a warm page cache. */
export interface ExtraFacts {
  rates: RateFacts | null;
  gpuLoadWarm: GpuLoadResult | null;
}

/** How human lines are drawn: the output's style, and whether only results are wanted (--quiet). */
export interface View {
  style: Style;
  quiet: boolean;
}

/** What a profile run gives its command: the report, the human lines under its table, and the exit code so far. */
export interface ProfileOutcome {
  report: Report;
  lines: (view: View) => string[];
  /** A phase that broke (pull failure, runtime refused, …) decides the exit code; the budgets never lower it. */
  exitCode?: ExitCodeValue;
}

/** The exit code of the first phase that broke, by its error's code (an environment failure when unknown). */
function brokenExitCode(phases: readonly { status: string; error?: { code: string } }[]): ExitCodeValue | undefined {
  const failed = phases.find((p) => p.status === 'failed');
  return failed?.error ? (ERROR_CODES[failed.error.code as ErrorCode] ?? ExitCode.ENV) : undefined;
}

const LABELS = {
  floor: "floor: what a cold start of this model could be on this machine (coldstart's own loader; no stack given)",
  estimate: 'estimate: predicted from measured rates, no weight bytes moved',
} as const;

/** Folds a model profile's runs and facts into its report. `report` is the document started with the run. */
export function modelReport(report: Report, plan: ModelPlan, measured: readonly PhaseRow[][], facts: RunFacts, extra: ExtraFacts, wall: Stopwatch): ProfileOutcome {
  const { mode, options } = plan;
  const target = facts.target;
  const rates = extra.rates?.rates ?? null;
  const gpuLoad = facts.floorLoad?.mode === 'gpu' ? facts.floorLoad : null;
  const sum = summarizeRuns(measured.map((r) => r.map((p) => publicPhase(p))));
  for (const p of measured[measured.length - 1] ?? []) {
    if (p.status === 'failed' && isColdstartError(p.cause) && p.cause.hint) report.warnings.push(`${p.name}: ${p.cause.hint}`);
  }
  report.phases = sum.phases;
  report.total = { ...sum.total, ...(mode === 'estimate' ? {} : { wallSeconds: sum.total.seconds ?? undefined, unexplainedSeconds: report.phases.find((p) => p.name === 'unexplained')?.seconds ?? undefined }) };
  report.warnings.push(...sum.warnings);
  report.runs = { count: measured.length, warmup: mode === 'estimate' ? 0 : options.warmup, samples: sum.samples };

  const d = facts.downloaded;
  const source: ModelFacts['source'] = target.synthetic ? 'synthetic' : target.kind === 'dir' || target.kind === 'file' ? 'local' : d && !d.fromCache && d.bytes > 0 ? 'downloaded' : 'cached';
  const cold = options.cache === 'cold';
  const inputs = {
    phases: report.phases,
    total: report.total.seconds,
    partialTotal: report.total.seconds === null && report.total.measuredSeconds ? { seconds: report.total.measuredSeconds, missing: report.total.missing ?? [] } : null,
    rates,
    model: modelFacts(target, facts.cuda, options.cache, source, mode === 'stack' ? (plan.framework ?? undefined) : undefined),
    gpuPricePerHour: options.gpuPricePerHour,
    warmInstances: options.warmInstances,
    hostMemoryBytes: report.host.memoryBytes,
    warmLoadSeconds: gpuLoad && extra.gpuLoadWarm ? extra.gpuLoadWarm.seconds : null,
    coldWarmRead: facts.floorLoad && extra.gpuLoadWarm && cold ? { coldSeconds: facts.floorLoad.seconds, warmSeconds: extra.gpuLoadWarm.seconds } : null,
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
  const label = mode === 'stack' ? `your stack: ${plan.framework} in its own Python process, the floor beside each step` : LABELS[mode];
  const assumptions = mode === 'estimate' ? [...describeLoadModel(rates ?? ({} as Rates)), ...facts.assumptions] : facts.assumptions;
  report.details = {
    mode,
    label,
    cache: options.cache,
    rates,
    /** The rates were kept from an earlier run on this machine, disk and kernel (ISO date-time); null: measured now. */
    ratesReusedFrom: extra.rates?.reusedFrom ?? null,
    assumptions,
    whatIf: rows,
    stack: facts.stack,
    ...(options.floor ? {} : { floor: { measured: false, reason: 'not measured: --no-floor' } }),
    gpuLoad,
    floorLoad: facts.floorLoad,
    gpuLoadWarm: extra.gpuLoadWarm,
    wall: { seconds: wall.elapsed(), processSeconds: processSeconds(), outside: facts.outside },
  };
  const phases = report.phases;
  // The floor line gives its number: the floor profile's total (what was measured of it, when incomplete).
  const t = report.total;
  const shown = mode === 'floor' ? `floor: ${t.seconds !== null ? totalText(report) : `not measured (${(t.missing ?? []).join(', ')}: see the table)`} — ${label.slice('floor: '.length)}` : label;
  const lines = ({ style, quiet }: View): string[] => [
    shown,
    ...yoursFloorLines(phases, style),
    ...(options.floor ? [] : ['', "floor: not measured (--no-floor): your stack's numbers only"]),
    ...whatIfLines(rows, style),
    ...(mode === 'estimate' && !quiet ? ['', style.bold('assumptions'), ...assumptions.map((a) => `  - ${a}`)] : []),
  ];
  return { report, lines, exitCode: brokenExitCode(report.phases) };
}
