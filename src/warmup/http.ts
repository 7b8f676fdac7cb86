/**
 * HTTP back-end: warms a running (or starting) inference server. Detects the API (OpenAI-compatible, TGI,
 * KServe v2 / Triton, Ollama), waits for readiness with capped exponential backoff under one deadline, then
 * sends dummy requests — streamed where the API streams, so time to first token is measured too.
 * Node's global fetch only; every request has a timeout and every wait ends at the deadline.
 */
import { sleep } from '../core/clock.js';
import { ColdstartError, invalidArg } from '../core/errors.js';
import { Stopwatch, nowSeconds } from '../core/clock.js';
import { summarize } from '../core/stats.js';
import type { BackendWarmup } from './backend.js';
import { resolveShape, fillFloats, intFill, type Shapes } from './dummy.js';

export const HTTP_APIS = ['openai', 'tgi', 'kserve', 'ollama'] as const;
export type HttpApi = (typeof HTTP_APIS)[number];

export interface HttpWarmupOptions {
  url: string;
  runs: number;
  /** One deadline for the whole warmup (readiness + requests), seconds. */
  timeoutSeconds: number;
  /** Keep waiting while the server refuses connections (a start-up gate); otherwise refused = fail now. */
  wait?: boolean;
  api?: HttpApi;
  /** Server-side model name (OpenAI `model`, Ollama model, KServe model); default: the first the server lists. */
  modelName?: string;
  headers?: Record<string, string>;
  maxTokens?: number;
  shapes?: Shapes;
  signal?: AbortSignal;
  progress?: (text: string) => void;
}

export type HttpWarmup = BackendWarmup;

const MAX_BODY = 16 << 20;
const PROMPT = 'Hello';

/** Normalises `--url`: http(s) only; a trailing /v1 or / is dropped so endpoints are joined from the root. */
export function parseServerUrl(text: string): URL {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw invalidArg('--url', 'an http:// or https:// URL like http://127.0.0.1:8000', text);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw invalidArg('--url', 'an http:// or https:// URL', text);
  u.pathname = u.pathname.replace(/\/+$/, '').replace(/\/v1$/, '') + '/';
  u.search = '';
  u.hash = '';
  return u;
}

// ------------------------------------------------------------------------------------------------ requests
interface Reply {
  status: number;
  contentType: string;
  text: string;
  seconds: number;
}

type Failure = { kind: 'refused' | 'timeout' | 'network'; detail: string };

