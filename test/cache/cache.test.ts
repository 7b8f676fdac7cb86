import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync, lstatSync, mkdirSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runChild, runCli, runCommandWith, firstErrorLine, jsonError } from '../helpers/cli.js';
import { HubServer, diskFile, servedFile, startHubServer, type ServedFile } from '../helpers/hub-server.js';
import { downloadRepo, findCachedSnapshot, recordDownloadPhase, repoFileSizes, type DownloadEvent } from '../../src/cache/download.js';
import { ColdstartError } from '../../src/core/errors.js';
import { runPhase } from '../../src/core/phases.js';
import { globToRegExp } from '../../src/cache/layout.js';
import { registerCache, defaultCacheEngines } from '../../src/commands/cache.js';
import { outcomeError, type FetchOutcome } from '../../src/cache/outcome.js';
import { TransientError } from '../../src/hub/http.js';
import type { HubClient } from '../../src/hub/api.js';

let hub: HubServer;
let tmp: string;
let cacheDir: string;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const shard1 = randomBytes(1_500_000); // ≥ 1 MiB: hashed and written on a worker thread
const shard2 = randomBytes(300_000);
// Not a checkpoint, deterministically: random bytes are sometimes a pickle that names a global (HOSTILE_FILE, also exit 2).
const bin = Buffer.alloc(50_000, 0);
const config = Buffer.from(JSON.stringify({ model_type: 'llama', hidden_size: 8 }));
const files: ServedFile[] = [
  servedFile('config.json', config),
  servedFile('model-00001-of-00002.safetensors', shard1),
  servedFile('model-00002-of-00002.safetensors', shard2),
  servedFile('model.safetensors.index.json', Buffer.from('{"weight_map":{}}')),
  servedFile('pytorch_model.bin', bin),
  servedFile('tokenizer/tokenizer.json', Buffer.from('{"version":"1.0"}')),
  servedFile('README.md', Buffer.from('# tiny\n')),
];
let commit: string;

function env(extra: Record<string, string> = {}): Record<string, string> {
  return { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: cacheDir, HF_HOME: join(tmp, 'hfhome'), ...extra };
}
const storage = () => join(cacheDir, 'models--org--tiny');
const fileGets = () => hub.requests((r) => r.method === 'GET' && (r.host === 'cdn' || r.url.includes('/resolve/')));

beforeAll(async () => {
  hub = await startHubServer();
  hub.pageSize = 3; // force tree pagination
  commit = hub.addRepo('org/tiny', files, { tags: ['v1'] });
  hub.addRepo('org/gated', [servedFile('config.json', config), servedFile('model.safetensors', randomBytes(1000))], { gated: true });
  hub.addRepo('org/binonly', [servedFile('config.json', config), servedFile('pytorch_model.bin', bin)]);
  hub.addRepo('org/evil', [servedFile('../../escape.txt', Buffer.from('x'))]);
  hub.addRepo('gpt2', [servedFile('config.json', config), servedFile('model.safetensors', shard2)]);
  hub.addRepo('datasets/org/data', [servedFile('data/train.parquet', bin, true), servedFile('README.md', Buffer.from('# data\n'))]);
});
afterAll(async () => {
  await hub.stop();
});
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'coldstart-cache-'));
  cacheDir = join(tmp, 'hub');
  hub.log.length = 0;
  hub.faults = {};
  return () => rmSync(tmp, { recursive: true, force: true });
});

