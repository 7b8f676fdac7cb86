/**
 * `coldstart report merge *.json`: the fleet view (core/merge.ts). Folds `coldstart/profile@1` reports from many
 * machines (every measured run of each) into p50/p90/max per phase. Budgets gate on the fleet's p90.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import Table from 'cli-table3';
import type { Context, Runner } from './context.js';
import { addReportOptions, emitOptions, type ReportFlags } from './context.js';
import { ColdstartError } from '../core/errors.js';
import { mergedReport, readReport, type MergedPhase } from '../core/merge.js';
import { emitReport } from '../core/emit.js';
import { formatDuration } from '../core/format.js';

function render(merged: { phases: MergedPhase[]; total: MergedPhase }, ctx: Context, inputs: number, machines: number): string {
  const st = ctx.out.style;
  const t = new Table({ head: ['phase', 'runs', 'machines', 'p50', 'p90', 'max', 'not measured'].map((h) => st.bold(h)), style: { head: [], border: [] } });
  const f = (v: number | null) => (v === null ? '—' : formatDuration(v));
  for (const p of [...merged.phases, merged.total]) t.push([p.name === 'total' ? st.bold('total') : p.name, String(p.runs), String(p.machines), f(p.p50), f(p.p90), f(p.max), p.skippedRuns ? String(p.skippedRuns) : '']);
  return [`${inputs} report(s) from ${machines} machine(s)`, t.toString()].join('\n');
}

export async function mergeCommand(ctx: Context, files: string[], flags: ReportFlags): Promise<number> {
  if (files.length === 0) throw new ColdstartError('USAGE', 'report merge: no input files', { hint: 'Example: coldstart report merge results/*.json' });
  const paths = files.map((f) => resolve(ctx.cwd, f));
  const emit = emitOptions(ctx, flags, paths);
  const inputs = paths.map(readReport);
  const { report, merged, measurements } = mergedReport(inputs);
  const machines = new Set(inputs.map((i) => i.host)).size;
  return emitReport(ctx.out, report, ctx.cwd, { ...emit, measurements, human: () => render(merged, ctx, inputs.length, machines) });
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
