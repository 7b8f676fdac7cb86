import { inject } from 'vitest';
import { findPeerPython } from './find-python.js';
import { spawn, spawnSync } from 'node:child_process';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

export { findPeerPython };

/**
 * The peers' Python for this run, as found once by the globalSetup. null only under COLDSTART_SKIP_PEERS=1 (the
 * tests that need it then skip, and are counted at the end of the run).
 */
export function peerPython(): string | null {
  const py = inject('peerPython');
  if (py === undefined) return findPeerPython(); // a file run without the config's globalSetup
  return py;
}

/** Runs a Python snippet with the peers; throws with its stderr on failure. */
export function runPython(py: string, code: string, args: string[] = [], env: Record<string, string> = {}): string {
  const r = spawnSync(py, ['-c', code, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`python failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

export interface PythonWorker {
  /** Runs a snippet as `python -c code args…` would (env added for its run); its print() output, or throws with the traceback. */
  run(code: string, args?: string[], env?: Record<string, string>): Promise<string>;
  /** Ends the process (stdin closed); safe to call twice. */
  close(): Promise<void>;
}

/**
 * One Python process for a test file's snippets (test/helpers/py_worker.py): `import torch` costs seconds on a
 * loaded 2-core machine, and a file that checks several outputs against torch pays it once instead of per snippet.
 * `env` applies to the whole process (read at import time by transformers and the Hub client). Snippets run one
 * at a time, in the order sent. Close it in afterAll.
 */
export function pythonWorker(py: string, env: Record<string, string> = {}): PythonWorker {
  const script = fileURLToPath(new URL('./py_worker.py', import.meta.url));
  const child = spawn(py, [script], { env: { ...process.env, ...env }, stdio: ['pipe', 'inherit', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr = (stderr + String(d)).slice(-20_000)));
  const waiting: Array<{ resolve: (s: string) => void; reject: (e: Error) => void }> = [];
  let exited: Error | null = null;
  const fail = (e: Error) => {
    exited = e;
    for (const w of waiting.splice(0)) w.reject(e);
  };
  child.on('error', fail);
  child.on('exit', (code, signal) => fail(new Error(`python worker exited (${signal ?? code}): ${stderr}`)));
  let buf = '';
  (child.stdio[3] as Readable).on('data', (d: Buffer) => {
    buf += String(d);
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const answer = JSON.parse(buf.slice(0, nl)) as { ok: boolean; stdout?: string; error?: string };
      buf = buf.slice(nl + 1);
      const w = waiting.shift()!;
      if (answer.ok) w.resolve(answer.stdout ?? '');
      else w.reject(new Error(`python failed: ${answer.error}\n${stderr}`));
    }
  });
  return {
    run(code, args = [], runEnv = {}) {
      if (exited) return Promise.reject(exited);
      return new Promise((resolve, reject) => {
        waiting.push({ resolve, reject });
        child.stdin!.write(JSON.stringify({ code, args, env: runEnv }) + '\n');
      });
    },
    close() {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
      return new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.stdin!.end();
      });
    },
  };
}
