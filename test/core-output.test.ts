/** src/core/output.ts Output.progress: a redrawn stderr line on a TTY only; other output clears it and draws it again. */
import { describe, expect, it } from 'vitest';
import { Output, type GlobalOptions, type ProcessLike } from '../src/core/output.js';

const CLEAR = '\r\u001b[2K';

function output(o: { tty: boolean; env?: Record<string, string>; global?: Partial<GlobalOptions> }) {
  const io = { stdout: '', stderr: '' };
  const proc: ProcessLike = {
    argv: [],
    env: o.env ?? {},
    cwd: () => '/',
    stdout: { write: (s: string) => ((io.stdout += s), true), isTTY: o.tty },
    stderr: { write: (s: string) => ((io.stderr += s), true), isTTY: o.tty },
  };
  return { out: new Output(proc, { json: false, quiet: false, color: false, debug: false, ...o.global }), io };
}

describe('Output.progress', () => {
  it('draws `label: done / total (pct%) · rate · ETA` on a TTY and clears it at the end', () => {
    const { out, io } = output({ tty: true });
    const p = out.progress('org/x', 'resolving…');
    p.update(512, 1024);
    p.update(1024, 1024);
    p.end();
    expect(io.stderr.startsWith(`${CLEAR}org/x: resolving…${CLEAR}org/x: 512 B / 1.00 KiB (50%) · `)).toBe(true);
    expect(io.stderr).toMatch(/org\/x: 1\.00 KiB \/ 1\.00 KiB \(100%\) · .+ · ETA /);
    expect(io.stderr.endsWith(CLEAR)).toBe(true);
    expect(io.stdout).toBe('');
  });

  it('a line written meanwhile clears the progress line first and draws it again after', () => {
    const { out, io } = output({ tty: true });
    const p = out.progress('org/x', 'resolving…');
    out.warn('slow');
    out.print('result');
    p.end();
    expect(io.stderr).toBe(`${CLEAR}org/x: resolving…${CLEAR}warning: slow\norg/x: resolving…${CLEAR}org/x: resolving…${CLEAR}`);
    expect(io.stdout).toBe('result\n');
  });

  it.each<[string, { tty: boolean; env?: Record<string, string>; global?: Partial<GlobalOptions> }]>([
    ['a pipe', { tty: false }],
    ['--json', { tty: true, global: { json: true } }],
    ['--quiet', { tty: true, global: { quiet: true } }],
    ['CI', { tty: true, env: { CI: 'true' } }],
    ['TERM=dumb', { tty: true, env: { TERM: 'dumb' } }],
  ])('nothing at all in %s', (_what, o) => {
    const { out, io } = output(o);
    const p = out.progress('org/x');
    p.update(1, 2);
    p.end();
    expect(io.stderr).toBe('');
  });
});
