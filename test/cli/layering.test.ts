/**
 * The house rules the CLI layer relies on: data flows command → capability → lower folders, so no capability imports
 * src/cli or src/commands; engines never print (progress and lines go to the command through callbacks); the
 * commands of issue #23's profile area are thin adapters (≤ 150 lines).
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** The folders a `from '…'` or `import('…')` of a file reaches, relative to src/. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:from\s+|import\()\s*'(\.[^']+)'/g)].map((m) => m[1]!);
  return specs.map((s) => relative(SRC, join(file, '..', s)));
}

describe('layering', () => {
  it('no capability (nor core, formats, platform, python, models) imports src/cli or src/commands', () => {
    const upward: string[] = [];
    for (const f of tsFiles(SRC)) {
      const at = relative(SRC, f);
      if (at.startsWith('cli/') || at.startsWith('commands/') || !at.includes('/')) continue;
      for (const i of importsOf(f)) if (i.startsWith('cli/') || i.startsWith('commands/')) upward.push(`${at} → ${i}`);
    }
    expect(upward).toEqual([]);
  });

  it('nothing imports src/cli (the program): commands keep their own helpers (commands/context.ts, flag-names.ts)', () => {
    const upward: string[] = [];
    for (const f of tsFiles(SRC)) {
      const at = relative(SRC, f);
      if (at.startsWith('cli/')) continue;
      for (const i of importsOf(f)) if (i.startsWith('cli/')) upward.push(`${at} → ${i}`);
    }
    expect(upward).toEqual([]);
  });

  it('engines never print: nothing under profile, warmup, load, convert or doctor writes to stdout/stderr or the console', () => {
    const printing = ['profile', 'warmup', 'load', 'convert', 'doctor']
      .flatMap((d) => tsFiles(join(SRC, d)))
      .filter((f) => /process\.(stdout|stderr)|console\.(log|error|warn|info)/.test(readFileSync(f, 'utf8')))
      .map((f) => relative(SRC, f));
    expect(printing).toEqual([]);
  });

  it('every file of commands/ is a thin adapter (≤ 150 lines, as DESIGN.md says)', () => {
    const files = readdirSync(join(SRC, 'commands')).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(10);
    for (const c of files) {
      const lines = readFileSync(join(SRC, 'commands', c), 'utf8').split('\n').length - 1;
      expect(lines, c).toBeLessThanOrEqual(150);
    }
  });
});
