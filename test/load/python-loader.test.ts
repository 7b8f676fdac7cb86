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
  it('fills a server\'s tensors with the bytes safetensors reads, reads what the page cache lacks by one disk reader at a time, and refuses bad input with a code and the file named', async () => {
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
      // One answer for the loader's defaults: the module's are gpu-load's measured ones.
      expect(o.defaults).toEqual({ chunkBytes: DEFAULTS.chunkBytes, threads: DEFAULTS.threads, diskStreams: RESTORE_PREFETCH.threads });
      // What the page cache did not hold came from the disk through the gate: by one reader at a time (the default,
      // as many as restore's prefetch), at most two, or as many as the threads (unbounded: only counted); every byte
      // right; a resident file never waits there. Readahead brings pages in ahead of the readers, so cold bytes are at
      // most the evicted part.
      const cold = o.cold as Record<string, { coldBytes: number | null; readersMax: number; equal: boolean; residentFirst: boolean }>;
      const MiB = 1 << 20;
      const seen = JSON.stringify(cold); // every case's numbers, in any failure's message
      // Each case started from the whole file in the page cache (mincore), then evicted its part.
      for (const [name, c] of Object.entries(cold)) expect({ equal: c.equal, residentFirst: c.residentFirst }, `${name}: ${seen}`).toEqual({ equal: true, residentFirst: true });
      expect(cold.one!.coldBytes, seen).toBeGreaterThan(0);
      expect(cold.one!.coldBytes, seen).toBeLessThanOrEqual(48 * MiB);
      expect(cold.one!.readersMax, seen).toBe(1);
      expect(cold.two!.readersMax, seen).toBeGreaterThanOrEqual(1);
      expect(cold.two!.readersMax, seen).toBeLessThanOrEqual(2);
      expect(cold.unbounded!.coldBytes, seen).toBeGreaterThan(0);
      expect(cold.unbounded!.readersMax, seen).toBeGreaterThanOrEqual(1);
      expect(cold.unbounded!.readersMax, seen).toBeLessThanOrEqual(4);
      expect(cold.halfOne!.coldBytes, seen).toBeGreaterThan(0);
      expect(cold.halfOne!.coldBytes, seen).toBeLessThanOrEqual(24 * MiB);
      expect(cold.halfOne!.readersMax, seen).toBe(1);
      expect(cold.resident, seen).toEqual({ coldBytes: 0, readersMax: 0, equal: true, residentFirst: true });
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
