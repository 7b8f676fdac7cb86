import type { Report } from '../report.js';
import { formatDuration, formatPercent } from '../format.js';
import { totalText } from './human.js';

const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** GitHub-flavoured Markdown: the phase table, budgets and findings (used for --export-markdown and step summaries). */
export function renderMarkdown(report: Report): string {
  const out: string[] = [];
  const target = report.target && typeof report.target.name === 'string' ? ` — ${report.target.name}` : '';
  out.push(`### coldstart ${report.command}${target}`, '');
  out.push('| phase | time | share | status | note |', '|---|---:|---:|---|---|');
  for (const p of report.phases) {
    const time = p.seconds === null ? '—' : p.stats ? `${formatDuration(p.seconds)} ± ${formatDuration(p.stats.stddev)}` : formatDuration(p.seconds);
    const note = p.status === 'skipped' ? (p.reason ?? '') : p.status === 'failed' ? (p.error?.message ?? '') : (p.note ?? '');
    out.push(`| ${p.name} | ${time} | ${p.share === null ? '' : formatPercent(p.share)} | ${p.status} | ${esc(note)} |`);
  }
  out.push(`| **total** | **${totalText(report)}** | | | |`);
  if (report.budgets.length > 0) {
    out.push('', '| budget | limit | measured | result |', '|---|---:|---:|---|');
    for (const b of report.budgets) {
      const icon = b.status === 'ok' ? '✅ met' : b.status === 'unmeasured' ? (b.allowed ? '⚠️ not measured (allowed)' : '❌ not measured') : b.status === 'failed' ? '❌ phase failed' : `❌ exceeded by ${formatDuration(b.over ?? 0)}`;
      out.push(`| ${b.phase} | ${formatDuration(b.limit)} | ${b.measured === null ? '—' : formatDuration(b.measured)} | ${icon} |`);
    }
  }
  if (report.findings.length > 0) {
    out.push('', '**Findings**', '');
    report.findings.forEach((f, i) => out.push(`${i + 1}. ${esc(f.message)}${f.command ? ` — \`${f.command}\`` : ''}`));
  }
  out.push('', `<sub>coldstart ${report.tool.version} on ${report.host.hostname}, ${report.createdAt}</sub>`, '');
  return out.join('\n');
}
