import { intFlag } from './flags.js';
import type { PhaseResult } from './phases.js';
import { ColdstartError } from './errors.js';

export interface RepeatOptions {
  /** Measured runs (≥ 1). */
  runs: number;
  /** Unmeasured runs first, to warm caches and JITs (hyperfine's --warmup). */
  warmup: number;
  signal?: AbortSignal;
  onRun?: (info: { index: number; warmup: boolean; phases: readonly PhaseResult[] }) => void;
}

/** Parses a --runs / --warmup value: a whole number within [min, max]. */
export function parseCount(flag: string, value: string | number, min: number, max = 10_000): number {
  return intFlag(flag, value, min, max);
}

/**
 * Runs `once` warmup + runs times; returns only the measured runs (warmup results are reported through onRun
 * but never enter the statistics). Stops early when the signal aborts.
 */
export async function repeatRuns(opts: RepeatOptions, once: (index: number, warmup: boolean) => Promise<PhaseResult[]>): Promise<PhaseResult[][]> {
  const measured: PhaseResult[][] = [];
  const total = opts.warmup + opts.runs;
  for (let i = 0; i < total; i++) {
    if (opts.signal?.aborted) throw opts.signal.reason ?? new ColdstartError('INTERRUPTED', 'interrupted');
    const warm = i < opts.warmup;
    const phases = await once(i, warm);
    opts.onRun?.({ index: i, warmup: warm, phases });
    if (!warm) measured.push(phases);
  }
  return measured;
}
