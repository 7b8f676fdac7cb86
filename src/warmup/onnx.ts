/**
 * ONNX back-end: onnxruntime-node in process. Session creation (graph optimisation included), first run and
 * steady-state runs on dummy inputs; the optimised graph is written once to a cache keyed by model hash +
 * ORT version + options + host, verified (it loads and gives the same outputs), then reused.
 */
import { createRequire } from 'node:module';
import { existsSync, renameSync, rmSync, statSync, accessSync, constants, readdirSync } from 'node:fs';
import { cpus, homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { ColdstartError, fromSystemError, isColdstartError } from '../core/errors.js';
import { readInputText, sha256File, statInput } from '../core/files.js';
import { makeDirs, safeJoin } from '../core/paths.js';
import { Stopwatch } from '../core/clock.js';
import { summarize } from '../core/stats.js';
import type { BackendWarmup } from './backend.js';
import { tempPathFor, trackTemp, removeTemp, untrackTemp, writeFileAtomic } from '../core/atomic.js';
import { readOnnxHeader, type OnnxHeader } from './onnx-file.js';
import { fillFloats, intFill, resolveShape, toHalf, type Shapes } from './dummy.js';

type Env = Record<string, string | undefined>;

// --- the slice of onnxruntime-node we use (declared here so the optional dependency is never needed to compile)
interface OrtValueMetadata {
  name: string;
  isTensor: boolean;
  type?: string;
  shape?: ReadonlyArray<number | string>;
}
interface OrtTensor {
  readonly type: string;
  readonly dims: readonly number[];
  readonly data: ArrayLike<unknown>;
}
interface OrtSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata?: readonly OrtValueMetadata[];
  readonly outputMetadata?: readonly OrtValueMetadata[];
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
interface OrtSessionOptions {
  executionProviders?: string[];
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  optimizedModelFilePath?: string;
  logSeverityLevel?: 0 | 1 | 2 | 3 | 4;
}
export interface OrtModule {
  InferenceSession: { create(path: string | Uint8Array, options?: OrtSessionOptions): Promise<OrtSession> };
  Tensor: new (type: string, data: unknown, dims: readonly number[]) => OrtTensor;
  env: { versions?: Record<string, string>; logLevel?: string };
  listSupportedBackends?: () => Array<{ name: string; bundled: boolean }>;
}

export const ORT_INSTALL_HINT = 'Install it next to coldstart: `npm install onnxruntime-node@~1.30` (it is an optional dependency; CUDA needs the GPU build, i.e. install without ONNXRUNTIME_NODE_INSTALL=skip).';

/** The module specifier used for onnxruntime: $COLDSTART_ORT_MODULE (a package name or path) or onnxruntime-node. */
export function ortModuleName(env: Env): string {
  return env.COLDSTART_ORT_MODULE || 'onnxruntime-node';
}

/** Loads onnxruntime-node lazily (never at CLI start-up); MISSING_DEPENDENCY (exit 3) with the install line if absent. */
export async function loadOrt(env: Env): Promise<{ ort: OrtModule; version: string; path: string | null }> {
  const spec = ortModuleName(env);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(spec)) as Record<string, unknown>;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const missing = err?.code === 'ERR_MODULE_NOT_FOUND' || err?.code === 'MODULE_NOT_FOUND';
    throw new ColdstartError('MISSING_DEPENDENCY', missing ? `${spec} is not installed, so ONNX models cannot be warmed up` : `${spec} failed to load: ${(err?.message ?? String(e)).split('\n')[0]}`, {
      hint: ORT_INSTALL_HINT,
      cause: e,
    });
  }
  const ort = ((mod.default as OrtModule | undefined)?.InferenceSession ? mod.default : mod) as OrtModule;
  if (!ort?.InferenceSession?.create || !ort.Tensor) throw new ColdstartError('MISSING_DEPENDENCY', `${spec} does not look like onnxruntime-node (no InferenceSession)`, { hint: ORT_INSTALL_HINT });
  let path: string | null = null;
  try {
    path = createRequire(import.meta.url).resolve(spec);
  } catch {
    path = null;
  }
  return { ort, version: ort.env?.versions?.node ?? ort.env?.versions?.common ?? 'unknown', path };
}

