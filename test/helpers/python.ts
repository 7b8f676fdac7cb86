import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

/**
 * The Python with the interop peers (torch, safetensors, transformers, huggingface_hub, onnx, onnxruntime):
 * $COLDSTART_PYTHON, else the venv scripts/pyenv.sh makes. CI sets COLDSTART_REQUIRE_PEERS=1, and then a
 * missing peer fails the suite instead of skipping the interop tests.
 */
export function peerPython(): string | null {
  const candidates = [process.env.COLDSTART_PYTHON, join(process.env.COLDSTART_VENV ?? join(homedir(), '.cache', 'coldstart-venv'), 'bin', 'python')].filter(
    (p): p is string => !!p,
  );
  for (const p of candidates) {
    if (existsSync(p)) {
      const r = spawnSync(p, ['-c', 'import torch, safetensors, transformers, huggingface_hub, onnx, onnxruntime'], { encoding: 'utf8' });
      if (r.status === 0) return p;
    }
  }
  if (process.env.COLDSTART_REQUIRE_PEERS === '1') throw new Error('COLDSTART_REQUIRE_PEERS=1 but no Python with the peers was found; run scripts/pyenv.sh');
  return null;
}

/** Runs a Python snippet with the peers; throws with its stderr on failure. */
export function runPython(py: string, code: string, args: string[] = [], env: Record<string, string> = {}): string {
  const r = spawnSync(py, ['-c', code, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`python failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}
