import { ColdstartError } from './errors.js';
import { PHASES } from './phases.js';
import { formatDuration } from './format.js';

/** A budget key is a phase name or `total`. */
export const BUDGET_KEYS = [...PHASES, 'total'] as const;
export type BudgetKey = (typeof BUDGET_KEYS)[number];
export type Budgets = Partial<Record<BudgetKey, number>>;

const UNIT_SECONDS: Record<string, number> = { ms: 1e-3, s: 1, sec: 1, m: 60, min: 60, h: 3600 };

/** Parses `500ms`, `20s`, `1.5m`, `2m30s`, `1h`. A bare number is refused: units are required on the command line. */
export function parseDuration(text: string, where = '--budget'): number {
  const s = text.trim();
  const re = /(\d+(?:\.\d+)?|\.\d+)\s*(ms|sec|min|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * UNIT_SECONDS[m[2]!]!;
    matched = re.lastIndex;
  }
  if (s.length === 0 || matched !== s.length || !Number.isFinite(total)) {
    throw new ColdstartError('BAD_BUDGET', `${where}: "${text}" is not a duration`, {
      hint: 'Write a number with a unit: 500ms, 20s, 1.5m, 2m30s.',
    });
  }
  if (total <= 0) throw new ColdstartError('BAD_BUDGET', `${where}: "${text}" must be greater than zero`);
  return total;
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
    out[key] = parseDuration(item.slice(eq + 1), `${where} ${key}`);
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
    else if (typeof v === 'string') out[key] = parseDuration(v, `${where} budgets.${k}`);
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

export interface Measured {
  seconds: number | null;
  status: 'ok' | 'skipped' | 'failed' | 'estimated';
  /** Why it was not measured (a skipped phase's reason, an incomplete total's missing phases). */
  reason?: string;
}

export interface BudgetOptions {
  /** A budget on a phase that was not measured passes (with a warning) instead of failing. */
  allowUnmeasured?: boolean;
}

/**
 * Compares measured phases to budgets. Fail closed: a budget on a phase that was not measured (skipped, or a
 * total that is incomplete) is `unmeasured` and fails, unless `allowUnmeasured` is set (then `allowed: true`).
 */
export function evaluateBudgets(budgets: Budgets, measured: Partial<Record<BudgetKey, Measured>>, opts: BudgetOptions = {}): BudgetResult[] {
  const results: BudgetResult[] = [];
  for (const key of BUDGET_KEYS) {
    const limit = budgets[key];
    if (limit === undefined) continue;
    const m = measured[key];
    if (!m || m.status === 'skipped' || m.status === 'failed' || m.seconds === null) {
      const failed = m?.status === 'failed';
      const why = m?.reason ?? (m ? 'skipped' : 'no such phase in this profile');
      results.push({
        phase: key,
        limit,
        measured: null,
        status: failed ? 'failed' : 'unmeasured',
        over: null,
        ...(!failed && opts.allowUnmeasured ? { allowed: true } : {}),
        message: failed
          ? `budget ${key}=${formatDuration(limit)}: phase failed, so the budget cannot be met`
          : `budget ${key}=${formatDuration(limit)}: not measured: ${why}${opts.allowUnmeasured ? ' (allowed by --allow-unmeasured)' : ' (fails closed; pass --allow-unmeasured to accept)'}`,
      });
      continue;
    }
    const over = m.seconds - limit;
    const exceeded = over > 0;
    results.push({
      phase: key,
      limit,
      measured: m.seconds,
      status: exceeded ? 'exceeded' : 'ok',
      over,
      message: exceeded
        ? `budget exceeded: ${key} took ${formatDuration(m.seconds)}, limit ${formatDuration(limit)} (+${formatDuration(over)}, +${((over / limit) * 100).toFixed(1)}%)`
        : `budget met: ${key} took ${formatDuration(m.seconds)}, limit ${formatDuration(limit)} (${formatDuration(-over)} to spare)`,
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
