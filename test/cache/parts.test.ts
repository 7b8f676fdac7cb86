/**
 * Range parts on by default: how many parts a file gets, the in-order hash over parts that land out of order, the
 * part journal (an interrupted file resumes only its missing parts), and the fall-back to one stream.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runCli } from '../helpers/cli.js';
import { servedFile, startHubServer, type HubServer } from '../helpers/hub-server.js';
import { downloadRepo } from '../../src/cache/download.js';
import { partsFor } from '../../src/cache/parts.js';
import { journalPath, readJournal, writeJournal } from '../../src/cache/journal.js';

let hub: HubServer;
let tmp: string;
let cacheDir: string;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
// 4 parts of 5 000 000 bytes with COLDSTART_PART_MIN_BYTES=5000000: each part is more than one worker write
// buffer (4 × 1023 KiB), so a part stalled past 4.5 MB has bytes on disk when the run is stopped.
const big = randomBytes(20_000_000);
const name = 'model.safetensors';
const parts = { COLDSTART_PART_MIN_BYTES: '5000000' };
const env = (extra: Record<string, string> = {}) => ({ HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: cacheDir, HF_HOME: join(tmp, 'hfhome'), ...extra });
const blobs = () => join(cacheDir, 'models--org--big', 'blobs');
const rangeStarts = () =>
  hub
    .requests((q) => q.host === 'cdn' && !!q.range)
    .map((q) => Number(/^bytes=(\d+)-/.exec(q.range!)![1]))
    .sort((a, b) => a - b);

beforeAll(async () => {
  hub = await startHubServer();
  hub.addRepo('org/big', [servedFile('config.json', Buffer.from('{}')), servedFile(name, big)]);
});
afterAll(async () => {
  await hub.stop();
});
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'coldstart-parts-'));
  cacheDir = join(tmp, 'hub');
  hub.log.length = 0;
  hub.faults = {};
  hub.bytesServed = 0;
  return () => rmSync(tmp, { recursive: true, force: true });
});

describe('how many parts (partsFor)', () => {
  const GiB = 1 << 30;
  it('by default: a big file gets the cores the other big files of the run leave, at most 4; small files one stream', () => {
    const cores = availableParallelism();
    expect(partsFor(GiB, {}, 1)).toBe(Math.min(4, cores) >= 2 ? Math.min(4, cores) : 1);
    expect(partsFor(GiB, {}, cores)).toBe(1); // every core already has a file
    expect(partsFor(40 << 20, {}, 1)).toBe(1); // under 2 × 32 MiB
  });
  it('COLDSTART_PARTS forces the count (1 = never); COLDSTART_PART_MIN_BYTES forces parts of that size', () => {
    expect(partsFor(GiB, { COLDSTART_PARTS: '1' }, 1)).toBe(1);
    expect(partsFor(GiB, { COLDSTART_PARTS: '8' }, 64)).toBe(8);
    expect(partsFor(GiB, { COLDSTART_PART_MIN_BYTES: String(256 << 20) }, 64)).toBe(4);
    expect(partsFor(GiB, { COLDSTART_PART_MIN_BYTES: String(600 << 20) }, 1)).toBe(1);
  });
});

describe('the part journal of a partial', () => {
  it('is read back when it holds; a FIFO or a folder planted under its name is no journal, and never a wait', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cs-journal-'));
    try {
      const partial = join(dir, 'abc123.parts.incomplete');
      writeFileSync(partial, Buffer.alloc(3000, 1));
      const fd = openSync(partial, 'r');
      try {
        const j = { size: 10_000, partLen: 4096, written: [3000, 0, 0] };
        const path = journalPath(partial, statSync(partial).ino);
        execFileSync('mkfifo', [path]); // no writer ever opens it: reading it would block the process for ever
        expect(readJournal(partial, fd, 10_000)).toBeNull();
        rmSync(path);
        writeJournal(partial, statSync(partial).ino, j); // written atomically over the name
        expect(readJournal(partial, fd, 10_000)).toMatchObject(j);
        expect(readJournal(partial, fd, 10_001)).toBeNull(); // another size: not this file's journal
      } finally {
        closeSync(fd);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Range parts: in-order hash, part journal, fall-back', () => {
  it('parts that complete out of order are hashed in file order: the blob is byte-exact, accounting exact, no journal left', async () => {
    // The first part stalls briefly (its bytes land last): the hash must wait for it, then read the rest back.
    hub.faults.stall = { match: (p) => p === name, afterBytes: 4_500_000, times: 1 };
    const r = await downloadRepo({ repo: 'org/big', env: env(parts), timeoutMs: 400, retryBaseMs: 5 });
    expect(readFileSync(join(r.snapshotDir, name)).equals(big)).toBe(true);
    expect(r.bytesWire).toBe(big.length + 2);
    expect(r.bytesRefetched).toBe(0);
    expect(readdirSync(blobs()).sort()).toEqual([sha256(big), createHash('sha1').update('blob 2\0{}').digest('hex')].sort());
  });

  it('SIGINT mid-parts: parked as <etag>.parts.incomplete with its journal; the next run asks only for the missing bytes', async () => {
    hub.faults.stall = { match: (p) => p === name, afterBytes: 4_500_000, times: 4 };
    const binPath = fileURLToPath(new URL('../../bin/coldstart.js', import.meta.url));
    const p = spawn(process.execPath, [binPath, 'cache', 'org/big', '--include', name], { env: { ...process.env, ...env(parts) } });
    // Wait until the journal says every part has a write buffer's worth on disk (each stalls after 4.5 MB).
    const written = (): number[] => {
      try {
        const n = readdirSync(blobs()).find((x) => x.endsWith('.json'));
        return n ? (JSON.parse(readFileSync(join(blobs(), n), 'utf8')) as { written: number[] }).written : [];
      } catch {
        return [];
      }
    };
    const t0 = Date.now();
    while (Date.now() - t0 < 30_000 && !(written().length === 4 && written().every((w) => w >= 4_000_000))) await new Promise((r) => setTimeout(r, 50));
    p.kill('SIGINT');
    const code = await new Promise<number | null>((res) => p.on('close', res));
    expect(code).toBe(130);
    const left = readdirSync(blobs());
    expect(left).toContain(`${sha256(big)}.parts.incomplete`);
    expect(left).not.toContain(`${sha256(big)}.incomplete`);
    expect(left.filter((n) => n.endsWith('.json'))).toHaveLength(1);
    hub.faults = {};
    hub.log.length = 0;
    const r = await runCli(['--json', 'cache', 'org/big', '--include', name], { env: env(parts) });
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(readFileSync(join(j.snapshotDir, name)).equals(big)).toBe(true);
    expect(j.bytesResumed).toBeGreaterThanOrEqual(4 * 4_000_000); // each part kept its written bytes
    expect(j.bytesResumed + j.bytesWire).toBe(big.length);
    const starts = rangeStarts();
    expect(starts).toHaveLength(4);
    starts.forEach((s, i) => expect(s).toBeGreaterThanOrEqual(i * 5_000_000 + 4_000_000));
    expect(readdirSync(blobs())).toEqual([sha256(big)]);
  });

  it('resumed parts from a server that stopped serving Range: one stream from byte 0, the kept bytes counted as refetched', async () => {
    hub.faults.drop = { match: (p) => p === name, afterBytes: 4_500_000, times: 4 };
    const r1 = await runCli(['cache', 'org/big', '--include', name, '--retries', '0'], { env: env(parts) });
    expect(r1.code).toBe(3);
    expect(existsSync(join(blobs(), `${sha256(big)}.parts.incomplete`))).toBe(true);
    hub.faults = { ignoreRange: true };
    const r = await downloadRepo({ repo: 'org/big', env: env(parts), include: [name] });
    expect(readFileSync(join(r.snapshotDir, name)).equals(big)).toBe(true);
    expect(r.bytesResumed).toBe(0);
    expect(r.bytesRefetched).toBeGreaterThan(4_000_000); // the kept parts, thrown away (fetched by the earlier run)
    expect(r.bytesWire).toBe(big.length);
    expect(readdirSync(blobs())).toEqual([sha256(big)]);
  });

  it('--local-dir: the same parts, journal and resume beside Python\'s partial names', async () => {
    const dir = join(tmp, 'out');
    hub.faults.drop = { match: (p) => p === name, afterBytes: 4_500_000, times: 4 };
    const r1 = await runCli(['cache', 'org/big', '--include', name, '--local-dir', dir, '--retries', '0'], { env: env(parts) });
    expect(r1.code).toBe(3);
    const dl = join(dir, '.cache', 'huggingface', 'download');
    expect(readdirSync(dl).some((n) => n.endsWith('.parts.incomplete'))).toBe(true);
    hub.faults = {};
    const r = await runCli(['--json', 'cache', 'org/big', '--include', name, '--local-dir', dir], { env: env(parts) });
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.bytesResumed).toBeGreaterThan(0);
    expect(j.bytesResumed + j.bytesWire).toBe(big.length);
    expect(readFileSync(join(dir, name)).equals(big)).toBe(true);
    expect(readdirSync(dl).filter((n) => n.includes('.incomplete') || n.endsWith('.json'))).toEqual([]);
  });
});
