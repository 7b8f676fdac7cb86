/**
 * The one waiting loop for "until the server is ready": a check repeated with capped exponential backoff under
 * one deadline and the run's abort signal. The server lifecycle waits for a URL or a log line with it (a fixed
 * short interval: the ready time is a measurement), API detection with it (100 ms growing to 2 s).
 */
import { nowSeconds, sleep } from '../core/clock.js';

export interface PollOptions {
  /** nowSeconds() after which no check starts and no sleep continues. */
  deadline: number;
  signal?: AbortSignal;
  /** First pause between checks and its cap, in ms; each pause is `factor` times the last (default 1.6). */
  delayMs: { first: number; max: number; factor?: number };
  /** The error to throw once the deadline has passed after a check that found nothing. */
  onTimeout: () => Error;
  /** Before each pause: how long it will be, seconds. */
  onWait?: (pauseSeconds: number) => void;
}

/** Calls `check` until it returns a value (which it resolves with); `check` throws to give up early. */
export async function pollUntil<T>(check: () => Promise<T | undefined>, o: PollOptions): Promise<T> {
  let delay = o.delayMs.first;
  for (;;) {
    o.signal?.throwIfAborted();
    const v = await check();
    if (v !== undefined) return v;
    const remainingMs = (o.deadline - nowSeconds()) * 1000;
    if (remainingMs <= 0) throw o.onTimeout();
    const pause = Math.min(delay, remainingMs);
    o.onWait?.(pause / 1000);
    await sleep(pause, o.signal);
    delay = Math.min(delay * (o.delayMs.factor ?? 1.6), o.delayMs.max);
  }
}
