/**
 * HTTP back-end: warms a running (or starting) inference server. The server lifecycle's HTTP side does the talking
 * (src/server/api.ts: API detection while waiting for readiness under one deadline, the request each API takes,
 * streamed where it streams); this adds what only warmup needs — the KServe input tensors from --shape, the steady
 * runs after the first request, and the steps and details of the result.
 */
import { nowSeconds } from '../core/clock.js';
import { ColdstartError } from '../core/errors.js';
import { summarize } from '../core/stats.js';
import { Client, parseServerUrl } from '../server/http.js';
import { PROMPT, detectApi, requestPlan, sendPlan, type ApiOptions, type HttpApi, type Sample } from '../server/api.js';
import type { BackendWarmup } from './backend.js';
import { resolveShape, fillFloats, intFill, type Shapes } from './dummy.js';

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

/** KServe v2 / Triton input tensors from the model metadata: shapes resolved with --shape, dummy data filled. */
function kserveInputs(inputs: unknown[], shapes: Shapes): Array<Record<string, unknown>> {
  return inputs.map((raw) => {
    if (typeof raw !== 'object' || raw === null || typeof (raw as { name?: unknown }).name !== 'string') throw new ColdstartError('BAD_RESPONSE', 'KServe model metadata has an input without a name');
    const input = raw as { name: string; shape?: unknown; datatype?: unknown };
    const dims = (Array.isArray(input.shape) ? input.shape : []).map((d) => (typeof d === 'number' && d >= 0 ? d : null));
    const { shape } = resolveShape(input.name, dims, shapes);
    const n = shape.reduce((a, b) => a * b, 1);
    const dt = String(input.datatype ?? 'FP32').toUpperCase();
    let data: unknown[];
    if (dt === 'BYTES') data = Array.from({ length: n }, () => PROMPT);
    else if (dt === 'BOOL') data = Array.from({ length: n }, () => true);
    else if (/^FP|^BF/.test(dt)) {
      const a = new Float64Array(n);
      fillFloats(a);
      data = Array.from(a, (x) => Math.round(x * 1e4) / 1e4);
    } else data = Array.from({ length: n }, () => intFill(input.name));
    return { name: input.name, shape, datatype: dt, data };
  });
}

export async function warmupHttp(o: HttpWarmupOptions): Promise<HttpWarmup> {
  const base = parseServerUrl(o.url);
  const start = nowSeconds();
  const c = new Client(base, o.headers ?? {}, start + o.timeoutSeconds, o.signal);
  const api: ApiOptions = { url: o.url, timeoutSeconds: o.timeoutSeconds, wait: o.wait, api: o.api, modelName: o.modelName, maxTokens: o.maxTokens, kserveInputs: (inputs) => kserveInputs(inputs, o.shapes ?? {}), signal: o.signal, progress: o.progress };
  o.progress?.(`probing ${base.origin}${o.api ? ` (${o.api})` : ''}`);
  const ready = await detectApi(c, api);
  const readySeconds = nowSeconds() - start;
  const { plan: p0, model } = requestPlan(ready.api, ready.info, api);
  o.progress?.(`${ready.api} API ready after ${readySeconds.toFixed(2)} s; first request`);
  const first = await sendPlan(c, p0, api);
  const p = first.plan;
  const samples: Sample[] = [];
  for (let i = 0; i < o.runs; i++) samples.push((await sendPlan(c, p, api)).sample);
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

