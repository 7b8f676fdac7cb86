/**
 * Docs from the code: each README/docs example that scripts/docs-examples.mjs writes is run again here, and its
 * shape (table header and rows, line kinds with numbers and paths masked, JSON keys, exit code) must match the
 * committed block. Numbers may differ; a renamed phase, a new line, a changed exit code or a missing block fail.
 * Regenerate with `npm run build && node scripts/docs-examples.mjs`.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
// @ts-expect-error: a plain ES module script (no type declarations)
import { EXAMPLES, exitOf, readBlock, runExample, shapeOf } from '../../scripts/docs-examples.mjs';

interface Example {
  name: string;
  file: string;
  shape: string;
}

const home = mkdtempSync(join(tmpdir(), 'cs-docs-test-'));
afterAll(() => rmSync(home, { recursive: true, force: true }));

describe('README and docs examples match what the commands print', () => {
  for (const ex of EXAMPLES as Example[]) {
    it(`${ex.name} (${ex.file})`, () => {
      const committed = readBlock(ex) as string | null;
      expect(committed, `${ex.file} has no <!-- example: ${ex.name} --> block`).not.toBeNull();
      const fresh = runExample(ex, home) as { code: number; text: string };
      expect(fresh.code).toBe(exitOf(committed));
      expect(shapeOf(ex.shape, fresh.text)).toEqual(shapeOf(ex.shape, committed));
      // Never an empty example.
      expect((shapeOf(ex.shape, committed) as unknown[]).length).toBeGreaterThan(0);
    }, 300_000);
  }

  it('a drifted block is caught: a renamed phase row, a changed exit code', () => {
    const ex = (EXAMPLES as Example[]).find((e) => e.name === 'profile-demo')!;
    const committed = readBlock(ex) as string;
    const renamed = committed.replace('│ gpu-load    │', '│ gpu-loads   │');
    expect(shapeOf('table', renamed)).not.toEqual(shapeOf('table', committed));
    expect(exitOf(`${committed}\n[exit 2]`)).toBe(2);
    // Numbers alone never count as drift.
    expect(shapeOf('lines', '$ x\n  read 9.21 ms · write 4.88 ms (8.2 kB/s)')).toEqual(shapeOf('lines', '$ x\n  read 11.0 s · write 1.00 ms (124 MB/s)'));
  });
});
