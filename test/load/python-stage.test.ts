// restore --stage's two sides without a GPU: the entry coldstart writes (src/snapshot/stage.ts) read by the
// coldstart_load a server imports (src/python/coldstart_load.py) — the same file identities by Node's and Python's
// stat — and every entry or directory it must not trust; the addon's and the library's refusals. The GPU-to-GPU copy
// itself runs in the device proof (test/device/snapshot-gpu.sh, HOOK_RESTORES=…-stage).
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { peerPython } from '../helpers/python.js';
import { fileIdentity, listStage, stageDir, unlistStage } from '../../src/snapshot/stage.js';
import { loadNative } from '../../src/native.js';

const moduleDir = fileURLToPath(new URL('../../src/python', import.meta.url));
const script = fileURLToPath(new URL('./python_stage_check.py', import.meta.url));
const root = process.geteuid?.() === 0;

describe('restore --stage: the stage directory', () => {
  it('is COLDSTART_STAGE_DIR, else /dev/shm/coldstart-stage-<uid> (coldstart_load computes the same)', () => {
    expect(stageDir({ COLDSTART_STAGE_DIR: '/x/y' })).toBe('/x/y');
    expect(stageDir({}, 1234)).toBe('/dev/shm/coldstart-stage-1234');
  });

  it.skipIf(!root)('an entry is written whole (0600, in a 0700 directory of this user) and read by coldstart_load as coldstart meant it; nothing else in the directory is trusted', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'cs-stage-'));
    try {
      mkdirSync(join(tmp, 'w'));
      writeFileSync(join(tmp, 'w', 'a.bin'), Buffer.alloc(3 * 4096 + 5, 1));
      writeFileSync(join(tmp, 'w', 'b.bin'), Buffer.alloc(8192, 2));
      const files = ['a.bin', 'b.bin'].map((f) => join(tmp, 'w', f));
      const before = new Map(files.map((f) => [f, fileIdentity(f)]));
      const dir = join(tmp, 'stage');
      const listed = listStage(dir, { id: 3, bytes: 0, seconds: 0, files: [{ path: files[0]!, handle: 'ab'.repeat(64) }, { path: files[1]!, handle: 'cd'.repeat(64) }] }, before, '00'.repeat(16), [4242]);
      if (!('entry' in listed)) throw new Error(listed.skipped);
      expect(readdirSync(dir)).toEqual([`${process.pid}-3.json`]);
      expect((statSync(listed.entry).mode & 0o777).toString(8)).toBe('600');
      expect((statSync(dir).mode & 0o777).toString(8)).toBe('700');
      const py = peerPython() ?? 'python3';
      const r = spawnSync(py, [script, moduleDir, tmp, listed.entry, String(process.pid)], { encoding: 'utf8', timeout: 60_000 });
      expect(r.status, r.stderr).toBe(0);
      const o = JSON.parse(r.stdout);
      expect(o.stageDir).toBe(dir);
      expect(o.pidsListed).toEqual([4242]);
      const size = statSync(files[0]!).size;
      // Inside a staged file: copied from the handle at the same offset; past its end, another file, a missing one: read.
      expect(o.asWritten).toEqual({
        staged: [
          ['abab', 0, size, 1],
          ['abab', 10, 20, 2],
          ['cdcd', 4096, 100, 3],
        ],
        rest: [
          ['a.bin', size - 1, 2, 4],
          ['nonexistent', 0, 1, 5],
        ],
      });
      expect(o.hardLink.staged).toEqual([['abab', 0, 8, 6]]);
      expect(o.copy).toEqual({ staged: [], rest: [['a-copy.bin', 0, 8, 7]] });
      expect(o.hostLoad).toEqual({ bytes: 8, staged_bytes: 0, equal: true });
      expect(o.deviceLoad).toBe('NO_GPU');
      expect([o.badHandle, o.shortHandle, o.badDevice, o.overflow, o.noDriver]).toEqual(['BAD_ARG', 'BAD_ARG', 'BAD_ARG', 'BAD_ARG', 'NO_GPU']);
      const staged = { staged: [['abab', 0, 8, 1]], rest: [] };
      const read = { staged: [], rest: [['a.bin', 0, 8, 1]] };
      expect(o.cases).toEqual({
        good: staged,
        entryWritableByOthers: read,
        entryOfAnotherUser: read,
        dirWritableByOthers: read,
        dirOfAnotherUser: read,
        malformed: read,
        otherVersion: read,
        holderGone: read,
        anotherServer: read,
        pidsNotAList: read,
        shortHandle: read,
        backwardsRange: read,
        filesNotAList: read,
        overOneMiB: read,
        symlinkEntry: read,
        fifoEntry: read,
        putBack: staged,
        fileChanged: read,
      });
      unlistStage(listed.entry);
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('a file that changed while it was loaded is not listed (what is on the card may be neither version); a directory that is not one is said', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'cs-stage-'));
    try {
      const f = join(tmp, 'a.bin');
      writeFileSync(f, 'x');
      const before = new Map([[f, fileIdentity(f)]]);
      writeFileSync(f, 'xy');
      expect(listStage(join(tmp, 'stage'), { id: 1, bytes: 1, seconds: 0, files: [{ path: f, handle: 'ab'.repeat(64) }] }, before, '00'.repeat(16), [1])).toEqual({ skipped: 'every file changed while it was loaded' });
      writeFileSync(join(tmp, 'plain'), '');
      expect(listStage(join(tmp, 'plain'), { id: 1, bytes: 1, seconds: 0, files: [] }, before, '00'.repeat(16), [1])).toMatchObject({ skipped: expect.stringContaining(join(tmp, 'plain')) });
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('restore --stage: the addon', () => {
  const n = loadNative();
  it.skipIf(!n.ok)('keeps a load only on the card (keep refused in host mode and for tensor-parallel loads); gpuRelease of nothing is false; no driver: no CUDA devices', async () => {
    if (!n.ok) return;
    const a = n.addon;
    const base = { files: [], plan: new Float64Array(0), chunkBytes: 1 << 20, threads: 1, buffers: 2 };
    expect(() => a.gpuLoad({ ...base, mode: 'host', keep: true })).toThrow(/gpuLoad: options\.keep expected false unless mode is gpu and sink device/);
    expect(() => a.gpuLoad({ ...base, mode: 'gpu', sink: 'discard', keep: true })).toThrow(/options\.keep/);
    expect(a.gpuRelease(12345)).toBe(false);
    expect(() => a.gpuRelease('x' as unknown as number)).toThrow(/gpuRelease: id/);
    expect(await a.cudaDeviceUuids()).toEqual([]);
  });
});
