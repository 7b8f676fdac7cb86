/**
 * The engines `coldstart profile` drives, passed in as one object of functions (src/commands/profile.ts gives
 * the real ones; tests swap any of them): the native probe, the GPU loader, the Hub download, the warmup
 * back-ends, Python and the container timers.
 */
import { loadNative } from '../native.js';
import { runGpuLoad, recordGpuLoadPhase } from '../load/gpu-load.js';
import { downloadRepo, repoFileSizes, findCachedSnapshot, recordDownloadPhase } from '../cache/download.js';
import { runWarmup, recordWarmupPhase } from '../warmup/warmup.js';
import { runScript } from '../python/runner.js';
import { measureInsideContainer, timeContainerStart } from '../platform/container.js';
import { runWrapped } from '../server/wrap.js';

export type { GpuLoadOptions, GpuLoadResult } from '../load/gpu-load.js';
export type { DownloadOptions, DownloadResult } from '../cache/download.js';
export type { WarmupOptions, WarmupResult } from '../warmup/warmup.js';
export interface RepoFileSize {
  path: string;
  bytes: number;
}

export interface Engines {
  native: typeof loadNative;
  gpuLoad: { runGpuLoad: typeof runGpuLoad; recordGpuLoadPhase: typeof recordGpuLoadPhase };
  download: { downloadRepo: typeof downloadRepo; repoFileSizes: typeof repoFileSizes; findCachedSnapshot: typeof findCachedSnapshot; recordDownloadPhase: typeof recordDownloadPhase };
  warmup: { runWarmup: typeof runWarmup; recordWarmupPhase: typeof recordWarmupPhase };
  python: { runScript: typeof runScript };
  container: { measureInsideContainer: typeof measureInsideContainer; timeContainerStart: typeof timeContainerStart };
  wrap: { runWrapped: typeof runWrapped };
}

export const defaultEngines: Engines = {
  native: loadNative,
  gpuLoad: { runGpuLoad, recordGpuLoadPhase },
  download: { downloadRepo, repoFileSizes, findCachedSnapshot, recordDownloadPhase },
  warmup: { runWarmup, recordWarmupPhase },
  python: { runScript },
  container: { measureInsideContainer, timeContainerStart },
  wrap: { runWrapped },
};

/** The default engines with some replaced (tests). */
export function withEngines(over: { [K in keyof Engines]?: Partial<Engines[K]> | Engines[K] }): Engines {
  const out = { ...defaultEngines } as Record<string, unknown>;
  for (const [k, v] of Object.entries(over)) {
    const d = (defaultEngines as unknown as Record<string, unknown>)[k];
    out[k] = typeof v === 'function' ? v : { ...(d as object), ...(v as object) };
  }
  return out as unknown as Engines;
}
