/**
 * A small Hub HTTP client over node:http/https (no fetch/web streams: raw Node streams keep the download
 * path at loopback speed). Follows redirects itself (dropping Authorization on a cross-origin hop, as
 * requests/httpx do for the CDN), maps the Hub's X-Error-Code answers to ColdstartErrors, and tells
 * transient failures (reset, timeout, 5xx, 429) from permanent ones so callers can retry with backoff.
 */
import { armDeadlines, hopHeaders, hopTimeout, redirectTarget, tokenOriginOf } from './hop.js';
import { abortReason, sleep } from '../core/clock.js';
import http from 'node:http';
import https from 'node:https';
import { ColdstartError } from '../core/errors.js';

export interface HubHttpOptions {
  /** The Hub endpoint (HF_ENDPOINT): the token goes only to its origin, on every hop (hop.ts). */
  endpoint: string;
  method?: 'GET' | 'HEAD' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  token?: string;
  signal?: AbortSignal;
  /** Connect and idle deadline of each hop (default 30 s); past it, a transient TIMEOUT failure. */
  timeoutMs?: number;
  /** A bound on each whole hop, headers and body (API answers); none for file bodies. */
  totalMs?: number;
  maxRedirects?: number;
  /** Do not follow redirects (HEAD on resolve, like huggingface_hub, reads the CDN answer's headers). */
  noRedirect?: boolean;
}

/** A failure worth retrying (connection reset/dropped, timeout, 5xx, 429); `code` is the error it becomes when retries run out. */
export class TransientError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
    readonly code: 'NETWORK' | 'TIMEOUT' = 'NETWORK',
  ) {
    super(message);
    this.name = 'TransientError';
  }
}

const agents = { http: new http.Agent({ keepAlive: true, maxSockets: 64 }), https: new https.Agent({ keepAlive: true, maxSockets: 64 }) };

const TRANSIENT_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'EAI_AGAIN', 'ENETRESET', 'UND_ERR_SOCKET', 'ERR_STREAM_PREMATURE_CLOSE']);
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN']);

export function isTransient(e: unknown): boolean {
  return e instanceof TransientError;
}

/** Maps a socket-level error to a transient error or a NETWORK ColdstartError naming the endpoint. */
export function networkError(err: unknown, url: string): Error {
  if (err instanceof ColdstartError || err instanceof TransientError) return err;
  const code = (err as NodeJS.ErrnoException)?.code ?? '';
  const host = safeOrigin(url);
  if (code === 'ETIMEDOUT') return new TransientError(`${host}: ETIMEDOUT (${(err as Error)?.message ?? 'timed out'})`, undefined, 'TIMEOUT');
  if (TRANSIENT_CODES.has(code)) return new TransientError(`${host}: ${code}`);
  if (UNREACHABLE_CODES.has(code) || code === 'EAI_AGAIN') {
    return new ColdstartError('NETWORK', `cannot reach ${host} (${code})`, {
      cause: err,
      hint: 'Check the network or HF_ENDPOINT; with the model already cached, set HF_HUB_OFFLINE=1.',
    });
  }
  return new TransientError(`${host}: ${(err as Error)?.message ?? String(err)}`);
}

function safeOrigin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}

/**
 * One request; resolves with the final response (body unread) after following redirects. Every hop gets the
 * token only on the endpoint's origin and its own deadlines (hop.ts). Non-2xx answers are NOT thrown here:
 * callers pass them to `hubErrorFor`.
 */
export function hubRequest(url: string, opts: HubHttpOptions): Promise<http.IncomingMessage> {
  return requestHop(url, opts, opts.maxRedirects ?? 5, tokenOriginOf(opts.endpoint));
}

function requestHop(url: string, opts: HubHttpOptions, redirectsLeft: number, tokenOrigin: string): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) return reject(abortReason(opts.signal));
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : http;
    // Credentials never leave the endpoint's origin (the CDN gets a signed URL instead): hop.ts, shared with the worker.
    const headers = hopHeaders(u, tokenOrigin, opts.token, opts.headers);
    if (opts.body !== undefined) headers['content-length'] = String(Buffer.byteLength(opts.body));
    const req = mod.request(u, { method: opts.method ?? 'GET', headers, agent: u.protocol === 'https:' ? agents.https : agents.http, signal: opts.signal }, (res) => {
      const status = res.statusCode ?? 0;
      const next = opts.noRedirect ? null : redirectTarget(status, res.headers, u);
      if (next) {
        res.resume();
        if (redirectsLeft <= 0) return reject(new ColdstartError('NETWORK', `${safeOrigin(url)}: too many redirects`));
        const method = status === 303 ? 'GET' : opts.method;
        requestHop(next, { ...opts, method, body: status === 303 ? undefined : opts.body }, redirectsLeft - 1, tokenOrigin).then(resolve, reject);
        return;
      }
      resolve(res);
    });
    const t = opts.timeoutMs ?? 30_000;
    armDeadlines(req, { connectMs: t, idleMs: t, totalMs: opts.totalMs });
    req.on('error', (e) => reject(opts.signal?.aborted ? abortReason(opts.signal) : networkError(e, url)));
    req.end(opts.body);
  });
}

/**
 * The error a response body's stream failed with, as the request would report it: the abort's reason, the
 * deadline that cut it (a transient TIMEOUT), else a network error (transient).
 */
