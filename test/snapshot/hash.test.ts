import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync, readFileSync, openSync, writeSync, closeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { CHUNK_BYTES, firstMismatch, hashFiles, rootDigest } from '../../src/snapshot/hash.js';
import { ColdstartError } from '../../src/core/errors.js';
import { addonNative } from '../../src/snapshot/native.js';
import { evict, evictableDir, resident } from '../helpers/pagecache.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('snapshot/hash: every byte, chunked, on worker threads', () => {
  it('digests equal sha256 of each 16 MiB chunk, in order, for sizes around the chunk edges', async () => {
    const d = mkdtempSync(join(tmpdir(), 'cs-hash-'));
    const sizes = [0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 5 * CHUNK_BYTES + 12345];
    const files = sizes.map((n, i) => {
      const p = join(d, `f${i}`);
      writeFileSync(p, randomBytes(n));
      return p;
    });
    const got = await hashFiles(files, { threads: 3 });
    got.forEach((g, i) => {
      const b = readFileSync(files[i]!);
      const want = b.length === 0 ? [sha(b)] : Array.from({ length: Math.ceil(b.length / CHUNK_BYTES) }, (_, k) => sha(b.subarray(k * CHUNK_BYTES, (k + 1) * CHUNK_BYTES)));
      expect(g.bytes).toBe(b.length);
      expect(g.chunks).toEqual(want);
      expect(g.digest).toBe(rootDigest(want));
    });
  });

  it('one flipped byte in the middle of a big file changes its digest and names the chunk', async () => {
    const d = mkdtempSync(join(tmpdir(), 'cs-hash-'));
    const p = join(d, 'pages-1.img');
    writeFileSync(p, randomBytes(3 * CHUNK_BYTES + 77));
    const [before] = await hashFiles([p]);
    const mid = Math.floor((3 * CHUNK_BYTES + 77) / 2);
    const fd = openSync(p, 'r+');
    const one = Buffer.alloc(1);
    one[0] = readFileSync(p)[mid]! ^ 0x10;
    writeSync(fd, one, 0, 1, mid);
    closeSync(fd);
    const [after] = await hashFiles([p]);
    expect(after!.digest).not.toBe(before!.digest);
    const m = firstMismatch(after!, before!)!;
    expect(m.from).toBeLessThanOrEqual(mid);
    expect(m.to).toBeGreaterThan(mid);
  });

  it("a few small files (an image's metadata) hash on the calling thread with the same digests, progress and abort", async () => {
    const d = mkdtempSync(join(tmpdir(), 'cs-hash-'));
    const sizes = [0, 1, 4096, 5 * 1024 * 1024 + 3];
    const files = sizes.map((n, i) => {
      const p = join(d, `m${i}`);
      writeFileSync(p, randomBytes(n));
      return p;
    });
    const seen: number[] = [];
    const got = await hashFiles(files, { onBytes: (n) => seen.push(n) });
    got.forEach((g, i) => {
      const b = readFileSync(files[i]!);
      expect(g.chunks).toEqual([sha(b)]);
      expect(g.digest).toBe(rootDigest([sha(b)]));
    });
    expect(seen.at(-1)).toBe(sizes.reduce((a, b) => a + b, 0));
    const stop = new AbortController();
    stop.abort(new Error('stopped'));
    await expect(hashFiles(files, { signal: stop.signal })).rejects.toThrow('stopped');
  });

  it("hashes behind a reader: no chunk before the reader's mark has passed its end (files counted one after another), the same digests; a reader that stopped (Infinity) lets the rest go at once", async () => {
    const d = mkdtempSync(join(tmpdir(), 'cs-hash-'));
    const sizes = [CHUNK_BYTES + 5, 0, 2 * CHUNK_BYTES + 1]; // 48 MiB: past the inline limit, so on workers
    const files = sizes.map((n, i) => {
      const p = join(d, `pages-${i}.img`);
      writeFileSync(p, randomBytes(n));
      return p;
    });
    const total = sizes.reduce((a, b) => a + b, 0);
    const want = await hashFiles(files, { threads: 3 });
    // A reader going through the files at 4 MiB a tick; every progress report checked against where it was.
    let mark = 0;
    const tick = setInterval(() => (mark = mark + (4 << 20) >= total ? Infinity : mark + (4 << 20)), 3);
    const seen: Array<[number, number]> = [];
    try {
      const got = await hashFiles(files, { threads: 3, readBytes: () => mark, onBytes: (n) => seen.push([n, mark]) });
      expect(got).toEqual(want);
    } finally {
      clearInterval(tick);
    }
    expect(seen.length).toBe(6); // one chunk at a time behind a reader (2 + the empty file + 3)
    for (const [hashed, at] of seen) expect(hashed).toBeLessThanOrEqual(at);
    // A reader that never gets anywhere holds the hash back, until it stops.
    let stuck = 0;
    let finished = false;
    const held = hashFiles(files, { threads: 2, readBytes: () => stuck }).then((g) => ((finished = true), g));
    await new Promise((r) => setTimeout(r, 150));
    expect(finished).toBe(false);
    stuck = Infinity;
    expect(await held).toEqual(want);
    // Aborted while waiting on the reader: rejects, and no worker keeps looking.
    const stop = new AbortController();
    const waiting = hashFiles(files, { threads: 2, readBytes: () => 0, signal: stop.signal });
    setTimeout(() => stop.abort(new Error('stopped')), 20);
    await expect(waiting).rejects.toThrow('stopped');
  });

  it("behind the addon's one stream (restore's read of a cold image): evicted files read in order, its mark never past what it read and Infinity once done, the hash following it with the same digests", async () => {
    const d = await evictableDir();
    try {
      const sizes = [CHUNK_BYTES + 4096, 3 * CHUNK_BYTES + 5]; // 64 MiB and a bit: on workers
      const files = sizes.map((n, i) => {
        const p = join(d, `pages-${i + 1}.img`);
        writeFileSync(p, randomBytes(n));
        return p;
      });
      const want = await hashFiles(files, { threads: 2 });
      expect(await evict(files)).toBeLessThan(0.05);
      const stream = addonNative.readInOrder(files, 4 << 20, new AbortController().signal);
      const marks: number[] = [];
      const got = await hashFiles(files, { threads: 3, readBytes: () => (marks.push(stream.read()), marks.at(-1)!) });
      expect(got).toEqual(want);
      const total = sizes.reduce((a, b) => a + b, 0);
      expect(await stream.done).toMatchObject({ bytes: total });
      expect(stream.read()).toBe(Infinity);
      const finite = marks.filter((m) => Number.isFinite(m));
      expect(finite.every((m, i) => m <= total && (i === 0 || m >= finite[i - 1]!))).toBe(true);
      expect(await resident(files)).toBeGreaterThan(0.95);
      // A cancelled stream rejects INTERRUPTED and its mark says stopped.
      await evict(files);
      const stop = new AbortController();
      stop.abort();
      const cancelled = addonNative.readInOrder(files, 4 << 20, stop.signal);
      await expect(cancelled.done).rejects.toMatchObject({ code: 'INTERRUPTED' });
      expect(cancelled.read()).toBe(Infinity);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('refuses a FIFO without blocking', async () => {
    const d = mkdtempSync(join(tmpdir(), 'cs-hash-'));
    execFileSync('mkfifo', [join(d, 'fifo')]);
    await expect(hashFiles([join(d, 'fifo')])).rejects.toBeInstanceOf(ColdstartError);
  });
});
