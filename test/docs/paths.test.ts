/**
 * The docs name the code they describe: every repository path a README/docs/BENCHMARKS page writes in backticks
 * (`src/…`, `test/…`, `native/…`, `bench/…`, `scripts/…`, `docs/…`, `fixtures/…`) must exist, so a file moved or
 * renamed cannot leave a page pointing at nothing (docs/architecture.md is kept true to the code this way).
 * A pattern (`*`, `<…>`, `…`) is not a path and is passed over.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '..', '..');
const ROOTS = ['src', 'test', 'native', 'bench', 'scripts', 'docs', 'fixtures'];
const PATH_IN_TICKS = new RegExp('`((?:' + ROOTS.join('|') + ')/[^`\\s]+)`', 'g');

function pages(): string[] {
  const out = ['README.md', 'BENCHMARKS.md', 'CONTRIBUTING.md'].filter((p) => existsSync(join(ROOT, p)));
  const walk = (dir: string): void => {
    for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const rel = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(rel);
      else if (e.name.endsWith('.md')) out.push(rel);
    }
  };
  walk('docs');
  return out;
}

/** The paths a page names, each with its line; `a.ts:12` and `a.ts#L12` are the file. */
function namedPaths(text: string): { path: string; line: number }[] {
  const out: { path: string; line: number }[] = [];
  text.split('\n').forEach((line, i) => {
    for (const m of line.matchAll(PATH_IN_TICKS)) {
      const path = m[1].replace(/[:#]L?\d+(-\d+)?$/, '').replace(/[.,;:)]+$/, '');
      if (/[*<>…{}$]/.test(path)) continue;
      out.push({ path, line: i + 1 });
    }
  });
  return out;
}

describe('docs name only paths that exist', () => {
  it('finds the paths a page names (and passes over patterns)', () => {
    expect(namedPaths('see `src/core/flags.ts:12`, `test/x/*.test.ts`, `bench/a/<name>/` and `docs/b.md`.')).toEqual([
      { path: 'src/core/flags.ts', line: 1 },
      { path: 'docs/b.md', line: 1 },
    ]);
  });
  for (const page of pages()) {
    it(page, () => {
      const missing = namedPaths(readFileSync(join(ROOT, page), 'utf8'))
        .filter((p) => !existsSync(join(ROOT, p.path)))
        .map((p) => `${page}:${p.line}: ${p.path}`);
      expect(missing).toEqual([]);
    });
  }
});
