/**
 * issue #22, the Hub client and the HF cache: a hostile Hub look-alike (test/helpers/hub-server.ts) and a second
 * loopback origin that records what it gets ("another host"), driven through the CLI. Each case checks the exit
 * code and error code, that a victim file outside the cache keeps its bytes and mtime, that no lock, partial or
 * ref appears outside the cache, and that no credential reaches another origin.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { runChild, runCli, type ChildRun } from '../helpers/cli.js';
import { HubServer, servedFile, startHubServer, startRecorder, type Recorder } from '../helpers/hub-server.js';
import { peerPython } from '../helpers/python.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let hub: HubServer;
let other: Recorder;
let sameHost: Recorder;
let tmp: string;
let cacheDir: string;

const victimBytes = randomBytes(2048);
const config = Buffer.from('{"model_type":"llama"}');
const weights = randomBytes(2048); // the same size as the victim: a listing that names it looks "cached"
const big = randomBytes(1_500_000); // ≥ 1 MiB: fetched on a worker thread
let tinyCommit: string;

function env(extra: Record<string, string> = {}): Record<string, string> {
  return { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: cacheDir, HF_HOME: join(tmp, 'hfhome'), HF_TOKEN: hub.token, ...extra };
}

/** A file outside the cache that a hostile name points at; `untouched()` checks its bytes, its mtime and its folder. */
function victim(): { path: string; untouched(): void } {
  const path = join(tmp, 'victim');
  writeFileSync(path, victimBytes);
  const old = new Date('2001-02-03T04:05:06Z');
  utimesSync(path, old, old);
  const before = readdirSync(tmp).sort();
  return {
    path,
    untouched() {
      expect(readFileSync(path).equals(victimBytes)).toBe(true);
      expect(statSync(path).mtimeMs).toBe(old.getTime());
      // No lock, partial, `.bad` or ref appeared beside it: the folder holds what it held (the cache aside).
      expect(readdirSync(tmp).filter((n) => n !== 'hub').sort()).toEqual(before.filter((n) => n !== 'hub'));
    },
  };
}

function errorDoc(stdout: string): { code: string; exitCode: number; message: string } {
  const doc = JSON.parse(stdout);
  expect(doc.schema).toBe('coldstart/error@1');
  return doc.error;
}

const fileGets = () => hub.requests((r) => r.method === 'GET' && (r.host === 'cdn' || r.url.includes('/resolve/')));

/** bin/coldstart.js as a child process (a hang fails the test at `killAfterMs` instead of hanging it). */
function spawnCli(args: string[], extraEnv: Record<string, string>, opts: { killAfterMs?: number; onSpawn?: (kill: (s: NodeJS.Signals) => void) => void } = {}): Promise<ChildRun> {
  return runChild(args, { env: extraEnv, deadlineMs: opts.killAfterMs ?? 60_000, onSpawn: opts.onSpawn });
}

async function until(cond: () => boolean, ms = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  hub = await startHubServer();
  other = await startRecorder();
  sameHost = await startRecorder('127.0.0.1');
  tinyCommit = hub.addRepo('org/tiny', [servedFile('config.json', config), servedFile('model.safetensors', weights), servedFile('README.md', Buffer.from('# tiny\n'))]);
  hub.addRepo('org/big', [servedFile('config.json', config), servedFile('model.safetensors', big)]);
  hub.addRepo('org/pr', [servedFile('config.json', config)], { branch: 'refs/pr/1' });
});
afterAll(async () => {
  await hub.stop();
  await other.stop();
  await sameHost.stop();
});
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'coldstart-hostile-'));
  cacheDir = join(tmp, 'hub');
  hub.log.length = 0;
  other.log.length = 0;
  sameHost.log.length = 0;
  hub.faults = {};
  hub.pageSize = 50;
  return () => rmSync(tmp, { recursive: true, force: true });
});

