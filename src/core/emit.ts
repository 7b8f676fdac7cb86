import { dirname, resolve } from 'node:path';
import type { Report } from './report.js';
import { measurementsOf } from './report.js';
import { evaluateBudgets, budgetsFailed, budgetFails, type BudgetKey, type BudgetResult, type Budgets, type Judged } from './budgets.js';
import { ColdstartError, ExitCode, fromSystemError, invalidArg, type ExitCodeValue } from './errors.js';
import type { Output } from './output.js';
import { renderHuman, verdictLines } from './reporters/human.js';
import { renderMarkdown } from './reporters/markdown.js';
import { renderJUnit } from './reporters/junit.js';
import { appendStepSummary, emitGitHub } from './reporters/github.js';
import { sweepLeftovers, writeFileAtomic } from './atomic.js';
import { formatBytes } from './format.js';
import { guardOutput } from './outputs.js';
import { readInputText } from './files.js';

/** The budgets of a run: `--budget` (and the config file's), and --allow-unmeasured. */
export interface BudgetFlags {
  budgets?: Budgets;
  /** A budget on an unmeasured phase passes with a warning instead of failing (--allow-unmeasured). */
  allowUnmeasured?: boolean;
  /** The config file some of the budgets came from (named above the verdict: a file in a parent folder applies too). */
  budgetsFrom?: string | null;
}

export interface EmitOptions extends BudgetFlags {
  /** What budgets are judged against when not the report's own phases and total (report merge: the fleet's p90). */
  measurements?: Partial<Record<BudgetKey, Judged>>;
  /** The exit code the run already has (a phase that broke): the one returned, and the document's, is never lower. */
  exitCode?: ExitCodeValue;
  exportJson?: string;
  exportMarkdown?: string;
  junit?: string;
  /** Extra human lines printed after the table (command-specific detail). */
  extraHuman?: string[];
  /** Human rendering override for commands whose output is not a phase table. */
  human?: (report: Report) => string;
  /** Tests: how an export file is written (default writeFileAtomic). */
  writeFile?: (path: string, data: string) => void;
  /**
   * Sends the finished report elsewhere (telemetry: OTLP, a Prometheus textfile) after it is printed; resolves to
   * warnings. It never changes the verdict or the exit code.
   */
  telemetry?: (report: Report) => Promise<string[]>;
}

type ExportFlags = Pick<EmitOptions, 'exportJson' | 'exportMarkdown' | 'junit'>;

function exportList(opts: ExportFlags): Array<[flag: string, path: string, kind: 'json' | 'markdown' | 'junit']> {
  const all: Array<[string, string | undefined, 'json' | 'markdown' | 'junit']> = [
    ['--export-json', opts.exportJson, 'json'],
    ['--export-markdown', opts.exportMarkdown, 'markdown'],
    ['--junit', opts.junit, 'junit'],
  ];
  return all.filter((e): e is [string, string, 'json' | 'markdown' | 'junit'] => e[1] !== undefined);
}

/** An export file replaces only a regular file (a report written before); never a folder, device, FIFO or link. */
const exportReplaceable = (_: string, st: { isFile(): boolean }) => (st.isFile() ? null : 'is not a regular file');

/** What every textfile `--prometheus` writes carries (telemetry/prometheus.ts); the file is added to run after run. */
export const PROMETHEUS_MARK = '# TYPE coldstart_';

/**
 * `--prometheus FILE` is added to run after run, so unlike an export it replaces only an empty file or an earlier
 * textfile of coldstart's: anything else (a config, someone's metrics) is refused before the run.
 */
const prometheusReplaceable = (path: string, st: { isFile(): boolean; size: number }): string | null => {
  if (!st.isFile()) return 'is not a regular file';
  if (st.size === 0) return null;
  try {
    return readInputText(path, '--prometheus file', 16 << 20).includes(PROMETHEUS_MARK) ? null : "is not coldstart's Prometheus textfile";
  } catch {
    return "is not coldstart's Prometheus textfile";
  }
};

/**
 * The output guard for a run's export files, applied before the run does its work (so a bad path costs nothing):
 * each path non-empty, given once, not a link, not one of `inputs` (nor inside or above one), and replacing only
 * a regular file. Refusals are usage errors (exit 2).
 */
export function checkExports(cwd: string, opts: ExportFlags & { prometheus?: string }, inputs: readonly string[] = []): void {
  const seen = new Map<string, string>();
  const paths: Array<[string, string]> = [...exportList(opts).map(([flag, p]): [string, string] => [flag, p]), ...(opts.prometheus !== undefined ? [['--prometheus', opts.prometheus] as [string, string]] : [])];
  for (const [flag, p] of paths) {
    if (p.trim() === '') throw invalidArg(flag, 'a file path', p);
    const abs = resolve(cwd, p);
    const other = seen.get(abs);
    if (other) throw new ColdstartError('BAD_FLAG', `${flag}: ${abs} is also the ${other} file`, { hint: 'Give each export its own file.' });
    seen.set(abs, flag);
    guardOutput(abs, inputs, { flag, force: true, isOwn: flag === '--prometheus' ? prometheusReplaceable : exportReplaceable });
  }
}