describe('coldstart cache <repo> (HF cache layout)', () => {
  it('writes blobs/<etag>, relative snapshot symlinks, refs/main, the tree listing; skips .bin next to safetensors', async () => {
    const r = await runCli(['cache', 'org/tiny'], { env: env() });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`commit ${commit.slice(0, 12)}`);
    expect(r.stdout).toMatch(/skipped 1 file\(s\).*duplicate weight formats/);
    const s = storage();
    expect(readFileSync(join(s, 'refs', 'main'), 'utf8')).toBe(commit); // no newline, like Python
    for (const f of files.filter((x) => x.path !== 'pytorch_model.bin')) {
      const etag = f.lfs ? f.sha256 : f.oid;
      const pointer = join(s, 'snapshots', commit, ...f.path.split('/'));
      expect(lstatSync(pointer).isSymbolicLink()).toBe(true);
      const depth = f.path.split('/').length - 1;
      expect(readlinkSync(pointer)).toBe(`${'../'.repeat(depth + 2)}blobs/${etag}`);
      expect(readFileSync(pointer).equals(f.content!)).toBe(true);
    }
    expect(existsSync(join(s, 'snapshots', commit, 'pytorch_model.bin'))).toBe(false);
    const tree = JSON.parse(readFileSync(join(s, 'trees', `${commit}.json`), 'utf8'));
    expect(tree.format_version).toBe(1);
    expect(Object.keys(tree.files)).toHaveLength(files.length);
    expect(tree.files['model-00001-of-00002.safetensors']).toMatchObject({ lfs_sha256: sha256(shard1), lfs_size: shard1.length });
    expect(existsSync(join(cacheDir, 'CACHEDIR.TAG'))).toBe(true);
    expect(readdirSync(join(s, 'blobs')).filter((n) => n.includes('incomplete'))).toEqual([]);
    // Tree listing was paginated (page size 3).
    expect(hub.requests((q) => q.url.includes('/tree/') && q.url.includes('cursor=')).length).toBeGreaterThan(0);
    // Credentials never go to the CDN origin.
    expect(hub.requests((q) => q.host === 'cdn' && !!q.auth)).toEqual([]);
  });

  it('a second run downloads nothing and says so', async () => {
    await runCli(['cache', 'org/tiny'], { env: env() });
    hub.log.length = 0;
    const r = await runCli(['--json', 'cache', 'org/tiny'], { env: env() });
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.schema).toBe('coldstart/cache@1');
    expect(doc).toMatchObject({ action: 'download', repo: 'org/tiny', commit, fromCache: true, bytesDownloaded: 0, mode: 'cache' });
    expect(doc.excluded).toEqual([{ path: 'pytorch_model.bin', bytes: bin.length }]);
    expect(doc.phase.name).toBe('download');
    expect(doc.phase.note).toMatch(/^cached at /);
    expect(fileGets()).toEqual([]);
  });

  it('--include/--exclude use fnmatch globs; --all-files fetches the .bin too', async () => {
    let r = await runCli(['--json', 'cache', 'org/tiny', '--include', '*.json'], { env: env() });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).files.map((f: { path: string }) => f.path)).toEqual(['config.json', 'model.safetensors.index.json', 'tokenizer/tokenizer.json']);
    r = await runCli(['--json', 'cache', 'org/tiny', '--exclude', '*.safetensors', 'tokenizer/'], { env: env() });
    expect(JSON.parse(r.stdout).files.map((f: { path: string }) => f.path)).toEqual(['README.md', 'config.json', 'model.safetensors.index.json', 'pytorch_model.bin']);
    r = await runCli(['--json', 'cache', 'org/tiny', '--all-files'], { env: env() });
    expect(JSON.parse(r.stdout).files).toHaveLength(files.length);
    r = await runCli(['--json', 'cache', 'org/tiny', '--include', '*.gguf'], { env: env() });
    expect(r.code).toBe(2);
    expect(jsonError(r).code).toBe('BAD_FLAG');
  });

  it('resolves tags and commit shas; bad revision, unknown repo, gated without token fail with one line and the right exit code', async () => {
    let r = await runCli(['--json', 'cache', 'org/tiny', '--revision', 'v1', '--include', 'config.json'], { env: env() });
    expect(JSON.parse(r.stdout).commit).toBe(commit);
    expect(readFileSync(join(storage(), 'refs', 'v1'), 'utf8')).toBe(commit);
    r = await runCli(['--json', 'cache', 'org/tiny', '--revision', commit, '--include', 'README.md'], { env: env() });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).commit).toBe(commit);
    r = await runCli(['--json', 'cache', 'org/tiny', '--revision', 'nope'], { env: env() });
    expect(r.code).toBe(2);
    expect(jsonError(r).code).toBe('REVISION_NOT_FOUND');
    r = await runCli(['--json', 'cache', 'org/missing'], { env: env() });
    expect(r.code).toBe(2);
    expect(jsonError(r).code).toBe('REPO_NOT_FOUND');
    r = await runCli(['cache', 'not a repo'], { env: env() });
    expect(r.code).toBe(2);
    r = await runCli(['--json', 'cache', 'org/gated'], { env: env() });
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout).error.code).toBe('GATED');
    expect(r.stderr).toContain('no Hugging Face token is set');
    expect(existsSync(join(cacheDir, 'models--org--gated', 'blobs'))).toBe(false);
  });

  it('gated repos work with HF_TOKEN or $HF_HOME/token', async () => {
    let r = await runCli(['cache', 'org/gated'], { env: env({ HF_TOKEN: hub.token }) });
    expect(r.code).toBe(0);
    rmSync(cacheDir, { recursive: true });
    mkdirSync(join(tmp, 'hfhome'), { recursive: true });
    writeFileSync(join(tmp, 'hfhome', 'token'), `${hub.token}\n`);
    r = await runCli(['cache', 'org/gated'], { env: env() });
    expect(r.code).toBe(0);
    r = await runCli(['cache', 'org/gated'], { env: env({ HF_TOKEN: 'hf_wrong' }) });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('your token has no access');
  });

  it('no network: exit 3 with one clear line', async () => {
    const r = await runCli(['cache', 'org/tiny', '--retries', '0'], { env: env({ HF_ENDPOINT: 'http://127.0.0.1:9' }) });
    expect(r.code).toBe(3);
    // One line that names the endpoint it could not reach; the code for scripts.
    expect(firstErrorLine(r.stderr)).toContain('http://127.0.0.1:9');
    const j = await runCli(['--json', 'cache', 'org/tiny', '--retries', '0'], { env: env({ HF_ENDPOINT: 'http://127.0.0.1:9' }) });
    expect(jsonError(j).code).toBe('NETWORK');
  });

  it('refuses a repo whose listing names a path outside the snapshot', async () => {
    const r = await runCli(['--json', 'cache', 'org/evil'], { env: env() });
    expect(r.code).toBe(2);
    expect(jsonError(r).code).toBe('HOSTILE_FILE');
    expect(existsSync(join(tmp, 'escape.txt'))).toBe(false);
  });

  it('--to-safetensors converts a .bin-only repo in its snapshot (real torch .bin), verified, no staging left', async () => {
    const dir = fileURLToPath(new URL('../../fixtures/torch/models/tiny-llama/', import.meta.url));
    hub.addRepo('org/realbin', readdirSync(dir).map((f) => servedFile(f, readFileSync(join(dir, f)))));
    const r = await runCli(['--json', 'cache', 'org/realbin', '--to-safetensors'], { env: env() });
    expect(r.code, r.stderr).toBe(0);
    const snap = findCachedSnapshot('org/realbin', 'main', env())!;
    const names = readdirSync(snap);
    expect(names).toContain('model.safetensors');
    expect(names).toContain('pytorch_model.bin');
    const { readHeader } = await import('../../src/formats/safetensors.js');
    const { openTorchCheckpoint } = await import('../../src/formats/torch.js');
    const st = readHeader(join(snap, 'model.safetensors'));
    const pt = openTorchCheckpoint(join(snap, 'pytorch_model.bin'));
    // Tied aliases are dropped by the converter; every kept tensor exists in the source.
    expect(st.tensors.length).toBeGreaterThan(0);
    for (const t of st.tensors) expect(pt.tensors.map((x) => x.name)).toContain(t.name);
    expect(readdirSync(join(snap, '..')).filter((f) => f.includes('coldstart-convert'))).toEqual([]);
  });

  it('--to-safetensors on a .bin that is not a checkpoint: exit 2, the download kept, nothing half-written', async () => {
    const r = await runCli(['--json', 'cache', 'org/binonly', '--to-safetensors'], { env: env() });
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout).error.code).toBe('CORRUPT_FILE');
    const snap = findCachedSnapshot('org/binonly', 'main', env())!;
    expect(readdirSync(snap).sort()).toEqual(['config.json', 'pytorch_model.bin']);
    expect(readdirSync(join(snap, '..')).filter((f) => f.includes('coldstart-convert'))).toEqual([]);
  });

  it('--to-safetensors with the converter swapped in (CacheEngines): a conversion cut off after writing a shard leaves the snapshot as downloaded', async () => {
    const dir = fileURLToPath(new URL('../../fixtures/torch/models/tiny-llama/', import.meta.url));
    hub.addRepo('org/cutbin', readdirSync(dir).map((f) => servedFile(f, readFileSync(join(dir, f)))));
    const seen: Array<{ input: string; output?: string; verify?: boolean }> = [];
    const r = await runCommandWith(
      registerCache,
      {
        ...defaultCacheEngines,
        convertCheckpoint: async (o) => {
          seen.push({ input: o.input, output: o.output, verify: o.verify });
          mkdirSync(o.output!, { recursive: true });
          writeFileSync(join(o.output!, 'model-00001-of-00002.safetensors'), 'partial');
          throw new ColdstartError('INTERRUPTED', 'interrupted (simulated by the test)');
        },
      },
      'cache',
      ['org/cutbin', '--to-safetensors'],
      { env: env() },
    );
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('interrupted (simulated by the test)');
    const snap = findCachedSnapshot('org/cutbin', 'main', env())!;
    expect(seen).toEqual([{ input: snap, output: expect.stringContaining('coldstart-convert'), verify: true }]);
    expect(readdirSync(snap).sort()).toEqual(readdirSync(dir).sort());
    expect(readdirSync(join(snap, '..')).filter((f) => f.includes('coldstart-convert'))).toEqual([]);
  });
});

describe('progress goes through Output: a redrawn line on a TTY only', () => {
  it('a TTY gets `label: done / total (pct%) · rate · ETA`, cleared at the end; --json, --quiet, CI and a pipe get none', async () => {
    let r = await runCli(['cache', 'org/tiny'], { env: env(), tty: true });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('\r\u001b[2Korg/tiny: resolving…');
    expect(r.stderr).toMatch(/\r\u001b\[2Korg\/tiny: \S+ \S+ \/ \S+ \S+ \(100%\) · .+ · ETA /);
    expect(r.stderr.endsWith('\r\u001b[2K')).toBe(true);
    const quiet: Array<[string[], Record<string, string>, boolean]> = [
      [['--json', 'cache', 'org/tiny'], {}, true],
      [['--quiet', 'cache', 'org/tiny'], {}, true],
      [['cache', 'org/tiny'], { CI: 'true' }, true],
      [['cache', 'org/tiny'], {}, false],
    ];
    for (const [args, extra, tty] of quiet) {
      rmSync(cacheDir, { recursive: true, force: true });
      r = await runCli(args, { env: env(extra), tty });
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stderr, args.join(' ')).toBe('');
    }
  });
});

