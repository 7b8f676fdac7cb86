import type { Stats } from '../core/stats.js';

/** What each warmup back-end (ONNX, HTTP, Python framework) returns; warmup.ts adds backend and target. */
export interface BackendWarmup {
  steps: Array<{ name: string; seconds: number; note?: string }>;
  firstSeconds: number;
  startupSeconds: number;
  steady?: Stats;
  details: Record<string, unknown>;
}

/** A warmup as `coldstart warmup` and profile's warmup phase see it: a back-end's result with its name and target. */
export interface WarmupResult {
  backend: 'onnx' | 'http' | 'framework';
  target: string;
  /** Start-up path in order: session-create, first-run / time-to-ready, first-request, ttft / import, load, first-forward. */
  steps: Array<{ name: string; seconds: number; note?: string }>;
  /** The first inference (first-run / first-request / first-forward), seconds. */
  firstSeconds: number;
  /** Steady-state latency over the runs after the first. */
  steady?: Stats;
  /** ONNX only: session creation from the original model vs from the cached optimised graph. */
  cached?: { coldSessionSeconds: number; cachedSessionSeconds: number };
  /** Back-end specifics; always has `startupSeconds` (what a cold start pays before the first answer). */
  details: Record<string, unknown>;
}
