import { ColdstartError, invalidArg, invalidOption } from './errors.js';

/**
 * The one validator for whole-number flags (--runs, --concurrency, --devices, …): a string from the command
 * line or a number from an API caller, a safe integer within [min, max], else BAD_FLAG (exit 2) with the
 * shared wording "<flag>: expected a whole number from <min> to <max>, got <value>".
 */
export function intFlag(flag: string, value: string | number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  return checkInt(flag, value, min, max, invalidArg);
}

/** `intFlag` for an engine's option (`threads: expected …`, named as the API names it; see invalidOption). */
export function intOption(option: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  return checkInt(option, value, min, max, invalidOption);
}

function checkInt(name: string, value: string | number, min: number, max: number, refuse: (name: string, expected: string, got: unknown) => Error): number {
  const n = typeof value === 'number' ? value : value.trim() === '' ? NaN : Number(value);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `from ${min} to ${max}`;
    throw refuse(name, `a whole number ${range}`, value);
  }
  return n;
}

const UNIT_SECONDS: Record<string, number> = { ms: 1e-3, s: 1, sec: 1, m: 60, min: 60, h: 3600 };
const DURATION_PART = /(\d+(?:\.\d+)?|\.\d+)\s*(ms|sec|min|s|m|h)/gy;

/**
 * The one duration parser, for --budget (and config budgets) and every timeout flag: `500ms`, `20s`, `1.5m`,
 * `2m30s`, `1h`; with `bareSeconds` (timeouts) a plain number is seconds too (`--timeout 30`), while a budget needs
 * its unit. Finite and greater than zero, else `code` (BAD_FLAG; BAD_BUDGET for budgets), exit 2, naming `flag`.
 */
export function durationFlag(flag: string, value: string, opts: { bareSeconds?: boolean; code?: 'BAD_FLAG' | 'BAD_BUDGET' } = {}): number {
  const code = opts.code ?? 'BAD_FLAG';
  const s = value.trim();
  let seconds = 0;
  if (opts.bareSeconds && /^(\d+(\.\d+)?|\.\d+)$/.test(s)) seconds = Number(s);
  else {
    const re = new RegExp(DURATION_PART);
    let matched = 0;
    let m: RegExpExecArray | null;
    while ((m = re.exec(s)) !== null) {
      seconds += Number(m[1]) * UNIT_SECONDS[m[2]!]!;
      matched = re.lastIndex;
    }
    if (s.length === 0 || matched !== s.length || !Number.isFinite(seconds)) {
      throw new ColdstartError(code, `${flag}: "${value}" is not a duration`, {
        hint: `Write a number with a unit: 500ms, 20s, 1.5m, 2m30s${opts.bareSeconds ? ', or a number of seconds' : ''}.`,
      });
    }
  }
  if (!(seconds > 0) || !Number.isFinite(seconds)) throw new ColdstartError(code, `${flag}: "${value}" must be greater than zero`);
  return seconds;
}

/** "a, b or c": the choices of a flag as its refusal names them. */
export function choiceList(allowed: readonly string[]): string {
  return allowed.length < 2 ? allowed.join('') : `${allowed.slice(0, -1).join(', ')} or ${allowed[allowed.length - 1]}`;
}

/** A flag that takes one of a few words (--cache cold|warm|as-is): the word, typed; else BAD_FLAG naming the choices. */
export function choiceFlag<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw invalidArg(flag, choiceList(allowed), value);
}

/** A size flag (--shard-size): `5GB` (10^9), `5GiB` (2^30), `500MB`, `100KiB`, `123` (bytes); > 0, else BAD_FLAG. */
export function sizeFlag(flag: string, text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:([kmgt])(i)?b?|b)?\s*$/i.exec(text);
  if (!m) throw invalidArg(flag, 'a size like 5GB, 500MiB or 1000000', text);
  const pow = { k: 1, m: 2, g: 3, t: 4 }[(m[2] ?? '').toLowerCase() as 'k'] ?? 0;
  const base = m[3] ? 1024 : 1000;
  const v = Math.floor(Number(m[1]) * base ** pow);
  if (!Number.isSafeInteger(v) || v <= 0) throw invalidArg(flag, 'a size greater than zero', text);
  return v;
}

/** A regular expression given on the command line (--ready-log); undefined when not given. */
export function regexFlag(flag: string, v: string | undefined): RegExp | undefined {
  if (v === undefined) return undefined;
  try {
    return new RegExp(v);
  } catch (e) {
    throw invalidArg(flag, 'a regular expression', v, (e as Error).message);
  }
}

/** An http(s) URL given on the command line, kept as given; else BAD_FLAG (exit 2) naming the flag. */
export function httpUrlFlag(flag: string, v: string): string {
  let u: URL | undefined;
  try {
    u = new URL(v);
  } catch {
    /* below */
  }
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:')) throw invalidArg(flag, 'an http:// or https:// URL like http://127.0.0.1:8000', v);
  return v;
}

/** A folder flag that was given must name a folder: `--local-dir ''` is refused, never read as "not given". */
export function dirFlag(flag: string, v: string | undefined): string | undefined {
  if (v !== undefined && !v.trim()) throw invalidArg(flag, 'a folder path', v, `Pass a folder, e.g. ${flag} ./models/llama, or leave ${flag} out.`);
  return v;
}

/** A flag that takes a finite number greater than zero (--gpu-price 2.5), else BAD_FLAG. */
export function positiveFlag(flag: string, value: string): number {
  const n = value.trim() === '' ? NaN : Number(value);
  if (!Number.isFinite(n) || n <= 0) throw invalidArg(flag, 'a positive number', value);
  return n;
}

/** A comma-separated list of whole numbers within [min, max] (--devices 0,1), each checked as intFlag does. */
export function intListFlag(flag: string, value: string, min: number, max = Number.MAX_SAFE_INTEGER): number[] {
  return value.split(',').map((v) => intFlag(flag, v.trim(), min, max));
}
