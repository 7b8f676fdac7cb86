import { invalidArg, invalidOption } from './errors.js';

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
