/**
 * What the caches in DIR were filled for: the server's Python and its torch/triton/vLLM, the GPU (name, compute
 * capability, driver, CUDA) — the compile fingerprint `warmup --persist` files its entries under
 * (warmup/compile/store.ts), probed without importing torch (package metadata in the server's interpreter, the GPU
 * from the native probe). Stored beside the caches; a later run diffs against it to explain a miss.
 */
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { basename, delimiter, isAbsolute, join, resolve } from 'node:path';
import { readInputText } from '../core/files.js';
import { writeFileAtomic } from '../core/atomic.js';
import { loadNative } from '../native.js';
import { probePython } from '../python/runner.js';
import { describeDifference, diffFingerprints, fingerprintKey, normalizeFingerprint, type CompileFingerprint } from '../warmup/compile/store.js';

type Env = Record<string, string | undefined>;

export const FINGERPRINT_FILE = 'fingerprint.json';
export const FINGERPRINT_SCHEMA = 'coldstart/optimize-caches@1';

/** The packages whose versions key the engines' caches. */
const PACKAGES = ['torch', 'triton', 'vllm', 'flashinfer', 'deep_gemm', 'tensorrt', 'onnxruntime'] as const;

const isPython = (p: string) => /^python[\d.]*$/.test(basename(p));

function onPath(cmd: string, cwd: string, env: Env): string | null {
  if (cmd.includes('/')) {
    const p = isAbsolute(cmd) ? cmd : resolve(cwd, cmd);
    return existsSync(p) ? p : null;
  }
  for (const d of (env.PATH ?? '').split(delimiter)) {
    if (!d) continue;
    const p = join(d, cmd);
    if (existsSync(p) && statSync(p).isFile()) return p;
  }
  return null;
}

/** The first line of a script, when it starts with #!. */
function shebang(path: string): string[] | null {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(256);
    const n = readSync(fd, b, 0, b.length, 0);
    const line = b.subarray(0, n).toString('utf8').split('\n')[0] ?? '';
    return line.startsWith('#!') ? line.slice(2).trim().split(/\s+/) : null;
  } finally {
    closeSync(fd);
  }
}

/**
 * The Python the server runs in: the command itself (`python3 serve.py`), the interpreter of its #! line
 * (`vllm serve …` from a venv), or null when the server is not a Python program.
 */
export function serverPython(command: readonly string[], cwd: string, env: Env): string | null {
  const first = command[0];
  if (!first) return null;
  if (isPython(first)) return first;
  const p = onPath(first, cwd, env);
  if (!p) return null;
  try {
    const sb = shebang(p);
    if (!sb) return null;
    if (isPython(sb[0]!)) return sb[0]!;
    if (basename(sb[0]!) === 'env') return sb.slice(1).find((a) => !a.startsWith('-') && isPython(a)) ?? null;
  } catch {
    /* unreadable: not ours to judge */
  }
  return null;
}

export interface ServerFingerprint {
  fingerprint: CompileFingerprint;
  key: string;
  /** Versions of the packages that key the caches (null: not installed in that interpreter). */
  packages: Record<string, string | null>;
  /** The interpreter probed, and how it was chosen. */
  python: { executable: string | null; from: string };
  notes: string[];
}

