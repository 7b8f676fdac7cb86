import { hostname, cpus, totalmem, platform, release, arch } from 'node:os';
import { missingPhases, type PhaseResult, type MetricValue } from './phases.js';
import { summarize, outliers, type Stats } from './stats.js';
import type { BudgetResult, Measured, BudgetKey } from './budgets.js';
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
 * them): an incomplete total is never shown as a number that looks like a whole cold start.
 */
export interface Total {
  seconds: number | null;
  complete?: boolean;
  missing?: string[];
  /** Sum of the phases that were measured (the known part of an incomplete total). */
  measuredSeconds?: number;
  /** The measured wall clock of what was profiled, and the part of it no phase explains. */
  wallSeconds?: number;
  unexplainedSeconds?: number;
  stats?: Stats;
}

export interface Report {
  /** e.g. `coldstart/profile@1`. */
  schema: string;
  tool: { name: 'coldstart'; version: string };
  command: string;
  createdAt: string;
  host: HostInfo;
  target?: Record<string, unknown>;
  runs?: { count: number; warmup: number; samples?: Array<{ index: number; total: number; phases: Record<string, number | null> }> };
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
 * Folds the measured runs (warmup runs already excluded) into phase summaries: the last run's detail,
 * the mean as `seconds`, statistics when there are several runs, shares of the total, and outlier warnings.
 */
export function summarizeRuns(runs: ReadonlyArray<readonly PhaseResult[]>): { phases: PhaseSummary[]; total: Total; warnings: string[] } {
  if (runs.length === 0) return { phases: [], total: { seconds: null, complete: false, missing: ['(no runs)'] }, warnings: [] };
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
  const totals = runs.map((r) => r.reduce((a, p) => a + (p.seconds ?? 0), 0));
  const totalStats = summarize(totals);
  const total = totalStats.mean;
  for (const p of phases) p.share = p.seconds !== null && total > 0 ? p.seconds / total : null;
  const missing = missingPhases(last);
  if (missing.length > 0) return { phases, total: { seconds: null, complete: false, missing, measuredSeconds: total }, warnings };
  return { phases, total: runs.length > 1 ? { seconds: total, complete: true, stats: totalStats } : { seconds: total, complete: true }, warnings };
}

/** The measured values budgets are checked against: each phase and the total. */
export function measuredForBudgets(report: Pick<Report, 'phases' | 'total'>): Partial<Record<BudgetKey, Measured>> {
  const t = report.total;
  const m: Partial<Record<BudgetKey, Measured>> = {
    total: t.seconds === null || t.complete === false ? { seconds: null, status: 'skipped', reason: `the total is incomplete (missing: ${(t.missing ?? []).join(', ') || 'unknown'})` } : { seconds: t.seconds, status: 'ok' },
  };
  for (const p of report.phases) (m as Record<string, Measured>)[p.name] = { seconds: p.seconds, status: p.status, ...(p.reason ? { reason: p.reason } : p.error ? { reason: p.error.message } : {}) };
  return m;
}

export function metric(p: PhaseResult | undefined, key: string): MetricValue | undefined {
  return p?.metrics[key];
}