describe('case 1: hash fields and repo paths from the Hub never leave the cache', () => {
  const toVictim = '../../../victim'; // blobs/../../../victim = <tmp>/victim; the lock dir's is the same depth

  it('an lfs.oid naming a file outside the cache, of the size the listing says: refused before anything is written or linked', async () => {
    const v = victim();
    hub.faults.treeEntries = (es) => es.map((e) => (e.path === 'model.safetensors' ? { ...e, lfs: { ...(e.lfs as object), oid: toVictim, size: victimBytes.length } } : e));
    const r = await runCli(['--json', 'cache', 'org/tiny'], { env: env() });
    expect(r.code).toBe(2);
    expect(errorDoc(r.stdout).code).toBe('HOSTILE_FILE');
    v.untouched();
    expect(existsSync(join(cacheDir, 'models--org--tiny', 'snapshots'))).toBe(false); // nothing linked, nothing "cached"
    expect(fileGets()).toEqual([]);
  });

  it('an lfs.oid naming a file outside the cache, of another size (the discard path): the victim is not deleted', async () => {
    const v = victim();
    hub.faults.treeEntries = (es) => es.map((e) => (e.path === 'model.safetensors' ? { ...e, size: 7, lfs: { ...(e.lfs as object), oid: toVictim, size: 7 } } : e));
    const r = await runCli(['--json', 'cache', 'org/tiny'], { env: env() });
    expect(r.code).toBe(2);
    expect(errorDoc(r.stdout).code).toBe('HOSTILE_FILE');
    v.untouched();
  });

  it.each([
    ['a relative path', toVictim],
    ['an absolute path', '/etc/passwd'],
    ['uppercase hex', 'A'.repeat(40)],
    ['39 digits', 'a'.repeat(39)],
    ['64 digits for a git oid', 'a'.repeat(64)],
    ['hex then a path', `${'a'.repeat(40)}/../../../victim`],
    ['a number', 42],
  ])('a regular file whose oid is %s: exit 2 HOSTILE_FILE, nothing written outside', async (_what, oid) => {
    const v = victim();
    hub.faults.treeEntries = (es) => es.map((e) => (e.path === 'config.json' ? { ...e, oid } : e));
    const r = await runCli(['--json', 'cache', 'org/tiny'], { env: env() });
    expect(r.code).toBe(2);
    expect(errorDoc(r.stdout).code).toBe('HOSTILE_FILE');
    v.untouched();
    expect(fileGets()).toEqual([]);
  });

  it('sizes that are not byte counts, a path twice, a file that is also a folder: refused', async () => {
    for (const rewrite of [
      (e: Record<string, unknown>) => (e.path === 'config.json' ? [{ ...e, size: -1 }] : [e]),
      (e: Record<string, unknown>) => (e.path === 'config.json' ? [{ ...e, size: 1.5 }] : [e]),
      (e: Record<string, unknown>) => (e.path === 'config.json' ? [e, e] : [e]),
      (e: Record<string, unknown>) => (e.path === 'config.json' ? [e, { ...e, path: 'config.json/x' }] : [e]),
    ]) {
      hub.faults.treeEntries = (es) => es.flatMap(rewrite);
      const r = await runCli(['--json', 'cache', 'org/tiny'], { env: env() });
      expect(r.code).toBe(2);
      expect(errorDoc(r.stdout).code).toBe('HOSTILE_FILE');
    }
    expect(fileGets()).toEqual([]);
  });

  it('--local-dir: a repo path that climbs out of the folder is refused; the victim beside it is untouched', async () => {
    const v = victim();
    hub.faults.treeEntries = (es) => es.map((e) => (e.path === 'config.json' ? { ...e, path: '../victim' } : e));
    const r = await runCli(['--json', 'cache', 'org/tiny', '--local-dir', join(tmp, 'out')], { env: env() });
    expect(r.code).toBe(2);
    expect(errorDoc(r.stdout).code).toBe('HOSTILE_FILE');
    v.untouched();
  });

  it('a tree listing cached on disk (trees/<sha>.json) with a hostile blob name is not trusted: the Hub is asked again, the victim untouched', async () => {
    const v = victim();
    const storage = join(cacheDir, 'models--org--tiny');
    mkdirSync(join(storage, 'trees'), { recursive: true });
    const files = { 'model.safetensors': { size: victimBytes.length, blob_id: 'b'.repeat(40), lfs_sha256: toVictim, lfs_size: victimBytes.length } };
    writeFileSync(join(storage, 'trees', `${tinyCommit}.json`), JSON.stringify({ format_version: 1, files }));
    const r = await runCli(['--json', 'cache', 'org/tiny', '--revision', tinyCommit], { env: env() });
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(readFileSync(join(doc.snapshotDir, 'model.safetensors')).equals(weights)).toBe(true);
    expect(JSON.parse(readFileSync(join(storage, 'trees', `${tinyCommit}.json`), 'utf8')).files['model.safetensors'].lfs_sha256).toBe(sha256(weights));
    v.untouched();
  });
});

