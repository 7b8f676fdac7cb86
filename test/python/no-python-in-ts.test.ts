/**
 * Python is code, not strings: no .ts file under src/ carries a Python program. The Python coldstart runs lives in
 * src/python/*.py (linted by ruff, shipped beside the runner); TypeScript runs it by name (src/python/runner.ts).
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Python written out in a TypeScript string: as source lines (template strings) or with \n escapes. */
const PYTHON_SIGNS: ReadonlyArray<[string, RegExp]> = [
  ['import torch', /\bimport torch\b/],
  ['a Python import line', /(^|\\n|["'`])[ \t]*(import [a-z_][\w.]*(, ?[a-z_][\w.]*)*|from [a-z_][\w.]* import [\w., ]+)[ \t]*(\\n|$)/m],
  ['a def', /(^|\\n)[ \t]*def [a-z_]\w*\(.*\):/m],
  ['print(json.dumps', /print\(json\.dumps/],
  ['sys.argv', /\bsys\.argv\b/],
];

/** Not yet moved (#23): the server area owns these and moves them to .py files run through the runner. */
const PENDING: Record<string, string> = {
  'src/server/lifecycle.ts': 'SUBREAPER_EXEC (the server area moves it to src/python/ and runs it by scriptPath)',
};

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

function pythonIn(text: string): string[] {
  return PYTHON_SIGNS.filter(([, re]) => re.test(text)).map(([name]) => name);
}

describe('no Python inside TypeScript', () => {
  it('recognises the programs that used to live in strings', () => {
    expect(pythonIn('const S = String.raw`\nimport json, os, sys\ndef emit(**kw):\n    print(json.dumps(kw))\n`;')).toEqual([
      'a Python import line',
      'a def',
      'print(json.dumps',
    ]);
    expect(pythonIn('const S = "import ctypes, os, sys\\ntry:\\n    pass\\n";')).toEqual(['a Python import line']);
    expect(pythonIn("const S = `\nfrom transformers import AutoConfig\nx = sys.argv[1]\n`;")).toEqual(['a Python import line', 'sys.argv']);
    // TypeScript's own imports are not Python.
    expect(pythonIn("import { x } from './y.js';\nimport type { Z } from 'z';\nimport * as fs from 'node:fs';\nimport './side-effect.js';")).toEqual([]);
  });

  it('no .ts under src/ holds a Python program', () => {
    const found = tsFiles(join(root, 'src'))
      .map((f) => ({ file: relative(root, f), signs: pythonIn(readFileSync(f, 'utf8')) }))
      .filter((x) => x.signs.length > 0 && !(x.file in PENDING));
    expect(found).toEqual([]);
  });
});