describe('one outcome → error map (src/cache/outcome.ts)', () => {
  const file = { path: 'w.bin', size: 10, oid: 'a'.repeat(40) };
  const job = { file, url: 'http://127.0.0.1:9/w.bin', partial: '/nonexistent/w.bin.incomplete', display: 'w.bin' };
  const d = { c: { endpoint: 'http://127.0.0.1:9', retries: 0, retryBaseMs: 1, timeoutMs: 1000 } as HubClient, repo: 'org/x', opts: { env: {} } };
  const whole = { job, base: 0, length: 10, from: 0, part: false };
  const part = { job, base: 100, length: 20, from: 0, part: true };
  const kind = (e: Error | null) => (e === null ? null : e instanceof TransientError ? 'transient' : (e as ColdstartError).code);
  it.each<[string, FetchOutcome, typeof whole, string | null, RegExp?]>([
    ['every byte', { kind: 'ok', offset: 10 }, whole, null],
    ['ended early', { kind: 'ok', offset: 5 }, whole, 'transient', /connection closed at byte 5 of 10/],
    ['cut', { kind: 'short', offset: 7 }, whole, 'transient', /connection closed at byte 7 of 10/],
    ['a part cut', { kind: 'short', offset: 5 }, part, 'transient', /connection closed at byte 105 of 120/],
    ['416 on resume', { kind: '416', offset: 0 }, whole, 'transient', /416/],
    ['503', { kind: 'status', status: 503, headers: {}, offset: 0 }, whole, 'transient', /HTTP 503/],
    ['404', { kind: 'status', status: 404, headers: {}, offset: 0 }, whole, 'ENTRY_NOT_FOUND', /w\.bin/],
    ['gated', { kind: 'status', status: 403, headers: { 'x-error-code': 'GatedRepo' }, offset: 0 }, whole, 'GATED'],
    ['refused', { kind: 'net', code: 'ECONNREFUSED', message: 'x', url: job.url, offset: 0 }, whole, 'NETWORK'],
    ['reset', { kind: 'net', code: 'ECONNRESET', message: 'x', url: job.url, offset: 3 }, whole, 'transient'],
    ['disk full', { kind: 'fs', code: 'ENOSPC', message: 'x', offset: 3 }, whole, 'DISK_FULL'],
    ['redirect loop', { kind: 'redirects', url: job.url, offset: 0 }, whole, 'NETWORK', /too many redirects/],
    ['bad Content-Range', { kind: 'range', contentRange: 'bytes 0-9/10', offset: 0 }, { ...whole, from: 4 }, 'BAD_INPUT', /bytes=4- with "bytes 0-9\/10"/],
    ['bad part Content-Range', { kind: 'range', contentRange: 'bytes 0-9/10', offset: 0 }, part, 'BAD_INPUT', /bytes=100-119 with/],
    ['too long', { kind: 'toolong', offset: 10 }, whole, 'CORRUPT_FILE'],
    ['aborted', { kind: 'aborted', offset: 3 }, whole, 'INTERRUPTED'],
  ])('%s', (_what, r, asked, want, message) => {
    const e = outcomeError(r, asked, d);
    expect(kind(e)).toBe(want);
    if (message) expect(e?.message).toMatch(message);
  });
  it('an attempt that ends while the run is stopped is the stop, whatever its kind', () => {
    const ac = new AbortController();
    ac.abort(new ColdstartError('INTERRUPTED', 'stopped by the test'));
    for (const r of [{ kind: 'short', offset: 1 }, { kind: 'net', code: 'ECONNRESET', message: 'x', url: job.url, offset: 1 }] as FetchOutcome[]) {
      expect(outcomeError(r, { ...whole, signal: ac.signal }, d)?.message).toBe('stopped by the test');
    }
  });
});

describe('bin/coldstart.js as a child process', () => {
  it('exits on its own once the download is done (worker threads and keep-alive sockets do not hold it)', async () => {
    const bin = fileURLToPath(new URL('../../bin/coldstart.js', import.meta.url));
    const t0 = performance.now();
    const { code, out } = await new Promise<{ code: number | null; out: string }>((res) => {
      const p = spawn(process.execPath, [bin, '--json', 'cache', 'org/tiny'], { env: { ...process.env, ...env() } });
      let out = '';
      p.stdout.on('data', (d) => (out += d));
      const kill = setTimeout(() => p.kill('SIGKILL'), 20_000);
      p.on('close', (c) => {
        clearTimeout(kill);
        res({ code: c, out });
      });
    });
    expect(code).toBe(0);
    expect(JSON.parse(out).bytesDownloaded).toBe(JSON.parse(out).bytesTotal);
    expect(performance.now() - t0).toBeLessThan(15_000);
  });
});

