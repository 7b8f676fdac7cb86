import { appendFileSync } from 'node:fs';
import type { Report } from '../report.js';
import type { ProcessLike } from '../output.js';
import { renderMarkdown } from './markdown.js';
import { budgetFails, type BudgetResult } from '../budgets.js';

/** Escapes a workflow-command message (GitHub's own rules: %, CR, LF). */
function escapeData(s: string): string {
  return s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

/** `::error` lines for failed budgets, to stdout, only when GITHUB_ACTIONS=true. */
export function githubAnnotations(budgets: readonly BudgetResult[]): string[] {
  return budgets
    .filter((b) => budgetFails(b))
    .map((b) => `::error title=coldstart budget ${b.phase}::${escapeData(b.message)}`);
}

/**
 * Under GitHub Actions: the budget annotations. They go to stdout, or to stderr in --json mode so stdout stays
 * exactly one JSON document (the runner reads both).
 */
export function emitGitHub(budgets: readonly BudgetResult[], proc: ProcessLike, json: boolean): void {
  if (proc.env.GITHUB_ACTIONS !== 'true') return;
  const stream = json ? proc.stderr : proc.stdout;
  for (const line of githubAnnotations(budgets)) stream.write(`${line}\n`);
}

/**
 * Under GitHub Actions: the Markdown table appended to $GITHUB_STEP_SUMMARY (written with the exports, before the
 * report is printed, so a failure there is reported like a failed export). Returns the path written, if any.
 */
export function appendStepSummary(report: Report, proc: ProcessLike): string | null {
  const summary = proc.env.GITHUB_STEP_SUMMARY;
  if (proc.env.GITHUB_ACTIONS !== 'true' || !summary) return null;
  appendFileSync(summary, renderMarkdown(report));
  return summary;
}