export function bodyError(e: unknown, res: http.IncomingMessage, url: string, signal?: AbortSignal): Error {
  if (signal?.aborted) return abortReason(signal);
  if (e instanceof ColdstartError || e instanceof TransientError) return e;
  const t = hopTimeout(res);
  if (t) return new TransientError(`${safeOrigin(url)}: ETIMEDOUT (${t.phase === 'idle' ? 'no data' : 'no complete answer'} within ${t.ms / 1000} s)`, undefined, 'TIMEOUT');
  return networkError(e, url);
}

/** Reads a (small) response body as text; a stream failure is mapped by `bodyError`. */
export async function readBody(res: http.IncomingMessage, url: string, signal?: AbortSignal, limit = 64 << 20): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const c of res) {
      n += (c as Buffer).length;
      if (n > limit) {
        res.destroy();
        throw new ColdstartError('BAD_INPUT', `Hub answer larger than ${limit} bytes`);
      }
      chunks.push(c as Buffer);
    }
  } catch (e) {
    throw bodyError(e, res, url, signal);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export interface HubErrorContext {
  repo: string;
  revision?: string;
  path?: string;
  hasToken: boolean;
}

/**
 * The error for a non-2xx Hub answer, keyed on X-Error-Code as huggingface_hub does
 * (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo); transient for 5xx/429.
 */
export function hubErrorFor(res: http.IncomingMessage, ctx: HubErrorContext): Error {
  const status = res.statusCode ?? 0;
  const code = String(res.headers['x-error-code'] ?? '');
  const serverMsg = String(res.headers['x-error-message'] ?? '').slice(0, 200);
  res.resume();
  const tokenHint = 'Set HF_TOKEN (or run `huggingface-cli login`) with a token that can read it.';
  if (code === 'GatedRepo') {
    return new ColdstartError('GATED', `${ctx.repo} is gated${ctx.hasToken ? ' and your token has no access to it' : ' and no Hugging Face token is set'}`, {
      hint: ctx.hasToken ? `Accept the model's terms on its Hub page with the account that owns the token.` : tokenHint,
      details: { status, errorCode: code },
    });
  }
  if (code === 'RepoNotFound' || (status === 401 && !code)) {
    return new ColdstartError('REPO_NOT_FOUND', `repository ${ctx.repo} not found${status === 401 ? ' (or private/gated and not visible without a token)' : ''}`, {
      hint: ctx.hasToken ? 'Check the repo id (org/name) or the alias (`coldstart cache ls` lists what is cached).' : `Check the repo id; if it is private or gated: ${tokenHint}`,
      details: { status, errorCode: code || null },
    });
  }
  if (code === 'RevisionNotFound') {
    return new ColdstartError('REVISION_NOT_FOUND', `revision ${JSON.stringify(ctx.revision ?? 'main')} not found in ${ctx.repo}`, {
      hint: 'Pass an existing branch, tag or 40-character commit sha to --revision.',
      details: { status, errorCode: code },
    });
  }
  if (code === 'EntryNotFound' || (status === 404 && ctx.path)) {
    return new ColdstartError('ENTRY_NOT_FOUND', `${ctx.repo}: file ${JSON.stringify(ctx.path ?? '?')} not found at ${ctx.revision ?? 'main'}`, {
      details: { status, errorCode: code || null },
    });
  }
  if (status === 429 || status >= 500) {
    const ra = Number(res.headers['retry-after']);
    return new TransientError(`HTTP ${status}${serverMsg ? `: ${serverMsg}` : ''}`, Number.isFinite(ra) ? ra * 1000 : undefined);
  }
  if (status === 401 || status === 403) {
    return new ColdstartError('PERMISSION', `${ctx.repo}: access denied (HTTP ${status})${serverMsg ? `: ${serverMsg}` : ''}`, { hint: tokenHint });
  }
  if (status === 404) return new ColdstartError('REPO_NOT_FOUND', `repository ${ctx.repo} not found (HTTP 404)`, { hint: 'Check the repo id (org/name).' });
  return new ColdstartError('NETWORK', `${ctx.repo}: unexpected HTTP ${status} from the Hub${serverMsg ? `: ${serverMsg}` : ''}`);
}

/** Runs `fn` with exponential backoff on transient errors: base, 2×base, 4×base … capped at 10 s. */
export async function withRetries<T>(fn: (attempt: number) => Promise<T>, opts: { retries: number; baseMs: number; signal?: AbortSignal; onRetry?: (e: Error, attempt: number, waitMs: number) => void }): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      if (!(e instanceof TransientError) || attempt >= opts.retries) {
        if (e instanceof TransientError) {
          throw new ColdstartError(e.code, `${e.message} (gave up after ${attempt + 1} attempt(s))`, {
            cause: e,
            hint:
              e.code === 'TIMEOUT'
                ? 'The server accepted but did not answer in time: check HF_ENDPOINT, or raise HF_HUB_DOWNLOAD_TIMEOUT / HF_HUB_ETAG_TIMEOUT (seconds); finished files are kept and partial ones resume.'
                : 'Run the same command again: finished files are kept and partial ones resume.',
          });
        }
        throw e;
      }
      const wait = e.retryAfterMs ?? Math.min(10_000, opts.baseMs * 2 ** attempt);
      opts.onRetry?.(e, attempt + 1, wait);
      await sleep(wait, opts.signal);
    }
  }
}