describe('resume, retries, corruption, locking', () => {
  it('a dropped connection mid-file is resumed with HTTP Range and the result is byte-exact', async () => {
    hub.faults.drop = { match: (p) => p === 'model-00001-of-00002.safetensors', afterBytes: 250_000, times: 1 };
    const events: string[] = [];
    const r = await downloadRepo({ repo: 'org/tiny', env: env(), retryBaseMs: 10, onEvent: (e) => events.push(e.type) });
    expect(events).toContain('retry');
    const ranges = hub.requests((q) => q.host === 'cdn' && !!q.range).map((q) => q.range);
    expect(ranges.length).toBe(1);
    expect(Number(/bytes=(\d+)-/.exec(ranges[0]!)![1])).toBeGreaterThan(0);
    expect(readFileSync(join(r.snapshotDir, 'model-00001-of-00002.safetensors')).equals(shard1)).toBe(true);
    expect(r.bytesDownloaded).toBe(r.bytesTotal);
  });

  it('an interrupted run leaves only a resumable .incomplete blob; the next run continues from it', async () => {
    hub.faults.drop = { match: (p) => p === 'model-00001-of-00002.safetensors', afterBytes: 400_000, times: 1 };
    let r = await runCli(['cache', 'org/tiny', '--retries', '0', '--concurrency', '1'], { env: env() });
    expect(r.code).toBe(3);
    expect(firstErrorLine(r.stderr)).toMatch(/gave up after 1 attempt/);
    const partial = join(storage(), 'blobs', `${sha256(shard1)}.incomplete`);
    expect(statSync(partial).size).toBe(400_000);
    expect(existsSync(join(storage(), 'blobs', sha256(shard1)))).toBe(false);
    expect(existsSync(join(storage(), 'snapshots', commit, 'model-00001-of-00002.safetensors'))).toBe(false);
    const ls = await runCli(['--json', 'cache', 'ls'], { env: env() });
    expect(JSON.parse(ls.stdout).repos[0].incomplete).toEqual([{ blob: sha256(shard1), bytes: 400_000 }]);
    hub.log.length = 0;
    r = await runCli(['--json', 'cache', 'org/tiny'], { env: env() });
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.resumed).toEqual([{ path: 'model-00001-of-00002.safetensors', fromByte: 400_000 }]);
    expect(hub.requests((q) => q.host === 'cdn' && q.range === 'bytes=400000-')).toHaveLength(1);
    expect(readFileSync(join(doc.snapshotDir, 'model-00001-of-00002.safetensors')).equals(shard1)).toBe(true);
    expect(existsSync(partial)).toBe(false);
  });

  it('Ctrl-C mid-file on the worker path leaves only a resumable .incomplete (lock released); the next run resumes', async () => {
    const shard = 'model-00001-of-00002.safetensors'; // ≥ 1 MiB: fetched, hashed and written on a worker thread
    hub.faults.stall = { match: (p) => p === shard, afterBytes: 600_000, times: 1 };
    const ac = new AbortController();
    const seen: number[] = [];
    const run = downloadRepo({
      repo: 'org/tiny',
      env: env(),
      include: [shard],
      signal: ac.signal,
      // Progress comes from the worker while the body is still open; abort once it has the stalled prefix.
      onProgress: (p) => {
        seen.push(p.bytesDone);
        if (p.bytesDone >= 600_000) ac.abort(new ColdstartError('INTERRUPTED', 'interrupted by SIGINT'));
      },
    });
    await expect(run).rejects.toMatchObject({ code: 'INTERRUPTED' });
    expect(seen.some((b) => b > 0 && b < shard1.length)).toBe(true);
    const blobs = join(storage(), 'blobs');
    expect(readdirSync(blobs)).toEqual([`${sha256(shard1)}.incomplete`]);
    expect(statSync(join(blobs, `${sha256(shard1)}.incomplete`)).size).toBe(600_000);
    expect(readdirSync(join(cacheDir, '.locks', 'models--org--tiny'))).toEqual([]);
    hub.log.length = 0;
    const r = await downloadRepo({ repo: 'org/tiny', env: env(), include: [shard] });
    expect(r.resumed).toEqual([{ path: shard, fromByte: 600_000 }]);
    expect(hub.requests((q) => q.host === 'cdn' && q.range === 'bytes=600000-')).toHaveLength(1);
    expect(readFileSync(join(r.snapshotDir, shard)).equals(shard1)).toBe(true);
  });

  it('SIGINT to the CLI process (it exits at once): the partial is parked for resume, no lock left; the next run resumes', async () => {
    const shard = 'model-00001-of-00002.safetensors';
    hub.faults.stall = { match: (p) => p === shard, afterBytes: 600_000, times: 1 };
    const binPath = fileURLToPath(new URL('../../bin/coldstart.js', import.meta.url));
    const p = spawn(process.execPath, [binPath, 'cache', 'org/tiny', '--include', shard], { env: { ...process.env, ...env() } });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    const blobs = join(storage(), 'blobs');
    const t0 = Date.now();
    // Wait until the stalled prefix is on disk (the worker writes it once the body pauses... or at the end of the attempt).
    while (Date.now() - t0 < 10_000 && !(hub.requests((q) => q.host === 'cdn').length > 0 && existsSync(blobs) && readdirSync(blobs).some((n) => n.includes('.cs-')))) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 300));
    p.kill('SIGINT');
    const code = await new Promise<number | null>((res) => p.on('close', res));
    expect(code).not.toBe(0);
    expect(err).toMatch(/interrupted/);
    const left = readdirSync(blobs);
    expect(left.filter((n) => n.includes('.cs-'))).toEqual([]); // parked, not left under the process's own name
    if (left.length) expect(left).toEqual([`${sha256(shard1)}.incomplete`]);
    expect(readdirSync(join(cacheDir, '.locks', 'models--org--tiny')).filter((n) => n.endsWith('.lock'))).toEqual([]);
    hub.faults = {};
    const r = await runCli(['--json', 'cache', 'org/tiny', '--include', shard], { env: env() });
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.bytesResumed + j.bytesWire).toBe(shard1.length);
    expect(readFileSync(join(j.snapshotDir, shard)).equals(shard1)).toBe(true);
  });

  it('a stalled body on the worker path times out, is retried from the byte reached, and ends byte-exact', async () => {
    hub.faults.stall = { match: (p) => p === 'model-00001-of-00002.safetensors', afterBytes: 700_000, times: 1 };
    const events: DownloadEvent[] = [];
    const r = await downloadRepo({ repo: 'org/tiny', env: env(), timeoutMs: 300, retryBaseMs: 10, onEvent: (e) => events.push(e) });
    expect(events.find((e) => e.type === 'retry')).toMatchObject({ file: 'model-00001-of-00002.safetensors', reason: expect.stringMatching(/ETIMEDOUT/) });
    expect(hub.requests((q) => q.host === 'cdn' && q.range === 'bytes=700000-')).toHaveLength(1);
    expect(readFileSync(join(r.snapshotDir, 'model-00001-of-00002.safetensors')).equals(shard1)).toBe(true);
    expect(r.bytesDownloaded).toBe(r.bytesTotal);
  });

  it('a server that ignores Range restarts the file and still ends byte-exact', async () => {
    hub.faults.drop = { match: (p) => p === 'model-00002-of-00002.safetensors', afterBytes: 100_000, times: 1 };
    hub.faults.ignoreRange = true;
    const r = await downloadRepo({ repo: 'org/tiny', env: env(), retryBaseMs: 10 });
    expect(readFileSync(join(r.snapshotDir, 'model-00002-of-00002.safetensors')).equals(shard2)).toBe(true);
  });

  it('worker path: a 503 is retried, a server that ignores Range restarts the file, the result is byte-exact', async () => {
    const shard = 'model-00001-of-00002.safetensors';
    hub.faults.unavailable = 1;
    hub.faults.drop = { match: (p) => p === shard, afterBytes: 250_000, times: 1 };
    hub.faults.ignoreRange = true;
    const events: DownloadEvent[] = [];
    const r = await downloadRepo({ repo: 'org/tiny', env: env(), include: [shard], retryBaseMs: 5, onEvent: (e) => events.push(e) });
    const retries = events.filter((e) => e.type === 'retry');
    expect(retries.map((e) => (e as { reason: string }).reason)).toEqual([expect.stringMatching(/HTTP 503/), expect.stringMatching(/connection closed at byte 250000|ECONNRESET|aborted/)]);
    expect(hub.requests((q) => q.host === 'cdn' && q.range === 'bytes=250000-')).toHaveLength(1);
    expect(readFileSync(join(r.snapshotDir, shard)).equals(shard1)).toBe(true);
    // Exact accounting: 250 000 bytes of the dropped attempt, then the whole file again (the server ignored Range).
    expect(r.bytesWire).toBe(250_000 + shard1.length);
    expect(r.bytesDownloaded).toBe(r.bytesWire);
    expect(r.bytesRefetched).toBe(250_000);
    expect(r.bytesResumed).toBe(0);
  });

  it('accounting across runs: a parked partial resumed by a server that answers 416 / 200 counts every wire byte', async () => {
    const shard = 'model-00001-of-00002.safetensors';
    for (const fault of ['200', '416'] as const) {
      rmSync(cacheDir, { recursive: true, force: true });
      hub.faults = { drop: { match: (p) => p === shard, afterBytes: 400_000, times: 1 } };
      const first = await runCli(['--json', 'cache', 'org/tiny', '--include', shard, '--retries', '0'], { env: env() });
      expect(first.code).toBe(3);
      expect(JSON.parse(first.stdout).error.message).toContain(shard); // the final network error names the file
      const parked = join(storage(), 'blobs', `${sha256(shard1)}.incomplete`);
      const have = statSync(parked).size;
      expect(have).toBeGreaterThan(0);
      hub.faults = fault === '200' ? { ignoreRange: true } : {};
      if (fault === '416') writeFileSync(parked, Buffer.concat([readFileSync(parked), Buffer.alloc(shard1.length)])); // longer than the file: truncated to 0
      const r = await runCli(['--json', 'cache', 'org/tiny', '--include', shard], { env: env() });
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.bytesWire).toBe(shard1.length);
      expect(j.bytesDownloaded).toBe(shard1.length);
      expect(j.bytesResumed).toBe(0);
      if (fault === '200') expect(j.bytesRefetched).toBe(have);
      expect(readFileSync(join(j.snapshotDir, shard)).equals(shard1)).toBe(true);
      expect(readdirSync(join(storage(), 'blobs')).filter((n) => n.includes('incomplete'))).toEqual([]);
    }
  });

  it('a resumed partial counts as resumed, not as downloaded', async () => {
    const shard = 'model-00001-of-00002.safetensors';
    hub.faults = { drop: { match: (p) => p === shard, afterBytes: 400_000, times: 1 } };
    expect((await runCli(['cache', 'org/tiny', '--include', shard, '--retries', '0'], { env: env() })).code).toBe(3);
    const have = statSync(join(storage(), 'blobs', `${sha256(shard1)}.incomplete`)).size;
    hub.faults = {};
    const r = await runCli(['--json', 'cache', 'org/tiny', '--include', shard], { env: env() });
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ bytesResumed: have, bytesWire: shard1.length - have, bytesRefetched: 0, bytesDownloaded: shard1.length - have });
  });

  it('a truncated blob is not "already cached" online, nor complete offline', async () => {
    await downloadRepo({ repo: 'org/tiny', env: env() });
    const blob = join(storage(), 'blobs', sha256(shard2));
    writeFileSync(blob, shard2.subarray(0, 1000));
    let r = await runCli(['--json', 'cache', 'org/tiny'], { env: env({ HF_HUB_OFFLINE: '1' }) });
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout).error.message).toMatch(/model-00002-of-00002.safetensors \(1000 of 300000 bytes\)/);
    rmSync(join(storage(), 'blobs', files[0].oid), { force: true }); // config.json: a regular file, named by its git sha1
    r = await runCli(['--json', 'cache', 'org/tiny'], { env: env({ HF_HUB_OFFLINE: '1' }) });
    expect(JSON.parse(r.stdout).error.message).toMatch(/2 file\(s\).*missing or incomplete/);
    r = await runCli(['--json', 'cache', 'org/tiny'], { env: env() });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).bytesWire).toBe(shard2.length + config.length);
    expect(readFileSync(blob).equals(shard2)).toBe(true);
  });

  it('a file that fails before its first byte leaves no empty .incomplete', async () => {
    hub.faults = { drop: { match: (p) => p === 'model-00002-of-00002.safetensors', afterBytes: 0, times: 5 } };
    const r = await runCli(['cache', 'org/tiny', '--retries', '0', '--concurrency', '1'], { env: env() });
    expect(r.code).toBe(3);
    const left = readdirSync(join(storage(), 'blobs')).filter((n) => n.includes('incomplete'));
    for (const n of left) expect(statSync(join(storage(), 'blobs', n)).size).toBeGreaterThan(0);
    expect(left.filter((n) => n.startsWith(sha256(shard2)))).toEqual([]);
  });

  it('worker path: the token goes to the Hub, never to the CDN it redirects to', async () => {
    const big = randomBytes(1_200_000);
    hub.addRepo('org/gated-big', [servedFile('config.json', config), servedFile('model.safetensors', big)], { gated: true });
    const r = await downloadRepo({ repo: 'org/gated-big', env: env({ HF_TOKEN: hub.token }) });
    expect(readFileSync(join(r.snapshotDir, 'model.safetensors')).equals(big)).toBe(true);
    const gets = hub.requests((q) => q.method === 'GET' && q.url.includes('model.safetensors'));
    expect(gets.filter((q) => q.host === 'hub').every((q) => q.auth === `Bearer ${hub.token}`)).toBe(true);
    expect(gets.filter((q) => q.host === 'cdn').length).toBeGreaterThan(0);
    expect(gets.filter((q) => q.host === 'cdn').every((q) => q.auth === undefined)).toBe(true);
  });

  it('corrupted bytes are rejected: exit 2, nothing enters the cache, no partial kept', async () => {
    hub.faults.corrupt = (p) => p.endsWith('.safetensors'); // one file hashed on a worker thread, one inline
    const r = await runCli(['--json', 'cache', 'org/tiny'], { env: env() });
    expect(r.code).toBe(2);
    const err = JSON.parse(r.stdout).error;
    expect(err.code).toBe('CORRUPT_FILE');
    expect(err.message).toMatch(/sha256 [0-9a-f]{64} does not match the Hub's/);
    const blobs = readdirSync(join(storage(), 'blobs'));
    expect(blobs.some((b) => b.startsWith(sha256(shard2)) || b.startsWith(sha256(shard1)))).toBe(false);
    expect(existsSync(join(storage(), 'snapshots', commit, 'model-00002-of-00002.safetensors'))).toBe(false);
    expect(existsSync(join(storage(), 'snapshots', commit, 'model-00001-of-00002.safetensors'))).toBe(false);
  });

  it('a regular (non-LFS) file is checked against its git blob sha1', async () => {
    hub.faults.corrupt = (p) => p === 'config.json';
    const r = await runCli(['--json', 'cache', 'org/tiny', '--include', 'config.json'], { env: env() });
    expect(r.code).toBe(2);
    const err = jsonError(r);
    expect(err.code).toBe('CORRUPT_FILE');
    expect(err.message).toContain('sha1'); // the git blob id, not an LFS sha256
  });

  it('disk full: exit 3 DISK_FULL with one line, on the worker-thread and the inline write path', async () => {
    // A real full disk: the blobs folder is a 128 KiB tmpfs, mounted in a mount namespace of the child's own (the free
    // space check looks at the repo folder above it, so the run starts and its writes fail with ENOSPC). What the
    // child wrote vanishes with its namespace; the folder below the mount must stay empty.
    for (const [file, content] of [
      ['model-00001-of-00002.safetensors', shard1],
      ['model-00002-of-00002.safetensors', shard2],
    ] as const) {
      rmSync(cacheDir, { recursive: true, force: true });
      const blobs = join(storage(), 'blobs');
      mkdirSync(blobs, { recursive: true });
      const r = await runChild(['--json', 'cache', 'org/tiny', '--include', file], { prefix: ['unshare', '-m'], shell: `mount -t tmpfs -o size=128k coldstart-full ${blobs}`, env: env(), deadlineMs: 60_000 });
      expect(r.code, r.stderr).toBe(3);
      expect(JSON.parse(r.stdout).error.code).toBe('DISK_FULL');
      expect(firstErrorLine(r.stderr)).toMatch(/no space left on device/);
      expect(readdirSync(blobs)).toEqual([]);
      expect(existsSync(join(storage(), 'snapshots', commit, file))).toBe(false);
    }
  });

  it('refuses up front when the files cannot fit in the free space (nothing downloaded)', async () => {
    hub.addRepo('org/huge', [servedFile('config.json', config), diskFile('model.safetensors', '/nonexistent', 2 ** 52, 'a'.repeat(64))]);
    const r = await runCli(['--json', 'cache', 'org/huge'], { env: env() });
    expect(r.code).toBe(3);
    const err = jsonError(r);
    expect(err.code).toBe('DISK_FULL');
    expect(err.message).toContain('4.00 PiB'); // what is still to download, in the unit a reader can act on
    expect(fileGets()).toEqual([]);
  });

  it('retries 503 answers with backoff', async () => {
    hub.faults.unavailable = 2;
    const events: string[] = [];
    const r = await downloadRepo({ repo: 'org/tiny', env: env(), retryBaseMs: 5, concurrency: 1, onEvent: (e) => events.push(e.type) });
    expect(events.filter((e) => e === 'retry')).toHaveLength(2);
    expect(r.files.every((f) => !f.cached)).toBe(true);
  });

  it('two concurrent runs on the same model do not corrupt anything', async () => {
    const [a, b] = await Promise.all([downloadRepo({ repo: 'org/tiny', env: env(), concurrency: 4 }), downloadRepo({ repo: 'org/tiny', env: env(), concurrency: 4 })]);
    expect(a.snapshotDir).toBe(b.snapshotDir);
    expect(readFileSync(join(a.snapshotDir, 'model-00001-of-00002.safetensors')).equals(shard1)).toBe(true);
    expect(readFileSync(join(a.snapshotDir, 'model-00002-of-00002.safetensors')).equals(shard2)).toBe(true);
    // Each blob was fetched once: the second run waited on the lock and reused it.
    expect(a.bytesDownloaded + b.bytesDownloaded).toBe(a.bytesTotal);
    expect(readdirSync(join(cacheDir, '.locks', 'models--org--tiny'))).toEqual([]);
    const v = await runCli(['cache', 'verify', 'org/tiny'], { env: env() });
    expect(v.code).toBe(0);
  });

  it('a stale lock left by a dead process is taken over', async () => {
    const lockDir = join(cacheDir, '.locks', 'models--org--tiny');
    mkdirSync(lockDir, { recursive: true });
    const { hostname } = await import('node:os');
    const { pidNamespace } = await import('../../src/cache/lock.js');
    const lock = join(lockDir, `${sha256(shard1)}.coldstart.lock`);
    // Same host, same PID namespace, pid gone: stale at once (fresh heartbeat or not).
    writeFileSync(lock, JSON.stringify({ v: 1, host: hostname(), pidns: pidNamespace(), pid: 999_999_999, start: '1', token: 'x', created: '' }));
    let t = performance.now();
    let r = await runCli(['cache', 'org/tiny'], { env: env() });
    expect(r.code).toBe(0);
    expect(performance.now() - t).toBeLessThan(10_000);
    expect(existsSync(lock)).toBe(false);
    // Another host (or PID namespace): its pid means nothing here; stale only once its heartbeat is older than the bound.
    rmSync(storage(), { recursive: true, force: true });
    writeFileSync(lock, JSON.stringify({ v: 1, host: 'other-host', pidns: '1', pid: process.pid, start: '1', token: 'x', created: '' }));
    t = performance.now();
    r = await runCli(['cache', 'org/tiny'], { env: env({ COLDSTART_LOCK_STALE_SECONDS: '1' }) });
    expect(r.code).toBe(0);
    expect(performance.now() - t).toBeGreaterThan(900); // it waited for the heartbeat to age
    expect(readFileSync(join(storage(), 'blobs', sha256(shard1))).equals(shard1)).toBe(true);
  });

  it('a live lock of another host is waited for while its heartbeat is fresh', async () => {
    const lockDir = join(cacheDir, '.locks', 'models--org--tiny');
    mkdirSync(lockDir, { recursive: true });
    const lock = join(lockDir, `${sha256(shard1)}.coldstart.lock`);
    writeFileSync(lock, JSON.stringify({ v: 1, host: 'other-host', pidns: '1', pid: 1, start: '1', token: 'x', created: '' }));
    const { utimesSync } = await import('node:fs');
    const beat2 = setInterval(() => {
      const d = new Date();
      try {
        utimesSync(lock, d, d);
      } catch {
        /* removed */
      }
    }, 100);
    const events: string[] = [];
    const p = downloadRepo({ repo: 'org/tiny', env: env({ COLDSTART_LOCK_STALE_SECONDS: '1' }), onEvent: (e) => events.push(e.type) });
    await new Promise((res) => setTimeout(res, 2500));
    expect(events).toContain('waiting-lock');
    expect(existsSync(join(storage(), 'blobs', sha256(shard1)))).toBe(false);
    clearInterval(beat2); // the other host dies: its heartbeat stops
    const r = await p;
    expect(readFileSync(join(r.snapshotDir, 'model-00001-of-00002.safetensors')).equals(shard1)).toBe(true);
  });
});