describe('special files planted in a shared cache never block it', () => {
  it('a FIFO as refs/main, as the tree listing and as a blob lock: cache and cache ls end (exit 0) and the run is right', async () => {
    const storage = join(cacheDir, 'models--org--tiny');
    mkdirSync(join(storage, 'refs'), { recursive: true });
    mkdirSync(join(storage, 'trees'), { recursive: true });
    mkdirSync(join(storage, 'snapshots', tinyCommit), { recursive: true });
    mkdirSync(join(cacheDir, '.locks', 'models--org--tiny'), { recursive: true });
    const fifos = [join(storage, 'refs', 'main'), join(storage, 'trees', `${tinyCommit}.json`), join(cacheDir, '.locks', 'models--org--tiny', `${sha256(weights)}.coldstart.lock`)];
    for (const f of fifos) expect(spawnSync('mkfifo', [f]).status).toBe(0);
    const ls = await spawnCli(['--json', 'cache', 'ls'], env(), { killAfterMs: 20_000 });
    expect(ls.code).toBe(0);
    const r = await spawnCli(['--json', 'cache', 'org/tiny'], env({ COLDSTART_LOCK_STALE_SECONDS: '1' }), { killAfterMs: 20_000 });
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(readFileSync(join(doc.snapshotDir, 'model.safetensors')).equals(weights)).toBe(true);
    expect(readFileSync(join(storage, 'refs', 'main'), 'utf8')).toBe(tinyCommit);
  });
});

describe('case 1b: what sits in the cache under a partial\'s name is adopted only when it is a plain file', () => {
  it.each([
    ['a symlink to a file outside the cache', '.incomplete', 'link'],
    ['a symlink to a file outside the cache, as a parts partial', '.parts.incomplete', 'link'],
    ['a FIFO', '.incomplete', 'fifo'],
  ] as const)('%s at the parked name (%s) is not followed or opened: the victim keeps its bytes, the blob downloads whole', async (_what, suffix, kind) => {
    const v = victim();
    for (const [repo, body] of [
      ['org/tiny', weights], // inline write path
      ['org/big', big], // worker-thread write path
    ] as const) {
      const blobs = join(cacheDir, `models--${repo.replace('/', '--')}`, 'blobs');
      mkdirSync(blobs, { recursive: true });
      const planted = join(blobs, `${sha256(body)}${suffix}`);
      if (kind === 'link') symlinkSync(v.path, planted);
      else expect(spawnSync('mkfifo', [planted]).status).toBe(0);
      const r = await spawnCli(['--json', 'cache', repo], env(), { killAfterMs: 30_000 });
      expect(r.code, r.stderr).toBe(0);
      const doc = JSON.parse(r.stdout);
      expect(readFileSync(join(doc.snapshotDir, 'model.safetensors')).equals(body)).toBe(true);
      v.untouched();
    }
  });
});

