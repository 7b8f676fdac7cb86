/**
 * Which inference API a server speaks, and its first request. Detects OpenAI-compatible (/v1/models), TGI (/info +
 * /health), KServe v2 / Triton (/v2/health/ready) and Ollama (/api/tags) while waiting for readiness (capped
 * exponential backoff under one deadline), then plans the request each API takes — streamed where the API streams,
 * so time to first token is measured too — and sends it, retried while the server says it is still loading.
 * Used by `warmup --url` (detection, first request, steady runs) and wrap mode (the first completion).
 */
import { ColdstartError } from '../core/errors.js';
import { nowSeconds, sleep } from '../core/clock.js';
import { Client, RawJson, RequestFailed, errorText, parseJson, snippet, type Failure, type Reply } from './http.js';
import { pollUntil } from './poll.js';

export const HTTP_APIS = ['openai', 'tgi', 'kserve', 'ollama'] as const;
export type HttpApi = (typeof HTTP_APIS)[number];

export const PROMPT = 'Hello';

export interface ApiOptions {
  /** The server URL as the user gave it (named in messages). */
  url: string;
  /** The deadline's length, seconds (named in messages; the deadline itself is the client's). */
  timeoutSeconds: number;
  /** Keep waiting while the server refuses connections (a start-up gate); otherwise refused = fail now. */
  wait?: boolean;
  api?: HttpApi;
  /** Server-side model name (OpenAI `model`, Ollama model, KServe model); default: the first the server lists. */
  modelName?: string;
  /** Tokens to generate per request (default 8). */
  maxTokens?: number;
  /** KServe v2 / Triton: the request's input tensors from the model metadata's `inputs` (warmup fills them from --shape). */
  kserveInputs?: (inputs: unknown[]) => Array<Record<string, unknown>>;
  signal?: AbortSignal;
  progress?: (text: string) => void;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function secs(s: number): string {
  return `${Number(s.toFixed(3))} s`;
}

// ------------------------------------------------------------------------------------------------ detection
type ProbeState =
  | { state: 'ready'; api: HttpApi; info: Record<string, unknown> }
  | { state: 'loading' | 'absent' | 'garbage' | 'error' | 'auth'; api: HttpApi; detail: string }
  | { state: Failure['kind']; api: HttpApi; detail: string };

/** Statuses that mean "up, but still loading": retried until the deadline. */
export const LOADING = new Set([502, 503, 504, 425, 429]);

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

export interface DetectedApi {
  api: HttpApi;
  info: Record<string, unknown>;
  /** Probe rounds until ready, and every not-ready state seen on the way. */
  attempts: number;
  states: string[];
}

/**
 * Waits for readiness and detects the API: every API probed per round (or only `o.api`), rounds paused with capped
 * exponential backoff (100 ms → 2 s), ending at the client's deadline with TIMEOUT naming what the last full round saw.
 */
export async function detectApi(c: Client, o: ApiOptions): Promise<DetectedApi> {
  const apis: readonly HttpApi[] = o.api ? [o.api] : HTTP_APIS;
  let attempts = 0;
  let unrecognisedRounds = 0;
  type NotReady = Exclude<ProbeState, { state: 'ready' }>;
  let last: NotReady[] = [];
  let informative: NotReady[] = [];
  const seen = new Set<string>();
  return pollUntil<DetectedApi>(
    async () => {
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
      // A round cut short by the deadline says only "timeout": name what the last full round saw instead.
      if (c.remainingMs() > 0 || !last.some((s) => s.state === 'timeout')) informative = last;
      return undefined;
    },
    {
      deadline: c.deadline,
      signal: o.signal,
      delayMs: { first: 100, max: 2000 },
      onTimeout: () => {
        const why = (informative.length > 0 ? informative : last).map((s) => s.detail).join('; ');
        return new ColdstartError('TIMEOUT', `${c.base.origin}: not ready after ${secs(o.timeoutSeconds)} (last: ${why})`, { hint: 'Raise --timeout if the model needs longer to load.' });
      },
      onWait: (pause) => o.progress?.(`waiting for ${c.base.origin}: ${last[0]?.detail ?? 'not ready'} (retry in ${pause.toFixed(1)} s)`),
    },
  );
}

// ------------------------------------------------------------------------------------------------ requests
export interface Plan {
  /** What the first attempt posts; `fallback` is tried when the endpoint is absent (404/405). */
  path: string;
  body: unknown;
  stream: boolean;
  /** For streamed lines: true when the line carries a token; throws BAD_RESPONSE on an error event. */
  tokenLine: (line: string) => boolean;
  /** Validates a full (non-streamed) JSON body; returns the generated text or a description. Absent: any answer counts. */
  check?: (j: unknown) => string | null;
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

const tgiGenerated = (j: unknown): string | null => {
  const g = Array.isArray(j) ? j[0] : j;
  return isObj(g) && typeof g.generated_text === 'string' ? g.generated_text : null;
};

/** The request a detected API takes (the model named or the first one it lists). */
export function requestPlan(api: HttpApi, info: Record<string, unknown>, o: ApiOptions): { plan: Plan; model: string | null } {
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
      const plain: Plan = { path: '/generate', body: { inputs: PROMPT, parameters: { max_new_tokens: maxTokens } }, stream: false, tokenLine: () => false, check: tgiGenerated };
      return {
        model: (info.modelId as string) ?? null,
        plan: {
          path: '/generate_stream',
          body: { inputs: PROMPT, parameters: { max_new_tokens: maxTokens } },
          stream: true,
          tokenLine: sseToken((j) => (isObj(j.token) && typeof j.token.text === 'string' && j.token.special !== true ? j.token.text : null), 'POST /generate_stream'),
          check: tgiGenerated,
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
      if (!o.kserveInputs) throw new ColdstartError('UNSUPPORTED', `${o.url}: a KServe v2 / Triton server needs input tensors built from its model metadata`, { hint: 'Warm it with `coldstart warmup --url URL MODEL` (with --shape for dynamic dimensions).' });
      return {
        model,
        plan: {
          path: `/v2/models/${encodeURIComponent(model)}/infer`,
          body: { inputs: o.kserveInputs(info.inputs as unknown[]) },
          stream: false,
          tokenLine: () => false,
          check: (j) => (isObj(j) && Array.isArray(j.outputs) ? `${j.outputs.length} output(s)` : null),
        },
      };
    }
  }
}

/**
 * The request for an endpoint named on the command line (wrap mode's --completion-url): a TGI body for /generate,
 * else an OpenAI-style completion body; any 2xx answer counts (the server is the user's, its reply shape unknown).
 */
export function endpointPlan(path: string, maxTokens: number): Plan {
  const tgi = /\/generate$/.test(path);
  return { path, body: tgi ? { inputs: PROMPT, parameters: { max_new_tokens: maxTokens } } : { prompt: PROMPT, max_tokens: maxTokens }, stream: false, tokenLine: () => false };
}

export interface Sample {
  seconds: number;
  ttft: number | null;
  streamed: boolean;
  path: string;
  status: number;
  /** 503 answers waited through before this one. */
  retries: number;
}

/** One request of a plan: retried while the server says 503 (still loading), until the client's deadline. */
export async function sendPlan(c: Client, p: Plan, o: Pick<ApiOptions, 'timeoutSeconds' | 'signal'>): Promise<{ sample: Sample; plan: Plan; answer: string }> {
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
    } else if (current.check) {
      const j = parseJson(r.text);
      if (j === undefined || current.check(j) === null) {
        throw new ColdstartError('BAD_RESPONSE', `${c.base.origin}: ${what} answered ${r.status} with ${j === undefined ? 'non-JSON' : 'unexpected JSON'} ${snippet(r.text)}`);
      }
    }
    return { sample: { seconds: r.seconds, ttft: r.ttft, streamed: r.streamed, path: current.path, status: r.status, retries }, plan: current, answer: r.text };
  }
}

