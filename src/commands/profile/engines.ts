/**
 * The one adapter between `coldstart profile` and the engines built in other parts (GPU loader, Hub
 * download, warmup). They are imported lazily; when a build does not carry one, its phase is skipped with
 * the reason "engine not available in this build" instead of failing.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { ColdstartError } from '../../core/errors.js';
import type { PhaseHandle } from '../../core/phases.js';
import { Stopwatch } from '../../core/clock.js';
import { formatRate } from '../../core/format.js';

// The engines' own types (type-only imports: nothing is loaded until an engine is used).
export type { GpuLoadOptions, GpuLoadResult } from '../../engines/gpuload.js';
export type { DownloadOptions, DownloadResult } from '../../hub/download.js';
export type { WarmupOptions, WarmupResult } from '../../engines/warmup.js';
type GpuLoadModule = typeof import('../../engines/gpuload.js');
type DownloadModule = typeof import('../../hub/download.js');
type WarmupModule = typeof import('../../engines/warmup.js');
export interface RepoFileSize {
  path: string;
  bytes: number;
}

// ---------------------------------------------------------------------------------------------- loading
export const ENGINE_MISSING = 'engine not available in this build';

export type Loaded<T> = { ok: true; mod: T } | { ok: false; reason: string };

function isModuleNotFound(e: unknown, spec: string): boolean {
  const err = e as NodeJS.ErrnoException;
  return err?.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes(spec.replace(/^\.\.\//, '').replace(/^\.\.\//, ''));
}

/** Test hook: names of engines to treat as absent (COLDSTART_DISABLE_ENGINES=gpuload,download,warmup). */
function disabled(name: string): boolean {
  return (process.env.COLDSTART_DISABLE_ENGINES ?? '').split(',').includes(name);
}

type EngineName = 'gpuload' | 'download' | 'warmup';
const overrides = new Map<EngineName, unknown>();

/** For tests: use these module objects instead of importing the engines (like resetNativeForTests). */
export function overrideEnginesForTests(mods: Partial<Record<EngineName, unknown>> | null): void {
  overrides.clear();
  for (const [k, v] of Object.entries(mods ?? {})) overrides.set(k as EngineName, v);
}

async function load<T>(name: EngineName, importer: () => Promise<unknown>, spec: string): Promise<Loaded<T>> {
  if (disabled(name)) return { ok: false, reason: ENGINE_MISSING };
  if (overrides.has(name)) return { ok: true, mod: overrides.get(name) as T };
  try {
    return { ok: true, mod: (await importer()) as T };
  } catch (e) {
    // Only the engine module itself being absent is a skip; a broken engine is a real failure.
    if (isModuleNotFound(e, spec)) return { ok: false, reason: ENGINE_MISSING };
    throw e;
  }
}

// Each import names a literal path so bundlers and tsc see it; the file may not exist in this build.
export const loadGpuLoad = () => load<GpuLoadModule>('gpuload', () => import(/* @vite-ignore */ '../../engines/gpuload.js' as string), 'engines/gpuload.js');
export const loadDownload = () => load<DownloadModule>('download', () => import(/* @vite-ignore */ '../../hub/download.js' as string), 'hub/download.js');
export const loadWarmup = () => load<WarmupModule>('warmup', () => import(/* @vite-ignore */ '../../engines/warmup.js' as string), 'engines/warmup.js');


// ---------------------------------------------------------------------------------------------- host fallback
export interface HostReadResult {
  bytes: number;
  seconds: number;
  bytesPerSecond: number;
  files: Array<{ path: string; bytes: number; seconds: number }>;
}

/**
 * Minimal stand-in used only when the GPU loader engine is absent: reads the weight files with large
 * sequential reads (whatever the page cache holds) and times it. The real engine replaces it.
 */
export function hostRead(files: readonly string[], chunkBytes = 16 << 20, signal?: AbortSignal): HostReadResult {
  const buf = Buffer.allocUnsafe(chunkBytes);
  const out: HostReadResult['files'] = [];
  const total = new Stopwatch();
  let bytes = 0;
  for (const path of files) {
    const sw = new Stopwatch();
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new ColdstartError('NOT_FOUND', `${path}: cannot open weights file (${(e as Error).message})`);
    }
    let n = 0;
    try {
      const size = statSync(path).size;
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
