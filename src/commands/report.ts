/**
 * `coldstart report merge *.json`: the fleet view. Folds `coldstart/profile@1` reports from many machines
 * (every measured run of each) into p50/p90/max per phase. Budgets gate on the fleet's p90.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import Table from 'cli-table3';
import type { Context, Runner } from '../cli/context.js';
import { addReportOptions, emitOptions, type ReportFlags } from '../cli/context.js';
import { ColdstartError } from '../core/errors.js';
import { readInputText } from '../core/files.js';
import { PHASES } from '../core/phases.js';
import { newReport, type PhaseSummary, type Report } from '../core/report.js';
import { summarize, quantile, type Stats } from '../core/stats.js';
import { emitReport } from '../core/emit.js';
import { formatDuration } from '../core/format.js';

export const MERGE_SCHEMA = 'coldstart/report-merge@1';

interface Input {
  file: string;
  host: string;
  createdAt: string;
  samples: Array<{ total: number | null; phases: Record<string, number | null> }>;
}

function readInput(cwd: string, file: string): Input {
  const path = resolve(cwd, file);
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
  const samples =
    doc.runs?.samples && doc.runs.samples.length > 0
      ? doc.runs.samples.map((s) => ({ total: s.total, phases: s.phases }))
      : [{ total: doc.total.seconds, phases: Object.fromEntries(doc.phases.map((p) => [p.name, p.status === 'ok' || p.status === 'estimated' ? p.seconds : null])) }];
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

export function mergeReports(inputs: readonly Input[]): { phases: MergedPhase[]; total: MergedPhase } {
  const names = new Set<string>(PHASES);
  for (const i of inputs) for (const s of i.samples) for (const k of Object.keys(s.phases)) names.add(k);
  const fold = (name: string, pick: (s: Input['samples'][number]) => number | null | undefined): MergedPhase => {
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

function render(report: Report, merged: { phases: MergedPhase[]; total: MergedPhase }, ctx: Context, inputs: number, machines: number): string {
  const st = ctx.out.style;
  const t = new Table({ head: ['phase', 'runs', 'machines', 'p50', 'p90', 'max', 'not measured'].map((h) => st.bold(h)), style: { head: [], border: [] } });
  const f = (v: number | null) => (v === null ? '—' : formatDuration(v));
  for (const p of [...merged.phases, merged.total]) t.push([p.name === 'total' ? st.bold('total') : p.name, String(p.runs), String(p.machines), f(p.p50), f(p.p90), f(p.max), p.skippedRuns ? String(p.skippedRuns) : '']);
  const lines = [`${inputs} report(s) from ${machines} machine(s)`, t.toString()];
  for (const b of report.budgets) lines.push(`${b.status === 'ok' ? st.green('✓') : b.status === 'unmeasured' ? st.yellow('?') : st.red('✗')} ${b.message} (p90 across the fleet)`);
  return lines.join('\n');
}

export async function mergeCommand(ctx: Context, files: string[], flags: ReportFlags): Promise<number> {
  if (files.length === 0) throw new ColdstartError('USAGE', 'report merge: no input files', { hint: 'Example: coldstart report merge results/*.json' });
  const inputs = files.map((f) => readInput(ctx.cwd, f));
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
  report.total = { seconds: merged.total.p90, complete: merged.total.p90 !== null, ...(merged.total.stats ? { stats: merged.total.stats } : {}) };
  const machines = new Set(inputs.map((i) => i.host)).size;
  report.target = { name: `${inputs.length} report(s)`, inputs: inputs.map((i) => ({ file: i.file, host: i.host, createdAt: i.createdAt, runs: i.samples.length })) };
  report.details = { statistic: 'p90', machines, phases: merged.phases, total: merged.total };
  return emitReport(ctx.out, report, ctx.cwd, { ...emitOptions(ctx, flags, files.map((f) => resolve(ctx.cwd, f))), human: (r) => render(r, merged, ctx, inputs.length, machines) });
}

export function registerReport(program: Command, run: Runner): void {
  const report = program.command('report').description('work with saved reports (fleet view: merge runs from many machines)');
  addReportOptions(
    report
      .command('merge')
      .description('merge coldstart profile JSON reports: p50/p90/max per phase across machines (budgets gate on p90)')
      .argument('<files...>', 'profile reports (coldstart profile --json / --export-json)'),
  ).action(run(async (ctx, files: string[], flags: ReportFlags) => mergeCommand(ctx, files, flags)));
}
