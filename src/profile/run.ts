/**
 * `coldstart profile`: a short orchestrator over the phase modules. The plan (plan.ts) is built once; each step
 * returns what it measured and the run folds those values into the report at the end (report.ts). Four modes:
 * - floor (no stack): the floor profile (phases.ts) — what a cold start of this model could be on this machine;
 * - stack (`--framework`): the user's stack in its own process (stack.ts), the floor beside each step;
 * - estimate (`--estimate`): every phase predicted from measured rates;
 * - wrap (`-- <server>`, wrapmode.ts): phases from the server's logs.
 * Totals are the measured wall clock of what was profiled (phases + unexplained); incomplete when a phase that
 * applies was not measured. Nothing here prints: the command shows the events and emits the report.
 */
import { ExitCode, isColdstartError } from '../core/errors.js';
import { missingPhases, skippedPhase, type PhaseName, type PhaseResult } from '../core/phases.js';
import { newReport, runTotal } from '../core/report.js';
import { Stopwatch } from '../core/clock.js';
import { repeatRuns } from '../core/repeat.js';
import { formatDuration } from '../core/format.js';
import type { Rates } from './estimate.js';
import type { GpuLoadResult } from './engines.js';
import { containerPhase, cudaInitPhase, downloadPhase, gpuLoadPhase, warmupPhase, type Outside, type PhaseRow, type Step } from './phases.js';
import { stackPhases } from './stack.js';
import { measureProbe, probeInputsOf, writeSynthetic, type RateFacts } from './prepare.js';
import { wrapMode } from './wrapmode.js';
import { modelReport, type ProfileOutcome, type RunFacts } from './report.js';
import { needsRates, planProfile, selected, type ModelPlan, type ProfileDeps } from './plan.js';
import type { ProfileOptions } from './options.js';
import type { Target } from './target.js';

export type { ProfileOutcome } from './report.js';

type Timed<F> = { phase: PhaseRow; facts?: F; elapsed: number };

/** Runs one phase when --only selects it (else it is left out by choice); a usage error inside it is the run's. */
async function timed<F>(plan: ModelPlan, name: PhaseName, body: () => Promise<Step<F>>): Promise<Timed<F>> {
  if (!selected(plan, name)) return { phase: skippedPhase(name, 'not selected (--only): the total covers the selected phases', true), elapsed: 0 };
  const sw = new Stopwatch();
  const s = await body();
  if (s.phase.status === 'failed' && isColdstartError(s.phase.cause) && s.phase.cause.exitCode === ExitCode.USAGE) throw s.phase.cause;
  return { ...s, elapsed: sw.elapsed() };
}

const row = async (p: Promise<PhaseRow>): Promise<Step<undefined>> => ({ phase: await p, facts: undefined });

function addOutside(a: Outside, b: Outside | undefined): Outside {
  const out = { ...a };
  for (const [k, v] of Object.entries(b ?? {})) out[k] = (out[k] ?? 0) + v;
  return out;
}

const sumOf = (o: Outside) => Object.values(o).reduce((a, b) => a + b, 0);

function unexplainedRow(seconds: number, note: string): PhaseResult {
  return { name: 'unexplained', status: 'ok', seconds: Math.max(0, seconds), note, steps: [], metrics: {} };
}

interface RunOutcome {
  phases: PhaseRow[];
  facts: Partial<RunFacts> & { target: Target };
}

/**
 * One floor run: container (from /proc or --since/--image, before coldstart's own clock), then cuda-init,
 * download, gpu-load and warmup in sequence; what their wall clock holds beyond the phases is "unexplained".
 */
