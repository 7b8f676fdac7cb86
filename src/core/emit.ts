import { resolve } from 'node:path';
import type { Report } from './report.js';
import { measuredForBudgets } from './report.js';
import { evaluateBudgets, budgetsFailed, budgetFails, type Budgets } from './budgets.js';
import { ExitCode, type ExitCodeValue } from './errors.js';
import type { Output } from './output.js';
import { renderHuman } from './reporters/human.js';
import { renderMarkdown } from './reporters/markdown.js';
import { renderJUnit } from './reporters/junit.js';
import { emitGitHub } from './reporters/github.js';
import { writeFileAtomic } from './atomic.js';

export interface EmitOptions {
  budgets?: Budgets;
  /** A budget on an unmeasured phase passes with a warning instead of failing (--allow-unmeasured). */
  allowUnmeasured?: boolean;
  exportJson?: string;
  exportMarkdown?: string;
  junit?: string;
  /** Extra human lines printed after the table (command-specific detail). */
  extraHuman?: string[];
  /** Human rendering override for commands whose output is not a phase table. */
  human?: (report: Report) => string;
}

/**
 * The last step of every command: checks budgets, prints the report (human or the one JSON document),
 * writes exports atomically, emits GitHub annotations/summary, and returns the exit code.
 */
export function emitReport(out: Output, report: Report, cwd: string, opts: EmitOptions = {}): ExitCodeValue {
  if (opts.budgets && Object.keys(opts.budgets).length > 0) report.budgets = evaluateBudgets(opts.budgets, measuredForBudgets(report), { allowUnmeasured: opts.allowUnmeasured });
  for (const b of report.budgets) if (b.status === 'unmeasured' && b.allowed) report.warnings.push(b.message);

  if (opts.exportJson) writeFileAtomic(resolve(cwd, opts.exportJson), `${JSON.stringify(report, null, 2)}\n`);
  if (opts.exportMarkdown) writeFileAtomic(resolve(cwd, opts.exportMarkdown), renderMarkdown(report));
  if (opts.junit) writeFileAtomic(resolve(cwd, opts.junit), renderJUnit(report));

  const failed = budgetsFailed(report.budgets);
  if (out.json) {
    out.writeJson({ ...report, exitCode: failed ? ExitCode.BUDGET : ExitCode.OK });
  } else {
    const cols = out.proc.stdout.columns ?? 100;
    out.print(opts.human ? opts.human(report) : renderHuman(report, out.style, cols));
    for (const l of opts.extraHuman ?? []) out.print(l);
  }
  // In --json mode the table is not printed, so the budget verdicts still reach a human on stderr.
  if (out.json) for (const b of report.budgets) if (budgetFails(b)) out.proc.stderr.write(`${b.message}\n`);
  for (const w of report.warnings) out.warn(w);
  emitGitHub(report, out.proc, out.json);
  return failed ? ExitCode.BUDGET : ExitCode.OK;
}
