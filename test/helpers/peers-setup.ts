import type { TestProject } from 'vitest/node';
import { findPeerPython } from './find-python.js';

declare module 'vitest' {
  export interface ProvidedContext {
    peerPython: string | null;
  }
}

/**
 * vitest globalSetup: finds the Python with the interop peers once for the whole run (each check imports torch,
 * seconds per spawn) and hands it to every test file. Without the peers the run fails here, before any test, unless
 * COLDSTART_SKIP_PEERS=1 opts out (the skip-count reporter then prints how many tests did not run).
 */
export default function setup(project: TestProject): void {
  const py = findPeerPython();
  if (!py && process.env.COLDSTART_SKIP_PEERS !== '1') {
    throw new Error(
      'the Python interop peers are not available (no $COLDSTART_PYTHON and no working venv from scripts/pyenv.sh). ' +
        'Run `npm test` (it builds the venv), or set COLDSTART_SKIP_PEERS=1 to run without the interop tests.',
    );
  }
  project.provide('peerPython', py);
}
