import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import type { Command } from 'commander';
import { runCli } from '../helpers/cli.js';

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
  // In-process (the same program bin/coldstart.js runs, with an injected process): one child per command cost 30 s.
  it.each([80, 100])('every command\'s help wraps at COLUMNS=%i on a pipe (the usage, options and descriptions)', async (cols) => {
    const paths = commandPaths();
    expect(paths.length).toBeGreaterThan(10);
    for (const p of paths) {
      const r = await runCli([...p, '--help'], { env: { COLUMNS: String(cols) }, columns: null });
      expect(r.code, p.join(' ')).toBe(0);
      const long = r.stdout.split('\n').filter((l) => l.length > cols);
      expect(long, `coldstart ${p.join(' ')} --help`).toEqual([]);
    }
  });
});
