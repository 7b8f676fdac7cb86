import { invalidArg } from './errors.js';

/**
 * The one validator for whole-number flags (--runs, --concurrency, --devices, …): a string from the command
 * line or a number from an API caller, a safe integer within [min, max], else BAD_FLAG (exit 2) with the
 * shared wording "<flag>: expected a whole number from <min> to <max>, got <value>".
 */
export function intFlag(flag: string, value: string | number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = typeof value === 'number' ? value : value.trim() === '' ? NaN : Number(value);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `from ${min} to ${max}`;
    throw invalidArg(flag, `a whole number ${range}`, value);
  }
  return n;
}
