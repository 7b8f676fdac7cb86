import { inject } from 'vitest';
import { findPeerPython } from './find-python.js';
import { spawnSync } from 'node:child_process';

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
