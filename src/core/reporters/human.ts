import Table from 'cli-table3';
import type { Report, PhaseSummary } from '../report.js';
import type { BudgetResult } from '../budgets.js';
import type { Style } from '../output.js';
import { formatDuration, formatPercent } from '../format.js';

function statusText(p: PhaseSummary, s: Style): string {
  switch (p.status) {
    case 'ok':
      return s.green('ok');
    case 'estimated':
      return s.cyan('estimated');
    case 'skipped':
      return s.yellow('skipped');
    case 'failed':
      return s.red('failed');
  }
}

function noteText(p: PhaseSummary): string {
  if (p.status === 'skipped') return p.reason ?? '';
  if (p.status === 'failed') return p.error ? `${p.error.code}: ${p.error.message}` : '';
  return p.note ?? '';
}

export function statsLine(st: { mean: number; stddev: number; min: number; max: number; n: number }): string {
  return `${formatDuration(st.mean)} ± ${formatDuration(st.stddev)}  (${formatDuration(st.min)} … ${formatDuration(st.max)}, ${st.n} runs)`;
}

/** The total as text: a time (± σ over runs), or "incomplete" with the known part, never a bare 0 s. */
export function totalText(report: Pick<Report, 'total'>): string {
  const t = report.total;
  if (t.seconds === null) return t.measuredSeconds ? `incomplete (≥ ${formatDuration(t.measuredSeconds)})` : 'incomplete';
  return t.stats ? `${formatDuration(t.seconds)} ± ${formatDuration(t.stats.stddev)}` : formatDuration(t.seconds);
}

/**
 * THE verdict in human output, one line per budget in the evaluator's words, for every command (printed by
 * core/emit.ts after the command's own output): ✓ met, ✗ exceeded / failed / not measured, ? not measured but
 * accepted by --allow-unmeasured.
 */
export function verdictLines(budgets: readonly BudgetResult[], style: Style): string[] {
  return budgets.map((b) => `${b.status === 'ok' ? style.green('✓') : b.status === 'unmeasured' && b.allowed ? style.yellow('?') : style.red('✗')} ${b.message}`);
}

/** The phase table (phase, time, share of total, status, note) with sub-steps indented beneath their phase. */
export function renderHuman(report: Report, style: Style, width = 100): string {
  const lines: string[] = [];
  const noteWidth = Math.max(24, Math.min(70, width - 48));
  const table = new Table({
    head: ['phase', 'time', 'share', 'status', 'note'].map((h) => style.bold(h)),
    style: { head: [], border: [] },
    // No rule between rows: one line per phase or step keeps the table compact in terminals and CI logs.
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
    colWidths: [null, null, null, null, noteWidth] as unknown as number[],
    wordWrap: true,
  });
  for (const p of report.phases) {
    const time = p.seconds === null ? '—' : p.stats ? `${formatDuration(p.seconds)} ± ${formatDuration(p.stats.stddev)}` : formatDuration(p.seconds);
    table.push([p.name, time, p.share === null ? '' : formatPercent(p.share), statusText(p, style), noteText(p)]);
    for (const st of p.steps) {
      table.push([style.dim(`  └ ${st.name}`), style.dim(formatDuration(st.seconds)), '', '', style.dim(st.note ?? '')]);
    }
  }
  const tot = report.total;
  table.push([style.bold('total'), style.bold(totalText(report)), '', '', tot.seconds === null ? `not measured: ${(tot.missing ?? []).join(', ')}` : '']);
  lines.push(table.toString());
  if (tot.stats) lines.push(`total: ${statsLine(tot.stats)}`);
  if (report.findings.length > 0) {
    lines.push('', style.bold('findings'));
    report.findings.forEach((f, i) => lines.push(`${i + 1}. ${f.message}${f.command ? style.dim(`  → ${f.command}`) : ''}`));
  }
  return lines.join('\n');
}
