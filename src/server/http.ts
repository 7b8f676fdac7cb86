/**
 * The one HTTP client coldstart talks to inference servers with (readiness, API detection, first and warmup
 * requests, snapshot's recorded request): Node's global fetch, one deadline per request (connect, headers and
 * every body read) that never outlives the caller's deadline or its abort signal, bodies read bounded and always
 * cancelled when left unread, redirects followed here so credentials stay on the server's own origin.
 */
import { ColdstartError, invalidOption } from '../core/errors.js';
import { Stopwatch, nowSeconds } from '../core/clock.js';

/** The most a server may answer to a few-token request or a readiness probe; more is not an inference API. */
export const MAX_BODY = 16 << 20;

/**
 * Normalises a server URL: http(s) only; a trailing /v1 or / is dropped so endpoints are joined from the root.
 * Refused naming `option` (the caller's option; a command checks its flag first with httpUrlFlag).
 */
export function parseServerUrl(text: string, option = 'url'): URL {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw invalidOption(option, 'an http:// or https:// URL like http://127.0.0.1:8000', text);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw invalidOption(option, 'an http:// or https:// URL', text);
  u.pathname = u.pathname.replace(/\/+$/, '').replace(/\/v1$/, '') + '/';
  u.search = '';
  u.hash = '';
  return u;
}

export interface Reply {
  status: number;
  contentType: string;
  /** The body as UTF-8 text, and its bytes as received. */
  text: string;
  bytes: Buffer;
  seconds: number;
}

export type Failure = { kind: 'refused' | 'timeout' | 'network'; detail: string };

/** A request that got no HTTP answer (refused, reset, unresolvable, past its deadline). HTTP errors are replies. */
export class RequestFailed extends Error {
  constructor(readonly failure: Failure) {
    super(failure.detail);
  }
}

/** A JSON body sent exactly as given (a user's --warmup-data), instead of a value to serialise. */
export class RawJson {
  constructor(readonly text: string) {}
}

function describeFetchError(e: unknown, what: string, timedOut = false): Failure {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  if (timedOut || err?.name === 'TimeoutError') return { kind: 'timeout', detail: `${what}: no answer before the timeout` };
  const code = err?.cause?.code ?? (err as NodeJS.ErrnoException)?.code;
  if (code === 'ECONNREFUSED') return { kind: 'refused', detail: `${what}: connection refused` };
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') return { kind: 'refused', detail: `${what}: connection reset (${code})` };
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return { kind: 'network', detail: `${what}: host not found (${code})` };
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return { kind: 'timeout', detail: `${what}: timed out (${code})` };
  return { kind: 'network', detail: `${what}: ${err?.cause?.message ?? err?.message ?? String(e)}` };
}

interface RequestGuard {
  signal: AbortSignal;
  timedOut(): boolean;
  done(): void;
}

export class Client {
  /**
   * `base`: the server's root (parseServerUrl); `headers` go to that origin only; `deadline`: nowSeconds() by which
   * every request of this client ends; `signal`: the run's abort signal.
   */
  constructor(
    readonly base: URL,
    readonly headers: Record<string, string>,
    readonly deadline: number,
    readonly signal?: AbortSignal,
  ) {}