/** The fingerprint of the server's environment, as its caches would be keyed. */
export async function probeServerFingerprint(command: readonly string[], cwd: string, env: Env, extra: { model?: string | null; dtype?: string | null; engine?: string | null } = {}): Promise<ServerFingerprint> {
  const notes: string[] = [];
  const py = serverPython(command, cwd, env);
  const from = py ? `the server's interpreter (${py})` : `not a Python server: ${env.COLDSTART_PYTHON ? '$COLDSTART_PYTHON' : 'python3'} on PATH`;
  const info = await probePython(py ? { ...env, COLDSTART_PYTHON: py } : env, PACKAGES);
  if (!info.found) notes.push(`no Python found to read package versions (${info.reason}): python, torch, triton and vllm are unknown in the fingerprint`);
  let gpu = 'cpu';
  let cc: string | null = null;
  let driver: string | null = null;
  let cuda: string | null = null;
  const n = loadNative();
  if (n.ok) {
    const probe = await n.addon.cudaProbe({ context: false }).catch(() => null);
    const d = probe?.available ? probe.devices[0] : undefined;
    if (d) {
      gpu = d.name;
      cc = d.computeCapability;
      driver = probe?.nvml.driverVersion ?? null;
      cuda = probe?.driverVersion ? `${Math.floor(probe.driverVersion / 1000)}.${Math.floor((probe.driverVersion % 1000) / 10)}` : null;
    }
  } else notes.push(`GPU not fingerprinted: the native addon is unavailable (${n.reason})`);
  const fingerprint = normalizeFingerprint({
    gpu,
    'compute capability': cc,
    driver,
    cuda,
    python: info.version,
    torch: info.packages.torch,
    triton: info.packages.triton,
    vllm: info.packages.vllm,
    model: extra.model ?? null,
    device: gpu === 'cpu' ? 'cpu' : 'cuda',
    dtype: extra.dtype ?? null,
    backend: extra.engine ?? 'server',
  });
  return { fingerprint, key: fingerprintKey(fingerprint), packages: info.packages, python: { executable: info.executable ?? null, from }, notes };
}

export interface StoredFingerprint {
  schema: typeof FINGERPRINT_SCHEMA;
  createdAt: string;
  key: string;
  fingerprint: CompileFingerprint;
  packages: Record<string, string | null>;
  command: string[];
}

/** The fingerprint stored beside the caches; null when there is none or it cannot be used (said in `why`). */
export function readStoredFingerprint(dir: string): { stored: StoredFingerprint | null; why: string | null } {
  const p = join(dir, FINGERPRINT_FILE);
  if (!existsSync(p)) return { stored: null, why: null };
  try {
    const j = JSON.parse(readInputText(p, 'optimize fingerprint', 1 << 20)) as Partial<StoredFingerprint>;
    if (j.schema !== FINGERPRINT_SCHEMA || !j.fingerprint || typeof j.fingerprint !== 'object') return { stored: null, why: `${p} is not ${FINGERPRINT_SCHEMA}` };
    const fingerprint = normalizeFingerprint(j.fingerprint as Record<string, unknown>);
    return { stored: { ...(j as StoredFingerprint), fingerprint, key: fingerprintKey(fingerprint), packages: j.packages ?? {} }, why: null };
  } catch (e) {
    return { stored: null, why: `${p} cannot be read (${(e as Error).message.split('\n')[0]})` };
  }
}

export function writeStoredFingerprint(dir: string, f: ServerFingerprint, command: readonly string[]): StoredFingerprint {
  const s: StoredFingerprint = { schema: FINGERPRINT_SCHEMA, createdAt: new Date().toISOString(), key: f.key, fingerprint: f.fingerprint, packages: f.packages, command: [...command] };
  writeFileAtomic(join(dir, FINGERPRINT_FILE), `${JSON.stringify(s, null, 2)}\n`);
  return s;
}

/** What changed since the caches were filled ("torch 2.11.0 → 2.12.0", "flashinfer 0.2.1 → 0.2.3"), in order. */
export function fingerprintChanges(stored: StoredFingerprint, now: ServerFingerprint): string[] {
  const out = diffFingerprints(stored.fingerprint, now.fingerprint).map(describeDifference);
  for (const p of ['flashinfer', 'deep_gemm', 'tensorrt', 'onnxruntime']) {
    const was = stored.packages[p] ?? null;
    const is = now.packages[p] ?? null;
    if (was !== is) out.push(`${p} ${was ?? 'none'} → ${is ?? 'none'}`);
  }
  return out;
}
