import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/device/**', 'node_modules/**'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Finds the Python peers once; fails the run without them unless COLDSTART_SKIP_PEERS=1.
    globalSetup: ['test/helpers/peers-setup.ts'],
    reporters: ['default', './test/helpers/skip-count-reporter.ts'],
  },
});