async function floorRun(plan: ModelPlan, deps: ProfileDeps, target: Target, rates: Rates | null): Promise<RunOutcome> {
  const container = await timed(plan, 'container', () => row(containerPhase(plan, deps)));
  const sw = new Stopwatch();
  const ci = await timed(plan, 'cuda-init', () => cudaInitPhase(plan, deps));
  const cuda = ci.facts?.cuda ?? null;
  const dl = await timed(plan, 'download', () => downloadPhase(plan, deps, { target, rates }));
  const t = dl.facts?.target ?? target;
  const gl = await timed(plan, 'gpu-load', () => gpuLoadPhase(plan, deps, { target: t, cuda, rates }));
  const wu = await timed(plan, 'warmup', () => warmupPhase(plan, deps, t));
  const outside = addOutside(gl.facts?.outside ?? {}, wu.facts?.outside);
  const seq = [ci, dl, gl, wu];
  // Time spent in phases that were not measured (a host read without a GPU) is not part of this cold start.
  const wall = sw.elapsed() - sumOf(outside) - seq.filter((p) => p.phase.status !== 'ok').reduce((a, p) => a + p.elapsed, 0);
  const explained = seq.reduce((a, p) => a + (p.phase.status === 'ok' ? (p.phase.seconds ?? 0) : 0), 0);
  const phases = [container.phase, ...seq.map((p) => p.phase)];
  if (seq.some((p) => p.phase.status === 'ok')) phases.push(unexplainedRow(wall - explained, "between the phases (coldstart's own bookkeeping)"));
  return { phases, facts: { target: t, cuda: ci.facts?.cuda, downloaded: dl.facts?.downloaded, floorLoad: gl.facts?.load, outside, assumptions: dl.facts?.assumptions } };
}

/** One stack run: container and download as in the floor profile, then the stack's own process. */
async function stackRun(plan: ModelPlan, deps: ProfileDeps, target: Target): Promise<RunOutcome> {
  const container = await timed(plan, 'container', () => row(containerPhase(plan, deps)));
  const dl = await timed(plan, 'download', () => downloadPhase(plan, deps, { target, rates: null }));
  const t = dl.facts?.target ?? target;
  // The native CUDA probe is the floor of cuda-init (its row comes from the stack); it runs after the stack.
  const r = await stackPhases(plan as ModelPlan & { framework: NonNullable<ModelPlan['framework']> }, deps, t);
  const phases = [container.phase, dl.phase, ...r.rows, unexplainedRow(r.unexplainedSeconds, 'process spawn and exit, pipes: the stack wall clock (Node) minus its events')];
  return { phases, facts: { target: t, cuda: r.cuda, downloaded: dl.facts?.downloaded, floorLoad: r.load, stack: r.times, outside: r.outside, assumptions: dl.facts?.assumptions } };
}

/** --estimate: container and cuda-init are measured; download and gpu-load predicted from the rates; warmup cannot be. */
async function estimateRun(plan: ModelPlan, deps: ProfileDeps, target: Target): Promise<{ run: RunOutcome; rates: RateFacts | null }> {
  const c = await timed(plan, 'container', () => row(containerPhase(plan, deps)));
  const ci = await timed(plan, 'cuda-init', () => cudaInitPhase(plan, deps));
  const cuda = ci.facts?.cuda ?? null;
  const rates = needsRates(plan) ? await measureProbe(probeInputsOf(target, cuda, plan.options), deps) : null;
  const dl = await timed(plan, 'download', () => downloadPhase(plan, deps, { target, rates: rates?.rates ?? null }));
  const t = dl.facts?.target ?? target;
  const gl = await timed(plan, 'gpu-load', () => gpuLoadPhase(plan, deps, { target: t, cuda, rates: rates?.rates ?? null }));
  const wu = await timed(plan, 'warmup', () => warmupPhase(plan, deps, t));
  const phases = [c, ci, dl, gl, wu].map((p) => p.phase);
  return { run: { phases, facts: { target: t, cuda, downloaded: dl.facts?.downloaded, assumptions: dl.facts?.assumptions } }, rates };
}