/** Whether ORT's CUDA execution provider can be used: listed by the binding and its provider library present. */
export function cudaProviderStatus(ort: OrtModule, ortPath: string | null): { available: boolean; reason?: string } {
  const backends = ort.listSupportedBackends?.() ?? [];
  if (!backends.some((b) => b.name === 'cuda')) return { available: false, reason: 'this onnxruntime-node build has no CUDA execution provider' };
  if (ortPath) {
    const bin = join(dirname(ortPath), '..', 'bin', 'napi-v6', process.platform, process.arch);
    const lib = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
    if (existsSync(bin) && !existsSync(join(bin, lib))) {
      return { available: false, reason: `the CUDA provider library (${lib}) was not installed with onnxruntime-node (ONNXRUNTIME_NODE_INSTALL=skip, or not linux-x64)` };
    }
  }
  return { available: true };
}

/** Default cache root for optimised graphs: $XDG_CACHE_HOME/coldstart/ort or ~/.cache/coldstart/ort. */
export function defaultOrtCacheDir(env: Env): string {
  return join(env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache'), 'coldstart', 'ort');
}

export type Provider = 'auto' | 'cpu' | 'cuda';

export interface OnnxWarmupOptions {
  model: string;
  runs: number;
  shapes: Shapes;
  cacheDir?: string;
  /** false: neither read nor write the optimised-graph cache. */
  cache?: boolean;
  /** On a cache hit, also measure cold session creation in this run (else the cold time recorded with the entry is shown). */
  compare?: boolean;
  provider?: Provider;
  env: Env;
  signal?: AbortSignal;
  /** Progress lines for humans (stderr); never results. */
  progress?: (text: string) => void;
}

export interface OnnxInputInfo {
  name: string;
  type: string;
  shape: number[];
  declared: Array<number | string | null>;
  source: string;
}

export interface OnnxWarmup extends BackendWarmup {
  cached?: { coldSessionSeconds: number; cachedSessionSeconds: number; coldMeasured: 'this-run' | 'recorded'; recordedAt?: string };
}

interface CacheMeta {
  format: 1;
  key: Record<string, unknown>;
  keyHash: string;
  model: { path: string; sha256: string; bytes: number };
  optimized: { file: string; bytes: number; sha256: string };
  coldSessionSeconds: number;
  cachedSessionSeconds: number;
  createdAt: string;
}

const GRAPH_LEVEL = 'all' as const;

/**
 * A 75-byte ONNX model (one Relu, opset 13; onnx.helper). Creating a session from it first pays ORT's
 * once-per-process set-up (environment, logging, CPU feature probing), reported as its own `ort-init` step,
 * so cold and cached session creation are then compared on equal terms.
 */
const INIT_MODEL = Buffer.from(
  '08071209636f6c6473746172743a360a0c0a0178120179220452656c751204696e69745a0f0a0178120a0a08080112040a020801620f0a0179120a0a08080112040a02080142040a00100d',
  'hex',
);

function cleanOrtMessage(msg: string): string {
  let m = msg.split('\n')[0] ?? msg;
  m = m.replace(/^.*?\bfailed:\s*/, '');
  m = m.replace(/\/?\S*onnxruntime_src\S*:\d+\s+[^(]*\([^)]*\)\s*/g, '');
  m = m.replace(/^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*/, '');
  return m.trim().slice(0, 400);
}

/** Turns an ORT load failure into one line: corrupt, unsupported opset/IR, unknown op, or the cleaned ORT text. */
export function classifyLoadError(e: unknown, path: string, header: OnnxHeader | null, ortVersion: string): ColdstartError {
  if (isColdstartError(e)) return e;
  const raw = (e as Error)?.message ?? String(e);
  const msg = cleanOrtMessage(raw);
  const opsetTill = /support for domain (\S*) is till opset (\d+)/.exec(raw);
  if (opsetTill || /Opset \d+ is under development|opset.*not supported|Unsupported opset/i.test(raw)) {
    const domain = opsetTill?.[1] ?? 'ai.onnx';
    const used = header?.opsets[domain === 'ai.onnx' ? '' : domain] ?? header?.opsets[''];
    return new ColdstartError(
      'UNSUPPORTED',
      `${path}: unsupported opset${used ? ` ${used}` : ''} for ${domain}: onnxruntime-node ${ortVersion} supports up to opset ${opsetTill?.[2] ?? '?'}`,
      { hint: 'Re-export with a lower opset_version (e.g. 17), or upgrade onnxruntime-node.', cause: e },
    );
  }
  if (/Unsupported model IR version|IR version/i.test(raw)) {
    return new ColdstartError('UNSUPPORTED', `${path}: unsupported ONNX IR version${header?.irVersion ? ` ${header.irVersion}` : ''} for onnxruntime-node ${ortVersion}: ${msg}`, {
      hint: 'Re-export with an older onnx package, or upgrade onnxruntime-node.',
      cause: e,
    });
  }
  if (/Could not find an implementation|is not a registered function\/op|No Op registered/i.test(raw)) {
    return new ColdstartError('UNSUPPORTED', `${path}: uses an operator onnxruntime-node ${ortVersion} does not implement: ${msg}`, { cause: e });
  }
  if (/Protobuf parsing failed|parse.*model/i.test(raw)) {
    return new ColdstartError('CORRUPT_FILE', `${path}: onnxruntime could not parse the model (corrupt or not ONNX)`, { hint: 'Export the model again; check the file was copied completely.', cause: e });
  }
  if (/CUDA|cudnn|cublas|libcu/i.test(raw)) return new ColdstartError('NO_GPU', `${path}: CUDA execution provider failed: ${msg}`, { cause: e, hint: 'Use --provider cpu, or install CUDA 12 and cuDNN 9 for onnxruntime-node.' });
  return new ColdstartError('BAD_INPUT', `${path}: onnxruntime refused the model: ${msg}`, { cause: e });
}

function makeTensor(ort: OrtModule, meta: OrtValueMetadata, shape: number[]): OrtTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const type = meta.type ?? 'float32';
  let data: unknown;
  switch (type) {
    case 'float32': {
      const a = new Float32Array(n);
      fillFloats(a);
      data = a;
      break;
    }
    case 'float64': {
      const a = new Float64Array(n);
      fillFloats(a);
      data = a;
      break;
    }
    case 'float16': {
      const f = new Float32Array(n);
      fillFloats(f);
      data = Uint16Array.from(f, (x) => toHalf(x));
      break;
    }
    case 'int8':
      data = new Int8Array(n).fill(intFill(meta.name));
      break;
    case 'uint8':
      data = new Uint8Array(n).fill(intFill(meta.name));
      break;
    case 'int16':
      data = new Int16Array(n).fill(intFill(meta.name));
      break;
    case 'uint16':
      data = new Uint16Array(n).fill(intFill(meta.name));
      break;
    case 'int32':
      data = new Int32Array(n).fill(intFill(meta.name));
      break;
    case 'uint32':
      data = new Uint32Array(n).fill(intFill(meta.name));
      break;
    case 'int64':
      data = new BigInt64Array(n).fill(BigInt(intFill(meta.name)));
      break;
    case 'uint64':
      data = new BigUint64Array(n).fill(BigInt(intFill(meta.name)));
      break;
    case 'bool':
      data = new Uint8Array(n).fill(1);
      break;
    case 'string':
      data = Array.from({ length: n }, () => 'a');
      break;
    default:
      throw new ColdstartError('UNSUPPORTED', `input "${meta.name}" has type ${type}, which coldstart cannot fill with dummy data`);
  }
  return new ort.Tensor(type, data, shape);
}