describe('case 2: one token rule — credentials only to the endpoint origin', () => {
  it.each([
    ['another host', () => other],
    ['the same host on another port', () => sameHost],
  ])('a tree page whose next link points at %s is refused: that origin gets no request, no token', async (_what, recorder) => {
    const rec = recorder();
    const origin = rec.origin;
    hub.pageSize = 1;
    hub.faults.nextLink = { to: (next) => `${origin}${new URL(next!).pathname}${new URL(next!).search}` };
    const r = await runCli(['--json', 'cache', 'org/tiny'], { env: env() });
    expect(r.code).toBe(2);
    const err = errorDoc(r.stdout);
    expect(err.code).toBe('HOSTILE_FILE');
    expect(err.message).toContain(origin);
    // The first page went to the Hub with the token (so there was one to leak); the other origin got nothing.
    expect(hub.requests((q) => q.url.includes('/tree/')).every((q) => q.auth === `Bearer ${hub.token}`)).toBe(true);
    expect(rec.log).toEqual([]);
    expect(fileGets()).toEqual([]);
    expect(existsSync(join(cacheDir, 'models--org--tiny', 'snapshots'))).toBe(false);
  });

  it('same-origin pages are followed with the token; every page and file request carries it only on the Hub', async () => {
    hub.pageSize = 1;
    const r = await runCli(['--json', 'cache', 'org/big'], { env: env() });
    expect(r.code).toBe(0);
    expect(hub.requests((q) => q.url.includes('/tree/')).length).toBeGreaterThan(1);
    expect(hub.requests((q) => q.host === 'hub').every((q) => q.auth === `Bearer ${hub.token}`)).toBe(true);
    expect(hub.requests((q) => q.host === 'cdn').length).toBeGreaterThan(0);
    expect(hub.requests((q) => q.host === 'cdn').every((q) => q.auth === undefined)).toBe(true);
  });
});

describe('case 2 elsewhere: profile times the network through the same Hub client', () => {
  it('the rate probe of a Hub file sends the token to the Hub only, never to the CDN it is redirected to', async () => {
    const { measureNetwork } = await import('../../src/profile/estimate.js');
    const { hubClient } = await import('../../src/hub/api.js');
    const n = await measureNetwork(hubClient(env()), `${hub.endpoint}/org/big/resolve/main/model.safetensors`);
    expect(n.bytes).toBe(big.length);
    expect(hub.requests((q) => q.host === 'hub').every((q) => q.auth === `Bearer ${hub.token}`)).toBe(true);
    expect(hub.requests((q) => q.host === 'cdn').length).toBeGreaterThan(0);
    expect(hub.requests((q) => q.host === 'cdn').every((q) => q.auth === undefined)).toBe(true);
  });
});

describe('case 3: --revision is a git ref, and refs/ is written inside the cache only', () => {
  it.each(['../../../victim', '../../x', '/abs/ref', 'a/../../b', 'x\\y', 'x\0y', 'refs//x', '.hidden', 'x.lock', 'a b', 'x:y', 'main@{1}', ''])(
    '--revision %j: exit 2 BAD_FLAG naming the flag, before any request; nothing written outside',
    async (rev) => {
      const v = victim();
      hub.faults.anyRevision = true; // the Hub would answer a sha for it
      const r = await runCli(['--json', 'cache', 'org/tiny', '--revision', rev], { env: env() });
      expect(r.code).toBe(2);
      const err = errorDoc(r.stdout);
      expect(err.code).toBe('BAD_FLAG');
      expect(err.message).toContain('--revision');
      expect(hub.log).toEqual([]);
      v.untouched();
      expect(existsSync(cacheDir)).toBe(false);
    },
  );

  it('refs/pr/1 is a revision: its ref is written at refs/refs/pr/1 in the repo folder', async () => {
    const r = await runCli(['--json', 'cache', 'org/pr', '--revision', 'refs/pr/1'], { env: env() });
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(readFileSync(join(cacheDir, 'models--org--pr', 'refs', 'refs', 'pr', '1'), 'utf8')).toBe(doc.commit);
    // verify and offline runs read the same ref
    const v = await runCli(['--json', 'cache', 'verify', 'org/pr', '--revision', 'refs/pr/1'], { env: env() });
    expect(v.code).toBe(0);
    const off = await runCli(['--json', 'cache', 'org/pr', '--revision', 'refs/pr/1'], { env: env({ HF_HUB_OFFLINE: '1' }) });
    expect(off.code).toBe(0);
  });
});

