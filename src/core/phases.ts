import { ColdstartError, isColdstartError } from './errors.js';
import { Stopwatch } from './clock.js';

/** The phases of a cold start (DESIGN.md), in the order they happen. `compile` is filled by warmup --compile (#17). */
export const PHASES = ['container', 'imports', 'cuda-init', 'download', 'gpu-load', 'compile', 'warmup'] as const;
export type PhaseName = (typeof PHASES)[number];

export function isPhaseName(s: string): s is PhaseName {
  return (PHASES as readonly string[]).includes(s);
}

/**
 * ok: measured. skipped: not measured, `reason` says why (never a silent zero). failed: it ran and broke.
 * estimated: predicted from measured rates, no bytes moved.
 */
export type PhaseStatus = 'ok' | 'skipped' | 'failed' | 'estimated';

export type MetricValue = number | string | boolean | null;

export interface StepResult {
  name: string;
  seconds: number;
  note?: string;
  metrics?: Record<string, MetricValue>;
}

export interface PhaseResult {
  name: string;
  status: PhaseStatus;
  /** Seconds for ok/estimated phases; null when skipped or failed before a time could be taken. */
  seconds: number | null;
  reason?: string;
  /** The long form of the reason (an error's own words, the full why): shown below the table with --verbose. */
  detail?: string;
  note?: string;
  error?: { code: string; message: string };
  steps: StepResult[];
  metrics: Record<string, MetricValue>;
  /**
   * Left out: by choice (`--only`, convert without `--verify`) or because the phase does not apply here (local files:
   * nothing to download; not in a container). Outside the total, never missing from it (`measurementOf`).
   */
  notApplicable?: boolean;
  /** The floor for the same step (coldstart's native probes/loader), seconds; never added to a total. */
  floor?: { seconds: number; source: string } | null;
}

class SkipSignal {
  constructor(
    readonly reason: string,
    readonly notApplicable = false,
    readonly detail?: string,
  ) {}
}

/** Handed to a phase body: sub-steps, metrics, notes, skipping, and externally measured times. */
export class PhaseHandle {
  readonly steps: StepResult[] = [];
  readonly metrics: Record<string, MetricValue> = {};
  note?: string;
  /** Set when the time was measured by someone else (native probe, /proc, a child process). */
  measuredSeconds?: number;
  estimated = false;

  async step<T>(name: string, fn: () => Promise<T> | T): Promise<T> {
    const sw = new Stopwatch();
    const value = await fn();
    this.steps.push({ name, seconds: sw.elapsed() });
    return value;
  }

  /** Records a sub-step whose time was measured elsewhere (e.g. inside the native addon). */
  addStep(name: string, seconds: number, note?: string, metrics?: Record<string, MetricValue>): void {
    this.steps.push({ name, seconds, ...(note ? { note } : {}), ...(metrics ? { metrics } : {}) });
  }

  metric(key: string, value: MetricValue): void {
    this.metrics[key] = value;
  }

  setSeconds(seconds: number): void {
    this.measuredSeconds = seconds;
  }

  /** `detail`: the long form of the reason (an error's own words), shown with --verbose. */
  skip(reason: string, detail?: string): never {
    throw new SkipSignal(reason, false, detail);
  }

  /** Skips a phase that does not apply (not counted as missing from the total). */
  notApplicable(reason: string, detail?: string): never {
    throw new SkipSignal(reason, true, detail);
  }
}

/**
 * Measures one phase with the monotonic clock. Never throws: failures come back as `status: failed`
 * with the error's code and message (the original error is attached as `cause` for callers that rethrow).
 */
export async function runPhase(name: string, body: (h: PhaseHandle) => Promise<void> | void): Promise<PhaseResult & { cause?: unknown }> {
  const h = new PhaseHandle();
  const sw = new Stopwatch();
  try {
    await body(h);
    const elapsed = sw.elapsed();
    return {
      name,
      status: h.estimated ? 'estimated' : 'ok',
      seconds: h.measuredSeconds ?? elapsed,
      ...(h.note ? { note: h.note } : {}),
      steps: h.steps,
      metrics: h.metrics,
    };
  } catch (e) {
    if (e instanceof SkipSignal) {
      return { name, status: 'skipped', seconds: null, reason: e.reason, ...(e.detail ? { detail: e.detail } : {}), ...(e.notApplicable ? { notApplicable: true } : {}), ...(h.note ? { note: h.note } : {}), steps: h.steps, metrics: h.metrics };
    }
    const err = isColdstartError(e) ? e : new ColdstartError('INTERNAL', e instanceof Error ? e.message : String(e), { cause: e });
    return {
      name,
      status: 'failed',
      seconds: null,
      error: { code: err.code, message: err.message },
      steps: h.steps,
      metrics: h.metrics,
      cause: e,
    };
  }
}

/** A phase that was not run: not measured (`reason` says why), or left out (`leftOut`: by choice or not applying here). */
export function skippedPhase(name: string, reason: string, leftOut = false): PhaseResult {
  return { name, status: 'skipped', seconds: null, reason, steps: [], metrics: {}, ...(leftOut ? { notApplicable: true } : {}) };
}

/**
 * The three answers to "was it measured?", from which every total and every budget verdict is decided:
 * - measured: seconds (0 included: nothing to download, measured as such); an estimate counts as its number;
 * - not measured: why (`failed` when the phase ran and broke): a total without it is incomplete, a budget on it
 *   fails closed;
 * - left out: by choice (`--only`, no `--verify`) or not applying here: outside the total, never missing from it.
 */
export type Measurement =
  | { state: 'measured'; seconds: number }
  | { state: 'not-measured'; reason: string; failed?: true }
  | { state: 'left-out'; reason: string };

/** The one place a phase's status becomes one of the three states. */
export function measurementOf(p: PhaseResult): Measurement {
  if ((p.status === 'ok' || p.status === 'estimated') && p.seconds !== null) return { state: 'measured', seconds: p.seconds };
  if (p.status === 'failed') return { state: 'not-measured', reason: p.error ? `the phase failed (${p.error.code}: ${p.error.message})` : 'the phase failed', failed: true };
  const reason = p.reason ?? 'no reason recorded';
  return p.notApplicable ? { state: 'left-out', reason } : { state: 'not-measured', reason };
}

/** Phases that apply but were not measured (skipped or failed): a total without them is incomplete. */
export function missingPhases(phases: readonly PhaseResult[]): string[] {
  return phases.filter((p) => measurementOf(p).state === 'not-measured').map((p) => p.name);
}

/** Phases left out (by choice or not applying here): outside the total, never missing from it. */
export function leftOutPhases(phases: readonly PhaseResult[]): string[] {
  return phases.filter((p) => measurementOf(p).state === 'left-out').map((p) => p.name);
}

/** Strips the non-serialisable `cause` before a phase goes into a report. */
export function publicPhase(p: PhaseResult & { cause?: unknown }): PhaseResult {
  const { cause: _cause, ...rest } = p;
  return rest;
}