/** Dummy feeds from the session's input metadata. */
export function dummyFeeds(ort: OrtModule, session: OrtSession, shapes: Shapes): { feeds: Record<string, OrtTensor>; inputs: OnnxInputInfo[] } {
  const metas: readonly OrtValueMetadata[] = session.inputMetadata ?? session.inputNames.map((name) => ({ name, isTensor: true }));
  const known = new Set<string>(metas.map((m) => m.name));
  for (const m of metas) for (const d of m.shape ?? []) if (typeof d === 'string') known.add(d);
  const unknown = Object.keys(shapes).filter((k) => !known.has(k));
  if (unknown.length > 0) {
    throw new ColdstartError('BAD_FLAG', `--shape: ${unknown.map((u) => JSON.stringify(u)).join(', ')} is neither an input nor a symbolic dimension of this model`, {
      hint: `Inputs: ${metas.map((m) => `${m.name}[${(m.shape ?? []).join(',')}]`).join(' ')}`,
    });
  }
  // An input's whole shape given with --shape also fixes its symbolic dims for the other inputs (input_ids=1x128 → attention_mask 1x128).
  const effective: Shapes = { ...shapes };
  for (const m of metas) {
    const whole = shapes[m.name];
    if (!whole) continue;
    (m.shape ?? []).forEach((d, i) => {
      if (typeof d === 'string' && d && !(d in shapes) && whole[i] !== undefined) effective[d] = [whole[i]!];
    });
  }
  const feeds: Record<string, OrtTensor> = {};
  const inputs: OnnxInputInfo[] = [];
  for (const m of metas) {
    if (!m.isTensor) throw new ColdstartError('UNSUPPORTED', `input "${m.name}" is not a tensor (sequence or map); coldstart can only feed tensors`);
    const declared = (m.shape ?? []).map((d) => (typeof d === 'number' && d < 0 ? null : d));
    const { shape, source } = resolveShape(m.name, declared, effective);
    feeds[m.name] = makeTensor(ort, m, shape);
    inputs.push({ name: m.name, type: m.type ?? 'float32', shape, declared, source });
  }
  return { feeds, inputs };
}

