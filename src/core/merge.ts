/**
 * The fleet view of profile reports (`coldstart report merge`): every measured run of many `coldstart/profile@1`
 * reports folded into p50/p90/max per phase and for the total. Only measured numbers are merged: a run whose total
 * (or phase) was not measured is counted as such, never as 0. Budgets gate on the fleet's p90.
 */
import { ColdstartError } from './errors.js';
import { readInputText } from './files.js';
import { PHASES } from './phases.js';
import { newReport, totalMeasurement, type PhaseSummary, type Report } from './report.js';
import { BUDGET_KEYS, type BudgetKey, type Judged } from './budgets.js';
import { summarize, quantile, type Stats } from './stats.js';
import { formatDuration } from './format.js';

export const MERGE_SCHEMA = 'coldstart/report-merge@1';

/** One report, read and checked: its measured runs. */
export interface MergeInput {
  file: string;
  host: string;
  createdAt: string;
  samples: Array<{ total: number | null; phases: Record<string, number | null> }>;
}

/** Reads one profile report (a path already resolved), refusing anything else by name (BAD_INPUT, exit 2). */
export function readReport(path: string): MergeInput {
  // Regular files only, size-capped before reading: /dev/zero or a FIFO given as a report is refused at once.
  const text = readInputText(path, 'report');
  let doc: Report;
  try {
    doc = JSON.parse(text) as Report;
  } catch (e) {
    throw new ColdstartError('BAD_INPUT', `${path}: not JSON (${(e as Error).message})`, { hint: 'Pass files written by `coldstart profile --json` or --export-json.' });
  }
  if (!doc || typeof doc !== 'object' || doc.schema !== 'coldstart/profile@1' || !Array.isArray(doc.phases)) {
    throw new ColdstartError('BAD_INPUT', `${path}: not a coldstart profile report (schema ${JSON.stringify((doc as { schema?: unknown })?.schema ?? null)}, expected "coldstart/profile@1")`);
  }
  if ((doc.details as { mode?: string } | undefined)?.mode === 'estimate') {
    throw new ColdstartError('BAD_INPUT', `${path}: an --estimate report (predictions, not measurements) cannot be merged with measured runs`, { hint: 'Merge reports of measured runs only.' });
  }
  checkShape(doc, path);
  const total = totalMeasurement(doc.total);
  const given = doc.runs?.samples ?? [];
  // A run's total counts only when it was measured. Reports write null for a run whose total is incomplete; older
  // ones wrote the sum of the measured phases instead, so when the report's own total is incomplete and no run
  // says null, no run's number is trusted.
  const trusted = total.state === 'measured' || given.some((s) => s.total === null);
  const samples =
    given.length > 0
      ? given.map((s) => ({ total: trusted ? s.total : null, phases: s.phases }))
      : [{ total: total.state === 'measured' ? total.seconds : null, phases: Object.fromEntries(doc.phases.map((p) => [p.name, p.status === 'ok' || p.status === 'estimated' ? p.seconds : null])) }];
  return { file: path, host: typeof doc.host?.hostname === 'string' ? doc.host.hostname : 'unknown', createdAt: String(doc.createdAt ?? ''), samples };
}

/** The fields merge reads, checked: a malformed report is refused naming the field (exit 2), never a TypeError (exit 3). */
function checkShape(doc: Report, path: string): void {
  const bad = (field: string, want: string) =>
    new ColdstartError('BAD_INPUT', `${path}: ${field} is not ${want}`, { hint: 'Pass files written by `coldstart profile --json` or --export-json, unedited.' });
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const seconds = (v: unknown) => v === null || v === undefined || (typeof v === 'number' && Number.isFinite(v));
  if (!isObj(doc.total) || !seconds(doc.total.seconds)) throw bad('total', 'an object with seconds (a number or null)');
  doc.phases.forEach((p, i) => {
    if (!isObj(p) || typeof p.name !== 'string' || !seconds(p.seconds)) throw bad(`phases[${i}]`, 'a phase with a name and seconds');
  });
  const runs: unknown = doc.runs;
  if (runs === undefined) return;
  if (!isObj(runs)) throw bad('runs', 'an object');
  if (runs.samples === undefined) return;
  if (!Array.isArray(runs.samples)) throw bad('runs.samples', 'an array');
  runs.samples.forEach((s: unknown, i: number) => {
    if (!isObj(s) || !seconds(s.total) || !isObj(s.phases) || !Object.values(s.phases).every(seconds)) throw bad(`runs.samples[${i}]`, 'a run with total and phases (numbers or null)');
  });
}

export interface MergedPhase {
  name: string;
  runs: number;
  machines: number;
  skippedRuns: number;
  p50: number | null;
  p90: number | null;
  max: number | null;
  stats: Stats | null;
}

