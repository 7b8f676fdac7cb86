/**
 * Races on one shared cache, as users share caches in practice (pods on one volume, a CI matrix): N
 * `coldstart cache` processes of the same repo against the local Hub look-alike, repeated many times — some
 * in their own PID namespace (`unshare -fp --mount-proc`, as root), one killed -9 mid-file, one with a lock
 * left by "another host" — and huggingface_hub racing coldstart. Every trial checks: zero corrupted blobs,
 * zero false successes (a process that exits 0 sees a byte-exact snapshot), no partial left over, and each
 * file fetched about once.
 *
 * COLDSTART_RACE_TRIALS (default 10: every kind of trial twice; CI stress runs set more) sets the number of trials; COLDSTART_REQUIRE_UNSHARE=1 (CI, as root)
 * makes a missing `unshare` a failure instead of running the namespace trials without it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { HubServer, servedFile, startHubServer, type ServedFile } from '../helpers/hub-server.js';
import { peerPython } from '../helpers/python.js';

const BIN = fileURLToPath(new URL('../../bin/coldstart.js', import.meta.url));
const TRIALS = Number(process.env.COLDSTART_RACE_TRIALS ?? 10);
const N = 3;
const REPO = 'org/race';

const big = randomBytes(1_300_000); // worker-thread path
const mid = randomBytes(200_000); // inline path
const files: ServedFile[] = [servedFile('model-00001-of-00002.safetensors', big), servedFile('model-00002-of-00002.safetensors', mid), servedFile('config.json', Buffer.from('{"model_type":"llama"}'))];
const etag = (f: ServedFile) => (f.lfs ? f.sha256 : f.oid);

function unshareWorks(): boolean {
  if (process.getuid?.() !== 0) return false;
  const r = spawnSync('unshare', ['-fp', '--mount-proc', 'true'], { stdio: 'ignore' });
  return r.status === 0;
}
const UNSHARE = unshareWorks();

let hub: HubServer;
let root: string;
beforeAll(async () => {
  hub = await startHubServer();
  hub.addRepo(REPO, files);
  root = mkdtempSync(join(tmpdir(), 'coldstart-race-'));
});
afterAll(async () => {
  await hub.stop();
  rmSync(root, { recursive: true, force: true });
});

interface Run {
  child: ChildProcess;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }>;
}

function start(cache: string, opts: { unshare?: boolean; env?: Record<string, string> } = {}): Run {
  const args = [BIN, '--json', '--quiet', 'cache', REPO];
  const env = { ...process.env, HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: cache, HF_HOME: join(cache, '..', 'hfhome'), COLDSTART_LOCK_STALE_SECONDS: '2', ...opts.env };
  const child = opts.unshare ? spawn('unshare', ['-fp', '--mount-proc', process.execPath, ...args], { env }) : spawn(process.execPath, args, { env });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }>((res) => child.on('close', (code, signal) => res({ code, signal, out, err })));
  return { child, done };
}

/** The cache after a trial: every blob byte-exact, every snapshot file pointing at one, no partial or lock left. */
function checkCache(cache: string, killedPid = -1): void {
  const storage = join(cache, 'models--org--race');
  // kill -9 cannot clean up: the victim's own partial stays until a later download adopts it (idle past the
  // lock bound) or `cache rm`; it never enters the cache.
  const blobs = readdirSync(join(storage, 'blobs')).filter((b) => !b.includes(`.cs-${killedPid}-`));
  const byEtag = new Map(files.map((f) => [etag(f), f]));
  for (const b of blobs) {
    expect(b, `leftover in blobs/: ${b}`).not.toMatch(/incomplete|\.bad$/);
    const f = byEtag.get(b);
    expect(f, `unknown blob ${b}`).toBeDefined();
    const got = readFileSync(join(storage, 'blobs', b));
    expect(got.length, `${f!.path}: blob size`).toBe(f!.size);
    expect(got.equals(f!.content!), `${f!.path}: blob bytes`).toBe(true);
  }
  const locks = join(cache, '.locks', 'models--org--race');
  if (existsSync(locks)) expect(readdirSync(locks).filter((n) => n.endsWith('.coldstart.lock'))).toEqual([]);
}

/** A process that said it succeeded must have seen the complete, exact snapshot. */
function checkSuccess(r: { code: number | null; out: string; err: string }): void {
  expect(r.code, r.err || r.out).toBe(0);
  const doc = JSON.parse(r.out) as { snapshotDir: string };
  for (const f of files) expect(readFileSync(join(doc.snapshotDir, f.path)).equals(f.content!), `${f.path} via the snapshot`).toBe(true);
}

const bigGets = () => hub.requests((q) => q.method === 'GET' && q.host === 'cdn' && q.url.includes(etag(files[0]))).length;