describe('case 4: an empty folder flag is a usage error', () => {
  it.each(['--local-dir', '--cache-dir'])("%s '' : exit 2 BAD_FLAG naming the flag, no request", async (flag) => {
    const r = await runCli(['--json', 'cache', 'org/tiny', flag, ''], { env: env() });
    expect(r.code).toBe(2);
    const err = errorDoc(r.stdout);
    expect(err.code).toBe('BAD_FLAG');
    expect(err.message).toContain(flag);
    expect(hub.log).toEqual([]);
  });

  it("cache verify --local-dir '' is refused too", async () => {
    const r = await runCli(['--json', 'cache', 'verify', 'org/tiny', '--local-dir', ''], { env: env() });
    expect(r.code).toBe(2);
    expect(errorDoc(r.stdout).code).toBe('BAD_FLAG');
  });
});

describe('case 5: Ctrl-C says what really happened to the partial download', () => {
  it('SIGINT mid-file: exit 130, "kept for resume" (not "partial output removed"), the partial parked, no lock left', async () => {
    // A first run dropped at byte 400000 parks a partial; the second resumes it (its own name, on disk) and stalls.
    hub.faults.drop = { match: (p) => p === 'model.safetensors', afterBytes: 400_000, times: 1 };
    const first = await runCli(['cache', 'org/big', '--retries', '0'], { env: env() });
    expect(first.code).toBe(3);
    hub.faults.stall = { match: (p) => p === 'model.safetensors', afterBytes: 100_000, times: 1 };
    const blobs = join(cacheDir, 'models--org--big', 'blobs');
    const resuming = () => {
      try {
        return readdirSync(blobs).some((n) => n.includes('.cs-') && statSync(join(blobs, n)).size >= 400_000);
      } catch {
        return false;
      }
    };
    const r = await spawnCli(['cache', 'org/big'], env(), {
      onSpawn: (kill) => {
        void until(() => resuming() && hub.requests((q) => q.host === 'cdn' && q.range === 'bytes=400000-').length > 0).then(
          () => setTimeout(() => kill('SIGINT'), 200),
          () => kill('SIGINT'),
        );
      },
    });
    expect(r.code).toBe(130);
    const line = r.stderr.split('\n').find((l) => l.startsWith('coldstart: interrupted (SIGINT)'));
    expect(line).toMatch(/1 partial download kept for resume/);
    expect(line).not.toMatch(/removed/);
    expect(readdirSync(blobs).filter((n) => n.startsWith(sha256(big)))).toEqual([`${sha256(big)}.incomplete`]); // parked, not under the process's name
    expect(statSync(join(blobs, `${sha256(big)}.incomplete`)).size).toBeGreaterThanOrEqual(400_000);
    expect(readdirSync(join(cacheDir, '.locks', 'models--org--big'))).toEqual([]);
  });
});

