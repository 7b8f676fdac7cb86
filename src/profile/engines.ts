/**
 * The engines `coldstart profile` drives, passed in as one object of functions (src/commands/profile.ts gives
 * the real ones; tests swap any of them): the native probe, the GPU loader, the Hub download, the warmup
 * back-ends, Python and the container timers.
 */
import { closeSync, readSync } from 'node:fs';
import { openInput } from '../core/files.js';
import type { PhaseHandle } from '../core/phases.js';
import { Stopwatch } from '../core/clock.js';
import { formatRate } from '../core/format.js';
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

// ---------------------------------------------------------------------------------------------- host fallback
export interface HostReadResult {
  bytes: number;
  seconds: number;
  bytesPerSecond: number;
  files: Array<{ path: string; bytes: number; seconds: number }>;
}

/**
 * A plain host read of the weight files with large sequential reads (whatever the page cache holds), timed:
 * the floor for files the native loader does not read (.bin).
 */
export function hostRead(files: readonly string[], chunkBytes = 16 << 20, signal?: AbortSignal): HostReadResult {
  const buf = Buffer.allocUnsafe(chunkBytes);
  const out: HostReadResult['files'] = [];
  const total = new Stopwatch();
  let bytes = 0;
  for (const path of files) {
    const sw = new Stopwatch();
    // Regular files only, opened non-blocking: a FIFO or device named like a weights file is refused, never read.
    const { fd, size } = openInput(path, 'is a directory, expected a weights file');
    let n = 0;
    try {
      while (n < size) {
        signal?.throwIfAborted();
        const r = readSync(fd, buf, 0, Math.min(chunkBytes, size - n), n);
        if (r === 0) break;
        n += r;
      }
    } finally {
      closeSync(fd);
    }
    bytes += n;
    out.push({ path, bytes: n, seconds: sw.elapsed() });
  }
  const seconds = total.elapsed();
  return { bytes, seconds, bytesPerSecond: seconds > 0 ? bytes / seconds : 0, files: out };
}

/** Records the host read and skips the phase: no GPU bytes were moved, so no gpu-load time is claimed. */
export function skipWithHostRead(h: PhaseHandle, r: HostReadResult, why: string): never {
  h.addStep('host read (page cache as found)', r.seconds, `${r.files.length} file(s)`);
  h.metric('hostReadBytes', r.bytes);
  h.metric('hostReadSeconds', r.seconds);
  h.metric('hostReadBytesPerSecond', r.bytesPerSecond);
  h.skip(`${why}; host read measured: ${formatRate(r.bytesPerSecond)}`);
}
