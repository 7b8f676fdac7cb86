import type { Report } from '../report.js';
import { budgetFails } from '../budgets.js';

function xml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!)
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '');
}

/** JUnit XML: one <testcase> per budgeted phase; exceeded or unmeasured → <failure> (fail closed), unmeasured but allowed (--allow-unmeasured) → <skipped>. */
export function renderJUnit(report: Report): string {
  const cases = report.budgets;
  const failures = cases.filter((b) => budgetFails(b)).length;
  const skipped = cases.filter((b) => b.status === 'unmeasured' && b.allowed).length;
  const time = (report.total.seconds ?? report.total.measuredSeconds ?? 0).toFixed(6);
  const suite = `coldstart.${report.command}`;
  const out: string[] = ['<?xml version="1.0" encoding="UTF-8"?>'];
  out.push(`<testsuites name="coldstart" tests="${cases.length}" failures="${failures}" errors="0" skipped="${skipped}" time="${time}">`);
  out.push(`  <testsuite name="${xml(suite)}" tests="${cases.length}" failures="${failures}" errors="0" skipped="${skipped}" time="${time}" timestamp="${xml(report.createdAt)}" hostname="${xml(report.host.hostname)}">`);
  for (const b of cases) {
    const t = (b.measured ?? 0).toFixed(6);
    out.push(`    <testcase classname="${xml(suite)}" name="budget ${xml(b.phase)} &lt;= ${b.limit}s" time="${t}">`);
    if (budgetFails(b)) out.push(`      <failure message="${xml(b.message)}" type="${b.status === 'unmeasured' ? 'NotMeasured' : 'BudgetExceeded'}">${xml(b.message)}</failure>`);
    else if (b.status === 'unmeasured') out.push(`      <skipped message="${xml(b.message)}"/>`);
    out.push('    </testcase>');
  }
  out.push('  </testsuite>', '</testsuites>', '');
  return out.join('\n');
}
