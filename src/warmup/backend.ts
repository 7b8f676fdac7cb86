import type { Stats } from '../core/stats.js';

/** What each warmup back-end (ONNX, HTTP, Python framework) returns; warmup.ts adds backend and target. */
export interface BackendWarmup {
  steps: Array<{ name: string; seconds: number; note?: string }>;
  firstSeconds: number;
  startupSeconds: number;
  steady?: Stats;
  details: Record<string, unknown>;
}