describe('case 6: a cache or --local-dir on procfs fails at once (exit 3), never spins', () => {
  it.each([
    ['--local-dir /proc/1', ['--local-dir', '/proc/1'], {}],
    ['--local-dir /proc/self/sub/x', ['--local-dir', '/proc/self/sub/x'], {}],
    ['HF_HUB_CACHE=/proc/self/hf', [], { HF_HUB_CACHE: '/proc/self/hf' }],
  ])('%s: exit 3 PERMISSION within 20 s', async (_what, args, extra) => {
    const r = await spawnCli(['--json', 'cache', 'org/tiny', ...(args as string[])], { ...env(), ...(extra as Record<string, string>) }, { killAfterMs: 20_000 });
    expect(r.signal).toBeNull();
    expect(r.code).toBe(3);
    expect(errorDoc(r.stdout).code).toBe('PERMISSION');
  });
});

describe('case 7: one deadline per network wait', () => {
  it('a Hub that accepts the API call and never answers: TIMEOUT (exit 3) within the deadline, retries included', async () => {
    hub.faults.hang = (q) => q.url.startsWith('/api/');
    const r = await spawnCli(['--json', 'cache', 'org/tiny', '--retries', '1'], env({ HF_HUB_ETAG_TIMEOUT: '1' }), { killAfterMs: 30_000 });
    expect(r.code).toBe(3);
    expect(errorDoc(r.stdout).code).toBe('TIMEOUT');
    expect(r.seconds).toBeLessThan(20);
    expect(hub.requests((q) => q.url.startsWith('/api/'))).toHaveLength(2);
  });

  it.each([
    ['a small file (event loop)', 'org/tiny', (q: { url: string; host: string }) => q.url.includes('/resolve/') && q.url.endsWith('/README.md')],
    ['a big file (worker thread, after the CDN redirect)', 'org/big', (q: { url: string; host: string }) => q.host === 'cdn'],
  ])('a file server that never answers, %s: TIMEOUT (exit 3) within the deadline', async (_what, repo, match) => {
    hub.faults.hang = match;
    const r = await spawnCli(['--json', 'cache', repo, '--retries', '0'], env({ HF_HUB_DOWNLOAD_TIMEOUT: '1' }), { killAfterMs: 30_000 });
    expect(r.code).toBe(3);
    expect(errorDoc(r.stdout).code).toBe('TIMEOUT');
    expect(r.seconds).toBeLessThan(20);
  });

  it('an endpoint whose connect never completes (listen backlog full): TIMEOUT within the deadline', async () => {
    const py = peerPython();
    if (!py) return;
    // A listening socket that never accepts, its backlog filled: the next connect() hangs in SYN-SENT.
    const code = 'import socket,sys,time\ns=socket.socket();s.bind(("127.0.0.1",0));s.listen(0)\nc=socket.socket();c.connect(s.getsockname())\nprint(s.getsockname()[1],flush=True)\ntime.sleep(120)';
    const holder = spawn(py, ['-c', code]);
    try {
      const port = await new Promise<string>((res) => holder.stdout.once('data', (d) => res(String(d).trim())));
      const r = await spawnCli(['--json', 'cache', 'org/tiny', '--retries', '0'], env({ HF_ENDPOINT: `http://127.0.0.1:${port}`, HF_HUB_ETAG_TIMEOUT: '1' }), { killAfterMs: 30_000 });
      expect(r.code).toBe(3);
      const err = errorDoc(r.stdout);
      expect(err.code).toBe('TIMEOUT');
      expect(err.message).toContain('no connection');
      expect(r.seconds).toBeLessThan(20);
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('SIGTERM while the Hub hangs (default 30 s deadlines): exit 143 within 20 s', async () => {
    hub.faults.hang = (q) => q.host === 'cdn';
    const r = await spawnCli(['cache', 'org/big'], env(), {
      killAfterMs: 40_000,
      onSpawn: (kill) => {
        void until(() => hub.requests((q) => q.host === 'cdn').length > 0).then(
          () => setTimeout(() => kill('SIGTERM'), 200),
          () => kill('SIGTERM'),
        );
      },
    });
    expect(r.code).toBe(143);
    expect(r.stderr).toMatch(/interrupted \(SIGTERM\)/);
    expect(r.seconds).toBeLessThan(25);
  });
});