/** The facts so far with one run's folded in: its values replace the earlier ones; outside time and assumptions add up. */
function fold(a: RunFacts, b: RunOutcome['facts']): RunFacts {
  return {
    target: b.target,
    cuda: b.cuda ?? a.cuda,
    downloaded: b.downloaded ?? a.downloaded,
    floorLoad: b.floorLoad ?? a.floorLoad,
    stack: b.stack ?? a.stack,
    outside: addOutside(a.outside, b.outside),
    assumptions: [...a.assumptions, ...(b.assumptions ?? [])],
  };
}

/** Profiles a cold start as the options ask; the command shows the events and emits the report. */
export async function runProfile(options: ProfileOptions, deps: ProfileDeps): Promise<ProfileOutcome> {
  const wall = new Stopwatch();
  const plan = planProfile(options, deps.cwd);
  if (plan.mode === 'wrap') return wrapMode(plan, deps, wall);
  // The document is dated when the run starts; it is filled in from the measurements at the end.
  const report = newReport('profile');
  let facts: RunFacts = { target: plan.target, cuda: null, downloaded: null, floorLoad: null, stack: null, outside: {}, assumptions: [...plan.assumptions] };
  if (plan.target.synthetic && plan.mode !== 'estimate') {
    const w = await writeSynthetic(plan.target, deps);
    facts = { ...facts, target: w.target, outside: { prepare: w.seconds } };
  }
  const withRates = (r: RateFacts | null) => {
    if (r) facts = { ...facts, outside: addOutside(facts.outside, { rates: r.seconds }), assumptions: [...facts.assumptions, ...r.assumptions] };
    return r;
  };
  const probe = async () => (needsRates(plan) ? withRates(await measureProbe(probeInputsOf(facts.target, facts.cuda, plan.options), deps)) : null);

  const { runs, warmup } = options;
  const measured: PhaseRow[][] = [];
  let rates: RateFacts | null = null;
  let gpuLoadWarm: GpuLoadResult | null = null;
  if (plan.mode === 'estimate') {
    const e = await estimateRun(plan, deps, facts.target);
    rates = withRates(e.rates);
    facts = fold(facts, e.run.facts);
    measured.push(e.run.phases);
  } else {
    // --no-download needs the network rate before the download phase; otherwise rates come after the runs, so
    // the probe file cannot disturb the measured (cold) page cache.
    const probeFirst = !options.download;
    if (probeFirst) rates = await probe();
    const onRun = ({ index, warmup: w, phases }: { index: number; warmup: boolean; phases: readonly PhaseResult[] }) => {
      const t = runTotal(phases);
      if (runs + warmup > 1) deps.events?.run?.(`run ${index + 1}/${warmup + runs}${w ? ' (warmup, not counted)' : ''}: ${t === null ? `incomplete (${missingPhases(phases).join(', ')} not measured)` : formatDuration(t)}`);
    };
    measured.push(
      ...(await repeatRuns({ runs, warmup, signal: deps.signal, onRun }, async () => {
        const r = plan.mode === 'stack' ? await stackRun(plan, deps, facts.target) : await floorRun(plan, deps, facts.target, rates?.rates ?? null);
        facts = fold(facts, r.facts);
        return r.phases;
      })),
    );
    if (!probeFirst && options.floor) rates = await probe();
    // The same load with a warm page cache, measured by the loader (outside the phases: not part of a cold start).
    const fl = facts.floorLoad;
    if (fl && options.cache === 'cold' && (facts.target.bytes ?? Infinity) < report.host.memoryBytes * 0.8) {
      const sw = new Stopwatch();
      gpuLoadWarm = await deps.engines.gpuLoad.runGpuLoad({ files: fl.files.map((f) => f.path), devices: options.devices ? [...options.devices] : undefined, cache: 'warm', limits: false, signal: deps.signal });
      facts = { ...facts, outside: addOutside(facts.outside, { warmLoad: sw.elapsed() }) };
    }
  }
  return modelReport(report, plan, measured, { ...facts, assumptions: [...new Set(facts.assumptions)] }, { rates, gpuLoadWarm }, wall);
}
