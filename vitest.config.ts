import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';
import LongestFirst from './test/helpers/sequencer.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/device/**', 'node_modules/**'],
    // Deadlines a loaded 2-core machine holds (other jobs on the same cores: a torch import alone took 20–40 s
    // there); a passing test never waits for them, a hanging one fails instead of stalling the run.
    testTimeout: 300_000,
    hookTimeout: 240_000,
    pool: 'forks',
    // Most test time is spent waiting on child processes (Python peers, the CLI, fake servers), not on this CPU:
    // one more worker than cores overlaps those waits (vitest's default, cores - 1, runs files one by one on 2 cores).
    maxWorkers: Math.min(availableParallelism() + 1, 8),
    // The long files start first (a clean clone has no results cache to order them by).
    sequence: { sequencer: LongestFirst },
    // Finds the Python peers once; fails the run without them unless COLDSTART_SKIP_PEERS=1.
    globalSetup: ['test/helpers/peers-setup.ts'],
    reporters: ['default', './test/helpers/skip-count-reporter.ts'],
  },
});
