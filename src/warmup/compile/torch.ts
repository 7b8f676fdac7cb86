/**
 * `warmup --compile`: the first forward under torch.compile (Inductor), with Inductor's and Triton's caches and
 * torch's portable cache artefacts directed into a persist dir, fingerprinted (store.ts). Every measured start
 * is a fresh Python process, so "from the persisted cache" means what a restarted server would see.
 *
 *  1. probe: the current fingerprint (one short Python process: versions, GPU, compute capability, driver).
 *  2. compileCacheStatus(persistDir, fingerprint): cached / missed because … / not cached / refused.
 *  3. not cached or missed: a cold run (empty caches, in a staging dir inside DIR) → manifest → entry renamed
 *     into place; then a cached run from a verified copy of that entry. Side by side in one invocation.
 *     cached: a run from a verified copy (a corrupted entry is refused: CORRUPT_FILE, nothing loaded); with
 *     `compare`, a cold run in empty caches too.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, openSync, readSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { ColdstartError } from '../../core/errors.js';
import { formatDuration } from '../../core/format.js';
import { readInputFile, readInputText } from '../../core/files.js';
import { summarize, type Stats } from '../../core/stats.js';
import { version as toolVersion } from '../../core/version.js';
import { eventOf, runScript, pythonCandidates, scriptFailure, type ScriptRun } from '../../python/runner.js';
import {
  commitEntry,
  compileCacheStatus,
  corruptEntry,
  diffFingerprints,
  describeDifference,
  makeStaging,
  materializeEntry,
  normalizeFingerprint,
  releaseStaging,
  verifyEntry,
  type CompileCacheStatus,
  type CompileFingerprint,
} from './store.js';

type Env = Record<string, string | undefined>;
export const COMPILE_MODES = ['default', 'reduce-overhead', 'max-autotune'] as const;
export type CompileMode = (typeof COMPILE_MODES)[number];

export interface CompileOptions {
  model: string;
  mode: CompileMode;
  device: 'auto' | 'cpu' | 'cuda';
  shapes: Record<string, number[]>;
  runs: number;
  /** Where fingerprinted entries live; undefined: one cold run in throwaway caches. */
  persistDir?: string;
  /** On a hit, also measure a cold compile (empty caches) in this run. */
  compare?: boolean;
  timeoutSeconds: number;
  env: Env;
  signal?: AbortSignal;
  progress?: (text: string) => void;
}

export interface CompileRun {
  phase: 'cold' | 'cached';
  importSeconds: number;
  /** What the import step imported, as the script reports it. */
  importNote: string;
  loadSeconds: number;
  /** First forward under torch.compile: tracing, Inductor codegen/compile or cache lookups, (CUDA-graph) warm-up. */
  firstSeconds: number;
  /** cached: torch.compiler.load_cache_artifacts(), seconds (null when not used). */
  loadArtifactsSeconds: number | null;
  /** What a start pays for compile: firstSeconds + loadArtifactsSeconds. */
  compileSeconds: number;
  steady?: Stats;
  outputSha256: string;
  outputShape: number[];
  /** sum, max |x| and the first values of the first output (to see how far apart two differing digests are). */
  outputSummary: { sum: number; absMax: number; first: number[] };
  /** Inductor's own view: FX-graph and AOTAutograd cache hits/misses in that process. */
  counters: { fxgraphHit: number; fxgraphMiss: number; autogradHit: number; autogradMiss: number; graphs: number; cudagraphSkips: number };
  info: Record<string, unknown>;
}

export interface CompileWarmup {
  fingerprint: CompileFingerprint;
  hasCacheArtifacts: boolean;
  /** The cache's state before this run (what a start would have found). */
  before: CompileCacheStatus | null;
  cold?: CompileRun;
  cached?: CompileRun;
  /** cold.compileSeconds / cached.compileSeconds when both ran. */
  ratio: number | null;
  outputsIdentical: boolean | null;
  entry?: { dir: string; key: string; bytes: number; files: number; written: boolean };
  notes: string[];
  python: string;
}