/** A run's budgets judged by the one evaluator (core/budgets.ts); no budgets, no verdicts. */
export function judgeBudgets(flags: BudgetFlags, measurements: Partial<Record<BudgetKey, Judged>>): BudgetResult[] {
  return flags.budgets && Object.keys(flags.budgets).length > 0 ? evaluateBudgets(flags.budgets, measurements, { allowUnmeasured: flags.allowUnmeasured }) : [];
}

/** The exit code of a verdict: 1 when a budget fails (exceeded, failed, not measured and not allowed), else 0. */
export function verdictExitCode(budgets: readonly BudgetResult[]): ExitCodeValue {
  return budgetsFailed(budgets) ? ExitCode.BUDGET : ExitCode.OK;
}

/**
 * Tells the verdict, after the command's own output, the same way for every command: human output gets one line
 * per budget (reporters/human.ts verdictLines); in --json mode the document carries `budgets` and `exitCode`, and
 * the failing lines still reach a human on stderr; under GitHub Actions each failure is also an annotation.
 */
export function tellVerdict(out: Output, budgets: readonly BudgetResult[], budgetsFrom?: string | null): void {
  if (!out.json && budgets.length > 0 && budgetsFrom) out.print(`budgets from ${budgetsFrom}`);
  if (!out.json) for (const l of verdictLines(budgets, out.style)) out.print(l);
  else for (const b of budgets) if (budgetFails(b)) out.proc.stderr.write(`${b.message}\n`);
  emitGitHub(budgets, out.proc, out.json);
}

/**
 * The last step of every command that reports phases: judges budgets, writes exports atomically, prints the report
 * (human, then the verdict; or the one JSON document), emits GitHub annotations/summary, then sends telemetry (a
 * failure there is one warning, never another exit code), and returns the exit code.
 * A failed export (a full disk, a path refused by the output guard) never loses the measurement: the report is
 * printed all the same — the JSON document with `exportErrors` and the export's exit code —, then the failure is
 * reported on stderr, and the run exits with the export's code (3 for the disk).
 */
export async function emitReport(out: Output, report: Report, cwd: string, opts: EmitOptions = {}): Promise<ExitCodeValue> {
  report.budgets = judgeBudgets(opts, opts.measurements ?? measurementsOf(report));
  for (const b of report.budgets) if (b.status === 'unmeasured' && b.allowed) report.warnings.push(b.message);

  const exportErrors: ColdstartError[] = [];
  const exports = exportList(opts).flatMap(([flag, p, kind]) => {
    const abs = resolve(cwd, p);
    try {
      guardOutput(abs, [], { flag, force: true, isOwn: exportReplaceable });
    } catch (e) {
      exportErrors.push(fromSystemError(e, abs, 'write'));
      return [];
    }
    const left = sweepLeftovers(dirname(abs));
    if (left.removed.length) report.warnings.push(`removed ${left.removed.length} leftover(s) of interrupted coldstart runs in ${dirname(abs)} (${formatBytes(left.bytes)}): ${left.removed.join(', ')}`);
    return [{ abs, kind }];
  });
  const write = opts.writeFile ?? writeFileAtomic;
  for (const { abs, kind } of exports) {
    try {
      write(abs, kind === 'json' ? `${JSON.stringify(report, null, 2)}\n` : kind === 'markdown' ? renderMarkdown(report) : renderJUnit(report));
    } catch (e) {
      exportErrors.push(fromSystemError(e, abs, 'write'));
    }
  }
  try {
    appendStepSummary(report, out.proc);
  } catch (e) {
    exportErrors.push(fromSystemError(e, out.proc.env.GITHUB_STEP_SUMMARY ?? '$GITHUB_STEP_SUMMARY', 'append to'));
  }

  const code = Math.max(exportErrors[0]?.exitCode ?? verdictExitCode(report.budgets), opts.exitCode ?? ExitCode.OK) as ExitCodeValue;
  if (out.json) {
    out.writeJson({ ...report, exitCode: code, ...(exportErrors.length ? { exportErrors: exportErrors.map((e) => e.toJSON()) } : {}) });
  } else {
    const cols = out.proc.stdout.columns || Number(out.proc.env.COLUMNS) || 100;
    out.print(opts.human ? opts.human(report) : renderHuman(report, out.style, { width: cols, verbose: !!out.opts.verbose }));
    for (const l of opts.extraHuman ?? []) out.print(l);
  }
  tellVerdict(out, report.budgets, opts.budgetsFrom);
  for (const w of report.warnings) out.warn(w);
  // After the report: the measurement is never lost to an export that failed.
  for (const e of exportErrors) out.error(e);
  for (const w of opts.telemetry ? await opts.telemetry(report).catch((e: Error) => [`telemetry: ${e.message}`]) : []) out.warn(w);
  return code;
}
