/**
 * The compile/JIT caches other engines leave on disk, found by their real layouts, so `coldstart cache artifacts`
 * can say where each lives, how big it is, what key it was built for, check it and prune it. Layouts (sources in
 * docs/compile-cache.md and test/fixtures-compile/*.source):
 *
 *  coldstart      DIR/torch-compile-<key>/manifest.json (+ inductor/, triton/, artifacts.bin)     — store.ts
 *  vllm           $VLLM_CACHE_ROOT/torch_compile_cache/<hash>/rank_<r>_<dp>/<prefix>/vllm_compile_cache.py
 *                 (+ computation_graph.py, transformed_code.py, cache_key_factors.json; inductor_cache/, triton_cache/ per rank)
 *  triton         $TRITON_CACHE_DIR/<hash>/<kernel>.json (metadata with "target") + <kernel>.cubin/.hsaco/…
 *  inductor       $TORCHINDUCTOR_CACHE_DIR/{fxgraph,aotautograd,…}/
 *  flashinfer     $FLASHINFER_WORKSPACE_BASE/.cache/flashinfer/[<version>/]<archs>/cached_ops/<module>/<module>.so
 *  deepgemm       $DG_JIT_CACHE_DIR/…/kernel.<name>.<12 hex>/kernel.cu + kernel.cubin (or kernel.so)
 *  tensorrt-llm   <engine dir>/config.json (pretrained_config + build_config) + rank<N>.engine
 *  tensorrt       *.engine / *.plan engine files; timing caches (model.cache — trtllm-build's default — *.timing.cache)
 *  onnxruntime    coldstart's ORT cache: <sha16>-<key>/meta.json + the optimised graph it names
 */