/** Model identity for the fingerprint: sha256 over config.json and each weight file's name, size and (safetensors) header. */
export function modelHash(path: string): string {
  const h = createHash('sha256');
  const addFile = (p: string, name: string) => {
    const st = statSync(p);
    h.update(`${name}\0${st.size}\0`);
    if (st.size <= 64 << 20) {
      // Regular file, size-capped: a FIFO (size 0) is refused instead of blocking the hash.
      h.update(readInputFile(p, 'model file', 64 << 20));
    } else if (name.endsWith('.safetensors')) {
      // The header (shapes, dtypes, offsets) is what compiled code depends on; hashing GBs of weights is not.
      const fd = openSync(p, 'r');
      try {
        const len = Buffer.alloc(8);
        readSync(fd, len, 0, 8, 0);
        const n = Number(len.readBigUInt64LE(0));
        if (n > 0 && n <= 100 << 20 && n + 8 <= st.size) {
          const head = Buffer.alloc(n);
          readSync(fd, head, 0, n, 8);
          h.update(head);
        }
      } finally {
        closeSync(fd);
      }
    } else {
      const fd = openSync(p, 'r');
      try {
        const b = Buffer.alloc(1 << 20);
        const n = readSync(fd, b, 0, b.length, 0);
        h.update(b.subarray(0, n));
        const m = readSync(fd, b, 0, b.length, Math.max(0, st.size - b.length));
        h.update(b.subarray(0, m));
      } finally {
        closeSync(fd);
      }
    }
  };
  const st = statSync(path);
  if (st.isDirectory()) {
    for (const name of readdirSync(path).sort()) {
      if (!/\.(json|safetensors|bin|pt|pth)$/.test(name) || /^(tokenizer|special_tokens|vocab|generation_config)/.test(name)) continue;
      const p = join(path, name);
      if (statSync(p).isFile()) addFile(p, name);
    }
  } else addFile(path, basename(path));
  return h.digest('hex');
}

function modelDtype(path: string): string {
  if (path.endsWith('.pt2')) return 'from program';
  try {
    const cfg = JSON.parse(readInputText(join(path, 'config.json'), 'model config', 1 << 20)) as { torch_dtype?: string; dtype?: string };
    return cfg.torch_dtype ?? cfg.dtype ?? 'float32';
  } catch {
    return 'float32';
  }
}

function inputShape(path: string, shapes: Record<string, number[]>): string {
  if (path.endsWith('.pt2')) return 'from program';
  const ids = shapes.input_ids;
  const seq = ids ? ids[ids.length - 1] : (shapes.sequence?.[0] ?? 16);
  const batch = ids ? ids[0] : (shapes.batch?.[0] ?? 1);
  return `${batch}x${seq}`;
}

/** torch.compile accepts a model directory with config.json, or a torch.export program (.pt2). */
export function resolveCompileModel(model: string): string {
  const p = resolve(model);
  if (!existsSync(p)) throw new ColdstartError('NOT_FOUND', `${model}: no such file or directory`);
  const st = statSync(p);
  if (st.isDirectory()) {
    if (existsSync(join(p, 'config.json'))) return p;
    const pt2 = readdirSync(p).filter((f) => f.endsWith('.pt2'));
    if (pt2.length === 1) return join(p, pt2[0]!);
    throw new ColdstartError('BAD_INPUT', `${model}: --compile needs a Hugging Face model directory (config.json) or a torch.export program (.pt2)`);
  }
  if (!p.endsWith('.pt2')) {
    throw new ColdstartError('UNSUPPORTED', `${model}: --compile runs torch.compile, which needs a Hugging Face model directory or a torch.export program (.pt2)`, {
      hint: 'TorchScript (.pt) modules are not compiled by Inductor: export the model with torch.export.save(…, "model.pt2"), or pass a save_pretrained directory.',
    });
  }
  return p;
}

/** Why a compile script did not report its result: its own error events first, then the ones every script shares. */
function compileFailure(r: ScriptRun, what: string, timeoutSeconds: number): ColdstartError {
  const err = r.timedOut ? undefined : eventOf(r, 'error');
  if (err?.kind === 'unsupported') return new ColdstartError('UNSUPPORTED', `--compile: ${String(err.message)}`);
  if (err?.kind === 'run') return new ColdstartError('BAD_INPUT', `--compile (${what}): ${String(err.type)}: ${String(err.message)}`);
  return scriptFailure(r, `--compile (${what})`, { seconds: timeoutSeconds, hint: 'Raise --timeout: a cold compile of a large model takes minutes.' });
}

