import { hostname, cpus, totalmem, platform, release, arch } from 'node:os';
import { leftOutPhases, measurementOf, missingPhases, type Measurement, type PhaseResult, type MetricValue } from './phases.js';
import { summarize, outliers, type Stats } from './stats.js';
import { BUDGET_KEYS, type BudgetResult, type BudgetKey, type Judged } from './budgets.js';
import { version } from './version.js';

/** One phase as it appears in a report: the last (or only) run's detail plus statistics over runs. */
export interface PhaseSummary extends PhaseResult {
  /** Fraction of the total (0..1) for measured phases; null otherwise. */
  share: number | null;
  stats?: Stats;
}

export interface Finding {
  /** Stable id, e.g. `convert-bin`, `not-cached`. */
  id: string;
  /** Ranked by expected seconds saved, largest first. */
  savesSeconds: number | null;
  message: string;
  command?: string;
}

export interface HostInfo {
  hostname: string;
  platform: string;
  arch: string;
  release: string;
  node: string;
  cpus: number;
  memoryBytes: number;
}

/**
 * The total. `seconds` is null when a phase that applies was not measured (`complete: false`, `missing` names
 * them): an incomplete total is never shown as a number that looks like a whole cold start. Phases left out of the
 * sum (by choice, or not applying here) are listed in `leftOut`, never in `missing`.
 */
export interface Total {
  seconds: number | null;
  complete?: boolean;
  missing?: string[];
  leftOut?: string[];
  /** Sum of the phases that were measured (the known part of an incomplete total). */
  measuredSeconds?: number;
  /** The measured wall clock of what was profiled, and the part of it no phase explains. */
  wallSeconds?: number;
  unexplainedSeconds?: number;
  stats?: Stats;
}

/** One measured run in `runs.samples`: its total is null when a phase of that run was not measured, never a sum of the rest. */
export interface RunSample {
  index: number;
  total: number | null;
  phases: Record<string, number | null>;
}

export interface Report {
  /** e.g. `coldstart/profile@1`. */
  schema: string;
  tool: { name: 'coldstart'; version: string };
  command: string;
  createdAt: string;
  host: HostInfo;
  target?: Record<string, unknown>;
  runs?: { count: number; warmup: number; samples?: RunSample[] };
  phases: PhaseSummary[];
  total: Total;
  budgets: BudgetResult[];
  findings: Finding[];
  warnings: string[];
  /** Command-specific payload (convert: tensors, bytes; cache: files; …). */
  details?: Record<string, unknown>;
}

export function hostInfo(): HostInfo {
  return {
    hostname: hostname(),
    platform: platform(),
    arch: arch(),
    release: release(),
    node: process.version,
    cpus: cpus().length,
    memoryBytes: totalmem(),
  };
}

export function newReport(command: string, schema = `coldstart/${command}@1`): Report {
  return {
    schema,
    tool: { name: 'coldstart', version },
    command,
    createdAt: new Date().toISOString(),
    host: hostInfo(),
    phases: [],
    total: { seconds: null, complete: false, missing: [] },
    budgets: [],
    findings: [],
    warnings: [],
  };
}

/**
 * One run's total: the sum of its measured phases (left-out phases add nothing, they are outside it), or null when
 * a phase that applies was not measured — never a number that looks like a whole cold start.
 */
export function runTotal(run: readonly PhaseResult[]): number | null {
  return missingPhases(run).length > 0 ? null : measuredSum(run);
}

function measuredSum(run: readonly PhaseResult[]): number {
  return run.reduce((a, p) => {
    const m = measurementOf(p);
    return a + (m.state === 'measured' ? m.seconds : 0);
  }, 0);
}

/**
 * Folds the measured runs (warmup runs already excluded) into phase summaries: the last run's detail, the mean as
 * `seconds`, statistics when there are several runs, shares of the total, outlier warnings, and one sample per run.
 * THE total of phases: complete only when every run's is (the mean of the run totals); otherwise null with the
 * phases that were not measured in `missing` and the known part in `measuredSeconds`.
 */
export function summarizeRuns(runs: ReadonlyArray<readonly PhaseResult[]>): { phases: PhaseSummary[]; total: Total; warnings: string[]; samples: RunSample[] } {
  if (runs.length === 0) return { phases: [], total: { seconds: null, complete: false, missing: ['(no runs)'] }, warnings: [], samples: [] };
  const last = runs[runs.length - 1]!;
  const warnings: string[] = [];
  const phases: PhaseSummary[] = last.map((p) => {
    const samples = runs.map((r) => r.find((q) => q.name === p.name)?.seconds).filter((s): s is number => typeof s === 'number');
    const out: PhaseSummary = { ...p, share: null };
    if (p.seconds !== null && samples.length > 0) {
      const st = summarize(samples);
      out.seconds = st.mean;
      if (samples.length > 1) {
        out.stats = st;
        const o = outliers(samples);
        if (o.length > 0) warnings.push(`${p.name}: ${o.length} statistical outlier(s) among ${samples.length} runs; another process may be interfering (rerun with more --runs or --warmup).`);
      }
    }
    return out;
  });
  const samples: RunSample[] = runs.map((r, index) => ({ index, total: runTotal(r), phases: Object.fromEntries(r.map((p) => [p.name, p.seconds])) }));
  const known = summarize(runs.map(measuredSum)).mean;
  for (const p of phases) p.share = p.seconds !== null && known > 0 ? p.seconds / known : null;
  const missing = [...new Set(runs.flatMap((r) => missingPhases(r)))];
  const leftOut = [...new Set(runs.flatMap((r) => leftOutPhases(r)))];
  const outside = leftOut.length > 0 ? { leftOut } : {};
  if (missing.length > 0) return { phases, total: { seconds: null, complete: false, missing, ...outside, measuredSeconds: known }, warnings, samples };
  const totals = samples.map((s) => s.total!);
  const st = summarize(totals);
  return { phases, total: { seconds: st.mean, complete: true, ...outside, ...(runs.length > 1 ? { stats: st } : {}) }, warnings, samples };
}

/** The total as a measurement: measured only when complete. */
export function totalMeasurement(t: Total): Measurement {
  if (t.seconds !== null && t.complete !== false) return { state: 'measured', seconds: t.seconds };
  return { state: 'not-measured', reason: `the total is incomplete (missing: ${(t.missing ?? []).join(', ') || 'unknown'})` };
}

/** What a report's budgets are judged against: each of its phases that is a budget key, and its total. */
export function measurementsOf(report: Pick<Report, 'phases' | 'total'>): Partial<Record<BudgetKey, Judged>> {
  const m: Partial<Record<BudgetKey, Judged>> = { total: totalMeasurement(report.total) };
  for (const p of report.phases) if ((BUDGET_KEYS as readonly string[]).includes(p.name)) m[p.name as BudgetKey] = measurementOf(p);
  return m;
}

export function metric(p: PhaseResult | undefined, key: string): MetricValue | undefined {
  return p?.metrics[key];
}