function maxRelDiff(a: OrtTensor, b: OrtTensor): number {
  if (a.type !== b.type || a.dims.join() !== b.dims.join() || a.data.length !== b.data.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.data.length; i++) {
    const x = a.data[i];
    const y = b.data[i];
    if (typeof x === 'number' && typeof y === 'number') {
      if (Number.isNaN(x) && Number.isNaN(y)) continue;
      const d = Math.abs(x - y) / (1e-5 + Math.abs(x));
      if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
    } else if (x !== y) return Infinity;
  }
  return worst;
}

function cacheKey(sha: string, ortVersion: string, provider: string): { key: Record<string, unknown>; hash: string } {
  const key = { format: 1, modelSha256: sha, ort: ortVersion, provider, graphOptimizationLevel: GRAPH_LEVEL, platform: process.platform, arch: process.arch, cpu: cpus()[0]?.model ?? 'unknown' };
  return { key, hash: createHash('sha256').update(JSON.stringify(key)).digest('hex').slice(0, 16) };
}

function readMeta(path: string, keyHash: string): CacheMeta | null {
  try {
    const m = JSON.parse(readInputText(path, 'ONNX cache meta', 1 << 20)) as CacheMeta;
    if (m.format !== 1 || m.keyHash !== keyHash) return null;
    const f = safeJoin(dirname(path), m.optimized.file, `${path}: optimized.file`);
    if (!existsSync(f) || statSync(f).size !== m.optimized.bytes) return null;
    return m;
  } catch {
    return null;
  }
}

function writable(dir: string): string | null {
  try {
    makeDirs(dir);
    accessSync(dir, constants.W_OK);
    return null;
  } catch (e) {
    return fromSystemError(e, dir, 'write').message;
  }
}

