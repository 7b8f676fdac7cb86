/**
 * prefetch --stack: the files a Python inference stack reads while it starts — its interpreter's standard library
 * and the packages it imports (torch, the nvidia-* CUDA libraries, triton, transformers, vLLM…) — so that a prefetch
 * started beside the server on a cold node reads them first, before the weights. Prefetching only the weights
 * there slowed the stack's own imports by as much as it saved on the load (issue #25: import 9.6 s → 18.0 s on the
 * H200 while the load fell 22.3 s → 12.9 s). Where they live is asked of that interpreter without importing
 * anything (src/python/stack_files.py).
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { ColdstartError } from '../core/errors.js';
import { walkFiles } from '../core/paths.js';
import { eventOf, runScript, scriptFailure } from '../python/runner.js';

type Env = Record<string, string | undefined>;

/** In the order a stack imports them; the ones not installed are skipped. */
export const STACK_PACKAGES = ['numpy', 'torch', 'nvidia', 'triton', 'safetensors', 'tokenizers', 'huggingface_hub', 'transformers', 'accelerate', 'flash_attn', 'xformers', 'flashinfer', 'vllm', 'sglang', 'onnxruntime'] as const;

/** Folders a start never reads: tests, headers, tools of the standard library, other installs' packages. */
const SKIP_DIRS = new Set(['site-packages', 'dist-packages', 'test', 'tests', 'include', 'idlelib', 'tkinter', 'turtledemo', 'ensurepip', 'lib2to3', '__phello__']);
const SKIP_FILE = /\.(h|hpp|cuh|a|lib|pyi|md|txt)$/i;
const SHARED_LIB = /\.so(\.\d+)*$/;

export interface StackFiles {
  python: string;
  version: string;
  /** In prefetch order: the standard library, then each package (its shared libraries first). */
  files: string[];
  bytes: number;
  packages: Array<{ name: string; files: number; bytes: number }>;
}

function filesUnder(root: string): Array<{ path: string; bytes: number }> {
  const out: Array<{ path: string; bytes: number }> = [];
  for (const rel of walkFiles(root, { skipUnreadable: true })) {
    const parts = rel.split('/');
    if (parts.slice(0, -1).some((p) => SKIP_DIRS.has(p)) || SKIP_FILE.test(rel)) continue;
    const path = join(root, rel);
    try {
      const st = statSync(path);
      if (st.isFile() && st.size > 0) out.push({ path, bytes: st.size });
    } catch {
      /* gone or unreadable: nothing to read ahead */
    }
  }
  // Shared libraries first: loading them is what a cold import waits for most.
  return [...out.filter((f) => SHARED_LIB.test(f.path)), ...out.filter((f) => !SHARED_LIB.test(f.path))];
}

/** The stack's files for the interpreter `python` (a path or a name on PATH). */
export async function stackFiles(python: string, env: Env, signal?: AbortSignal): Promise<StackFiles> {
  const r = await runScript({ ...env, COLDSTART_PYTHON: python }, 'stack_files.py', STACK_PACKAGES, { timeoutMs: 60_000, signal, what: `prefetch --stack ${python}` });
  const ev = eventOf(r, 'stack') as undefined | { executable: string; version: string; stdlib: string[]; packages: Record<string, string[]> };
  if (!ev) throw scriptFailure(r, `prefetch --stack ${python}`, { seconds: 60, hint: 'Check that the interpreter starts: run it with -c pass.' });
  const seen = new Set<string>();
  const files: string[] = [];
  const packages: StackFiles['packages'] = [];
  let bytes = 0;
  const add = (name: string, roots: readonly string[]) => {
    let n = 0;
    let b = 0;
    for (const root of roots) {
      const st = statSync(root, { throwIfNoEntry: false });
      const list = st?.isFile() ? [{ path: root, bytes: st.size }] : filesUnder(root);
      for (const f of list) {
        if (seen.has(f.path)) continue;
        seen.add(f.path);
        files.push(f.path);
        n++;
        b += f.bytes;
      }
    }
    if (n) packages.push({ name, files: n, bytes: b });
    bytes += b;
  };
  add('python', ev.stdlib);
  for (const name of STACK_PACKAGES) add(name, ev.packages[name] ?? []);
  if (!files.length) throw new ColdstartError('NOT_FOUND', `prefetch --stack ${python}: found no files of its standard library or packages`, { hint: 'Name the interpreter your server runs (e.g. --stack /opt/venv/bin/python).' });
  return { python: ev.executable, version: ev.version, files, bytes, packages };
}
