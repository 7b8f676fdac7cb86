import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

/**
 * The Python with the interop peers (torch, safetensors, transformers, huggingface_hub, onnx, onnxruntime):
 * $COLDSTART_PYTHON, else the venv scripts/pyenv.sh makes; null when neither works. Called once per run by
 * test/helpers/peers-setup.ts (globalSetup), which fails the run when it is null unless COLDSTART_SKIP_PEERS=1.
 */
export function findPeerPython(): string | null {
  const candidates = [process.env.COLDSTART_PYTHON, join(process.env.COLDSTART_VENV ?? join(homedir(), '.cache', 'coldstart-venv'), 'bin', 'python')].filter(
    (p): p is string => !!p,
  );
  for (const p of candidates) {
    if (existsSync(p)) {
      const r = spawnSync(p, ['-c', 'import torch, safetensors, transformers, huggingface_hub, onnx, onnxruntime'], { encoding: 'utf8' });
      if (r.status === 0) return p;
    }
  }
  return null;
}