/** Resolves `model`: an .onnx/.ort file, or a directory holding exactly one (model.onnx preferred). */
export function resolveOnnxPath(model: string, cwd = process.cwd()): string {
  const p = resolve(cwd, model);
  const st = statInput(p, model);
  if (!st.isDirectory()) return p;
  const files = readdirSync(p).filter((f) => /\.(onnx|ort)$/i.test(f));
  const preferred = files.find((f) => f === 'model.onnx') ?? (files.length === 1 ? files[0] : undefined);
  if (preferred) return join(p, preferred);
  if (files.length === 0) throw new ColdstartError('NOT_FOUND', `${model}: no .onnx file in this directory`, { hint: 'Pass the .onnx file, or use --framework for a PyTorch/transformers model directory.' });
  throw new ColdstartError('AMBIGUOUS', `${model}: several .onnx files (${files.join(', ')}); pass one of them`);
}

async function releaseQuietly(s: OrtSession | null): Promise<void> {
  try {
    await s?.release();
  } catch {
    /* already released */
  }
}

export async function warmupOnnx(o: OnnxWarmupOptions): Promise<OnnxWarmup> {
  const path = resolveOnnxPath(o.model);
  const header = readOnnxHeader(path);
  const { ort, version: ortVersion, path: ortPath } = await loadOrt(o.env);
  try {
    ort.env.logLevel = 'fatal';
  } catch {
    /* read-only in some builds */
  }
  const progress = o.progress ?? (() => {});

  // Execution provider: CPU always works; CUDA when ORT's CUDA provider is present (auto falls back, with the reason).
  const want = o.provider ?? 'auto';
  const cuda = cudaProviderStatus(ort, ortPath);
  let provider: 'cpu' | 'cuda' = want === 'cuda' || (want === 'auto' && cuda.available) ? 'cuda' : 'cpu';
  if (want === 'cuda' && !cuda.available) {
    throw new ColdstartError('NO_GPU', `--provider cuda: ORT's CUDA execution provider is not available: ${cuda.reason}`, { hint: `${ORT_INSTALL_HINT} Or use --provider cpu.` });
  }
  const notes: string[] = [];
  if (provider === 'cpu' && want === 'auto') notes.push(`CUDA execution provider not available: ${cuda.reason}; used CPU`);

  const ti = new Stopwatch();
  try {
    await (await ort.InferenceSession.create(new Uint8Array(INIT_MODEL), { executionProviders: ['cpu'], logSeverityLevel: 4 })).release();
  } catch (e) {
    throw new ColdstartError('MISSING_DEPENDENCY', `onnxruntime-node ${ortVersion} cannot create any session: ${cleanOrtMessage((e as Error)?.message ?? String(e))}`, { hint: ORT_INSTALL_HINT, cause: e });
  }
  const initSeconds = ti.elapsed();
  const sw = new Stopwatch();
  const sha = await sha256File(path, o.signal);
  const hashSeconds = sw.elapsed();
  const sessionOptions = (extra: OrtSessionOptions = {}): OrtSessionOptions => ({
    executionProviders: provider === 'cuda' ? ['cuda', 'cpu'] : ['cpu'],
    graphOptimizationLevel: GRAPH_LEVEL,
    // Fatal only: failures come back as one clean line from coldstart, not as ORT's coloured log.
    logSeverityLevel: 4,
    ...extra,
  });
  const create = async (file: string, extra: OrtSessionOptions = {}): Promise<{ session: OrtSession; seconds: number }> => {
    o.signal?.throwIfAborted();
    const t = new Stopwatch();
    try {
      const session = await ort.InferenceSession.create(file, sessionOptions(extra));
      return { session, seconds: t.elapsed() };
    } catch (e) {
      throw classifyLoadError(e, file === path ? o.model : file, file === path ? header : null, ortVersion);
    }
  };

  const useCache = o.cache !== false;
  const cacheRoot = o.cacheDir ?? defaultOrtCacheDir(o.env);
  let { key, hash: keyHash } = cacheKey(sha, ortVersion, provider);
  let entryDir = join(cacheRoot, `${sha.slice(0, 16)}-${keyHash}`);
  let meta = useCache ? readMeta(join(entryDir, 'meta.json'), keyHash) : null;
  const cacheInfo: Record<string, unknown> = { enabled: useCache, dir: cacheRoot, entry: useCache ? entryDir : null, key };

  let session: OrtSession | null = null;
  let second: OrtSession | null = null;
  const steps: OnnxWarmup['steps'] = [{ name: 'ort-init', seconds: initSeconds, note: 'once per process: ORT environment set-up' }];
  let cached: OnnxWarmup['cached'];
  try {
    let tmp: string | null = null;
    let sessionSeconds = 0;
    let fromCache = false;
    if (meta) {
      const file = join(entryDir, meta.optimized.file);
      progress(`loading cached optimised graph ${file}`);
      try {
        // The bytes must be the ones that were verified when the entry was written.
        const tv = new Stopwatch();
        const got = await sha256File(file, o.signal);
        cacheInfo.verifySeconds = tv.elapsed();
        if (got !== meta.optimized.sha256) throw new Error(`sha256 ${got.slice(0, 12)}… differs from the recorded ${meta.optimized.sha256.slice(0, 12)}…`);
        const r = await create(file, { graphOptimizationLevel: 'disabled' });
        session = r.session;
        sessionSeconds = r.seconds;
        fromCache = true;
        steps.push({ name: 'session-create', seconds: r.seconds, note: `cached optimised graph (${provider})` });
      } catch (e) {
        if (isColdstartError(e) && e.code === 'NO_GPU') throw e;
        notes.push(`cached graph ${file} rejected (${(e as Error).message}); rebuilt it`);
        rmSync(entryDir, { recursive: true, force: true });
        meta = null;
      }
    }
    if (!session) {
      const cantWrite = useCache ? writable(entryDir) : 'cache disabled (--no-cache)';
      if (useCache && cantWrite) notes.push(`optimised graph not cached: ${cantWrite}`);
      if (!cantWrite) {
        tmp = tempPathFor(join(entryDir, 'model.optimized.onnx'));
        trackTemp(tmp);
      }
      progress(`creating session (${provider}, graph optimisation ${GRAPH_LEVEL})`);
      let r: { session: OrtSession; seconds: number };
      try {
        r = await create(path, tmp ? { optimizedModelFilePath: tmp } : {});
      } catch (e) {
        if (provider === 'cuda' && want === 'auto' && isColdstartError(e) && e.code === 'NO_GPU') {
          notes.push(`CUDA execution provider failed (${e.message}); used CPU`);
          provider = 'cpu';
          ({ key, hash: keyHash } = cacheKey(sha, ortVersion, provider));
          entryDir = join(cacheRoot, `${sha.slice(0, 16)}-${keyHash}`);
          cacheInfo.entry = entryDir;
          cacheInfo.key = key;
          if (tmp) {
            removeTemp(tmp);
            makeDirs(entryDir);
            tmp = tempPathFor(join(entryDir, 'model.optimized.onnx'));
            trackTemp(tmp);
          }
          r = await create(path, tmp ? { optimizedModelFilePath: tmp } : {});
        } else throw e;
      }
      session = r.session;
      sessionSeconds = r.seconds;
      steps.push({ name: 'session-create', seconds: r.seconds, note: `cold: graph optimisation ${GRAPH_LEVEL} (${provider})` });
    }

    const { feeds, inputs } = dummyFeeds(ort, session, o.shapes);
    const runOnce = async (s: OrtSession) => {
      o.signal?.throwIfAborted();
      try {
        return await s.run(feeds);
      } catch (e) {
        const msg = cleanOrtMessage((e as Error)?.message ?? String(e));
        throw new ColdstartError('BAD_INPUT', `${o.model}: inference on dummy inputs failed: ${msg}`, {
          hint: `Inputs were ${inputs.map((i) => `${i.name}=${i.shape.join('x') || 'scalar'}`).join(' ')}; set symbolic sizes with --shape NAME=1x128.`,
          cause: e,
        });
      }
    };
    progress('first run');
    const t1 = new Stopwatch();
    const firstOut = await runOnce(session);
    const firstSeconds = t1.elapsed();
    steps.push({ name: 'first-run', seconds: firstSeconds });
    const samples: number[] = [];
    for (let i = 0; i < o.runs; i++) {
      const t = new Stopwatch();
      await runOnce(session);
      samples.push(t.elapsed());
    }

    // Cache: verify the optimised graph ORT wrote (loads, same outputs), then move it into place.
    if (tmp) {
      const file = 'model.optimized.onnx';
      try {
        if (!existsSync(tmp) || statSync(tmp).size === 0) throw new Error('onnxruntime wrote no optimised graph');
        if (!tmp.endsWith('.ort')) readOnnxHeader(tmp);
        const r2 = await create(tmp, { graphOptimizationLevel: 'disabled' });
        second = r2.session;
        const out2 = await runOnce(second);
        const diffs = Object.keys(firstOut).map((k) => (out2[k] ? maxRelDiff(firstOut[k]!, out2[k]!) : Infinity));
        const worst = Math.max(0, ...diffs);
        if (!(worst <= 1e-3)) throw new ColdstartError('VERIFY_MISMATCH', `optimised graph gives different outputs (max relative difference ${worst})`);
        const bytes = statSync(tmp).size;
        const osha = await sha256File(tmp);
        renameSync(tmp, join(entryDir, file));
        untrackTemp(tmp);
        tmp = null;
        const m: CacheMeta = {
          format: 1,
          key,
          keyHash,
          model: { path, sha256: sha, bytes: header.sizeBytes },
          optimized: { file, bytes, sha256: osha },
          coldSessionSeconds: sessionSeconds,
          cachedSessionSeconds: r2.seconds,
          createdAt: new Date().toISOString(),
        };
        writeFileAtomic(join(entryDir, 'meta.json'), `${JSON.stringify(m, null, 2)}\n`);
        cached = { coldSessionSeconds: sessionSeconds, cachedSessionSeconds: r2.seconds, coldMeasured: 'this-run' };
        Object.assign(cacheInfo, { hit: false, written: join(entryDir, file), optimizedBytes: bytes, verified: true, maxRelativeDiff: worst });
      } catch (e) {
        notes.push(`optimised graph not cached: ${(e as Error).message}`);
        Object.assign(cacheInfo, { hit: false, written: null, verified: false, reason: (e as Error).message });
      } finally {
        if (tmp) {
          removeTemp(tmp);
        }
      }
    } else if (fromCache && meta) {
      Object.assign(cacheInfo, { hit: true, file: join(entryDir, meta.optimized.file), optimizedBytes: meta.optimized.bytes, createdAt: meta.createdAt });
      if (o.compare) {
        const r0 = await create(path);
        second = r0.session;
        cached = { coldSessionSeconds: r0.seconds, cachedSessionSeconds: sessionSeconds, coldMeasured: 'this-run' };
      } else {
        cached = { coldSessionSeconds: meta.coldSessionSeconds, cachedSessionSeconds: sessionSeconds, coldMeasured: 'recorded', recordedAt: meta.createdAt };
      }
    } else {
      Object.assign(cacheInfo, { hit: false, written: null });
    }

    return {
      steps,
      firstSeconds,
      startupSeconds: initSeconds + sessionSeconds + firstSeconds,
      ...(samples.length > 0 ? { steady: summarize(samples) } : {}),
      ...(cached ? { cached } : {}),
      details: {
        model: path,
        file: basename(path),
        format: header.format,
        bytes: header.sizeBytes,
        sha256: sha,
        hashSeconds,
        irVersion: header.irVersion,
        opsets: header.opsets,
        producer: header.producerName ? `${header.producerName} ${header.producerVersion ?? ''}`.trim() : null,
        ort: { module: ortModuleName(o.env), version: ortVersion },
        provider,
        cudaProvider: cuda,
        inputs,
        outputs: Object.fromEntries(Object.entries(firstOut).map(([k, v]) => [k, { type: v.type, shape: [...v.dims] }])),
        cache: cacheInfo,
        notes,
      },
    };
  } finally {
    await releaseQuietly(second);
    await releaseQuietly(session);
  }
}
