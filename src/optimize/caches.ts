/**
 * The compile/JIT caches `optimize` points into DIR, one environment variable (or a few) per engine, in the
 * layouts `coldstart cache artifacts` knows (warmup/compile/adopt.ts): DIR/caches/<engine>/. A start with these
 * variables set reads and writes only there — never the user's global caches — and the fingerprint of what filled
 * them (DIR/fingerprint.json) explains a later miss ("torch 2.11.0 → 2.12.0").
 */
import { existsSync, lstatSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tempPathFor, trackTemp, untrackTemp } from '../core/atomic.js';
import { fromSystemError } from '../core/errors.js';
import { makeDirs, walkFiles } from '../core/paths.js';
import type { ArtifactEngine } from '../warmup/compile/adopt.js';

export interface CacheSpec {
  /** The engine, as `cache artifacts` names it (cuda: the driver's PTX JIT cache, which artifacts does not list). */
  engine: ArtifactEngine | 'cuda';
  /** Folder under DIR/caches. */
  dir: string;
  /** Variables set for every start: a value with `{}` is the cache folder. */
  env: Record<string, string>;
  what: string;
}

export const CACHE_SPECS: readonly CacheSpec[] = [
  {
    engine: 'inductor', dir: 'inductor', what: 'torch.compile (Inductor FX-graph and AOTAutograd caches)',
    // Only the local caches this start is given: no remote cache may answer for it.
    env: { TORCHINDUCTOR_CACHE_DIR: '{}', TORCHINDUCTOR_FX_GRAPH_CACHE: '1', TORCHINDUCTOR_AUTOGRAD_CACHE: '1', TORCHINDUCTOR_FX_GRAPH_REMOTE_CACHE: '0', TORCHINDUCTOR_AUTOGRAD_REMOTE_CACHE: '0' },
  },
  { engine: 'triton', dir: 'triton', what: 'Triton kernels', env: { TRITON_CACHE_DIR: '{}' } },
  { engine: 'vllm', dir: 'vllm', what: 'vLLM torch.compile cache (and its Inductor/Triton caches per rank)', env: { VLLM_CACHE_ROOT: '{}' } },
  { engine: 'flashinfer', dir: 'flashinfer', what: 'FlashInfer JIT modules', env: { FLASHINFER_WORKSPACE_BASE: '{}' } },
  { engine: 'deepgemm', dir: 'deep_gemm', what: 'DeepGEMM JIT kernels', env: { DG_JIT_CACHE_DIR: '{}' } },
  { engine: 'tensorrt', dir: 'tensorrt', what: 'ONNX Runtime TensorRT EP engines and timing cache', env: { ORT_TENSORRT_ENGINE_CACHE_ENABLE: '1', ORT_TENSORRT_CACHE_PATH: '{}', ORT_TENSORRT_TIMING_CACHE_ENABLE: '1' } },
  { engine: 'cuda', dir: 'cuda', what: 'CUDA driver PTX JIT cache', env: { CUDA_CACHE_PATH: '{}' } },
];

export const CACHES_DIR = 'caches';

/** The variables that point every engine's cache into `root` (DIR/caches). */
export function cacheEnv(root: string, specs: readonly CacheSpec[] = CACHE_SPECS): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of specs) for (const [k, v] of Object.entries(s.env)) out[k] = v === '{}' ? join(root, s.dir) : v;
  return out;
}

/** Creates every cache folder (an engine may refuse a cache path that does not exist). */
export function makeCacheDirs(root: string): void {
  for (const s of CACHE_SPECS) makeDirs(join(root, s.dir));
}

export interface CacheUsage {
  engine: CacheSpec['engine'];
  dir: string;
  files: number;
  bytes: number;
}

/** Files and bytes under each engine's cache folder. */
export function cacheUsage(root: string): CacheUsage[] {
  return CACHE_SPECS.map((s) => {
    const dir = join(root, s.dir);
    const files = walkFiles(dir);
    const bytes = files.reduce((a, f) => {
      try {
        return a + lstatSync(join(dir, f)).size;
      } catch {
        return a;
      }
    }, 0);
    return { engine: s.engine, dir, files: files.length, bytes };
  });
}

/**
 * Moves an earlier run's caches aside, so the baseline starts with empty ones (what a fresh container sees), in the
 * same folder the optimized start and the recipe use (cached compile output may name its folder). `restore()` puts
 * them back when the baseline fails; `drop()` removes them once the new caches are filled.
 */
export function setAsideCaches(root: string): { restore(): void; drop(): void; hadEarlier: boolean } {
  const earlier = existsSync(root) ? tempPathFor(root) : null;
  if (earlier) {
    try {
      renameSync(root, earlier);
    } catch (e) {
      throw fromSystemError(e, root, 'write');
    }
    trackTemp(earlier);
  }
  makeCacheDirs(root);
  return {
    hadEarlier: earlier !== null,
    restore() {
      if (!earlier) return;
      rmSync(root, { recursive: true, force: true });
      renameSync(earlier, root);
      untrackTemp(earlier);
    },
    drop() {
      if (!earlier) return;
      rmSync(earlier, { recursive: true, force: true });
      untrackTemp(earlier);
    },
  };
}
