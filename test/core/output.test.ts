/** src/core/output.ts Output.progress: a redrawn stderr line on a TTY only; other output clears it and draws it again. */
import { describe, expect, it } from 'vitest';
import { Output, type GlobalOptions, type ProcessLike } from '../../src/core/output.js';

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

  it('plainEverySeconds: off a TTY the same text as a plain line that often, none for a quick step, none at its end, none with --quiet', async () => {
    const { out, io } = output({ tty: false });
    const p = out.progress('converting', 'planning…', { plainEverySeconds: 0.5 });
    p.update(1, 4); // at once: nothing yet
    expect(io.stderr).toBe('');
    await new Promise((r) => setTimeout(r, 600));
    p.update(2, 4);
    p.update(3, 4); // within the interval: nothing more
    p.update(4, 4); // the end: no line
    p.end();
    expect(io.stderr).toMatch(/^converting: 2 B \/ 4 B \(50%\) · .+ · ETA .+\n$/);
    expect(io.stderr).not.toContain(CLEAR);
    const q = output({ tty: false, global: { quiet: true } });
    const pq = q.out.progress('converting', 'planning…', { plainEverySeconds: 0.5 });
    await new Promise((r) => setTimeout(r, 600));
    pq.update(2, 4);
    expect(q.io.stderr).toBe('');
  });
});