describe('parallel Range parts (COLDSTART_PART_MIN_BYTES lowered for the test)', () => {
  const parts = { COLDSTART_PART_MIN_BYTES: String(300_000) }; // shard1 (1.5 MB) → 4 parts of 375 000 bytes
  const shard = 'model-00001-of-00002.safetensors';

  it('a big file is fetched as parallel Range parts, hashed in order, byte-exact; accounting exact', async () => {
    const r = await downloadRepo({ repo: 'org/tiny', env: env(parts), include: [shard] });
    const ranges = hub.requests((q) => q.host === 'cdn' && !!q.range).map((q) => q.range).sort();
    expect(ranges).toEqual(['bytes=0-374999', 'bytes=1125000-1499999', 'bytes=375000-749999', 'bytes=750000-1124999']);
    expect(readFileSync(join(r.snapshotDir, shard)).equals(shard1)).toBe(true);
    expect(r.bytesWire).toBe(shard1.length);
    expect(readdirSync(join(storage(), 'blobs'))).toEqual([sha256(shard1)]);
  });

  it('a dropped part is retried from its byte; a server without Range falls back to one stream; corrupt bytes are rejected', async () => {
    hub.faults.drop = { match: (p) => p === shard, afterBytes: 100_000, times: 1 };
    let r = await downloadRepo({ repo: 'org/tiny', env: env(parts), include: [shard], retryBaseMs: 5 });
    expect(readFileSync(join(r.snapshotDir, shard)).equals(shard1)).toBe(true);
    expect(r.bytesWire).toBe(shard1.length);
    rmSync(cacheDir, { recursive: true, force: true });
    hub.log.length = 0;
    hub.faults = { ignoreRange: true };
    r = await downloadRepo({ repo: 'org/tiny', env: env(parts), include: [shard], retryBaseMs: 5 });
    expect(readFileSync(join(r.snapshotDir, shard)).equals(shard1)).toBe(true);
    expect(hub.requests((q) => q.host === 'cdn' && !q.range).length).toBeGreaterThan(0);
    rmSync(cacheDir, { recursive: true, force: true });
    hub.faults = { corrupt: (p) => p === shard };
    await expect(downloadRepo({ repo: 'org/tiny', env: env(parts), include: [shard], retryBaseMs: 5 })).rejects.toMatchObject({ code: 'CORRUPT_FILE' });
    expect(existsSync(join(storage(), 'blobs', sha256(shard1)))).toBe(false);
    expect(readdirSync(join(storage(), 'blobs')).filter((n) => n.includes('incomplete'))).toEqual([]);
  });

  it('a failed part run parks its parts with a journal (never as a prefix); the next run fetches only the missing bytes', async () => {
    hub.faults.drop = { match: (p) => p === shard, afterBytes: 100_000, times: 8 };
    const r1 = await runCli(['cache', 'org/tiny', '--include', shard, '--retries', '0'], { env: env(parts) });
    expect(r1.code).toBe(3);
    const blobs = join(storage(), 'blobs');
    // A file with holes is never parked under the prefix name older tools resume from.
    expect(existsSync(join(blobs, `${sha256(shard1)}.incomplete`))).toBe(false);
    expect(existsSync(join(blobs, `${sha256(shard1)}.parts.incomplete`))).toBe(true);
    expect(readdirSync(blobs).filter((n) => n.endsWith('.json'))).toHaveLength(1);
    hub.faults = {};
    hub.log.length = 0;
    const r = await runCli(['--json', 'cache', 'org/tiny', '--include', shard], { env: env(parts) });
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(readFileSync(join(j.snapshotDir, shard)).equals(shard1)).toBe(true);
    expect(j.bytesResumed).toBeGreaterThan(0);
    expect(j.bytesResumed + j.bytesWire).toBe(shard1.length);
    // Every part continued past its start: no byte kept was asked for again.
    const starts = hub.requests((q) => q.host === 'cdn' && !!q.range).map((q) => Number(/^bytes=(\d+)-/.exec(q.range!)![1]));
    expect(starts).toHaveLength(4);
    for (const [i, base] of [0, 375_000, 750_000, 1_125_000].entries()) expect(starts.sort((a, b) => a - b)[i]).toBeGreaterThan(base);
    expect(readdirSync(blobs)).toEqual([sha256(shard1)]); // partial and journal gone
  });
});

