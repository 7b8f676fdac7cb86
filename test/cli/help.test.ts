import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { buildProgram } from '../../src/cli/main.js';
import type { Command } from 'commander';

const BIN = fileURLToPath(new URL('../../bin/coldstart.js', import.meta.url));

function commandPaths(): string[][] {
  const proc = { argv: [], env: {}, cwd: () => '/', stdout: { write: () => true }, stderr: { write: () => true } };
  const program = buildProgram(proc as never, () => undefined, new AbortController().signal);
  const out: string[][] = [[]];
  const walk = (c: Command, path: string[]) => {
    for (const sub of c.commands) {
      out.push([...path, sub.name()]);
      walk(sub, [...path, sub.name()]);
    }
  };
  walk(program, []);
  return out;
}

describe('--help fits the terminal', () => {
  it.each([80, 100])('every command\'s help wraps at COLUMNS=%i on a pipe (the usage, options and descriptions)', (cols) => {
    const paths = commandPaths();
    expect(paths.length).toBeGreaterThan(10);
    for (const p of paths) {
      const r = spawnSync(process.execPath, [BIN, ...p, '--help'], { encoding: 'utf8', env: { ...process.env, COLUMNS: String(cols) } });
      expect(r.status, p.join(' ')).toBe(0);
      const long = r.stdout.split('\n').filter((l) => l.length > cols);
      expect(long, `coldstart ${p.join(' ')} --help`).toEqual([]);
    }
  });
});
