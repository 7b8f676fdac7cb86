/**
 * Progress on a terminal (a pseudo-terminal from util-linux `script`): the stack's Python events as they happen,
 * the floor's loader and the rate probes each say what runs; a synthetic checkpoint already written is reused,
 * said once, with no "writing…" line. On a pipe none of the redrawn lines appear.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { findPeerPython } from '../helpers/find-python.js';

const BIN = resolve(__dirname, '../../bin/coldstart.js');
const home = mkdtempSync(join(tmpdir(), 'cs-progress-'));
afterAll(() => rmSync(home, { recursive: true, force: true }));
const hasScript = (() => {
  try {
    execFileSync('script', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Runs coldstart on a pseudo-terminal of 100 columns; everything the terminal received. */
function onTty(args: string[], env: Record<string, string>): Promise<{ code: number; out: string }> {
  const line = `stty cols 100 rows 40; ${[process.execPath, BIN, ...args].map(q).join(' ')}`;
  return new Promise((done) => {
    execFile('script', ['-qfec', line, '/dev/null'], { cwd: home, env: { PATH: process.env.PATH, HOME: home, TERM: 'xterm', ...env }, maxBuffer: 1 << 24, timeout: 300_000 }, (err, stdout) => {
      done({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '') });
    });
  });
}

describe.skipIf(!hasScript)('progress on a terminal', () => {
  it('profile demo twice: the second run reuses the checkpoint and the rates (each said, with its date; no writing line, no probes); the probes and the loader say what runs', async () => {
    const first = await onTty(['profile'], {});
    expect(first.code, first.out).toBe(0);
    expect(first.out).toMatch(/wrote synthetic demo/);
    expect(first.out).toMatch(/measuring rates \(disk, page cache[^)]*\): writing a [\d.]+ MiB probe file/);
    const again = await onTty(['profile'], {});
    expect(again.code, again.out).toBe(0);
    expect(again.out).toMatch(/reusing synthetic demo \([\d.]+ MiB, safetensors\) in \S+ \(written \d{4}-\d\d-\d\d\)/);
    expect(again.out).not.toMatch(/writing synthetic/);
    // The rates of the first run are reused (this machine, disk and kernel): said, nothing probed.
    expect(again.out).toMatch(/rates from \d{4}-\d\d-\d\d .*--remeasure to refresh/);
    expect(again.out).not.toMatch(/measuring rates \(/);
  }, 300_000);

  it('--estimate: the rate probes say each load as it runs (warm from the page cache, then cold)', async () => {
    const r = await onTty(['profile', '--estimate', '--remeasure'], {});
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/measuring rates \([^)]*\): probe load 1: [\d.]+ MiB from the page cache…/);
    expect(r.out).toMatch(/measuring rates \([^)]*\): probe load \d+: [\d.]+ MiB cold \(from disk\)…/);
  }, 300_000);

  it.skipIf(!findPeerPython())('--framework torch: the stack\'s import, load and first forward as they happen', async () => {
    const py = findPeerPython()!;
    const r = await onTty(['profile', '--framework', 'torch'], { COLDSTART_PYTHON: py });
    expect(r.code, r.out).toBe(0);
    for (const step of ['importing…', 'loading the weights', 'first forward…']) expect(r.out).toContain(`your stack (torch): ${step}`);
  }, 300_000);

  it('on a pipe: no redrawn progress lines (a step longer than 5 s may print a plain line, never a redraw)', async () => {
    const r = await new Promise<string>((done) => execFile(process.execPath, [BIN, 'profile'], { cwd: home, env: { PATH: process.env.PATH, HOME: home } }, (_e, stdout, stderr) => done(stdout + stderr)));
    const est = await new Promise<string>((done) => execFile(process.execPath, [BIN, 'profile', '--estimate', '--remeasure'], { cwd: home, env: { PATH: process.env.PATH, HOME: home } }, (_e, stdout, stderr) => done(stdout + stderr)));
    expect(est).toMatch(/estimate: predicted from measured rates/);
    for (const out of [r, est]) {
      expect(out).not.toMatch(/\r|\x1b\[/); // no carriage return, no cursor/erase sequence
      // Progress on a pipe is whole plain lines only, and few: one per 5 s of a long step at most (a loaded CI
      // machine makes the probes slow enough to print some; a quick machine prints none).
      const plain = out.split('\n').filter((l) => /probe load \d/.test(l));
      for (const l of plain) expect(l).toMatch(/^measuring rates \([^)]*\): probe load \d+: .*…$/);
      expect(plain.length).toBeLessThan(20);
    }
    expect(r).toMatch(/reusing synthetic demo/);
  }, 300_000);
});