/**
 * Wrap mode's first completion once the server is ready: one token, POSTed to `endpoint` when given, else to the
 * completion endpoint of the API detected at `base`. Seconds are the request's own (detection not included); `answer`
 * is the body as received (streamed: its first 4 KiB of lines), for a caller that compares two starts' answers.
 */
export async function firstCompletion(o: { base: string; endpoint?: string; timeoutSeconds: number; signal?: AbortSignal }): Promise<{ seconds: number; url: string; status: number; api: HttpApi | null; answer: string; request: RecordedRequest }> {
  const target = new URL(o.endpoint ?? o.base);
  const c = new Client(new URL('/', target), {}, nowSeconds() + o.timeoutSeconds, o.signal);
  const opts: ApiOptions = { url: o.base, timeoutSeconds: o.timeoutSeconds, maxTokens: 1, signal: o.signal };
  let plan: Plan;
  let api: HttpApi | null = null;
  if (o.endpoint) plan = endpointPlan(`${target.pathname}${target.search}`, 1);
  else {
    const d = await detectApi(c, opts);
    api = d.api;
    plan = requestPlan(d.api, d.info, opts).plan;
  }
  const sent = await sendPlan(c, plan, opts);
  const { sample, answer } = sent;
  // The request as sent (the fallback's, when the first endpoint was absent), to repeat it exactly (snapshot --warmup).
  const request: RecordedRequest = { url: c.url(sample.path), method: 'POST', body: sent.plan.body === undefined ? null : JSON.stringify(sent.plan.body) };
  return { seconds: sample.seconds, url: request.url, status: sample.status, api, answer, request };
}

/** A request given in full on the command line (snapshot's --warmup), repeated as recorded (restore). */
export interface RecordedRequest {
  url: string;
  method: 'GET' | 'POST';
  /** JSON text, sent exactly as given; null: no body. */
  body: string | null;
}

/**
 * Sends a recorded request once, under `timeoutSeconds` and the abort signal, its connection closed afterwards (no
 * idle socket of coldstart's is left in a server about to be checkpointed). Any HTTP status comes back; no answer
 * at all is TIMEOUT or NETWORK (exit 3). The body is kept as bytes (its hash is compared after a restore).
 */
export async function sendRecorded(req: RecordedRequest, timeoutSeconds: number, signal?: AbortSignal): Promise<{ seconds: number; status: number; body: Buffer }> {
  const u = new URL(req.url);
  const c = new Client(new URL('/', u), { connection: 'close' }, nowSeconds() + timeoutSeconds, signal);
  try {
    const r = await c.call(req.method, `${u.pathname}${u.search}`, req.body === null ? undefined : new RawJson(req.body), timeoutSeconds * 1000);
    return { seconds: r.seconds, status: r.status, body: r.bytes };
  } catch (e) {
    if (e instanceof RequestFailed) {
      if (e.failure.kind === 'timeout') throw new ColdstartError('TIMEOUT', `${u.origin}: ${e.failure.detail} (deadline ${secs(timeoutSeconds)})`, { hint: 'Raise --timeout if the first request needs longer.' });
      throw new ColdstartError('NETWORK', `${u.origin}: ${e.failure.detail}`, { hint: 'The server went away: check its log.' });
    }
    throw e;
  }
}
