import { performance } from 'node:perf_hooks';
import { ColdstartError } from './errors.js';

/** Monotonic time in nanoseconds (process.hrtime): a stamp to subtract from another, exact to the nanosecond. */
export function monotonicNs(): bigint {
  return process.hrtime.bigint();
}

/** Monotonic time in seconds (process.hrtime), never the wall clock. */
export function nowSeconds(): number {
  return Number(monotonicNs()) / 1e9;
}

/**
 * The wall clock in seconds since the epoch (Date.now()): only to compare with a time from outside this process (a
 * --since timestamp, a file's mtime). Never performance.timeOrigin + performance.now(): that is the wall clock read
 * once at Node's start plus the monotonic clock since, and drifts from the wall clock by milliseconds in a long run.
 */
export function epochSeconds(): number {
  return Date.now() / 1000;
}

/**
 * Seconds since this Node process started (performance.now(): monotonic, its origin at Node's start): how long
 * coldstart itself has been running, e.g. to place its start on an outside timeline.
 */
export function processSeconds(): number {
  return performance.now() / 1000;
}

export class Stopwatch {
  private readonly start = nowSeconds();
  elapsed(): number {
    return nowSeconds() - this.start;
  }
}

/** Runs `fn` and returns its result with the elapsed monotonic seconds. */
export async function timed<T>(fn: () => Promise<T> | T): Promise<{ value: T; seconds: number }> {
  const sw = new Stopwatch();
  const value = await fn();
  return { value, seconds: sw.elapsed() };
}

/** The error an aborted operation rejects with: the signal's reason when it is an Error, else INTERRUPTED. */
export function abortReason(signal: AbortSignal): Error {
  const r = signal.reason;
  return r instanceof Error ? r : new ColdstartError('INTERRUPTED', 'interrupted');
}

/** Sleeps `ms` unless the signal aborts first (then rejects with abortReason). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(abortReason(signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