  url(path: string): string {
    return new URL(path.replace(/^\//, ''), this.base).toString();
  }

  remainingMs(): number {
    return Math.max(0, (this.deadline - nowSeconds()) * 1000);
  }

  /**
   * The one deadline of one request — connect, headers and every body read: min(timeoutMs, the client's deadline),
   * or the run's abort signal, whichever comes first. Its own timer and controller (no AbortSignal.any, whose
   * composite can lose its timeout), cleared by done().
   */
  private guard(timeoutMs: number): RequestGuard {
    const ac = new AbortController();
    let timedOut = false;
    // setTimeout fires at once past 2^31-1 ms: a --timeout of years waits 24.8 days per request instead.
    const ms = Math.max(1, Math.ceil(Math.min(timeoutMs, this.remainingMs(), 2 ** 31 - 1)));
    const timer = setTimeout(() => {
      timedOut = true;
      ac.abort(new DOMException('the request reached its deadline', 'TimeoutError'));
    }, ms);
    const parent = this.signal;
    const onAbort = (): void => ac.abort(parent?.reason);
    if (parent?.aborted) onAbort();
    else parent?.addEventListener('abort', onAbort, { once: true });
    return {
      signal: ac.signal,
      timedOut: () => timedOut,
      done: () => {
        clearTimeout(timer);
        parent?.removeEventListener('abort', onAbort);
      },
    };
  }

  /**
   * fetch with redirects followed here, not by undici: the headers (API keys, tokens) go only to the server's own
   * origin — undici drops Authorization on a cross-origin redirect but forwards every other header (X-Api-Key…).
   * A hop to another origin is still followed, without them; 303 (and 301/302 of a POST) becomes a GET.
   */
  private async fetchHere(path: string, method: string, body: unknown, signal: AbortSignal): Promise<Response> {
    let url = new URL(this.url(path));
    let m = method;
    let payload = body === undefined ? undefined : body instanceof RawJson ? body.text : JSON.stringify(body);
    for (let hop = 0; ; hop++) {
      const own = url.origin === this.base.origin;
      const res = await untilAborted(
        fetch(url, {
          method: m,
          headers: { accept: 'application/json, text/event-stream', ...(payload !== undefined ? { 'content-type': 'application/json' } : {}), ...(own ? this.headers : {}) },
          body: payload,
          signal,
          redirect: 'manual',
        }),
        signal,
      );
      const location = res.status >= 300 && res.status < 400 ? res.headers.get('location') : null;
      if (!location) return res;
      await res.body?.cancel().catch(() => {});
      if (hop >= 5) throw new ColdstartError('BAD_RESPONSE', `${this.base.origin}: ${method} ${path}: more than 5 redirects`);
      const next = new URL(location, url);
      if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new ColdstartError('BAD_RESPONSE', `${this.base.origin}: ${method} ${path}: redirected to ${next.protocol} URL`);
      if (res.status === 303 || ((res.status === 301 || res.status === 302) && m === 'POST')) {
        m = 'GET';
        payload = undefined;
      }
      url = next;
    }
  }

  /** One request, body read in full (bounded). Network failures throw RequestFailed; HTTP errors come back as replies. */
  async call(method: string, path: string, body?: unknown, timeoutMs = 5000): Promise<Reply> {
    const what = `${method} ${path}`;
    return this.guarded(what, timeoutMs, async (signal, sw) => {
      const res = await this.fetchHere(path, method, body, signal);
      const bytes = await readBounded(res, what, signal);
      return { status: res.status, contentType: res.headers.get('content-type') ?? '', text: bytes.toString('utf8'), bytes, seconds: sw.elapsed() };
    });
  }

  /** Runs one request under its guard: a failure without an HTTP answer becomes RequestFailed (the abort reason when aborted). */
  private async guarded<T>(what: string, timeoutMs: number, request: (signal: AbortSignal, sw: Stopwatch) => Promise<T>): Promise<T> {
    this.signal?.throwIfAborted();
    const sw = new Stopwatch();
    const g = this.guard(timeoutMs);
    try {
      return await request(g.signal, sw);
    } catch (e) {
      if (e instanceof ColdstartError) throw e;
      this.signal?.throwIfAborted();
      throw new RequestFailed(describeFetchError(e, what, g.timedOut()));
    } finally {
      g.done();
    }
  }

  /**
   * A streaming request: `onLine` sees each line of the body as it arrives (SSE `data:` lines or NDJSON) and
   * returns true for a line that carries a token; the time of the first such line is the TTFT.
   */
  async stream(path: string, body: unknown, onLine: (line: string) => boolean, timeoutMs: number): Promise<Reply & { ttft: number | null; streamed: boolean }> {
    const what = `POST ${path}`;
    return this.guarded(what, timeoutMs, async (signal, sw) => {
      let ttft: number | null = null;
      const res = await this.fetchHere(path, 'POST', body, signal);
      const contentType = res.headers.get('content-type') ?? '';
      const streamed = res.ok && /text\/event-stream|application\/x-ndjson|application\/jsonl/.test(contentType);
      if (!streamed || !res.body) {
        const bytes = await readBounded(res, what, signal);
        return { status: res.status, contentType, text: bytes.toString('utf8'), bytes, seconds: sw.elapsed(), ttft: null, streamed: false };
      }
      const decoder = new TextDecoder();
      let buf = '';
      let all = '';
      await pump(res.body, what, signal, (value) => {
        buf += decoder.decode(value, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).replace(/\r$/, '');
          buf = buf.slice(nl + 1);
          if (all.length < 4096) all += `${line}\n`;
          if (line.trim() && onLine(line) && ttft === null) ttft = sw.elapsed();
        }
      });
      buf += decoder.decode();
      if (buf.trim()) {
        all += buf;
        if (onLine(buf.replace(/\r$/, '')) && ttft === null) ttft = sw.elapsed();
      }
      return { status: res.status, contentType, text: all, bytes: Buffer.from(all), seconds: sw.elapsed(), ttft, streamed: true };
    });
  }
}

/** `p`, or the abort reason as soon as `signal` aborts: no await outlives the request's deadline. */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

async function readBounded(res: Response, what: string, signal: AbortSignal): Promise<Buffer> {
  const len = Number(res.headers.get('content-length') ?? NaN);
  if (len > MAX_BODY) {
    await res.body?.cancel().catch(() => {});
    throw new ColdstartError('BAD_RESPONSE', `${what}: answered with ${len} bytes; not an inference API?`);
  }
  if (!res.body) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  await pump(res.body, what, signal, (c) => chunks.push(c));
  return Buffer.concat(chunks);
}

/**
 * Reads a body chunk by chunk under the request's deadline, refusing more than MAX_BODY bytes (a few-token request
 * never needs that). However it ends — done, too large, deadline, abort — a body not read to its end is cancelled,
 * so its connection is closed instead of kept open for undici's 300 s body timeout (which held the process).
 */
async function pump(body: ReadableStream<Uint8Array>, what: string, signal: AbortSignal, onChunk: (c: Uint8Array) => void): Promise<void> {
  const reader = body.getReader();
  let total = 0;
  let finished = false;
  try {
    for (;;) {
      const { value, done } = await untilAborted(reader.read(), signal);
      if (done) {
        finished = true;
        return;
      }
      total += value.byteLength;
      if (total > MAX_BODY) {
        throw new ColdstartError('BAD_RESPONSE', `${what}: answered with more than ${MAX_BODY} bytes for a few-token request; not an inference API?`);
      }
      onChunk(value);
    }
  } finally {
    if (!finished) reader.cancel().catch(() => {});
  }
}

/**
 * One readiness probe of `url`: true when it answers 2xx within `timeoutMs` (and before the abort signal). The
 * connection is closed after each probe, so no idle socket of coldstart's sits in the server when it is
 * checkpointed (snapshot), and a server that answers slowly costs one probe, not a pile of them.
 */
export async function urlAnswersOk(url: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  const u = new URL(url);
  const c = new Client(new URL('/', u), { connection: 'close' }, nowSeconds() + timeoutMs / 1000, signal);
  try {
    const r = await c.call('GET', `${u.pathname}${u.search}`, undefined, timeoutMs);
    return r.status >= 200 && r.status < 300;
  } catch (e) {
    if (e instanceof RequestFailed || (e instanceof ColdstartError && e.code === 'BAD_RESPONSE')) return false;
    throw e;
  }
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A short quotation of what a server said, whitespace folded. */
export function snippet(text: string, n = 80): string {
  const t = text.replace(/\s+/g, ' ').trim();
  return JSON.stringify(t.length > n ? `${t.slice(0, n)}…` : t);
}

/** The error message in a server's error reply (OpenAI `error.message`, `error`, `message`, `detail`), else its body. */
export function errorText(r: Pick<Reply, 'text'>): string {
  const j = parseJson(r.text) as Record<string, unknown> | undefined;
  const e = j?.error;
  const m = typeof e === 'string' ? e : typeof (e as Record<string, unknown>)?.message === 'string' ? ((e as Record<string, unknown>).message as string) : typeof j?.message === 'string' ? (j.message as string) : typeof j?.detail === 'string' ? (j.detail as string) : r.text;
  return snippet(m, 160);
}
