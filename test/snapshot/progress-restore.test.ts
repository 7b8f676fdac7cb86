/**
 * snapshot and restore on a terminal (a pseudo-terminal from util-linux `script`), with real CRIU on the CPU counter
 * server: each long step is said as it runs (start, dump, hash; CRIU restore, ready, first request), and restore says
 * in one line that the server is left running, as which pid, and how to stop it. On a pipe and with --json none of
 * the redrawn step lines appear. CRIU from scripts/ci-criu.sh (COLDSTART_CRIU); root needed.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { criuPath, criuReady } from '../helpers/criu.js';
import { freePort } from '../helpers/fake-servers.js';
import { killAndWait as killAndWaitFor } from '../helpers/procs.js';

const BIN = resolve(__dirname, '../../bin/coldstart.js');
const SERVER = resolve(__dirname, '../fixtures-servers/counter.mjs');
const criu = criuPath;
const hasScript = spawnSync('script', ['--version']).status === 0;
const ready = criuReady() && hasScript;
if (!ready && process.env.COLDSTART_REQUIRE_CRIU === '1') throw new Error('COLDSTART_REQUIRE_CRIU=1 but `script` (util-linux) is missing');

const tmp = mkdtempSync(join(tmpdir(), 'cs-restore-tty-'));
const image = join(tmp, 'img');
const started: number[] = [];
afterAll(async () => {
  for (const pid of started) await killAndWait(pid);
  rmSync(tmp, { recursive: true, force: true });
});

const killAndWait = (pid: number) => killAndWaitFor(pid, 10_000);

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const env = () => ({ PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmp, TERM: 'xterm', COLDSTART_CRIU: criu });

/** Runs coldstart on a pseudo-terminal of 100 columns; everything the terminal received, escapes removed. */
function onTty(args: string[]): Promise<{ code: number; out: string }> {
  const line = `stty cols 100 rows 40; ${[process.execPath, BIN, ...args].map(q).join(' ')}`;
  return new Promise((done) => {
    execFile('script', ['-qfec', line, '/dev/null'], { cwd: tmp, env: env(), maxBuffer: 1 << 24, timeout: 240_000 }, (err, stdout) => {
      done({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '') });
    });
  });
}

describe.skipIf(!ready)('snapshot / restore steps on a terminal', () => {
  it('snapshot says its steps; restore says its steps and that the server is left running (pid, how to stop it)', async () => {
    const port = await freePort();
    const snap = await onTty(['snapshot', '-o', image, '--ready-url', `http://127.0.0.1:${port}/health`, '--warmup', `http://127.0.0.1:${port}/count`, '--', process.execPath, SERVER, String(port)]);
    expect(snap.code, snap.out).toBe(0);
    for (const step of ['snapshot: starting the server', 'snapshot: warmup request GET', 'snapshot: CRIU dump of', 'snapshot: hashing the image']) expect(snap.out).toContain(step);

    const r = await onTty(['restore', image]);
    const m = /the server is left running as pid (\d+): stop it with `kill (\d+)`/.exec(r.out);
    if (m) started.push(Number(m[1]));
    // The counter answers 3 where the snapshot's warmup answered 1: a mismatch, exit 1 (the server still runs).
    expect(r.code, r.out).toBe(1);
    expect(m, r.out).not.toBeNull();
    expect(m![2]).toBe(m![1]);
    for (const step of ['restore: CRIU restore of', `restore: waiting until http://127.0.0.1:${port}/health answers`, 'restore: repeating the first request GET']) expect(r.out).toContain(step);
    // The line names a process that runs: the one it says to kill.
    expect(existsSync(`/proc/${m![1]}`)).toBe(true);
    execFileSync('kill', [m![1]!]);
    await killAndWait(Number(m![1]));

    // On a pipe: the left-running line (human output) but no redrawn step lines; with --json, one document only.
    const piped = spawnSync(process.execPath, [BIN, 'restore', image, '--no-first-request'], { cwd: tmp, env: env(), encoding: 'utf8', timeout: 240_000 });
    const pm = /left running as pid (\d+)/.exec(piped.stdout);
    if (pm) started.push(Number(pm[1]));
    expect(piped.status, piped.stderr).toBe(0);
    expect(piped.stdout + piped.stderr).not.toMatch(/restore: CRIU restore of/);
    await killAndWait(Number(pm![1]));
    const json = spawnSync(process.execPath, [BIN, 'restore', image, '--json', '--no-first-request'], { cwd: tmp, env: env(), encoding: 'utf8', timeout: 240_000 });
    const doc = JSON.parse(json.stdout) as { details: { pid: number } };
    started.push(doc.details.pid);
    expect(json.status, json.stderr).toBe(0);
    expect(json.stderr).not.toMatch(/restore: /);
  }, 600_000);
});
