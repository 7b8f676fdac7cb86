// libcoldstart_load.so through src/python/coldstart_load.py, as a server's wake-up calls it: byte ranges of
// safetensors files (written by safetensors itself) into the caller's own tensors, compared bit for bit with
// safetensors' loader; and every refusal (missing, truncated, FIFO, directory, overflowing numbers, no GPU, no
// library) as a code and a one-line message naming the file or argument, with the destination untouched.
// On the host (device=None): no GPU here; the device proof (test/device/flat_weights.py) runs the GPU path.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { peerPython } from '../helpers/python.js';
import { DEFAULTS } from '../../src/load/gpu-load.js';
import { evictableDir } from '../helpers/pagecache.js';
import { RESTORE_PREFETCH } from '../../src/snapshot/restore.js';

const moduleDir = fileURLToPath(new URL('../../src/python', import.meta.url));
const script = fileURLToPath(new URL('./python_loader_check.py', import.meta.url));
const repo = fileURLToPath(new URL('../..', import.meta.url));

describe.skipIf(!peerPython())('coldstart_load (Python) → libcoldstart_load.so', () => {
  it('fills a server\'s tensors with the bytes safetensors reads, reads what the page cache lacks around it (O_DIRECT, page cache left as found) or through it, a bounded number of disk readers at a time, and refuses bad input with a code and the file named', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'cs-pyload-'));
    const coldDir = await evictableDir();
    try {
      const env = { ...process.env };
      delete env.COLDSTART_LOAD_LIBRARY;
      const r = spawnSync(peerPython()!, [script, moduleDir, tmp, coldDir], { encoding: 'utf8', env, timeout: 120_000 });
      expect(r.status, r.stderr).toBe(0);
      const o = JSON.parse(r.stdout);
      // The library of this checkout's source build.
      expect(o.library).toBe(join(repo, 'build', 'Release', 'libcoldstart_load.so'));
      expect(o.tensors).toBe(6);
      expect(o.equal).toBe(6);
      expect(o.bytes).toBe(o.expectBytes);
      expect(o.flatEqual).toBe(true);
      // One answer for the loader's defaults: the module's are gpu-load's measured ones; cold chunks are read around
      // the page cache by 4 readers at the disk, or through it by one (as restore's prefetch reads).
      expect(o.defaults).toEqual({ chunkBytes: DEFAULTS.chunkBytes, threads: DEFAULTS.threads, diskStreams: { direct: 4, cached: RESTORE_PREFETCH.threads }, cold: 'direct' });
      // What the page cache did not hold came from the disk through the gate: at most the default readers (4 around the
      // page cache, 1 through it), two, or as many as the threads (unbounded: only counted); every byte right; a
      // resident file never waits there. Cold bytes are what the page cache lacked of the range when the load began
      // (mincore's count just before it), also through the page cache, where readahead brings the next chunk's pages
      // in before that chunk is read (counted at each read, they came out as little as 0.01 of 4 GB on this VM): at most
      // a page more at the range's two ends (a chunk's partial page counts whole). Around the page cache (O_DIRECT,
      // refused for no file here) the page cache is left as found; through it, what was read stays cached (but for one
      // folio at most: a load through the gate has been seen to leave a 64-256 KiB folio out of the page cache, Linux
      // 6.18).
      type Case = { coldBytes: number | null; readersMax: number; directRefused: number; equal: boolean; residentFirst: boolean; residentBefore: number; lacked: number; residentAfter: number; pages: number };
      const cold = o.cold as Record<string, Case>;
      const MiB = 1 << 20;
      const seen = JSON.stringify(cold); // every case's numbers, in any failure's message
      // Each case started from the whole file in the page cache (mincore), then evicted its part.
      for (const [name, c] of Object.entries(cold)) {
        expect({ equal: c.equal, residentFirst: c.residentFirst, directRefused: c.directRefused }, `${name}: ${seen}`).toEqual({ equal: true, residentFirst: true, directRefused: 0 });
      }
      const readers = (name: string, lo: number, hi: number) => {
        expect(cold[name]!.readersMax, `${name}: ${seen}`).toBeGreaterThanOrEqual(lo);
        expect(cold[name]!.readersMax, `${name}: ${seen}`).toBeLessThanOrEqual(hi);
      };
      const coldPart = (name: string, evicted: number) => {
        const c = cold[name]!;
        // the eviction took (nearly) all it was asked to: the count below is checked on a real cold part
        expect(c.lacked, `${name}: ${seen}`).toBeGreaterThan(0.9 * evicted);
        expect(c.coldBytes, `${name}: ${seen}`).toBeGreaterThanOrEqual(c.lacked);
        expect(c.coldBytes, `${name}: ${seen}`).toBeLessThanOrEqual(c.lacked + 2 * 4096);
      };
      for (const name of ['one', 'two', 'unbounded', 'cachedOne', 'cachedUnbounded']) coldPart(name, 48 * MiB);
      coldPart('unaligned', 48 * MiB - 12345 - 777);
      coldPart('halfOne', 24 * MiB);
      coldPart('cachedHalf', 24 * MiB);
      readers('one', 1, 4);
      readers('two', 1, 2);
      readers('unbounded', 1, 4);
      readers('halfOne', 1, 4);
      readers('cachedOne', 1, 1);
      readers('cachedHalf', 1, 1);
      readers('cachedUnbounded', 1, 4);
      // Around the page cache: nothing of what was read is added to it.
      for (const name of ['one', 'two', 'unbounded', 'halfOne', 'unaligned']) expect(cold[name]!.residentAfter, `${name}: ${seen}`).toBeLessThanOrEqual(cold[name]!.residentBefore);
      expect(cold.one!.residentBefore, seen).toBeLessThan(cold.one!.pages / 2);
      // Through it: what was read is cached now.
      for (const name of ['cachedOne', 'cachedHalf', 'cachedUnbounded']) {
        expect(cold[name]!.residentAfter, `${name}: ${seen}`).toBeGreaterThan(cold[name]!.residentBefore);
        expect(cold[name]!.residentAfter, `${name}: ${seen}`).toBeGreaterThanOrEqual(0.99 * cold[name]!.pages);
      }
      expect(cold.resident, seen).toMatchObject({ coldBytes: 0, readersMax: 0, equal: true, residentFirst: true });
      expect(o.none).toBe(0);
      const e = o.errors as Record<string, { code: string; message: string } | null>;
      expect(e.missing).toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining(join(tmp, 'nope.safetensors')) });
      expect(e.truncated).toMatchObject({ code: 'CORRUPT_FILE', message: expect.stringMatching(/truncated\.safetensors: the file has \d+ bytes but the load reads up to byte \d+ \(truncated/) });
      expect(e.fifo).toMatchObject({ code: 'CORRUPT_FILE', message: expect.stringMatching(/fifo: not a regular file \(a FIFO, device or folder is never loaded\)/) });
      expect(e.directory).toMatchObject({ code: 'CORRUPT_FILE', message: expect.stringMatching(/not a regular file/) });
      expect(e.overflow).toMatchObject({ code: 'BAD_ARG', message: expect.stringMatching(/ranges\[0\] \(.*truncated\.safetensors\): offset \+ length overflows/) });
      expect(e.dstOverflow).toMatchObject({ code: 'BAD_ARG', message: expect.stringMatching(/dst \+ length overflows/) });
      expect(e.nullDst).toMatchObject({ code: 'BAD_ARG', message: expect.stringMatching(/dst is NULL/) });
      expect(e.negative).toMatchObject({ code: 'BAD_ARG', message: expect.stringMatching(/range 0 .*offset must be an integer/) });
      expect(e.shape).toMatchObject({ code: 'BAD_ARG', message: expect.stringMatching(/\(path, offset, length, dst\)/) });
      expect(e.threads).toMatchObject({ code: 'BAD_ARG', message: expect.stringMatching(/threads must be 1\.\.256, got 0/) });
      expect(e.chunk).toMatchObject({ code: 'BAD_ARG', message: expect.stringMatching(/chunk_bytes must be a multiple of 4096/) });
      expect(e.diskStreams).toMatchObject({ code: 'BAD_ARG', message: expect.stringMatching(/disk_streams must be 0 \(no bound\) or 1\.\.256, got -1/) });
      // cs_load itself refuses what its one caller never passes (another ctypes caller might)
      expect(o.errors.coldReads).toMatchObject({ code: 'BAD_ARG', message: expect.stringMatching(/cold_reads must be 1 \(around the page cache, O_DIRECT\) or 0 \(through it\), got 2/) });
      expect(o.errors.coldReads.rc).not.toBe(0);
      expect(e.cold).toMatchObject({ code: 'BAD_ARG', message: expect.stringMatching(/cold must be "direct" or "cached", got 'sideways'/) });
      expect(e.device).toMatchObject({ code: 'BAD_ARG', message: expect.stringMatching(/device must be a CUDA ordinal or None/) });
      if (!existsSync('/dev/nvidiactl')) expect(e.gpu).toMatchObject({ code: 'NO_GPU', message: expect.stringMatching(/no CUDA driver: .*pass device -1/) });
      else expect(e.gpu?.code).toMatch(/^(NO_GPU|ENV)$/); // a host address is no device address
      expect(e.library).toMatchObject({ code: 'MISSING', message: expect.stringMatching(/libnothere\.so \(not there\).*Possible solutions: `npm rebuild coldstart`/) });
      // Nothing was written into the destination by any refused call.
      expect(o.untouched).toBe(0);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
      rmSync(coldDir, { recursive: true, force: true });
    }
  });
});
