import type { Reporter, TestModule } from 'vitest/node';

/**
 * Prints, after the summary, how many tests were skipped and why that was allowed: under COLDSTART_SKIP_PEERS=1 a
 * run without the Python peers passes, but never silently.
 */
export default class SkipCountReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let skipped = 0;
    const files = new Set<string>();
    for (const m of testModules) {
      for (const t of m.children.allTests()) {
        if (t.result().state === 'skipped') {
          skipped++;
          files.add(m.moduleId.replace(`${process.cwd()}/`, ''));
        }
      }
    }
    if (process.env.COLDSTART_SKIP_PEERS === '1') {
      process.stderr.write(`\ncoldstart: COLDSTART_SKIP_PEERS=1: ${skipped} test(s) skipped (the interop tests did not run) in ${files.size} file(s)\n`);
    } else if (skipped) {
      process.stderr.write(`\ncoldstart: ${skipped} test(s) skipped in: ${[...files].join(', ')}\n`);
    }
  }
}
