import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import type { Command } from 'commander';
import { runCli } from '../helpers/cli.js';

/** The program bin/coldstart.js runs, with an injected process that writes nowhere. */
function program(): Command {
  const proc = { argv: [], env: {}, cwd: () => '/', stdout: { write: () => true }, stderr: { write: () => true } };
  return buildProgram(proc as never, () => undefined, new AbortController().signal);
}

function commandPaths(): string[][] {
  const out: string[][] = [[]];
  const walk = (c: Command, path: string[]) => {
    for (const sub of c.commands) {
      out.push([...path, sub.name()]);
      walk(sub, [...path, sub.name()]);
    }
  };
  walk(program(), []);
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

/** Every option of every command, as `command flags` (e.g. `profile --runs <n>`). */
function allOptions(): string[] {
  const out: string[] = [];
  const walk = (c: Command) => {
    for (const o of c.options) out.push(`${c.name()} ${o.flags}`);
    for (const sub of c.commands) walk(sub);
  };
  walk(program());
  return out;
}

describe('one placeholder per kind of value', () => {
  it('every time limit is a <duration> (each is parsed by durationFlag: 90, 90s, 2m30s)', () => {
    const limits = allOptions().filter((f) => /--[a-z-]*timeout\b/.test(f));
    expect(limits.length).toBeGreaterThan(5);
    expect(limits.filter((f) => !/<duration>$/.test(f))).toEqual([]);
  });

  it('a placeholder says what goes there: a word, or <n> for a count (not <s>, <d>, <rt>)', () => {
    const cryptic = allOptions().filter((f) => {
      const ph = /<([^>]+)>/.exec(f)?.[1];
      return ph !== undefined && ph !== 'n' && !/^[a-z]{3,}(=[a-z]{3,})?(\.\.\.)?$/.test(ph);
    });
    expect(cryptic).toEqual([]);
  });
});