/** The current fingerprint for compiling `model` with these options (one short Python process). */
export async function probeCompileFingerprint(
  o: Pick<CompileOptions, 'model' | 'mode' | 'device' | 'shapes' | 'env'> & { timeoutSeconds?: number; signal?: AbortSignal },
): Promise<{ fingerprint: CompileFingerprint; hasCacheArtifacts: boolean; python: string }> {
  const path = resolveCompileModel(o.model);
  const timeout = o.timeoutSeconds ?? 120;
  const r = await runScript(o.env, 'compile_probe.py', [o.device], { what: '--compile', timeoutMs: timeout * 1000, signal: o.signal });
  o.signal?.throwIfAborted();
  const ev = eventOf(r, 'fingerprint');
  if (!ev || r.exitCode !== 0) throw compileFailure(r, 'fingerprint probe', timeout);
  const fp = ev.fingerprint as Record<string, unknown>;
  return {
    fingerprint: normalizeFingerprint({ ...fp, model: modelHash(path), dtype: modelDtype(path), 'input shape': inputShape(path, o.shapes), backend: 'inductor', mode: o.mode, dynamic: 'false' }),
    hasCacheArtifacts: !!ev.hasCacheArtifacts,
    python: r.executable,
  };
}

async function runOnce(o: CompileOptions, path: string, phase: 'cold' | 'cached', cacheRoot: string, expected: CompileFingerprint): Promise<CompileRun> {
  o.progress?.(`${phase === 'cold' ? 'compiling cold (empty caches)' : 'compiling from the persisted cache'} in a fresh Python process`);
  const artifacts = join(cacheRoot, 'artifacts.bin');
  const r = await runScript(o.env, 'compile.py', [path, o.mode, o.device, JSON.stringify(o.shapes), String(o.runs), phase, artifacts], {
    what: '--compile',
    timeoutMs: o.timeoutSeconds * 1000,
    signal: o.signal,
    // What the run does now (import, model load, the compiling first call, steady calls), as it happens.
    onEvent: (e) => {
      if (e.event === 'import' && typeof e.seconds === 'number') o.progress?.(`${phase} run: ${String(e.what ?? 'import')} in ${formatDuration(e.seconds)}`);
      else if (e.event === 'stage' && typeof e.what === 'string') o.progress?.(`${phase} run: ${e.what}…`);
    },
    extraEnv: {
      HF_HUB_OFFLINE: '1',
      TRANSFORMERS_OFFLINE: '1',
      TOKENIZERS_PARALLELISM: 'false',
      TORCHINDUCTOR_CACHE_DIR: join(cacheRoot, 'inductor'),
      TRITON_CACHE_DIR: join(cacheRoot, 'triton'),
      TORCHINDUCTOR_FX_GRAPH_CACHE: '1',
      TORCHINDUCTOR_AUTOGRAD_CACHE: '1',
      // Only the local caches this run was given: no remote cache may answer for it.
      TORCHINDUCTOR_FX_GRAPH_REMOTE_CACHE: '0',
      TORCHINDUCTOR_AUTOTUNE_REMOTE_CACHE: '0',
      TORCHINDUCTOR_AUTOGRAD_REMOTE_CACHE: '0',
    },
  });
  o.signal?.throwIfAborted();
  const imp = eventOf(r, 'import');
  const res = eventOf(r, 'result');
  const fpEv = eventOf(r, 'fingerprint');
  if (!imp || !res || !fpEv || r.exitCode !== 0) throw compileFailure(r, `${phase} compile run`, o.timeoutSeconds);
  // The run must have compiled for exactly the fingerprint its artefact is filed under.
  const got = normalizeFingerprint({ ...expected, ...(fpEv.fingerprint as Record<string, unknown>) });
  const d = diffFingerprints(expected, got);
  if (d.length) throw new ColdstartError('ENV', `the environment changed between the probe and the ${phase} run (${d.map(describeDifference).join(', ')}); nothing was persisted`);
  const samples = (res.samples as number[]).map(Number);
  const la = res.loadedArtifacts as { seconds: number } | null;
  const first = Number(res.first);
  const { event: _e, load: _l, first: _f, samples: _s, outputSha256, outputShape, outputSummary, counters, savedArtifacts: _sa, loadedArtifacts: _la, ...info } = res;
  return {
    phase,
    importSeconds: Number(imp.seconds),
    importNote: String(imp.what ?? 'imports'),
    loadSeconds: Number(res.load),
    firstSeconds: first,
    loadArtifactsSeconds: la ? Number(la.seconds) : null,
    compileSeconds: first + (la ? Number(la.seconds) : 0),
    ...(samples.length ? { steady: summarize(samples) } : {}),
    outputSha256: String(outputSha256),
    outputShape: outputShape as number[],
    outputSummary: outputSummary as CompileRun['outputSummary'],
    counters: counters as CompileRun['counters'],
    info: { ...info, savedArtifacts: res.savedArtifacts ?? null },
  };
}

