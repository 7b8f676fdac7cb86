import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { Output, type GlobalOptions, type ProcessLike } from '../core/output.js';
import { loadConfig } from '../core/config.js';
import { parseBudgetFlags, type Budgets } from '../core/budgets.js';
import { telemetryHook, type TelemetryFlags } from '../telemetry/index.js';
import { checkExports, type BudgetFlags, type EmitOptions } from '../core/emit.js';

/** Everything a command gets: the (injectable) process, its output channel and the global flags. */
export interface Context {
  proc: ProcessLike;
  out: Output;
  global: GlobalOptions;
  cwd: string;
  env: Record<string, string | undefined>;
  /** Aborted on SIGINT/SIGTERM. */
  signal: AbortSignal;
}

/** Wraps a command body: builds the context from global flags, turns thrown errors into exit codes (src/cli.ts). */
export type Runner = <A extends unknown[]>(body: (ctx: Context, ...args: A) => Promise<number>) => (...args: unknown[]) => Promise<void>;

export function makeContext(proc: ProcessLike, global: GlobalOptions, signal: AbortSignal): Context {
  return { proc, out: new Output(proc, global), global, cwd: proc.cwd(), env: proc.env, signal };
}

/** Commander's value parser for a repeatable flag (`--stage a --stage b`): every value, in order. */
export const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** The budget flags: `--budget` (repeatable) and `--allow-unmeasured`. */
export function addBudgetOptions(cmd: Command): Command {
  return cmd
    .option('--budget <spec>', 'fail (exit 1) when a phase exceeds its limit, e.g. total=20s,gpu-load=8s (repeatable)', collect)
    .option('--allow-unmeasured', 'a budget on a phase that was not measured passes with a warning (default: it fails, exit 1)');
}

/** The flags every phase-reporting command shares: budgets, config and export files (CI use). */
export function addReportOptions(cmd: Command): Command {
  return addBudgetOptions(cmd)
    .option('--config <file>', 'config file (default: coldstart.config.json, searched upward from the working directory)')
    .option('--export-json <file>', 'also write the JSON report to a file')
    .option('--export-markdown <file>', 'also write a Markdown report to a file')
    .option('--junit <file>', 'also write JUnit XML (one testcase per budgeted phase)');
}

export interface BudgetFlagValues {
  budget?: string[];
  allowUnmeasured?: boolean;
}

export interface ReportFlags extends BudgetFlagValues, TelemetryFlags {
  config?: string;
  exportJson?: string;
  exportMarkdown?: string;
  junit?: string;
}

/** `--otlp [URL]` and `--prometheus FILE` (profile, warmup, restore, optimize): where the finished report also goes. */
export function addTelemetryOptions(cmd: Command): Command {
  return cmd
    .option('--otlp [url]', 'also send the run as an OpenTelemetry trace over OTLP/HTTP (default: OTEL_EXPORTER_OTLP_ENDPOINT, else http://localhost:4318)')
    .option('--prometheus <file>', 'also write the run in the node-exporter textfile format (histograms per phase, floors as gauges)');
}

/** Budgets from coldstart.config.json, overridden key by key by the --budget flags (each phase at most once in them);
 * the budgets, and the config file when any of them came from it (it is named whenever it applies budgets). */
function budgetsAndSource(ctx: Context, flags: ReportFlags): { budgets: Budgets; from: string | null } {
  const fromFlags = parseBudgetFlags(flags.budget ?? []);
  const cfg = loadConfig(ctx.cwd, flags.config);
  const fromConfig = Object.keys(cfg.budgets).some((k) => !(k in fromFlags));
  return { budgets: { ...cfg.budgets, ...fromFlags }, from: fromConfig ? cfg.path : null };
}

/** The command-line arguments that name an existing local file or folder (not a Hub id), resolved: a run's inputs. */
export function localInputs(ctx: Context, ...args: Array<string | undefined>): string[] {
  return args.filter((a): a is string => !!a).map((a) => resolve(ctx.cwd, a)).filter((p) => existsSync(p));
}

/**
 * The report options of a run. The export paths go through the output guard here, before the run does its work
 * (`inputs`: the command's input paths, which an export may not replace).
 */
export function emitOptions(ctx: Context, flags: ReportFlags, inputs: readonly string[] = []): EmitOptions {
  checkExports(ctx.cwd, flags, inputs);
  const telemetry = telemetryHook(flags, ctx.env, ctx.cwd);
  const b = budgetsAndSource(ctx, flags);
  return { budgets: b.budgets, budgetsFrom: b.from, allowUnmeasured: !!flags.allowUnmeasured, exportJson: flags.exportJson, exportMarkdown: flags.exportMarkdown, junit: flags.junit, ...(telemetry ? { telemetry } : {}) };
}

/** The budgets of a command that takes only the budget flags (no config file, no exports: `cache`). */
export function budgetFlags(flags: BudgetFlagValues): BudgetFlags {
  return { budgets: parseBudgetFlags(flags.budget ?? []), allowUnmeasured: !!flags.allowUnmeasured };
}
