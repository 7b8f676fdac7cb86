import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync, readFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { CHUNK_BYTES, firstMismatch, hashFiles, rootDigest } from '../../src/snapshot/hash.js';
import { ColdstartError } from '../../src/core/errors.js';

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

  it('refuses a FIFO without blocking', async () => {
    const d = mkdtempSync(join(tmpdir(), 'cs-hash-'));
    execFileSync('mkfifo', [join(d, 'fifo')]);
    await expect(hashFiles([join(d, 'fifo')])).rejects.toBeInstanceOf(ColdstartError);
  });
});
