/**
 * The warmup engine's public face: one call for the back-ends (ONNX in process, HTTP servers, Python frameworks,
 * torch.compile with its persisted caches) and one way to put the result into a phase. `coldstart warmup` and
 * `coldstart profile` use these.
 */
import { ColdstartError } from '../core/errors.js';
import { intOption } from '../core/flags.js';
import type { PhaseHandle } from '../core/phases.js';
import { formatDuration } from '../core/format.js';
import type { WarmupResult } from './backend.js';
import { warmupOnnx, type Provider } from './onnx.js';
import { warmupHttp } from './http.js';
import type { HttpApi } from '../server/api.js';
import { warmupFramework } from './framework.js';
import type { CompileMode } from './compile/torch.js';

export type { WarmupResult } from './backend.js';

export interface WarmupOptions {
  model?: string;
  url?: string;
  framework?: 'torch' | 'transformers';
  /** Steady-state runs after the first (default 5). */
  runs?: number;
  shapes?: Record<string, number[]>;
  cacheDir?: string;
  /** Deadline for HTTP readiness + requests and for the Python process (default 120 s; 600 s with `wait`). */
  timeoutSeconds?: number;
  env: Record<string, string | undefined>;
  signal?: AbortSignal;
  // --- optional refinements (the CLI exposes them)
  /** ONNX: false disables the optimised-graph cache. */
  cache?: boolean;
  /** ONNX: on a cache hit, re-measure cold session creation in this run. */
  compare?: boolean;
  provider?: Provider;
  /** HTTP: wait through refused connections until the deadline (start-up gate). */
  wait?: boolean;
  api?: HttpApi;
  headers?: Record<string, string>;
  /** HTTP and transformers: tokens to generate per request (default 8). */
  maxTokens?: number;
  device?: 'auto' | 'cpu' | 'cuda';
  /** Python frameworks: run the first forward under torch.compile, its caches persisted (fingerprinted) in `persistDir`. */
  compile?: { mode: CompileMode; persistDir?: string };
  progress?: (text: string) => void;
}

export const DEFAULT_RUNS = 5;

export function defaultTimeout(wait: boolean | undefined): number {
  return wait ? 600 : 120;
}

export async function runWarmup(opts: WarmupOptions): Promise<WarmupResult> {
  const runs = intOption('runs', opts.runs ?? DEFAULT_RUNS, 0);
  const shapes = opts.shapes ?? {};
  if (opts.compile) {
    if (!opts.model) throw new ColdstartError('USAGE', 'nothing to compile: pass a model directory (config.json) or a torch.export program (.pt2)');
    const { warmupCompile } = await import('./compile/torch.js');
    const { compileWarmupResult } = await import('./compile/report.js');
    const cw = await warmupCompile({ model: opts.model, mode: opts.compile.mode, device: opts.device ?? 'auto', shapes, runs, persistDir: opts.compile.persistDir, compare: opts.compare, timeoutSeconds: opts.timeoutSeconds ?? 600, env: opts.env, signal: opts.signal, progress: opts.progress });
    return compileWarmupResult(opts.model, cw);
  }
  const timeoutSeconds = opts.timeoutSeconds ?? defaultTimeout(opts.wait);
  if (opts.url && opts.framework) throw new ColdstartError('USAGE', 'url and framework cannot be combined: warm a server, or load a model in Python');
  if (opts.url) {
    const r = await warmupHttp({
      url: opts.url,
      runs,
      timeoutSeconds,
      wait: opts.wait,
      api: opts.api,
      modelName: opts.model,
      headers: opts.headers,
      maxTokens: opts.maxTokens,
      shapes,
      signal: opts.signal,
      progress: opts.progress,
    });
    return { backend: 'http', target: opts.url, steps: r.steps, firstSeconds: r.firstSeconds, ...(r.steady ? { steady: r.steady } : {}), details: { startupSeconds: r.startupSeconds, ...r.details } };
  }
  if (!opts.model) throw new ColdstartError('USAGE', 'nothing to warm up: pass an ONNX model file, a model with --framework, or --url http://host:port');
  if (opts.framework) {
    const r = await warmupFramework({
      framework: opts.framework,
      model: opts.model,
      runs,
      shapes,
      timeoutSeconds,
      maxNewTokens: opts.maxTokens,
      device: opts.device,
      env: opts.env,
      signal: opts.signal,
      progress: opts.progress,
    });
    return { backend: 'framework', target: opts.model, steps: r.steps, firstSeconds: r.firstSeconds, ...(r.steady ? { steady: r.steady } : {}), details: { startupSeconds: r.startupSeconds, ...r.details } };
  }
  const r = await warmupOnnx({
    model: opts.model,
    runs,
    shapes,
    cacheDir: opts.cacheDir,
    cache: opts.cache,
    compare: opts.compare,
    provider: opts.provider,
    env: opts.env,
    signal: opts.signal,
    progress: opts.progress,
  });
  return {
    backend: 'onnx',
    target: opts.model,
    steps: r.steps,
    firstSeconds: r.firstSeconds,
    ...(r.steady ? { steady: r.steady } : {}),
    ...(r.cached ? { cached: { coldSessionSeconds: r.cached.coldSessionSeconds, cachedSessionSeconds: r.cached.cachedSessionSeconds } } : {}),
    details: { startupSeconds: r.startupSeconds, ...(r.cached ? { coldMeasured: r.cached.coldMeasured, coldRecordedAt: r.cached.recordedAt ?? null } : {}), ...r.details },
  };
}

/** What a cold start pays before the first answer: the sum of the start-up steps, TTFT excluded (it is inside first-request). */
export function startupSeconds(r: WarmupResult): number {
  const s = r.details.startupSeconds;
  if (typeof s === 'number') return s;
  return r.steps.filter((st) => st.name !== 'ttft').reduce((a, st) => a + st.seconds, 0);
}

/**
 * Puts a warmup result into a phase: the steps as sub-steps, the phase's seconds = the start-up cost
 * (session + first run, ready + first request, import + load + first forward), and metrics for first/steady/cache.
 */
export function recordWarmupPhase(h: PhaseHandle, r: WarmupResult): void {
  for (const st of r.steps) h.addStep(st.name, st.seconds, st.note);
  h.setSeconds(startupSeconds(r));
  h.metric('backend', r.backend);
  h.metric('firstSeconds', r.firstSeconds);
  if (r.steady) {
    h.metric('steadyMeanSeconds', r.steady.mean);
    h.metric('steadyStddevSeconds', r.steady.stddev);
    h.metric('steadyRuns', r.steady.n);
  }
  if (r.cached) {
    h.metric('coldSessionSeconds', r.cached.coldSessionSeconds);
    h.metric('cachedSessionSeconds', r.cached.cachedSessionSeconds);
  }
  const first = r.steps[0];
  const notes: string[] = [];
  if (r.backend === 'onnx') notes.push(`${String(r.details.provider ?? 'cpu')}${(r.details.cache as { hit?: boolean } | undefined)?.hit ? ', cached graph' : ''}`);
  if (r.backend === 'http') notes.push(`${String(r.details.api)}${r.details.model ? ` ${String(r.details.model)}` : ''}`);
  if (r.backend === 'framework') notes.push(`${String(r.details.framework)} on ${String(r.details.device)}`);
  if (first && r.steady) notes.push(`first ${formatDuration(r.firstSeconds)} vs steady ${formatDuration(r.steady.mean)}`);
  h.note = notes.join('; ');
}