import { existsSync, lstatSync, readdirSync, statSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { listEntries, verifyEntry } from './store.js';
import { walkFiles } from '../../core/paths.js';
import { readInputText, sha256FileSync } from '../../core/files.js';

type Env = Record<string, string | undefined>;

export type ArtifactEngine = 'coldstart' | 'vllm' | 'triton' | 'inductor' | 'flashinfer' | 'deepgemm' | 'tensorrt-llm' | 'tensorrt' | 'onnxruntime';

export interface Artifact {
  engine: ArtifactEngine;
  /** The directory or file that is one unit (what `rm` removes). */
  path: string;
  bytes: number;
  files: number;
  /** The engine's own cache key (a hash dir name, a kernel count, an arch). */
  key: string;
  /** What it was built for, as far as its files say. */
  builtFor: string;
}

export interface ArtifactCheck {
  /** true: every check passed; false: problems found; null: the engine records nothing to check against. */
  ok: boolean | null;
  problems: string[];
  method: string;
}

function sizeOf(p: string): { bytes: number; files: number } {
  const st = lstatSync(p);
  if (st.isFile()) return { bytes: st.size, files: 1 };
  let bytes = 0;
  let files = 0;
  for (const f of walkFiles(p)) {
    bytes += lstatSync(join(p, f)).size;
    files++;
  }
  return { bytes, files };
}

function readJson(p: string): Record<string, unknown> | null {
  try {
    const j = JSON.parse(readInputText(p, 'compile-cache metadata', 16 << 20)) as unknown;
    return j && typeof j === 'object' && !Array.isArray(j) ? (j as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

const dirs = (p: string) => {
  try {
    return readdirSync(p).filter((n) => {
      try {
        return lstatSync(join(p, n)).isDirectory();
      } catch {
        return false;
      }
    });
  } catch {
    return [];
  }
};
const filesIn = (p: string) => {
  try {
    return readdirSync(p).filter((n) => lstatSync(join(p, n)).isFile());
  } catch {
    return [];
  }
};

function art(engine: ArtifactEngine, path: string, key: string, builtFor: string): Artifact {
  return { engine, path, ...sizeOf(path), key, builtFor };
}

// ------------------------------------------------------------------------------------------------ detectors
function vllmHashDir(p: string): Artifact {
  const ranks = dirs(p).filter((d) => /^rank_\d+_\d+$/.test(d));
  const prefixes = new Set<string>();
  let factors: Record<string, unknown> | null = null;
  for (const r of ranks) {
    for (const pre of dirs(join(p, r))) {
      if (existsSync(join(p, r, pre, 'vllm_compile_cache.py'))) prefixes.add(pre);
      factors ??= readJson(join(p, r, pre, 'cache_key_factors.json'));
    }
  }
  const facts: string[] = [`${ranks.length} rank dir(s) (${ranks.join(', ')})`, `prefixes ${[...prefixes].join(', ') || 'none'}`];
  if (factors) {
    const keys = Object.keys(factors);
    facts.push(`cache_key_factors: ${keys.slice(0, 6).join(', ')}${keys.length > 6 ? ', …' : ''}`);
  }
  return art('vllm', p, basename(p), facts.join('; '));
}

function tritonRoot(p: string, kernelDirs: string[]): Artifact {
  const archs = new Set<string>();
  let kernels = 0;
  for (const d of kernelDirs) {
    for (const f of filesIn(join(p, d))) {
      if (!f.endsWith('.json') || f.startsWith('__grp__')) continue;
      const m = readJson(join(p, d, f));
      const t = m?.target as { backend?: string; arch?: unknown } | undefined;
      if (t) {
        kernels++;
        archs.add(`${t.backend ?? '?'}:${typeof t.arch === 'number' ? `sm_${t.arch}` : String(t.arch)}`);
      }
    }
  }
  return art('triton', p, `${kernels} kernel(s)`, `targets ${[...archs].sort().join(', ') || 'unknown'}`);
}

function isTritonKernelDir(p: string): boolean {
  return filesIn(p).some((f) => f.endsWith('.json') && !f.startsWith('__grp__') && !!(readJson(join(p, f))?.target as unknown));
}

function flashinferWorkspace(p: string): Artifact {
  const modules = dirs(join(p, 'cached_ops'));
  const built = modules.filter((m) => filesIn(join(p, 'cached_ops', m)).some((f) => f.endsWith('.so')));
  const archs = basename(p)
    .split('_')
    .filter((a) => /^\d+[a-z]?$/.test(a))
    .map((a) => `sm_${a}`);
  const ver = basename(dirname(p));
  const version = /^\d+\.\d+/.test(ver) ? `flashinfer ${ver}; ` : '';
  return art('flashinfer', p, basename(p), `${version}archs ${archs.join(', ') || basename(p)}; ${built.length}/${modules.length} module(s) built`);
}

function deepgemmRoot(p: string, kernels: string[]): Artifact {
  const names = new Set(kernels.map((k) => k.replace(/^kernel\./, '').replace(/\.[0-9a-f]{12,64}$/, '')));
  return art('deepgemm', p, `${kernels.length} kernel(s)`, `kernels ${[...names].sort().slice(0, 6).join(', ')}${names.size > 6 ? ', …' : ''} (arch and nvcc are inside each hashed signature)`);
}

function trtllmEngineDir(p: string, cfg: Record<string, unknown>): Artifact {
  const pc = (cfg.pretrained_config ?? {}) as Record<string, unknown>;
  const bc = (cfg.build_config ?? {}) as Record<string, unknown>;
  const map = (pc.mapping ?? {}) as Record<string, unknown>;
  const parts = [
    `tensorrt_llm ${String(cfg.version ?? '?')}`,
    `${String(pc.architecture ?? '?')} ${String(pc.dtype ?? '?')}`,
    `world size ${String(map.world_size ?? 1)} (tp ${String(map.tp_size ?? 1)}, pp ${String(map.pp_size ?? 1)})`,
    `max batch ${String(bc.max_batch_size ?? '?')}, max seq ${String(bc.max_seq_len ?? '?')}`,
  ];
  const q = pc.quantization as Record<string, unknown> | undefined;
  if (q?.quant_algo) parts.push(`quant ${String(q.quant_algo)}`);
  return art('tensorrt-llm', p, filesIn(p).filter((f) => /^rank\d+\.engine$/.test(f)).join(', '), parts.join('; '));
}

function ortEntry(p: string, meta: Record<string, unknown>): Artifact {
  const key = meta.key as Record<string, unknown> | string | undefined;
  return art('onnxruntime', p, basename(p), typeof key === 'object' && key ? Object.entries(key).map(([k, v]) => `${k} ${String(v)}`).join('; ') : String(key ?? 'unknown'));
}

const TIMING_CACHE = /^(model\.cache|.*\.timing[._-]?cache|timing[._-]cache.*)$/i;

/**
 * Every artefact under `root` (bounded walk: depth 10, symlinks not followed). A directory recognised as an
 * artefact is not descended into further.
 */
export function scanArtifacts(root: string, maxDepth = 10): Artifact[] {
  const out: Artifact[] = [];
  if (!existsSync(root)) return out;
  const st = lstatSync(root);
  if (st.isFile()) {
    if (/\.(engine|plan)$/.test(root) || TIMING_CACHE.test(basename(root))) out.push(art('tensorrt', root, basename(root), 'TensorRT (version and GPU are inside the serialized file)'));
    return out;
  }
  const visit = (p: string, depth: number) => {
    const name = basename(p);
    // coldstart's own entries
    if (/^torch-compile-[0-9a-f]{16}$/.test(name) && existsSync(join(p, 'manifest.json'))) {
      const e = listEntries(dirname(p)).find((x) => x.dir === p);
      const m = e?.manifest;
      out.push(art('coldstart', p, m?.key ?? name, m ? `torch ${m.fingerprint.torch}, ${m.fingerprint.gpu}${m.fingerprint['compute capability'] ? ` cc ${m.fingerprint['compute capability']}` : ''}, mode ${m.fingerprint.mode}, model ${String(m.fingerprint.model).slice(0, 12)}` : `unusable manifest: ${e?.invalid ?? '?'}`));
      return;
    }
    // vLLM: torch_compile_cache/<hash>/rank_*
    if (name === 'torch_compile_cache') {
      for (const h of dirs(p)) if (dirs(join(p, h)).some((d) => /^rank_\d+_\d+$/.test(d))) out.push(vllmHashDir(join(p, h)));
      return;
    }
    // FlashInfer workspace: <archs>/cached_ops
    if (existsSync(join(p, 'cached_ops')) && lstatSync(join(p, 'cached_ops')).isDirectory() && p.includes('flashinfer')) {
      out.push(flashinferWorkspace(p));
      return;
    }
    // TensorRT-LLM engine dir
    const cfg = existsSync(join(p, 'config.json')) ? readJson(join(p, 'config.json')) : null;
    if (cfg && cfg.build_config && cfg.pretrained_config && filesIn(p).some((f) => /^rank\d+\.engine$/.test(f))) {
      out.push(trtllmEngineDir(p, cfg));
      for (const f of filesIn(p)) if (TIMING_CACHE.test(f)) out.push(art('tensorrt', join(p, f), f, 'TensorRT timing cache (TensorRT version and GPU are inside the file)'));
      return;
    }
    // ORT optimised-graph entry (coldstart warmup's ONNX cache)
    const meta = existsSync(join(p, 'meta.json')) ? readJson(join(p, 'meta.json')) : null;
    if (meta && typeof (meta.optimized as { sha256?: unknown } | undefined)?.sha256 === 'string') {
      out.push(ortEntry(p, meta));
      return;
    }
    const sub = dirs(p);
    // Inductor cache root
    if (sub.includes('fxgraph') || sub.includes('aotautograd')) {
      const n = dirs(join(p, 'fxgraph')).reduce((a, d) => a + dirs(join(p, 'fxgraph', d)).length, 0);
      out.push(art('inductor', p, `${n} FX graph(s)`, 'torch version, device and config are inside Inductor\'s hashed keys (no manifest)'));
      return;
    }
    // DeepGEMM kernels
    const dg = sub.filter((d) => /^kernel\..+\.[0-9a-f]{12,64}$/.test(d) && existsSync(join(p, d, 'kernel.cu')));
    if (dg.length) {
      out.push(deepgemmRoot(p, dg));
      return;
    }
    // Triton cache root: hash dirs holding <kernel>.json with a target
    const tk = sub.filter((d) => /^[A-Za-z0-9_-]{20,}$/.test(d) && isTritonKernelDir(join(p, d)));
    if (tk.length) {
      out.push(tritonRoot(p, tk));
      return;
    }
    for (const f of filesIn(p)) {
      if (/\.(engine|plan)$/.test(f)) out.push(art('tensorrt', join(p, f), f, 'TensorRT engine (TensorRT version and GPU are inside the serialized file)'));
      else if (TIMING_CACHE.test(f)) out.push(art('tensorrt', join(p, f), f, 'TensorRT timing cache (TensorRT version and GPU are inside the file)'));
    }
    if (depth >= maxDepth) return;
    for (const d of sub) visit(join(p, d), depth + 1);
  };
  visit(root, 0);
  return out;
}

/** Where the engines keep their caches by default (each honouring its own environment variable). */
export function defaultArtifactRoots(env: Env): string[] {
  const home = env.HOME || homedir();
  const xdg = env.XDG_CACHE_HOME || join(home, '.cache');
  let user = 'root';
  try {
    user = env.USER || userInfo().username;
  } catch {
    /* keep the default */
  }
  const roots = [
    env.VLLM_CACHE_ROOT || join(xdg, 'vllm'),
    env.TRITON_CACHE_DIR || join(env.TRITON_HOME || home, '.triton', 'cache'),
    env.TORCHINDUCTOR_CACHE_DIR || join('/tmp', `torchinductor_${user.replace(/[^A-Za-z0-9_-]/g, '_')}`),
    join(env.FLASHINFER_WORKSPACE_BASE || home, '.cache', 'flashinfer'),
    env.DG_JIT_CACHE_DIR || join(home, '.deep_gemm'),
    join(xdg, 'coldstart'),
  ];
  return [...new Set(roots)];
}

/** Checks an artefact against what it records about itself. */
export function checkArtifact(a: Artifact): ArtifactCheck {
  const problems: string[] = [];
  switch (a.engine) {
    case 'coldstart': {
      const e = listEntries(dirname(a.path)).find((x) => x.dir === a.path);
      if (!e?.manifest) return { ok: false, problems: [e?.invalid ?? 'unusable manifest'], method: 'manifest' };
      const v = verifyEntry(a.path, e.manifest);
      return { ok: v.ok, problems: [...v.problems, ...v.unlisted.map((u) => `${u}: not in the manifest (never loaded)`)], method: 'sha256 of every file vs manifest' };
    }
    case 'onnxruntime': {
      const meta = readJson(join(a.path, 'meta.json'))!;
      const opt = meta.optimized as { file?: string; sha256?: string };
      const f = join(a.path, String(opt.file ?? ''));
      if (!opt.file || !existsSync(f)) problems.push(`${String(opt.file)}: missing`);
      else if (sha256FileSync(f) !== opt.sha256) problems.push(`${opt.file}: sha256 differs from meta.json`);
      return { ok: problems.length === 0, problems, method: 'sha256 vs meta.json' };
    }
    case 'vllm': {
      for (const r of dirs(a.path).filter((d) => /^rank_\d+_\d+$/.test(d))) {
        const pres = dirs(join(a.path, r)).filter((d) => !/^(inductor_cache|triton_cache)$/.test(d));
        for (const pre of pres) {
          const f = join(a.path, r, pre, 'vllm_compile_cache.py');
          if (!existsSync(f)) continue;
          let text: string;
          try {
            text = readInputText(f, 'vLLM compile cache', 64 << 20).trim();
          } catch (e) {
            problems.push(`${r}/${pre}/vllm_compile_cache.py: ${(e as Error).message}`);
            continue;
          }
          if (!text.startsWith('{') || !text.endsWith('}')) problems.push(`${r}/${pre}/vllm_compile_cache.py: not a Python dict literal (truncated?)`);
        }
      }
      return { ok: problems.length === 0, problems, method: 'structure (vLLM keeps no content hashes)' };
    }
    case 'triton': {
      for (const d of dirs(a.path)) {
        for (const f of filesIn(join(a.path, d))) {
          if (!f.endsWith('.json') || f.startsWith('__grp__')) continue;
          const m = readJson(join(a.path, d, f));
          if (!m) {
            problems.push(`${d}/${f}: not valid JSON`);
            continue;
          }
          const t = m.target as { backend?: string } | undefined;
          if (!t) continue;
          const stem = f.slice(0, -5);
          const bin = t.backend === 'hip' ? `${stem}.hsaco` : t.backend === 'cuda' ? `${stem}.cubin` : null;
          if (bin && !existsSync(join(a.path, d, bin))) problems.push(`${d}/${bin}: missing (metadata present)`);
        }
      }
      return { ok: problems.length === 0, problems, method: 'structure: every kernel metadata has its binary' };
    }
    case 'flashinfer': {
      for (const m of dirs(join(a.path, 'cached_ops'))) {
        const sos = filesIn(join(a.path, 'cached_ops', m)).filter((f) => f.endsWith('.so'));
        for (const s of sos) if (statSync(join(a.path, 'cached_ops', m, s)).size === 0) problems.push(`cached_ops/${m}/${s}: empty`);
      }
      return { ok: problems.length === 0, problems, method: 'structure: built modules are non-empty' };
    }
    case 'deepgemm': {
      for (const k of dirs(a.path).filter((d) => /^kernel\./.test(d))) {
        const fs = filesIn(join(a.path, k));
        if (!fs.includes('kernel.cubin') && !fs.includes('kernel.so')) problems.push(`${k}: no kernel.cubin / kernel.so next to kernel.cu (an interrupted compile)`);
      }
      return { ok: problems.length === 0, problems, method: 'structure: every kernel has its binary' };
    }
    case 'tensorrt-llm': {
      const cfg = readJson(join(a.path, 'config.json'))!;
      const map = ((cfg.pretrained_config as Record<string, unknown>).mapping ?? {}) as Record<string, unknown>;
      const ws = Number(map.world_size ?? 1);
      for (let i = 0; i < ws; i++) {
        const f = join(a.path, `rank${i}.engine`);
        if (!existsSync(f)) problems.push(`rank${i}.engine: missing (world size ${ws})`);
        else if (statSync(f).size === 0) problems.push(`rank${i}.engine: empty`);
      }
      return { ok: problems.length === 0, problems, method: 'structure: one non-empty engine per rank' };
    }
    case 'tensorrt':
      if (a.bytes === 0) return { ok: false, problems: [`${basename(a.path)}: empty`], method: 'non-empty' };
      return { ok: null, problems: [], method: 'no record to check against (TensorRT validates on deserialize)' };
    case 'inductor':
      return { ok: null, problems: [], method: 'no record to check against (Inductor re-keys on load)' };
  }
}