function engineKeysOf(run: CompileRun): Record<string, string[]> {
  const s = run.info.savedArtifacts as { keys?: Record<string, string[]> } | null;
  return s?.keys ?? {};
}

function tmpCaches(): string {
  return mkdtempSync(join(tmpdir(), 'coldstart-compile-'));
}

export async function warmupCompile(o: CompileOptions): Promise<CompileWarmup> {
  const path = resolveCompileModel(o.model);
  o.progress?.(`starting Python (${pythonCandidates(o.env).join(' or ')}) to fingerprint torch, the GPU and ${o.model}`);
  const probe = await probeCompileFingerprint({ ...o, model: path });
  const fp = probe.fingerprint;
  const notes: string[] = [];
  if (!probe.hasCacheArtifacts) notes.push('this torch has no torch.compiler.save_cache_artifacts: only the Inductor/Triton cache dirs are persisted');
  const out: CompileWarmup = { fingerprint: fp, hasCacheArtifacts: probe.hasCacheArtifacts, before: null, ratio: null, outputsIdentical: null, notes, python: probe.python };

  if (!o.persistDir) {
    const dir = tmpCaches();
    try {
      out.cold = await runOnce(o, path, 'cold', dir, fp);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    notes.push('compiled in throwaway caches: pass --persist DIR to keep the artefacts and time a start from them');
    return out;
  }

  const before = compileCacheStatus(o.persistDir, fp);
  out.before = before;
  if (before.status === 'refused') throw corruptEntry(join(o.persistDir, before.entry!), before.reasons);

  let entryDir: string;
  if (before.status === 'cached') {
    entryDir = join(o.persistDir, before.entry!);
    const v = verifyEntry(entryDir, before.manifest!);
    if (!v.ok) throw corruptEntry(entryDir, v.problems);
    if (v.unlisted.length) notes.push(`${v.unlisted.length} file(s) in ${before.entry} are not in its manifest and were not loaded`);
    if (o.compare) {
      const dir = tmpCaches();
      try {
        out.cold = await runOnce(o, path, 'cold', dir, fp);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    out.entry = { dir: entryDir, key: before.key, bytes: before.manifest!.totalBytes, files: before.manifest!.files.length, written: false };
  } else {
    if (before.status === 'missed') notes.push(`persisted cache ${before.summary}`);
    const staging = makeStaging(o.persistDir, `torch-compile-${before.key}`);
    try {
      out.cold = await runOnce(o, path, 'cold', staging, fp);
      const committed = commitEntry(o.persistDir, staging, { fingerprint: fp, engineKeys: engineKeysOf(out.cold), coldSeconds: out.cold.compileSeconds, tool: `coldstart ${toolVersion}` });
      entryDir = committed.dir;
      out.entry = { dir: entryDir, key: committed.manifest.key, bytes: committed.manifest.totalBytes, files: committed.manifest.files.length, written: true };
    } finally {
      rmSync(staging, { recursive: true, force: true });
      releaseStaging(staging);
    }
  }

  // The start from the persisted cache: a fresh process on a verified private copy, so the entry itself never changes.
  const manifest = compileCacheStatus(o.persistDir, fp).manifest;
  if (!manifest) throw new ColdstartError('INTERNAL', `persisted entry ${entryDir} vanished before the cached run`);
  const work = tmpCaches();
  try {
    materializeEntry(entryDir, manifest, work);
    out.cached = await runOnce(o, path, 'cached', work, fp);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const c = out.cached.counters;
  if (c.fxgraphMiss > 0 || c.autogradMiss > 0) {
    notes.push(`Inductor recompiled despite the matching fingerprint (FX-graph cache ${c.fxgraphHit} hit / ${c.fxgraphMiss} miss, AOTAutograd ${c.autogradHit} hit / ${c.autogradMiss} miss): its own key covers more than the fingerprint (the model's code, Inductor config)`);
  }
  if (out.cold) {
    out.ratio = out.cached.compileSeconds > 0 ? out.cold.compileSeconds / out.cached.compileSeconds : null;
    out.outputsIdentical = out.cold.outputSha256 === out.cached.outputSha256;
  } else if (manifest.coldSeconds > 0) {
    notes.push(`cold compile recorded when the entry was built (${manifest.createdAt}): ${manifest.coldSeconds.toFixed(2)} s; --compare re-measures it`);
  }
  return out;
}