describe('N coldstart processes on one cache', () => {
  if (process.env.COLDSTART_REQUIRE_UNSHARE === '1' && !UNSHARE) {
    it('unshare is required here (COLDSTART_REQUIRE_UNSHARE=1)', () => {
      throw new Error('COLDSTART_REQUIRE_UNSHARE=1 but `unshare -fp --mount-proc` does not work here (not root, or util-linux unshare missing): the PID-namespace race trials cannot run');
    });
  }

  it(`${TRIALS} trials: plain, PID namespaces${UNSHARE ? '' : ' (unshare unavailable: same namespace)'}, killed -9 mid-file, a stale lock of another host`, async () => {
    let fetchedTotal = 0;
    let fileTrials = 0;
    const kinds = { plain: 0, pidns: 0, killed: 0, foreignLock: 0 };
    for (let t = 0; t < TRIALS; t++) {
      const cache = join(root, `t${t}`, 'hub');
      mkdirSync(cache, { recursive: true });
      hub.log.length = 0;
      hub.faults = {};
      const kind = t % 5 === 3 ? 'killed' : t % 5 === 4 ? 'foreignLock' : t % 2 === 1 && UNSHARE ? 'pidns' : 'plain';
      kinds[kind]++;
      if (kind === 'foreignLock') {
        // A lock "another host" left (same hostname would not matter): its heartbeat is older than the bound.
        const dir = join(cache, '.locks', 'models--org--race');
        mkdirSync(dir, { recursive: true });
        const p = join(dir, `${etag(files[0])}.coldstart.lock`);
        writeFileSync(p, JSON.stringify({ v: 1, host: 'pod-elsewhere', pidns: '4026531836', pid: process.pid, start: '1', token: 'x', created: '' }));
        const old = new Date(Date.now() - 10_000);
        utimesSync(p, old, old);
      }
      if (kind === 'killed') hub.faults.stall = { match: (p) => p === files[0].path, afterBytes: 400_000, times: 1 };
      const runs = Array.from({ length: N }, (_, i) => start(cache, { unshare: kind === 'pidns' && i % 2 === 0 }));
      let killedPid = -1;
      if (kind === 'killed') {
        // Find the process that holds the big file's lock (it is the one stalled mid-file) and kill -9 it.
        const lock = join(cache, '.locks', 'models--org--race', `${etag(files[0])}.coldstart.lock`);
        const t0 = Date.now();
        while (Date.now() - t0 < 15_000) {
          // The stalled GET has begun (400 000 bytes sent, the rest never comes); the worker may still hold
          // them in its write buffer, so the partial on disk can be shorter.
          const stalled = bigGets() > 0 && existsSync(join(cache, 'models--org--race', 'blobs')) && readdirSync(join(cache, 'models--org--race', 'blobs')).some((n) => n.startsWith(etag(files[0])) && n.includes('.cs-'));
          if (stalled && existsSync(lock)) {
            await new Promise((r) => setTimeout(r, 150));
            try {
              killedPid = (JSON.parse(readFileSync(lock, 'utf8')) as { pid: number }).pid;
              break;
            } catch {
              /* being replaced */
            }
          }
          await new Promise((r) => setTimeout(r, 20));
        }
        const victim = runs.find((r) => r.child.pid === killedPid);
        expect(victim, 'the stalled lock holder is one of ours').toBeDefined();
        victim!.child.kill('SIGKILL');
      }
      const results = await Promise.all(runs.map((r) => r.done));
      for (const [i, r] of results.entries()) {
        if (runs[i].child.pid === killedPid) {
          expect(r.signal).toBe('SIGKILL');
          continue;
        }
        checkSuccess(r);
      }
      checkCache(cache, killedPid);
      const gets = bigGets();
      fetchedTotal += gets - (kind === 'killed' ? 1 : 0);
      fileTrials++;
      rmSync(join(root, `t${t}`), { recursive: true, force: true });
    }
    // Each file about once: the lock avoids duplicate work (a rare duplicate is allowed, corruption never).
    expect(fetchedTotal / fileTrials).toBeLessThan(1.3);
    expect(kinds.killed).toBeGreaterThan(0);
    expect(kinds.foreignLock).toBeGreaterThan(0);
    if (UNSHARE) expect(kinds.pidns).toBeGreaterThan(0);
  }, 240_000);
});

const py = peerPython();
describe.skipIf(!py)('huggingface_hub and coldstart racing on one cache', () => {
  it('both succeed, and `cache verify` finds every file clean', async () => {
    for (let t = 0; t < 4; t++) {
      const cache = join(root, `py${t}`, 'hub');
      mkdirSync(cache, { recursive: true });
      const env = { ...process.env, HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: cache, HF_HUB_DISABLE_TELEMETRY: '1', HF_HUB_DISABLE_PROGRESS_BARS: '1', HF_HUB_DISABLE_XET: '1' };
      const pyRun = new Promise<{ code: number | null; err: string }>((res) => {
        const p = spawn(py!, ['-c', `import huggingface_hub as h; print(h.snapshot_download(${JSON.stringify(REPO)}))`], { env });
        let err = '';
        p.stderr.on('data', (d) => (err += d));
        p.on('close', (code) => res({ code, err }));
      });
      const cs = start(cache);
      const [p, c] = await Promise.all([pyRun, cs.done]);
      expect(p.code, p.err).toBe(0);
      checkSuccess(c);
      checkCache(cache);
      const v = spawnSync(process.execPath, [BIN, '--json', 'cache', 'verify', REPO], { env: { ...env }, encoding: 'utf8' });
      expect(v.status, v.stdout + v.stderr).toBe(0);
      expect(JSON.parse(v.stdout).ok).toBe(true);
      rmSync(join(root, `py${t}`), { recursive: true, force: true });
    }
  }, 120_000);
});
