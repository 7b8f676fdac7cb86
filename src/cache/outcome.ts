/**
 * How one attempt at a file's bytes ended, and the one map from that to what happens next. Every path — a small
 * file streamed on the event loop, a big one on a worker thread, a Range part — ends an attempt as a FetchOutcome
 * (hub/sink.ts), and `outcomeError` alone decides: done, retry from the byte reached (TransientError), or fail.
 */
import type { IncomingMessage } from 'node:http';
import { abortReason } from '../core/clock.js';
import { ColdstartError, fromSystemError } from '../core/errors.js';
import type { HubClient, RepoFile } from '../hub/api.js';
import { TransientError, hubErrorFor, networkError } from '../hub/http.js';
import type { FetchOutcome } from '../hub/sink.js';
import type { DownloadOptions } from './types.js';

export type { FetchOutcome } from '../hub/sink.js';

/** One file to fetch into its partial: `display` names it in messages. */
export interface FileJob {
  file: RepoFile;
  url: string;
  partial: string;
  display: string;
}

/** Where a fetch reports bytes: progress (may step back on a restart), wire bytes, a resumed prefix, a discarded prefix. */
export interface Accounting {
  progress(n: number): void;
  wire(n: number): void;
  resumed(fromByte: number): void;
  discarded(n: number): void;
}

/** What a fetch needs besides the file: the Hub client and the run's options. */
export interface FetchDeps {
  c: HubClient;
  repo: string;
  opts: Pick<DownloadOptions, 'signal' | 'onEvent' | 'env' | 'concurrency'>;
  /** How many big files the run fetches at once (parts.ts gives a file the cores the others leave). */
  filesAtOnce?: number;
}

/** The bytes one attempt asked for: [base + from, base + length) of the file; `part` when a Range part. */
export interface Asked {
  job: FileJob;
  base: number;
  length: number;
  from: number;
  part: boolean;
  signal?: AbortSignal;
}

/** The Range header of an attempt, as sent. */
function rangeAsked(a: Asked): string {
  return `bytes=${a.base + a.from}-${a.part ? a.base + a.length - 1 : ''}`;
}

/**
 * The one map from how an attempt ended to what happens next: null when every byte asked for arrived; a
 * TransientError to retry from the byte reached (a cut connection, a 5xx, a 416 restarting the file); otherwise
 * the error to throw. An attempt that ended while the run is being stopped is the stop, whatever its kind.
 */
export function outcomeError(r: FetchOutcome, a: Asked, d: FetchDeps): Error | null {
  if (r.kind === 'ok' && r.offset >= a.length) return null;
  if (r.kind !== 'ok' && a.signal?.aborted) return abortReason(a.signal);
  const name = a.job.display;
  switch (r.kind) {
    case 'ok':
    case 'short':
      return new TransientError(`${name}: connection closed at byte ${a.base + r.offset} of ${a.base + a.length}`);
    case 'aborted':
      return new ColdstartError('INTERRUPTED', 'interrupted');
    case 'norange':
      return new ColdstartError('INTERRUPTED', 'no Range support');
    case '416':
      return new TransientError('HTTP 416 on resume; restarting the file from byte 0');
    case 'net':
      return networkError(Object.assign(new Error(r.message), { code: r.code }), r.url);
    case 'fs':
      return fromSystemError(Object.assign(new Error(r.message), { code: r.code }), a.job.partial, 'write');
    case 'status': {
      // hubErrorFor reads only the status and the error headers (the body was discarded).
      const res = { statusCode: r.status, headers: r.headers, resume() {} } as unknown as IncomingMessage;
      return hubErrorFor(res, { repo: d.repo, revision: undefined, path: a.job.file.path, hasToken: !!d.c.token });
    }
    case 'redirects':
      return new ColdstartError('NETWORK', `${new URL(r.url).origin}: too many redirects`);
    case 'range':
      return new ColdstartError('BAD_INPUT', `${name}: server answered Range ${rangeAsked(a)} with ${JSON.stringify(r.contentRange)}`);
    case 'toolong':
      return new ColdstartError('CORRUPT_FILE', `${name}: the server sent more than the ${a.length} bytes ${a.part ? 'of the part asked for' : 'the Hub lists'}; nothing was cached`);
  }
}

/** The headers hubErrorFor reads, from a response whose body is discarded. */
export function errorHeaders(res: IncomingMessage): Record<string, string | undefined> {
  const h = (k: string) => (res.headers[k] === undefined ? undefined : String(res.headers[k]));
  return { 'x-error-code': h('x-error-code'), 'x-error-message': h('x-error-message'), 'retry-after': h('retry-after') };
}

/** The retry policy of a file's attempts: the client's count and backoff, each retry reported as an event. */
export function retrying(d: FetchDeps, job: FileJob, signal: AbortSignal | undefined) {
  return {
    retries: d.c.retries,
    baseMs: d.c.retryBaseMs,
    signal,
    onRetry: (e: Error, attempt: number, wait: number) => d.opts.onEvent?.({ type: 'retry', file: job.display, attempt, waitSeconds: wait / 1000, reason: e.message }),
  };
}