export function mergeReports(inputs: readonly MergeInput[]): { phases: MergedPhase[]; total: MergedPhase } {
  const names = new Set<string>(PHASES);
  for (const i of inputs) for (const s of i.samples) for (const k of Object.keys(s.phases)) names.add(k);
  const fold = (name: string, pick: (s: MergeInput['samples'][number]) => number | null | undefined): MergedPhase => {
    const vals: number[] = [];
    const hosts = new Set<string>();
    let skipped = 0;
    for (const i of inputs)
      for (const s of i.samples) {
        const v = pick(s);
        if (typeof v === 'number') {
          vals.push(v);
          hosts.add(i.host);
        } else skipped++;
      }
    if (vals.length === 0) return { name, runs: 0, machines: 0, skippedRuns: skipped, p50: null, p90: null, max: null, stats: null };
    const sorted = [...vals].sort((a, b) => a - b);
    return { name, runs: vals.length, machines: hosts.size, skippedRuns: skipped, p50: quantile(sorted, 0.5), p90: quantile(sorted, 0.9), max: sorted[sorted.length - 1]!, stats: summarize(vals) };
  };
  const phases = [...names].map((n) => fold(n, (s) => s.phases[n]));
  return { phases, total: fold('total', (s) => s.total) };
}

/**
 * What the fleet's budgets are judged against: each phase's and the total's p90 over the runs that measured it,
 * saying over how many runs and how many did not measure it; not measured when no run did.
 */
function fleetMeasurements(merged: { phases: MergedPhase[]; total: MergedPhase }): Partial<Record<BudgetKey, Judged>> {
  const out: Partial<Record<BudgetKey, Judged>> = {};
  for (const p of [...merged.phases, merged.total]) {
    if (!(BUDGET_KEYS as readonly string[]).includes(p.name)) continue;
    const unmeasured = p.skippedRuns ? `; ${p.skippedRuns} run(s) not measured` : '';
    out[p.name as BudgetKey] =
      p.p90 === null
        ? { state: 'not-measured', reason: `${p.name === 'total' ? 'no run\'s total was measured (incomplete reports)' : 'no run measured it'}: ${p.skippedRuns} run(s) not measured` }
        : { state: 'measured', seconds: p.p90, basis: `p90 across the fleet: ${p.runs} run(s) on ${p.machines} machine(s)${unmeasured}` };
  }
  return out;
}

/** The merged report and what its budgets are judged against. */
export function mergedReport(inputs: readonly MergeInput[]): { report: Report; merged: { phases: MergedPhase[]; total: MergedPhase }; measurements: Partial<Record<BudgetKey, Judged>> } {
  const merged = mergeReports(inputs);
  const report = newReport('report merge', MERGE_SCHEMA);
  report.phases = merged.phases.map(
    (p): PhaseSummary => ({
      name: p.name,
      status: p.runs > 0 ? 'ok' : 'skipped',
      // Budgets and exports gate on the fleet's p90.
      seconds: p.p90,
      ...(p.runs === 0 ? { reason: 'not measured in any input' } : { note: `p50 ${formatDuration(p.p50!)} · p90 ${formatDuration(p.p90!)} · max ${formatDuration(p.max!)} over ${p.runs} run(s) on ${p.machines} machine(s)` }),
      steps: [],
      metrics: { p50: p.p50, p90: p.p90, max: p.max, runs: p.runs, machines: p.machines, skippedRuns: p.skippedRuns },
      share: null,
      ...(p.stats ? { stats: p.stats } : {}),
    }),
  );
  // The fleet's total: the p90 of the runs whose total was measured; null when none was (never a 0 from incomplete runs).
  const t = merged.total;
  const missing = merged.phases.filter((p) => p.skippedRuns > 0).map((p) => p.name);
  report.total = t.p90 === null ? { seconds: null, complete: false, missing } : { seconds: t.p90, complete: true, ...(t.stats ? { stats: t.stats } : {}) };
  if (t.skippedRuns > 0) report.warnings.push(`total: ${t.skippedRuns} of ${t.runs + t.skippedRuns} run(s) not measured (incomplete reports)${t.runs ? `; the fleet's total is over the ${t.runs} measured run(s)` : ''}`);
  const machines = new Set(inputs.map((i) => i.host)).size;
  report.target = { name: `${inputs.length} report(s)`, inputs: inputs.map((i) => ({ file: i.file, host: i.host, createdAt: i.createdAt, runs: i.samples.length })) };
  report.details = { statistic: 'p90', machines, phases: merged.phases, total: merged.total };
  return { report, merged, measurements: fleetMeasurements(merged) };
}
