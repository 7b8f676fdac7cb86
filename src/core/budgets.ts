import { ColdstartError } from './errors.js';
import { PHASES, type Measurement } from './phases.js';
import { formatDuration } from './format.js';
import { durationFlag } from './flags.js';

/** A budget key is a phase name or `total`. */
export const BUDGET_KEYS = [...PHASES, 'total'] as const;
export type BudgetKey = (typeof BUDGET_KEYS)[number];
export type Budgets = Partial<Record<BudgetKey, number>>;

/** A budget's limit: a duration with its unit (`500ms`, `20s`, `1.5m`, `2m30s`, `1h`), the one parser in core/flags.ts. */
function parseLimit(text: string, where: string): number {
  return durationFlag(where, text, { code: 'BAD_BUDGET' });
}

function checkKey(key: string, where: string): BudgetKey {
  if ((BUDGET_KEYS as readonly string[]).includes(key)) return key as BudgetKey;
  throw new ColdstartError('BAD_BUDGET', `${where}: unknown phase "${key}"`, { hint: `Budget keys are: ${BUDGET_KEYS.join(', ')}.` });
}

/** Parses `total=20s,gpu-load=8s` (several --budget flags may be merged by the caller). */
export function parseBudgetSpec(spec: string, where = '--budget'): Budgets {
  const out: Budgets = {};
  for (const part of spec.split(',')) {
    const item = part.trim();
    if (!item) continue;
    const eq = item.indexOf('=');
    if (eq <= 0) {
      throw new ColdstartError('BAD_BUDGET', `${where}: "${item}" is not PHASE=DURATION`, { hint: 'Example: --budget total=20s,gpu-load=8s' });
    }
    const key = checkKey(item.slice(0, eq).trim(), where);
    if (out[key] !== undefined) throw twice(key, where);
    out[key] = parseLimit(item.slice(eq + 1), `${where} ${key}`);
  }
  if (Object.keys(out).length === 0) {
    throw new ColdstartError('BAD_BUDGET', `${where}: empty budget`, { hint: 'Example: --budget total=20s,gpu-load=8s' });
  }
  return out;
}

function twice(key: BudgetKey, where: string): ColdstartError {
  return new ColdstartError('BAD_BUDGET', `${where}: phase "${key}" has two budgets`, {
    hint: 'Give each phase one limit (--budget total=20s,gpu-load=8s); a --budget overrides the config file\'s value for its phase.',
  });
}

/**
 * Every `--budget` flag of one command line, merged: a phase named twice — in one spec or across repeated flags —
 * is a usage error (BAD_BUDGET, exit 2) instead of the last one silently winning. Overriding the config file's
 * value for a phase is the caller's documented merge, not a repeat.
 */
export function parseBudgetFlags(specs: readonly string[], where = '--budget'): Budgets {
  const out: Budgets = {};
  for (const spec of specs) {
    for (const [key, seconds] of Object.entries(parseBudgetSpec(spec, where)) as Array<[BudgetKey, number]>) {
      if (out[key] !== undefined) throw twice(key, where);
      out[key] = seconds;
    }
  }
  return out;
}

/** Budgets from a config file: values are duration strings or numbers of seconds. */
export function budgetsFromConfig(obj: unknown, where: string): Budgets {
  if (obj === undefined) return {};
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw new ColdstartError('BAD_CONFIG', `${where}: "budgets" must be an object like {"total": "20s"}`);
  }
  const out: Budgets = {};
  for (const [k, v] of Object.entries(obj)) {
    const key = checkKey(k, where);
    if (typeof v === 'number' && Number.isFinite(v) && v > 0) out[key] = v;
    else if (typeof v === 'string') out[key] = parseLimit(v, `${where} budgets.${k}`);
    else throw new ColdstartError('BAD_CONFIG', `${where}: budgets.${k} must be a duration like "8s" or a number of seconds`);
  }
  return out;
}

export type BudgetStatus = 'ok' | 'exceeded' | 'unmeasured' | 'failed';

export interface BudgetResult {
  phase: BudgetKey;
  limit: number;
  measured: number | null;
  status: BudgetStatus;
  /** measured − limit, seconds; positive when exceeded. */
  over: number | null;
  message: string;
  /** An unmeasured budget accepted by --allow-unmeasured. */
  allowed?: boolean;
}

/**
 * What a budget is judged against: a phase's or the total's measurement, with `basis` saying what the number is
 * when it is not one run's time (report merge: "p90 across the fleet: 6 runs on 2 machines").
 */
export type Judged = Measurement & { basis?: string };

export interface BudgetOptions {
  /** A budget on a phase that was not measured passes (with a warning) instead of failing. */
  allowUnmeasured?: boolean;
}

/**
 * THE evaluator: every verdict of every command comes from here. Per budget:
 * - measured (0 included) → `ok` or `exceeded`;
 * - not measured, or left out (a budget on a phase that did not run is never met by choice) → `unmeasured`, which
 *   fails closed unless `allowUnmeasured` (then `allowed: true`); a budget on a phase this run does not have at all
 *   is the same;
 * - a phase that failed → `failed`, never excused.
 * Left-out phases matter to the total (outside it, never missing), not here.
 */
export function evaluateBudgets(budgets: Budgets, measured: Partial<Record<BudgetKey, Judged>>, opts: BudgetOptions = {}): BudgetResult[] {
  const results: BudgetResult[] = [];
  for (const key of BUDGET_KEYS) {
    const limit = budgets[key];
    if (limit === undefined) continue;
    const m: Judged = measured[key] ?? { state: 'not-measured', reason: `this run has no ${key} phase` };
    const head = `budget ${key}=${formatDuration(limit)}`;
    if (m.state !== 'measured') {
      const failed = m.state === 'not-measured' && m.failed === true;
      const why = m.state === 'left-out' ? `left out: ${m.reason}` : m.reason;
      results.push({
        phase: key,
        limit,
        measured: null,
        status: failed ? 'failed' : 'unmeasured',
        over: null,
        ...(!failed && opts.allowUnmeasured ? { allowed: true } : {}),
        message: failed
          ? `${head}: not measured: ${why}, so the budget cannot be met`
          : `${head}: not measured: ${why}${opts.allowUnmeasured ? ' (allowed by --allow-unmeasured)' : ' (fails closed; pass --allow-unmeasured to accept)'}`,
      });
      continue;
    }
    const over = m.seconds - limit;
    const exceeded = over > 0;
    const took = `${key} took ${formatDuration(m.seconds)}${m.basis ? ` (${m.basis})` : ''}`;
    results.push({
      phase: key,
      limit,
      measured: m.seconds,
      status: exceeded ? 'exceeded' : 'ok',
      over,
      message: exceeded
        ? `budget exceeded: ${took}, limit ${formatDuration(limit)} (+${formatDuration(over)}, +${((over / limit) * 100).toFixed(1)}%)`
        : `budget met: ${took}, limit ${formatDuration(limit)} (${formatDuration(-over)} to spare)`,
    });
  }
  return results;
}

/** True when CI should fail: a budget exceeded, a phase failed, or a budget not measured (unless allowed). */
export function budgetsFailed(results: readonly BudgetResult[]): boolean {
  return results.some((r) => budgetFails(r));
}

export function budgetFails(r: BudgetResult): boolean {
  return r.status === 'exceeded' || r.status === 'failed' || (r.status === 'unmeasured' && !r.allowed);
}
