/**
 * `warmup --compile` on a terminal (a pseudo-terminal from util-linux `script`): each compile run says what it does
 * as it happens — the import, loading the model, the first call while Inductor compiles, the steady calls — from
 * the script's own events. On a pipe none of it appears. Real torch on CPU with the tiny Llama (~20 s on 2 cores).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { peerPython } from '../helpers/python.js';

const BIN = resolve(__dirname, '../../bin/coldstart.js');
const model = resolve(__dirname, '../../fixtures/torch/models/tiny-llama');
const py = peerPython();
const hasScript = spawnSync('script', ['--version']).status === 0;
const home = mkdtempSync(join(tmpdir(), 'cs-compile-tty-'));
afterAll(() => rmSync(home, { recursive: true, force: true }));
// Inductor compiles in-process (no worker pool that imports torch again per worker: minutes on 2 cores).
const env = () => ({ PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, TERM: 'xterm', COLDSTART_PYTHON: py ?? '', OMP_NUM_THREADS: '2', TORCHINDUCTOR_COMPILE_THREADS: '1' });
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

describe.skipIf(!py || !hasScript)('warmup --compile: progress on a terminal', () => {
  it('each run says the model load and the compiling first call as they happen; a pipe shows none of it', async () => {
    const persist = join(home, 'store');
    const args = ['warmup', model, '--framework', 'torch', '--compile', '--persist', persist, '--device', 'cpu', '--runs', '1'];
    const line = `stty cols 100 rows 40; ${[process.execPath, BIN, ...args].map(q).join(' ')}`;
    const out = await new Promise<{ code: number; out: string }>((done) =>
      execFile('script', ['-qfec', line, '/dev/null'], { cwd: home, env: env(), maxBuffer: 1 << 24, timeout: 400_000 }, (err, stdout) => done({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '') })),
    );
    expect(out.code, out.out).toBe(0);
    // (The import line is drawn too, but the model load follows it within one spinner frame.)
    expect(out.out).toContain('cold run: loading the model…');
    expect(out.out).toContain('cold run: first call (Inductor compiles)…');
    // The second run starts from the persisted cache and says so.
    expect(out.out).toContain('cached run: first call (Inductor compiles, or loads from the cache)…');
    // On a pipe (the entry persisted above: only the cached run, which would print the same progress on a TTY).
    const piped = spawnSync(process.execPath, [BIN, ...args], { cwd: home, env: env(), encoding: 'utf8', timeout: 400_000 });
    expect(piped.status, piped.stderr).toBe(0);
    expect(piped.stdout + piped.stderr).not.toMatch(/run: first call/);
  }, 900_000);
});
