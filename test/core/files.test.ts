/**
 * core/files.ts's sha256File / sha256FileSync: the one file digest (ONNX warmup's cache, the torch.compile cache
 * store and adopt): the bytes' sha256, a FIFO or folder refused before it is read (no writer ever opens the FIFO, so a
 * read would block for ever), a missing file named, an abort between reads.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyInputFile, sha256File, sha256FileSync } from '../../src/core/files.js';

const tmp = mkdtempSync(join(tmpdir(), 'cs-files-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('sha256File and sha256FileSync', () => {
  it('digest the bytes, across the 1 MiB reads and for an empty file', async () => {
    for (const [name, size] of [['empty', 0], ['one-read', 1000], ['three-reads', (2 << 20) + 12345]] as const) {
      const body = Buffer.alloc(size);
      for (let i = 0; i < size; i++) body[i] = (i * 131 + 7) & 0xff;
      const p = join(tmp, name);
      writeFileSync(p, body);
      const want = createHash('sha256').update(body).digest('hex');
      expect(await sha256File(p), name).toBe(want);
      expect(sha256FileSync(p), name).toBe(want);
    }
  });

  it('refuse a FIFO and a folder before reading (BAD_INPUT naming the path), name a missing file (NOT_FOUND)', async () => {
    const fifo = join(tmp, 'pipe');
    execFileSync('mkfifo', [fifo]);
    await expect(sha256File(fifo)).rejects.toMatchObject({ code: 'BAD_INPUT', message: `${fifo}: is a FIFO (named pipe), not a regular file; refused before opening it` });
    expect(() => sha256FileSync(fifo)).toThrow(expect.objectContaining({ code: 'BAD_INPUT' }));
    await expect(sha256File(tmp)).rejects.toMatchObject({ code: 'BAD_INPUT', message: `${tmp}: is a directory, expected a file` });
    const gone = join(tmp, 'no-such-file');
    await expect(sha256File(gone)).rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining(gone) });
    expect(() => sha256FileSync(gone)).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
  });

  it('stop when the signal aborts, with its reason', async () => {
    const p = join(tmp, 'big');
    writeFileSync(p, Buffer.alloc(4 << 20, 1));
    const ac = new AbortController();
    const reason = new Error('stopped by the test');
    ac.abort(reason);
    await expect(sha256File(p, ac.signal)).rejects.toBe(reason);
  });

  it('copyInputFile copies byte for byte and returns the digest of the copy; it refuses a FIFO source and never replaces a file', () => {
    const src = join(tmp, 'src.bin');
    const body = Buffer.alloc((1 << 20) + 777);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
    writeFileSync(src, body);
    const dst = join(tmp, 'dst.bin');
    expect(copyInputFile(src, dst)).toBe(createHash('sha256').update(body).digest('hex'));
    expect(readFileSync(dst).equals(body)).toBe(true);
    expect(() => copyInputFile(src, dst)).toThrow(expect.objectContaining({ message: expect.stringContaining(dst) }));
    expect(readFileSync(dst).equals(body)).toBe(true);
    const fifo = join(tmp, 'copy-pipe'); // its own FIFO: this test does not lean on the one the refusal test made
    execFileSync('mkfifo', [fifo]);
    expect(() => copyInputFile(fifo, join(tmp, 'from-pipe'))).toThrow(expect.objectContaining({ code: 'BAD_INPUT' }));
  });
});