class RequestFailed extends Error {
  constructor(readonly failure: Failure) {
    super(failure.detail);
  }
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

class Client {
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
   * The one deadline of one request — connect, headers and every body read: min(timeoutMs, the warmup's deadline),
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
   * fetch with redirects followed here, not by undici: the --header values (API keys, tokens) go only to the
   * server's own origin — undici drops Authorization on a cross-origin redirect but forwards every other header
   * (X-Api-Key…). A hop to another origin is still followed, without them; 303 (and 301/302 of a POST) becomes a GET.
   */
  private async fetchHere(path: string, method: string, body: unknown, signal: AbortSignal): Promise<Response> {
    let url = new URL(this.url(path));
    let m = method;
    let payload = body === undefined ? undefined : JSON.stringify(body);
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
    this.signal?.throwIfAborted();
    const what = `${method} ${path}`;
    const sw = new Stopwatch();
    const g = this.guard(timeoutMs);
    try {
      const res = await this.fetchHere(path, method, body, g.signal);
      const text = await readBounded(res, what, g.signal);
      return { status: res.status, contentType: res.headers.get('content-type') ?? '', text, seconds: sw.elapsed() };
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
    this.signal?.throwIfAborted();
    const what = `POST ${path}`;
    const sw = new Stopwatch();
    let ttft: number | null = null;
    const g = this.guard(timeoutMs);
    try {
      const res = await this.fetchHere(path, 'POST', body, g.signal);
      const contentType = res.headers.get('content-type') ?? '';
      const streamed = res.ok && /text\/event-stream|application\/x-ndjson|application\/jsonl/.test(contentType);
      if (!streamed || !res.body) {
        const text = await readBounded(res, what, g.signal);
        return { status: res.status, contentType, text, seconds: sw.elapsed(), ttft: null, streamed: false };
      }
      const decoder = new TextDecoder();
      let buf = '';
      let all = '';
      await pump(res.body, what, g.signal, (value) => {
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
      return { status: res.status, contentType, text: all, seconds: sw.elapsed(), ttft, streamed: true };
    } catch (e) {
      if (e instanceof ColdstartError) throw e;
      this.signal?.throwIfAborted();
      throw new RequestFailed(describeFetchError(e, what, g.timedOut()));
    } finally {
      g.done();
    }
  }
}

interface RequestGuard {
  signal: AbortSignal;
  timedOut(): boolean;
  done(): void;
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

async function readBounded(res: Response, what: string, signal: AbortSignal): Promise<string> {
  const len = Number(res.headers.get('content-length') ?? NaN);
  if (len > MAX_BODY) {
    await res.body?.cancel().catch(() => {});
    throw new ColdstartError('BAD_RESPONSE', `${what}: answered with ${len} bytes; not an inference API?`);
  }
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  await pump(res.body, what, signal, (c) => chunks.push(c));
  return Buffer.concat(chunks).toString('utf8');
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

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function snippet(text: string, n = 80): string {
  const t = text.replace(/\s+/g, ' ').trim();
  return JSON.stringify(t.length > n ? `${t.slice(0, n)}…` : t);
}

function errorText(r: Reply): string {
  const j = parseJson(r.text) as Record<string, unknown> | undefined;
  const e = j?.error;
  const m = typeof e === 'string' ? e : typeof (e as Record<string, unknown>)?.message === 'string' ? ((e as Record<string, unknown>).message as string) : typeof j?.message === 'string' ? (j.message as string) : typeof j?.detail === 'string' ? (j.detail as string) : r.text;
  return snippet(m, 160);
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

// ------------------------------------------------------------------------------------------------ detection
type ProbeState =
  | { state: 'ready'; api: HttpApi; info: Record<string, unknown> }
  | { state: 'loading' | 'absent' | 'garbage' | 'error' | 'auth'; api: HttpApi; detail: string }
  | { state: Failure['kind']; api: HttpApi; detail: string };

const LOADING = new Set([502, 503, 504, 425, 429]);

function classify(api: HttpApi, path: string, r: Reply, ok: (j: unknown, r: Reply) => Record<string, unknown> | 'loading' | null): ProbeState {
  const where = `GET ${path}`;
  if (r.status === 401 || r.status === 403) return { state: 'auth', api, detail: `${where} answered ${r.status} ${errorText(r)}` };
  if (LOADING.has(r.status)) return { state: 'loading', api, detail: `${where} answered ${r.status} ${errorText(r)}` };
  if (r.status === 404 || r.status === 405 || r.status === 400 || r.status === 501) return { state: 'absent', api, detail: `${where} answered ${r.status}` };
  if (r.status >= 200 && r.status < 300) {
    const j = parseJson(r.text);
    const v = ok(j, r);
    if (v === 'loading') return { state: 'loading', api, detail: `${where} says the model is not ready yet` };
    if (v) return { state: 'ready', api, info: v };
    return { state: 'garbage', api, detail: `${where} answered ${r.status} with ${j === undefined ? 'non-JSON' : 'unexpected JSON'} ${snippet(r.text)}` };
  }
  if (r.status >= 500) return { state: 'error', api, detail: `${where} answered ${r.status} ${errorText(r)}` };
  return { state: 'absent', api, detail: `${where} answered ${r.status} ${errorText(r)}` };
}

async function probeApi(c: Client, api: HttpApi, modelName?: string): Promise<ProbeState> {
  const get = async (path: string) => c.call('GET', path, undefined, 5000);
  try {
    switch (api) {
      case 'openai': {
        const r = await get('/v1/models');
        return classify(api, '/v1/models', r, (j) => (isObj(j) && Array.isArray(j.data) ? { models: j.data.map((m) => (isObj(m) ? String(m.id ?? '') : '')).filter(Boolean) } : null));
      }
      case 'tgi': {
        const r = await get('/info');
        const s = classify(api, '/info', r, (j) => (isObj(j) && typeof j.model_id === 'string' ? { modelId: j.model_id, version: j.version ?? null } : null));
        if (s.state !== 'ready') return s;
        const h = await get('/health');
        return h.status >= 200 && h.status < 300 ? s : { state: 'loading', api, detail: `GET /health answered ${h.status}` };
      }
      case 'kserve': {
        const r = await get('/v2/health/ready');
        const s = classify(api, '/v2/health/ready', r, (j, rr) => (rr.text.trim() === '' || (isObj(j) && j.ready !== false) ? {} : isObj(j) && j.ready === false ? 'loading' : null));
        if (s.state !== 'ready') return s;
        let name = modelName;
        let listed: string[] = [];
        if (!name) {
          // Triton lists its repository; KServe v2 has no standard listing, so the name must then be given.
          const idx = await c.call('POST', '/v2/repository/index', {}, 5000).catch(() => null);
          const arr = idx && idx.status === 200 ? parseJson(idx.text) : undefined;
          if (Array.isArray(arr)) listed = arr.filter((m) => isObj(m) && (m.state === undefined || m.state === 'READY')).map((m) => String((m as Record<string, unknown>).name));
          const models = await get('/v2/models').catch(() => null);
          const mj = models && models.status === 200 ? parseJson(models.text) : undefined;
          if (isObj(mj) && Array.isArray(mj.models)) listed.push(...mj.models.map((m) => (isObj(m) ? String(m.name) : String(m))));
          name = listed[0];
          if (!name) throw new ColdstartError('USAGE', `${c.base.origin}: KServe v2 server is ready but does not list its models; name the model: coldstart warmup --url ${c.base} MODEL_NAME`);
        }
        const mr = await get(`/v2/models/${encodeURIComponent(name)}/ready`);
        if (mr.status === 404) throw new ColdstartError('NOT_FOUND', `${c.base.origin}: KServe v2 server has no model "${name}"${listed.length ? ` (it lists ${listed.join(', ')})` : ''}`);
        if (mr.status < 200 || mr.status >= 300) return { state: 'loading', api, detail: `GET /v2/models/${name}/ready answered ${mr.status}` };
        const meta = await get(`/v2/models/${encodeURIComponent(name)}`);
        const mj = parseJson(meta.text);
        if (meta.status !== 200 || !isObj(mj) || !Array.isArray(mj.inputs)) return { state: 'garbage', api, detail: `GET /v2/models/${name} answered ${meta.status} without input metadata ${snippet(meta.text)}` };
        return { state: 'ready', api, info: { model: name, inputs: mj.inputs, platform: mj.platform ?? null } };
      }
      case 'ollama': {
        const r = await get('/api/tags');
        return classify(api, '/api/tags', r, (j) => (isObj(j) && Array.isArray(j.models) ? { models: j.models.map((m) => (isObj(m) ? String(m.name ?? m.model ?? '') : '')).filter(Boolean) } : null));
      }
    }
  } catch (e) {
    if (e instanceof RequestFailed) return { state: e.failure.kind, api, detail: e.failure.detail };
    throw e;
  }
}

/** Waits for readiness and detects the API. Capped exponential backoff (100 ms → 2 s), ends at the deadline. */
async function waitReady(c: Client, o: HttpWarmupOptions): Promise<{ api: HttpApi; info: Record<string, unknown>; attempts: number; states: string[] }> {
  const apis: readonly HttpApi[] = o.api ? [o.api] : HTTP_APIS;
  let delay = 0.1;
  let attempts = 0;
  let unrecognisedRounds = 0;
  type NotReady = Exclude<ProbeState, { state: 'ready' }>;
  let last: NotReady[] = [];
  let informative: NotReady[] = [];
  const seen = new Set<string>();
  for (;;) {
    attempts++;
    last = [];
    for (const api of apis) {
      const s = await probeApi(c, api, o.modelName);
      if (s.state === 'ready') return { api, info: s.info, attempts, states: [...seen] };
      last.push(s);
      // A refused connection means nobody listens: the other APIs would say the same.
      if (s.state === 'refused' || s.state === 'network' || s.state === 'timeout') break;
    }
    for (const s of last) seen.add(s.state);
    const auth = last.find((s) => s.state === 'auth');
    if (auth) {
      throw new ColdstartError('PERMISSION', `${c.base.origin}: the server wants credentials: ${auth.detail}`, { hint: "Pass them with --header 'Authorization: Bearer TOKEN'." });
    }
    const first = last[0]!;
    if ((first.state === 'refused' || first.state === 'network') && !o.wait) {
      throw new ColdstartError('NETWORK', `${c.base.origin}: unreachable (${first.detail})`, {
        hint: 'Is the server running on that host and port? Add --wait to wait for it to come up (a start-up gate).',
      });
    }
    if (last.some((s) => s.state === 'loading')) unrecognisedRounds = 0;
    else if (last.every((s) => s.state === 'absent' || s.state === 'garbage' || s.state === 'error')) unrecognisedRounds++;
    if (unrecognisedRounds >= 3) {
      const garbage = last.find((s) => s.state === 'garbage' || s.state === 'error');
      const tried = last.map((s) => s.detail).join('; ');
      if (garbage) throw new ColdstartError('BAD_RESPONSE', `${c.base.origin}: not a recognised inference API (${tried})`, { hint: 'Check --url, or force the API with --api openai|tgi|kserve|ollama.' });
      throw new ColdstartError('UNSUPPORTED', `${c.base.origin}: no known inference API answered (${tried})`, {
        hint: 'coldstart speaks OpenAI-compatible (/v1/models), TGI (/info, /generate), KServe v2/Triton (/v2/health/ready) and Ollama (/api/tags).',
      });
    }
    const remaining = c.remainingMs() / 1000;
    // A round cut short by the deadline says only "timeout": name what the last full round saw instead.
    if (remaining > 0 || !last.some((s) => s.state === 'timeout')) informative = last;
    if (remaining <= 0) {
      const why = (informative.length > 0 ? informative : last).map((s) => s.detail).join('; ');
      throw new ColdstartError('TIMEOUT', `${c.base.origin}: not ready after ${secs(o.timeoutSeconds)} (last: ${why})`, { hint: 'Raise --timeout if the model needs longer to load.' });
    }
    o.progress?.(`waiting for ${c.base.origin}: ${first.detail} (retry in ${Math.min(delay, remaining).toFixed(1)} s)`);
    await sleep(Math.min(delay, remaining) * 1000, o.signal);
    delay = Math.min(delay * 1.6, 2);
  }
}


// ------------------------------------------------------------------------------------------------ dummy requests
interface Plan {
  /** What the first attempt posts; `fallback` is tried when the endpoint is absent (404/405). */
  path: string;
  body: unknown;
  stream: boolean;
  /** For streamed lines: true when the line carries a token; throws BAD_RESPONSE on an error event. */
  tokenLine: (line: string) => boolean;
  /** Validates a full (non-streamed) body; returns the generated text or a description. */
  check: (j: unknown) => string | null;
  fallback?: Plan;
}

function sseToken(extract: (j: Record<string, unknown>) => string | null, what: string): (line: string) => boolean {
  return (line) => {
    if (!line.startsWith('data:')) return false;
    const payload = line.slice(5).trim();
    if (payload === '[DONE]' || payload === '') return false;
    const j = parseJson(payload);
    if (!isObj(j)) throw new ColdstartError('BAD_RESPONSE', `${what}: streamed a non-JSON event ${snippet(payload)}`);
    if (j.error) throw new ColdstartError('BAD_RESPONSE', `${what}: the server streamed an error: ${snippet(typeof j.error === 'string' ? j.error : JSON.stringify(j.error), 160)}`);
    const t = extract(j);
    return typeof t === 'string' && t.length > 0;
  };
}

const choice0 = (j: unknown): Record<string, unknown> | null => (isObj(j) && Array.isArray(j.choices) && isObj(j.choices[0]) ? j.choices[0] : null);

function kserveInputs(inputs: unknown[], shapes: Shapes): Array<Record<string, unknown>> {
  return inputs.map((raw) => {
    if (!isObj(raw) || typeof raw.name !== 'string') throw new ColdstartError('BAD_RESPONSE', 'KServe model metadata has an input without a name');
    const dims = (Array.isArray(raw.shape) ? raw.shape : []).map((d) => (typeof d === 'number' && d >= 0 ? d : null));
    const { shape } = resolveShape(raw.name, dims, shapes);
    const n = shape.reduce((a, b) => a * b, 1);
    const dt = String(raw.datatype ?? 'FP32').toUpperCase();
    let data: unknown[];
    if (dt === 'BYTES') data = Array.from({ length: n }, () => PROMPT);
    else if (dt === 'BOOL') data = Array.from({ length: n }, () => true);
    else if (/^FP|^BF/.test(dt)) {
      const a = new Float64Array(n);
      fillFloats(a);
      data = Array.from(a, (x) => Math.round(x * 1e4) / 1e4);
    } else data = Array.from({ length: n }, () => intFill(raw.name as string));
    return { name: raw.name, shape, datatype: dt, data };
  });
}

function plan(api: HttpApi, info: Record<string, unknown>, o: HttpWarmupOptions): { plan: Plan; model: string | null } {
  const maxTokens = o.maxTokens ?? 8;
  switch (api) {
    case 'openai': {
      const models = (info.models as string[]) ?? [];
      const model = o.modelName ?? models[0];
      if (!model) throw new ColdstartError('NOT_FOUND', `${o.url}: /v1/models lists no model; name one: coldstart warmup --url ${o.url} MODEL`);
      if (o.modelName && models.length > 0 && !models.includes(o.modelName)) {
        throw new ColdstartError('NOT_FOUND', `${o.url}: the server does not serve "${o.modelName}" (it lists ${models.join(', ')})`);
      }
      const chat: Plan = {
        path: '/v1/chat/completions',
        body: { model, messages: [{ role: 'user', content: PROMPT }], max_tokens: maxTokens, temperature: 0, stream: true },
        stream: true,
        tokenLine: sseToken((j) => {
          const c = choice0(j);
          const d = isObj(c?.delta) ? c!.delta : null;
          return typeof d?.content === 'string' ? d.content : null;
        }, 'POST /v1/chat/completions'),
        check: (j) => {
          const m = choice0(j)?.message;
          return isObj(m) && (typeof m.content === 'string' || m.content === null) ? String(m.content ?? '') : null;
        },
      };
      return {
        model,
        plan: {
          path: '/v1/completions',
          body: { model, prompt: PROMPT, max_tokens: maxTokens, temperature: 0, stream: true },
          stream: true,
          tokenLine: sseToken((j) => {
            const t = choice0(j)?.text;
            return typeof t === 'string' ? t : null;
          }, 'POST /v1/completions'),
          check: (j) => {
            const t = choice0(j)?.text;
            return typeof t === 'string' ? t : null;
          },
          fallback: chat,
        },
      };
    }
    case 'tgi': {
      const plain: Plan = {
        path: '/generate',
        body: { inputs: PROMPT, parameters: { max_new_tokens: maxTokens } },
        stream: false,
        tokenLine: () => false,
        check: (j) => {
          const g = Array.isArray(j) ? j[0] : j;
          return isObj(g) && typeof g.generated_text === 'string' ? g.generated_text : null;
        },
      };
      return {
        model: (info.modelId as string) ?? null,
        plan: {
          path: '/generate_stream',
          body: { inputs: PROMPT, parameters: { max_new_tokens: maxTokens } },
          stream: true,
          tokenLine: sseToken((j) => (isObj(j.token) && typeof j.token.text === 'string' && j.token.special !== true ? j.token.text : null), 'POST /generate_stream'),
          check: plain.check,
          fallback: plain,
        },
      };
    }
    case 'ollama': {
      const models = (info.models as string[]) ?? [];
      const model = o.modelName ?? models[0];
      if (!model) throw new ColdstartError('NOT_FOUND', `${o.url}: Ollama has no model pulled (GET /api/tags is empty)`, { hint: 'Pull one first (ollama pull MODEL) or name it: coldstart warmup --url URL MODEL' });
      return {
        model,
        plan: {
          path: '/api/generate',
          body: { model, prompt: PROMPT, stream: true, options: { num_predict: maxTokens, temperature: 0 } },
          stream: true,
          tokenLine: (line) => {
            const j = parseJson(line);
            if (!isObj(j)) throw new ColdstartError('BAD_RESPONSE', `POST /api/generate: streamed a line that is not JSON ${snippet(line)}`);
            if (j.error) throw new ColdstartError('BAD_RESPONSE', `POST /api/generate: the server streamed an error: ${snippet(String(j.error), 160)}`);
            return typeof j.response === 'string' && j.response.length > 0;
          },
          check: (j) => (isObj(j) && typeof j.response === 'string' ? j.response : null),
        },
      };
    }
    case 'kserve': {
      const model = info.model as string;
      return {
        model,
        plan: {
          path: `/v2/models/${encodeURIComponent(model)}/infer`,
          body: { inputs: kserveInputs(info.inputs as unknown[], o.shapes ?? {}) },
          stream: false,
          tokenLine: () => false,
          check: (j) => (isObj(j) && Array.isArray(j.outputs) ? `${j.outputs.length} output(s)` : null),
        },
      };
    }
  }
}

interface Sample {
  seconds: number;
  ttft: number | null;
  streamed: boolean;
  path: string;
  retries: number;
}

/** One dummy request: retried while the server says 503 (still loading), until the deadline. */
async function send(c: Client, p: Plan, o: HttpWarmupOptions): Promise<{ sample: Sample; plan: Plan }> {
  let current = p;
  let retries = 0;
  let delay = 0.2;
  for (;;) {
    const timeoutMs = c.remainingMs();
    let r: Reply & { ttft: number | null; streamed: boolean };
    try {
      r = current.stream ? await c.stream(current.path, current.body, current.tokenLine, timeoutMs) : { ...(await c.call('POST', current.path, current.body, timeoutMs)), ttft: null, streamed: false };
    } catch (e) {
      if (e instanceof RequestFailed) {
        if (e.failure.kind === 'timeout') throw new ColdstartError('TIMEOUT', `${c.base.origin}: ${e.failure.detail} (deadline ${secs(o.timeoutSeconds)})`, { hint: 'Raise --timeout if the first request needs longer.' });
        throw new ColdstartError('NETWORK', `${c.base.origin}: ${e.failure.detail} during a warmup request`, { hint: 'The server went away while warming up: check its logs.' });
      }
      throw e;
    }
    const what = `POST ${current.path}`;
    if ((r.status === 404 || r.status === 405) && current.fallback) {
      current = current.fallback;
      continue;
    }
    if (LOADING.has(r.status)) {
      retries++;
      if (c.remainingMs() <= 0) throw new ColdstartError('TIMEOUT', `${c.base.origin}: ${what} still answered ${r.status} after ${secs(o.timeoutSeconds)}`);
      await sleep(Math.min(delay * 1000, c.remainingMs()), o.signal);
      delay = Math.min(delay * 1.6, 2);
      continue;
    }
    if (r.status >= 400 && r.status < 500) {
      throw new ColdstartError('BAD_INPUT', `${c.base.origin}: ${what} was refused with ${r.status}: ${errorText(r)}`, { hint: 'Check the model name (positional argument) and --api.' });
    }
    if (r.status >= 500) throw new ColdstartError('BAD_RESPONSE', `${c.base.origin}: ${what} failed on the server with ${r.status}: ${errorText(r)}`);
    if (r.streamed) {
      if (r.ttft === null) {
        // Streamed but no token line: either no text at all, or not the protocol we expect.
        const any = r.text.split('\n').some((l) => l.trim() !== '');
        if (!any) throw new ColdstartError('BAD_RESPONSE', `${c.base.origin}: ${what} streamed an empty body`);
      }
    } else {
      const j = parseJson(r.text);
      if (j === undefined || current.check(j) === null) {
        throw new ColdstartError('BAD_RESPONSE', `${c.base.origin}: ${what} answered ${r.status} with ${j === undefined ? 'non-JSON' : 'unexpected JSON'} ${snippet(r.text)}`);
      }
    }
    return { sample: { seconds: r.seconds, ttft: r.ttft, streamed: r.streamed, path: current.path, retries }, plan: current };
  }
}

export async function warmupHttp(o: HttpWarmupOptions): Promise<HttpWarmup> {
  const base = parseServerUrl(o.url);
  const start = nowSeconds();
  const c = new Client(base, o.headers ?? {}, start + o.timeoutSeconds, o.signal);
  o.progress?.(`probing ${base.origin}${o.api ? ` (${o.api})` : ''}`);
  const ready = await waitReady(c, o);
  const readySeconds = nowSeconds() - start;
  const { plan: p0, model } = plan(ready.api, ready.info, o);
  o.progress?.(`${ready.api} API ready after ${readySeconds.toFixed(2)} s; first request`);
  const first = await send(c, p0, o);
  const p = first.plan;
  const samples: Sample[] = [];
  for (let i = 0; i < o.runs; i++) samples.push((await send(c, p, o)).sample);
  const steps: HttpWarmup['steps'] = [
    { name: 'time-to-ready', seconds: readySeconds, note: `${ready.api} API, ${ready.attempts} probe round(s)` },
    { name: 'first-request', seconds: first.sample.seconds, note: `POST ${first.sample.path}${first.sample.retries ? `, after ${first.sample.retries} retr${first.sample.retries === 1 ? 'y' : 'ies'} (503)` : ''}` },
  ];
  if (first.sample.ttft !== null) steps.push({ name: 'ttft', seconds: first.sample.ttft, note: 'time to first token of the first request (inside first-request)' });
  const lat = samples.map((s) => s.seconds);
  const ttfts = samples.map((s) => s.ttft).filter((t): t is number => t !== null);
  return {
    steps,
    firstSeconds: first.sample.seconds,
    startupSeconds: readySeconds + first.sample.seconds,
    ...(lat.length > 0 ? { steady: summarize(lat) } : {}),
    details: {
      url: base.toString(),
      api: ready.api,
      model,
      endpoint: p.path,
      streaming: first.sample.streamed,
      firstTtftSeconds: first.sample.ttft,
      steadyTtft: ttfts.length > 0 ? summarize(ttfts) : null,
      maxTokens: o.maxTokens ?? 8,
      probeRounds: ready.attempts,
      statesSeen: ready.states,
      serverInfo: ready.api === 'kserve' ? { model: ready.info.model, platform: ready.info.platform } : ready.info,
      notes: first.sample.streamed || p0.stream === false ? [] : ['streaming not available on this endpoint: no time to first token'],
    },
  };
}

function secs(s: number): string {
  return `${Number(s.toFixed(3))} s`;
}
