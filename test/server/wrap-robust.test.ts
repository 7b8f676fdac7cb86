/**
 * Wrap mode's process handling against real processes: the whole tree is stopped (setsid grandchildren
 * included), the signal that was really needed is reported, a server does not outlive a coldstart that is
 * SIGKILLed, and a 32 MiB line without a newline neither stalls the server nor breaks the reading.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { createServer as createHttpServer } from 'node:http';
import { runWrapped } from '../../src/server/wrap.js';
import { SHIM_PATH } from '../../src/server/shim.js';
import { gone, pidsFrom } from '../helpers/procs.js';
import { freePort } from '../helpers/fake-servers.js';

const here = (f: string) => fileURLToPath(new URL(`../fixtures-servers/${f}`, import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'cs-wrap-robust-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const hasProc = existsSync('/proc/self/stat');


describe('stopping the server tree', () => {
  it.skipIf(!hasProc)('a grandchild that left the group with setsid is stopped too (SIGTERM was enough)', async () => {
    const p = await freePort();
    const pidfile = join(tmp, 'tree1.pids');
    const r = await runWrapped({ command: [process.execPath, here('tree-server.mjs'), String(p), pidfile], readyUrl: `http://127.0.0.1:${p}/health`, completionUrl: false, stopTimeoutSeconds: 3, env: process.env, cwd: tmp });
    const [server, grandchild] = await pidsFrom(pidfile);
    expect(await gone([server!, grandchild!], 3000)).toEqual([]);
    expect(r.stop.by).toBe('shim');
    expect(r.stop.signal).toBe('SIGTERM');
    expect(r.stop.processes).toBeGreaterThanOrEqual(2);
    expect(r.stop.survivors).toEqual([]);
    expect(r.readyNote).toBeUndefined(); // the server itself holds its port
  });

  it.skipIf(!hasProc)('a grandchild that ignores SIGTERM gets SIGKILL, and the report says SIGKILL was needed, for which pid', async () => {
    const p = await freePort();
    const pidfile = join(tmp, 'tree2.pids');
    const r = await runWrapped({ command: [process.execPath, here('tree-server.mjs'), String(p), pidfile, '--stubborn-grandchild'], readyUrl: `http://127.0.0.1:${p}/health`, completionUrl: false, stopTimeoutSeconds: 0.5, env: process.env, cwd: tmp });
    const [server, grandchild] = await pidsFrom(pidfile);
    expect(await gone([server!, grandchild!], 3000)).toEqual([]);
    expect(r.stop.signal).toBe('SIGKILL');
    expect(r.stop.sigkilled).toEqual([grandchild]);
    expect(r.stop.survivors).toEqual([]);
  });

  it.skipIf(!hasProc)('a double-forked daemon (re-parented before any scan) is stopped: the watchdog is a child subreaper', async () => {
    const p = await freePort();
    const pidfile = join(tmp, 'tree4.pids');
    const r = await runWrapped({ command: [process.execPath, here('tree-server.mjs'), String(p), pidfile, '--double-fork'], readyUrl: `http://127.0.0.1:${p}/health`, completionUrl: false, stopTimeoutSeconds: 2, env: process.env, cwd: tmp });
    const [server, grandchild] = await pidsFrom(pidfile);
    expect(r.stop.subreaper).toBe(true);
    expect(await gone([server!, grandchild!], 3000)).toEqual([]);
    expect(r.stop.survivors).toEqual([]);
  });

  it.skipIf(!hasProc)('if coldstart is killed with SIGKILL, the watchdog stops the server and its setsid grandchild', async () => {
    const p = await freePort();
    const pidfile = join(tmp, 'tree3.pids');
    const cs = spawn(process.execPath, [here('fake-coldstart.mjs'), '--', process.execPath, here('tree-server.mjs'), String(p), pidfile], { env: { ...process.env, COLDSTART_SHIM: SHIM_PATH, GRACE: '1' }, stdio: ['ignore', 'pipe', 'inherit'] });
    let status = '';
    cs.stdout!.on('data', (d: Buffer) => (status += d.toString()));
    const [server, grandchild] = await pidsFrom(pidfile);
    // let the watchdog's /proc scan see the grandchild (it scans every 100 ms)
    const until = Date.now() + 3000;
    while (Date.now() < until && !status.includes(`${grandchild}`)) await new Promise((r) => setTimeout(r, 25));
    expect(status).toContain(`${grandchild}`);
    cs.kill('SIGKILL');
    expect(await gone([server!, grandchild!], 4000)).toEqual([]);
  });
});

describe('a long line without a newline', () => {
  it('32 MiB on one line: the server is never blocked, the line is kept capped, the next lines and ready still come', async () => {
    const p = await freePort();
    const r = await runWrapped({ command: [process.execPath, here('long-line-server.mjs'), String(p), '32'], readyUrl: `http://127.0.0.1:${p}/health`, completionUrl: false, keepLines: true, readyTimeoutSeconds: 60, env: process.env, cwd: tmp });
    const texts = r.lines!.map((l) => l.text);
    const long = texts.find((t) => t.startsWith('aaaa'))!;
    expect(long.length).toBeLessThan(70_000);
    expect(long).toMatch(/…\[\d+ more characters not kept\]$/);
    expect(Number(/\[(\d+) more/.exec(long)![1]) + long.indexOf(' …[')).toBe(32 << 20);
    expect(texts.some((t) => /^done writing 32 MiB in \d+ ms$/.test(t))).toBe(true);
  });
});

describe('an engine that is not recognised', () => {
  it('says so, keeps the timed lines, and --stage (parsed by the profile command) splits it', async () => {
    const { runCli } = await import('../helpers/cli.js');
    const p = await freePort();
    const pidfile = join(tmp, 'unknown.pids');
    const plain = await runCli(['profile', '--ready-url', `http://127.0.0.1:${p}/health`, '--no-completion', '--', process.execPath, here('tree-server.mjs'), String(p), pidfile], {});
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(/engine not recognised/);
    expect(plain.stdout).toMatch(/--stage 'name=REGEX'/);
    expect(plain.stdout).toMatch(/\d\.\d{3} s {2}listening/);
    const q = await freePort();
    const staged = await runCli(['profile', '--ready-url', `http://127.0.0.1:${q}/health`, '--no-completion', '--json', '--stage', 'server up:gpu-load=^listening$', '--', process.execPath, here('tree-server.mjs'), String(q), join(tmp, 'unknown2.pids')], {});
    expect(staged.code, staged.stderr).toBe(0);
    const doc = JSON.parse(staged.stdout) as { phases: Array<{ name: string; status: string; steps: Array<{ name: string }> }> };
    const gpu = doc.phases.find((x) => x.name === 'gpu-load')!;
    expect(gpu.status).toBe('ok');
    expect(gpu.steps.map((s) => s.name)).toEqual(['server up']);
    const bad = await runCli(['profile', '--ready-url', `http://127.0.0.1:${q}/health`, '--stage', 'oops', '--', process.execPath, '-e', '0'], {});
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--stage: expected 'name=REGEX'/);
  });

  it('refuses a --ready-url that is not http(s) before the server starts, in profile as in optimize (exit 2)', async () => {
    const started = join(tmp, 'started-notaurl');
    const cmd = ['--', process.execPath, '-e', `require('fs').writeFileSync(${JSON.stringify(started)}, 'x')`];
    const { runCli } = await import('../helpers/cli.js');
    for (const argv of [['profile', '--json', '--ready-url', 'notaurl', ...cmd], ['optimize', '--json', '--ready-url', 'notaurl', ...cmd]]) {
      const r = await runCli(argv, {});
      expect(r.code, r.stderr).toBe(2);
      expect((JSON.parse(r.stdout) as { error: { code: string } }).error.code).toBe('BAD_FLAG');
      expect(existsSync(started)).toBe(false);
    }
  });
});

describe('what answered the ready URL', () => {
  /** A "server" that never listens, but says when it has started (so the start check is behind us). */
  const idle = (started: string) => [process.execPath, '-e', `require('fs').writeFileSync(${JSON.stringify(started)}, 'x'); setTimeout(() => {}, 30000)`];
  /** This test process (older than any server it starts) takes `port` once `started` exists, as an earlier server still loading would. */
  async function takeWhenStarted(port: number, started: string): Promise<() => void> {
    const older = createHttpServer((_q, res) => res.end('ok'));
    let stop = false;
    void (async () => {
      while (!stop && !existsSync(started)) await new Promise((r) => setTimeout(r, 20));
      if (!stop) older.listen(port, '127.0.0.1');
    })();
    return () => {
      stop = true;
      older.close();
    };
  }

  it.skipIf(!hasProc)('a port taken after the start check by a process older than the server is named: its ready time is not the server\'s', async () => {
    const p = await freePort();
    const started = join(tmp, 'started-older1');
    const release = await takeWhenStarted(p, started);
    try {
      const r = await runWrapped({ command: idle(started), readyUrl: `http://127.0.0.1:${p}/health`, completionUrl: false, stopTimeoutSeconds: 2, env: process.env, cwd: tmp });
      expect(r.readyNote).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${p}/health was answered through pid ${process.pid} \\(.*node.*\\), which was running before the server was started: unless it forwards to the server`));
      expect(r.stop.survivors).toEqual([]);
    } finally {
      release();
    }
  });

  it.skipIf(!hasProc)('profile reports it among its warnings', async () => {
    const p = await freePort();
    const started = join(tmp, 'started-older2');
    const release = await takeWhenStarted(p, started);
    try {
      const { runCli } = await import('../helpers/cli.js');
      const r = await runCli(['profile', '--json', '--no-completion', '--ready-url', `http://127.0.0.1:${p}/health`, '--', ...idle(started)], {});
      expect(r.code, r.stderr).toBe(0);
      const doc = JSON.parse(r.stdout) as { warnings: string[] };
      expect(doc.warnings.filter((w) => w.includes(`was answered through pid ${process.pid}`))).toHaveLength(1);
    } finally {
      release();
    }
  });
});