describe('`hf download` parity', () => {
  it('positional FILENAMES (and dir/), single-segment ids, --repo-type dataset: same cache folders as huggingface_hub', async () => {
    let r = await runCli(['--json', 'cache', 'org/tiny', 'config.json', 'tokenizer/', '--include', '*.safetensors'], { env: env() });
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.files.map((f: { path: string }) => f.path).sort()).toEqual(['config.json', 'tokenizer/tokenizer.json']);
    expect(r.stderr).toMatch(/ignoring --include\/--exclude/);
    r = await runCli(['--json', 'cache', 'org/tiny', 'nope.json'], { env: env() });
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout).error.message).toMatch(/no file "nope.json"/);
    r = await runCli(['--json', 'cache', 'gpt2'], { env: env() });
    expect(r.code, r.stdout).toBe(0);
    expect(readFileSync(join(cacheDir, 'models--gpt2', 'snapshots', JSON.parse(r.stdout).commit, 'model.safetensors')).equals(shard2)).toBe(true);
    r = await runCli(['--json', 'cache', 'org/data', '--repo-type', 'dataset'], { env: env() });
    expect(r.code, r.stdout).toBe(0);
    expect(readFileSync(join(cacheDir, 'datasets--org--data', 'snapshots', JSON.parse(r.stdout).commit, 'data', 'train.parquet')).equals(bin)).toBe(true);
    r = await runCli(['cache', 'org/data', '--repo-type', 'model'], { env: env() });
    expect(r.code).toBe(2); // no such model
    r = await runCli(['cache', 'org/data', '--repo-type', 'dataset-ish'], { env: env() });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--repo-type/);
  });

  it('--dry-run lists what would be fetched and its size, writes nothing, fetches no file bytes', async () => {
    let r = await runCli(['--json', 'cache', 'org/tiny', '--dry-run'], { env: env() });
    expect(r.code).toBe(0);
    let j = JSON.parse(r.stdout);
    expect(j.action).toBe('dry-run');
    expect(j.filesToDownload).toBe(6);
    expect(j.bytesToDownload).toBe(files.filter((f) => f.path !== 'pytorch_model.bin').reduce((a, f) => a + f.size, 0));
    expect(existsSync(cacheDir)).toBe(false);
    expect(fileGets()).toEqual([]);
    await runCli(['cache', 'org/tiny', 'config.json'], { env: env() });
    r = await runCli(['cache', 'org/tiny', '--dry-run'], { env: env() });
    expect(r.stdout).toMatch(/\[dry-run\] Will download 5 files \(out of 6\) totalling/);
    expect(r.stdout).toMatch(/config\.json\s+-\n/);
    r = await runCli(['--json', 'cache', 'org/tiny', '--dry-run', '--force-download'], { env: env() });
    j = JSON.parse(r.stdout);
    expect(j.filesToDownload).toBe(6);
  });

  it('--dry-run --local-dir writes nothing: no folder, no .cache/huggingface bookkeeping, no file bytes', async () => {
    const dir = join(tmp, 'plan');
    let r = await runCli(['--json', 'cache', 'org/tiny', '--dry-run', '--local-dir', dir], { env: env() });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ action: 'dry-run', mode: 'local-dir', filesToDownload: 6 });
    expect(existsSync(dir)).toBe(false);
    mkdirSync(dir);
    r = await runCli(['cache', 'org/tiny', '--dry-run', '--local-dir', dir], { env: env() });
    expect(r.code).toBe(0);
    expect(readdirSync(dir)).toEqual([]);
    expect(fileGets()).toEqual([]);
  });

  it('--local-dir goes through the output guard: a symlink, the HF cache, a folder inside or above it, a file: exit 2, no request', async () => {
    mkdirSync(join(tmp, 'real'));
    symlinkSync(join(tmp, 'real'), join(tmp, 'link'));
    writeFileSync(join(tmp, 'a-file'), 'x');
    mkdirSync(join(cacheDir, 'models--org--tiny', 'snapshots'), { recursive: true });
    const cases: Array<[string, string]> = [
      [join(tmp, 'link'), 'BAD_FLAG'],
      [cacheDir, 'BAD_FLAG'],
      [join(cacheDir, 'models--org--tiny', 'snapshots'), 'BAD_FLAG'],
      [tmp, 'BAD_FLAG'], // above the cache (tmp/hub)
      [join(tmp, 'a-file'), 'OUTPUT_EXISTS'],
    ];
    for (const [dir, code] of cases) {
      const r = await runCli(['--json', 'cache', 'org/tiny', '--local-dir', dir], { env: env() });
      expect(r.code, dir).toBe(2);
      expect(JSON.parse(r.stdout).error.code, dir).toBe(code);
    }
    expect(readdirSync(join(tmp, 'real'))).toEqual([]);
    expect(readFileSync(join(tmp, 'a-file'), 'utf8')).toBe('x');
    expect(hub.log).toEqual([]);
  });

  it('--force-download fetches again and replaces the blob; --cache-dir and --token override the environment', async () => {
    const other = join(tmp, 'other-cache');
    let r = await runCli(['--json', 'cache', 'org/tiny', '--cache-dir', other], { env: env() });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).cacheDir).toBe(other);
    expect(existsSync(cacheDir)).toBe(false);
    hub.log.length = 0;
    r = await runCli(['--json', 'cache', 'org/tiny', '--cache-dir', other, '--force-download'], { env: env() });
    const j = JSON.parse(r.stdout);
    expect(j.bytesWire).toBe(j.bytesTotal);
    expect(fileGets().length).toBe(8); // 6 files: 4 regular GETs + 2 LFS files × (resolve redirect + CDN GET)
    expect(readFileSync(join(j.snapshotDir, 'model-00001-of-00002.safetensors')).equals(shard1)).toBe(true);
    r = await runCli(['cache', 'org/tiny', '--cache-dir', other, '--local-dir', join(tmp, 'l')], { env: env() });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--cache-dir and --local-dir cannot be used together');
    // a bad value beside them is named first
    r = await runCli(['cache', 'org/tiny', '--cache-dir', other, '--local-dir', join(tmp, 'l'), '--retries', 'many'], { env: env() });
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toMatch(/^coldstart: error: --retries: expected/);
    r = await runCli(['--json', 'cache', 'org/gated'], { env: env() });
    expect(r.code).not.toBe(0);
    r = await runCli(['--json', 'cache', 'org/gated', '--token', hub.token], { env: env() });
    expect(r.code, r.stdout).toBe(0);
  });
});

describe('offline, local-dir, ls/verify/rm, API for profile', () => {
  it('HF_HUB_OFFLINE: reports what is cached and makes no request; exit 3 when missing', async () => {
    let r = await runCli(['cache', 'org/tiny'], { env: env({ HF_HUB_OFFLINE: '1' }) });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/HF_HUB_OFFLINE is set and org\/tiny@main is not in the cache/);
    await runCli(['cache', 'org/tiny'], { env: env() });
    hub.log.length = 0;
    r = await runCli(['--json', 'cache', 'org/tiny'], { env: env({ HF_HUB_OFFLINE: '1' }) });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ offline: true, fromCache: true, commit, bytesDownloaded: 0 });
    expect(hub.log).toEqual([]);
    r = await runCli(['cache', 'org/tiny', '--all-files'], { env: env({ HF_HUB_OFFLINE: '1' }) });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('pytorch_model.bin');
    // Offline answers the plan's questions as online does: a name not in the listing, globs that match nothing.
    r = await runCli(['--json', 'cache', 'org/tiny', 'nope.json'], { env: env({ HF_HUB_OFFLINE: '1' }) });
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout).error.code).toBe('ENTRY_NOT_FOUND');
    r = await runCli(['--json', 'cache', 'org/tiny', '--include', '*.gguf'], { env: env({ HF_HUB_OFFLINE: '1' }) });
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout).error.code).toBe('BAD_FLAG');
  });

  it('--local-dir writes plain files with the .cache/huggingface/download metadata Python uses, and reuses them', async () => {
    const dir = join(tmp, 'local');
    let r = await runCli(['cache', 'org/tiny', '--local-dir', dir], { env: env() });
    expect(r.code).toBe(0);
    expect(lstatSync(join(dir, 'model-00001-of-00002.safetensors')).isFile()).toBe(true);
    expect(readFileSync(join(dir, 'tokenizer', 'tokenizer.json')).equals(files[5].content!)).toBe(true);
    const meta = readFileSync(join(dir, '.cache', 'huggingface', 'download', 'model-00001-of-00002.safetensors.metadata'), 'utf8').split('\n');
    expect(meta[0]).toBe(commit);
    expect(meta[1]).toBe(sha256(shard1));
    expect(Number(meta[2])).toBeGreaterThan(1e9);
    expect(readFileSync(join(dir, '.cache', 'huggingface', '.gitignore'), 'utf8')).toBe('*');
    expect(existsSync(join(cacheDir, 'models--org--tiny', 'blobs'))).toBe(false);
    hub.log.length = 0;
    r = await runCli(['--json', 'cache', 'org/tiny', '--local-dir', dir], { env: env() });
    expect(JSON.parse(r.stdout).bytesDownloaded).toBe(0);
    expect(fileGets()).toEqual([]);
    const v = await runCli(['cache', 'verify', 'org/tiny', '--local-dir', dir], { env: env() });
    expect(v.code).toBe(0);
    writeFileSync(join(dir, 'config.json'), '{"tampered":1}');
    const v2 = await runCli(['cache', 'verify', 'org/tiny', '--local-dir', dir], { env: env() });
    expect(v2.code).toBe(1);
  });

  it('cache rm: refuses under a live lock (naming its owner), removes a lock whose owner is dead and says so', async () => {
    await downloadRepo({ repo: 'org/tiny', env: env() });
    const { hostname } = await import('node:os');
    const { pidNamespace } = await import('../../src/cache/lock.js');
    const lockDir = join(cacheDir, '.locks', 'models--org--tiny');
    mkdirSync(lockDir, { recursive: true });
    const lock = join(lockDir, 'x.coldstart.lock');
    writeFileSync(lock, JSON.stringify({ v: 1, host: 'pod-b', pidns: '1', pid: 42, start: '1', token: 't', created: '' }));
    let r = await runCli(['cache', 'rm', 'org/tiny'], { env: env() });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/held by pid 42 on pod-b/);
    writeFileSync(lock, JSON.stringify({ v: 1, host: hostname(), pidns: pidNamespace(), pid: 999_999_999, start: '1', token: 't', created: '' }));
    r = await runCli(['cache', 'rm', 'org/tiny'], { env: env() });
    expect(r.code).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/removing a stale lock: pid 999999999 .*process 999999999 on this host is gone/);
    expect(existsSync(storage())).toBe(false);
  });

  it('ls, verify (exit 1 on a tampered blob) and rm', async () => {
    await runCli(['cache', 'org/tiny'], { env: env() });
    let r = await runCli(['cache', 'ls'], { env: env() });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('org/tiny');
    expect(r.stdout).toMatch(/\(main, v1\)|\(v1, main\)|\(main\)/);
    // pytorch_model.bin was skipped on purpose (a duplicate of the safetensors): skipped, not "not cached".
    expect(r.stdout).toMatch(/: complete; 1 skipped \(duplicate weight formats/);
    r = await runCli(['--json', 'cache', 'verify', 'org/tiny'], { env: env() });
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ schema: 'coldstart/cache@1', action: 'verify', ok: true, notFetched: ['pytorch_model.bin'] });
    expect(doc.files.map((f: { algorithm: string }) => f.algorithm).sort()).toContain('git-sha1');
    const blob = join(storage(), 'blobs', sha256(shard2));
    const bad = Buffer.from(shard2);
    bad[10] ^= 1;
    writeFileSync(blob, bad);
    r = await runCli(['cache', 'verify', 'org/tiny'], { env: env() });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/MISMATCH org\/tiny .*model-00002-of-00002\.safetensors/);
    r = await runCli(['cache', 'rm', 'org/tiny'], { env: env() });
    expect(r.code).toBe(0);
    expect(existsSync(storage())).toBe(false);
    r = await runCli(['cache', 'rm', 'org/tiny'], { env: env() });
    expect(r.code).toBe(2);
  });

  it('repoFileSizes lists sizes without weight bytes; findCachedSnapshot; recordDownloadPhase', async () => {
    const sizes = await repoFileSizes({ repo: 'org/tiny', env: env() });
    expect(sizes.find((s) => s.path === 'model-00001-of-00002.safetensors')?.bytes).toBe(shard1.length);
    expect(fileGets()).toEqual([]);
    expect(findCachedSnapshot('org/tiny', undefined, env())).toBeNull();
    const r = await downloadRepo({ repo: 'org/tiny', env: env(), include: ['*.safetensors'] });
    expect(findCachedSnapshot('org/tiny', 'main', env())).toBe(r.snapshotDir);
    expect(findCachedSnapshot('org/tiny', commit, env())).toBe(r.snapshotDir);
    const phase = await runPhase('download', (h) => recordDownloadPhase(h, r));
    expect(phase.steps.map((s) => s.name)).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    expect(phase.metrics.bytesDownloaded).toBe(shard1.length + shard2.length);
    expect(phase.seconds).toBe(r.seconds);
    const again = await downloadRepo({ repo: 'org/tiny', env: env(), include: ['*.safetensors'] });
    const p2 = await runPhase('download', (h) => recordDownloadPhase(h, again));
    expect(p2.note).toMatch(/^cached at .*snapshots/);
    const offline = await repoFileSizes({ repo: 'org/tiny', env: env({ HF_HUB_OFFLINE: '1' }) });
    expect(offline).toHaveLength(files.length);
  });

  it('glob rules follow fnmatch', () => {
    expect(globToRegExp('*.json').test('tokenizer/tokenizer.json')).toBe(true);
    expect(globToRegExp('model-0000?-of-*.safetensors').test('model-00001-of-00002.safetensors')).toBe(true);
    expect(globToRegExp('[!p]*').test('pytorch_model.bin')).toBe(false);
    expect(globToRegExp('original/').test('original/consolidated.00.pth')).toBe(true);
  });
});
