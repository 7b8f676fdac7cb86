/**
 * `coldstart prefetch --hold` (src/load/hold.ts, native/src/pagecache.cc holdResident): what prefetch read, locked in
 * memory until stopped, so that the kernel cannot drop it; followed as the files change.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ColdstartError } from '../../src/core/errors.js';
import { buildHeader } from '../../src/formats/safetensors.js';
import { holdFiles, holdReserveBytes, holdUntilStopped } from '../../src/load/hold.js';
import type { NativeHold } from '../../src/native.js';
import { evict, evictableDir } from '../helpers/pagecache.js';
import { holdRefused, startHold } from '../helpers/hold.js';

const SIZE = 8 << 20;
let tmp: string;
let dir: string;
let files: string[];
let control: string;

function weights(i: number, seed: number): Buffer {
  const { bytes } = buildHeader([{ name: `w${i}`, dtype: 'U8', shape: [SIZE] }]);
  const data = Buffer.alloc(SIZE);
  for (let k = 0; k < SIZE; k += 4096) data.writeUInt32LE(((k + seed) * 2654435761) >>> 0, k);
  return Buffer.concat([bytes, data]);
}

beforeAll(async () => {
  tmp = await evictableDir();
  dir = join(tmp, 'model');
  mkdirSync(dir);
  files = [0, 1].map((i) => join(dir, `model-0000${i + 1}-of-00002.safetensors`));
  files.forEach((p, i) => writeFileSync(p, weights(i, 1)));
  control = join(tmp, 'control.bin');
  writeFileSync(control, weights(9, 1));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const bytesOf = (bufs: Buffer[]) => bufs.reduce((a, b) => a + b.length, 0);

describe('prefetch --hold: the files locked in memory until it is stopped', () => {
  it('holds what it read (VmLck), which an eviction cannot drop (an unheld file beside it is dropped); follows a file replaced, lets go of files gone and holds them again when back; SIGTERM ends it (143)', async () => {
    const setBytes = bytesOf(files.map((_, i) => weights(i, 1)));
    const h = await startHold([dir]);
    try {
      expect(h.doc.hold).toMatchObject({ files: 2, bytes: setBytes, pid: h.child.pid });
      expect((h.doc.files as Array<{ path: string }>).map((f) => f.path).sort()).toEqual([...files].sort());
      expect(h.lockedBytes()).toBeGreaterThanOrEqual(setBytes);
      // The eviction works here (the control drops), and does nothing to the held files.
      expect(await evict([control])).toBeLessThan(0.05);
      expect(await evict(files)).toBeGreaterThan(0.99);

      // A new file renamed over one of them (as a download or a snapshot --force replaces): read and held again.
      const next = join(tmp, 'next');
      writeFileSync(next, weights(0, 2));
      renameSync(next, files[0]!);
      await h.waitFor(/changed: read and held again \(16\.0 MiB in 2 file\(s\)\)/);
      expect(await evict([files[0]!])).toBeGreaterThan(0.99);
      expect(h.lockedBytes()).toBeGreaterThanOrEqual(setBytes);
      expect(h.lockedBytes()).toBeLessThan(2 * setBytes); // the old pages let go

      // Gone: its pages let go (they are no longer the target's); back: held again.
      renameSync(dir, `${dir}.away`);
      await h.waitFor(/cannot be held now, so its old pages \(16\.0 MiB\) were let go: .*no such file or directory/i);
      expect(h.lockedBytes()).toBe(0);
      renameSync(`${dir}.away`, dir);
      await h.waitFor(/let go[^]*changed: read and held again/);
      expect(h.lockedBytes()).toBeGreaterThanOrEqual(setBytes);
      expect(await evict(files)).toBeGreaterThan(0.99);
    } finally {
      const end = await h.stop('SIGTERM');
      expect(end.code).toBe(143);
    }
    expect(h.stderr()).toMatch(/interrupted \(SIGTERM\)/);
    // Released with the process: the files can be evicted again.
    expect(await evict(files)).toBeLessThan(0.05);
  }, 60_000);

  it('several targets (an image and the weights its server reads back, say): one prefetch-set document, each held and followed on its own', async () => {
    const setBytes = bytesOf(files.map((_, i) => weights(i, 1)));
    const h = await startHold([dir, control]);
    try {
      expect(h.doc.schema).toBe('coldstart/prefetch-set@1');
      const targets = h.doc.targets as Array<{ schema: string; target: string; files: unknown[] }>;
      expect(targets.map((t) => [t.schema, t.target, t.files.length])).toEqual([
        ['coldstart/prefetch@1', dir, 2],
        ['coldstart/prefetch@1', control, 1],
      ]);
      expect(h.doc.hold).toMatchObject({ files: 3, bytes: setBytes + weights(9, 1).length, pid: h.child.pid });
      expect(await evict([...files, control])).toBeGreaterThan(0.99);
      const next = join(tmp, 'next-control');
      writeFileSync(next, weights(9, 3));
      renameSync(next, control);
      await h.waitFor(new RegExp(`${control.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} changed: read and held again \\(8\\.00 MiB in 1 file\\(s\\)\\)`));
      expect(h.stderr()).not.toMatch(/model changed/); // the other target's files did not change
      expect(await evict([...files, control])).toBeGreaterThan(0.99);
    } finally {
      expect((await h.stop('SIGTERM')).code).toBe(143);
    }
  }, 60_000);

  it('without the right to lock that much (no CAP_IPC_LOCK, RLIMIT_MEMLOCK 64 KiB): exit 3 naming mlock, the limit and the fixes, one error document, nothing left running', async () => {
    const root = process.getuid?.() === 0;
    // Root has CAP_IPC_LOCK (no limit): drop it, as a container without IPC_LOCK has it dropped.
    const wrap = ['prlimit', '--memlock=65536:65536', ...(root ? ['setpriv', '--inh-caps=-ipc_lock', '--bounding-set=-ipc_lock'] : [])];
    const r = await holdRefused([dir], wrap);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/prefetch --hold: .*model-0000\d-of-00002\.safetensors: mlock: Cannot allocate memory .*RLIMIT_MEMLOCK is 65536 bytes/);
    expect(r.stderr).toMatch(/CAP_IPC_LOCK/);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ schema: 'coldstart/error@1', error: { code: 'PERMISSION', exitCode: 3 } });
  }, 60_000);

  it('a target prefetch refuses is refused before anything is held (exit 2)', async () => {
    const r = await holdRefused([join(tmp, 'missing')]);
    expect(r.code, r.stderr).toBe(2);
    expect(JSON.parse(r.stdout).error.code).toBe('NOT_FOUND');
  }, 30_000);
});

describe('holdUntilStopped: the watch', () => {
  it('re-reads on a change and lets the old hold go; a read that fails lets go and is said once until the files change; stopping lets go of what is held', async () => {
    const f = join(tmp, 'watched.bin');
    writeFileSync(f, 'a');
    let n = 0;
    const released: number[] = [];
    const addon = {
      holdResident: async (o: { paths: string[] }) => ({ files: o.paths.length, bytes: 1, seconds: 0, hold: { id: ++n } as unknown as NativeHold }),
      releaseResident: (h: NativeHold) => (released.push((h as unknown as { id: number }).id), 1),
    };
    let failWith: string | null = null;
    const said: string[] = [];
    const ac = new AbortController();
    const until = async (pred: () => boolean) => {
      for (let i = 0; i < 400 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
      expect(pred()).toBe(true);
    };
    const watching = holdUntilStopped(
      { hold: { id: 0 } as unknown as NativeHold, paths: [f] },
      {
        read: async () => {
          if (failWith) throw new Error(failWith);
          return [f];
        },
        signal: ac.signal,
        say: (l) => said.push(l),
        pollSeconds: 0.02,
        addon,
        what: 'W',
      },
    ).catch((e) => e);
    writeFileSync(f, 'bb');
    await until(() => said.length === 1);
    expect(said[0]).toBe('W changed: read and held again (1 B in 1 file(s))');
    expect(released).toEqual([0]);
    failWith = 'W: gone';
    writeFileSync(f, 'ccc');
    await until(() => said.length === 2);
    expect(said[1]).toMatch(/^W changed and cannot be held now, so its old pages \(1 B\) were let go: W: gone; held again once its files change$/);
    expect(released).toEqual([0, 1]);
    // Unchanged files are not read again; a change that still fails is said once more, with its reason.
    await new Promise((r) => setTimeout(r, 100));
    expect(said).toHaveLength(2);
    failWith = 'W: half-written';
    writeFileSync(f, 'dddd');
    await until(() => said.length === 3);
    expect(said[2]).toBe('W: still cannot be held: W: half-written');
    failWith = null;
    writeFileSync(f, 'eeeee');
    await until(() => said.length === 4);
    expect(released).toEqual([0, 1]);
    ac.abort(new ColdstartError('INTERRUPTED', 'interrupted by SIGTERM')); // as src/cli/main.ts aborts
    expect(await watching).toMatchObject({ code: 'INTERRUPTED' });
    expect(released).toEqual([0, 1, 2]); // what was held when it stopped
  });
});

describe('holdFiles: never more than leaves the reserve free', () => {
  it('refuses (ENV, exit 3) a hold that would leave less than 5 % of the binding memory (at least 512 MiB) available, before anything is locked; names the cgroup when it binds', async () => {
    const f = join(tmp, 'sized.bin');
    writeFileSync(f, Buffer.alloc(1 << 20));
    let locked = 0;
    const addon = {
      holdResident: async () => ((locked += 1), { files: 1, bytes: 1 << 20, seconds: 0, hold: {} as NativeHold }),
      releaseResident: () => 0,
    };
    const GiB = 2 ** 30;
    expect(holdReserveBytes(8 * GiB)).toBe(512 * 2 ** 20);
    expect(holdReserveBytes(125 * GiB)).toBe(6.25 * GiB);
    const e = await holdFiles(addon, [f], () => ({ availableBytes: 512 * 2 ** 20 + (1 << 20) - 1, totalBytes: 4 * GiB, by: 'cgroup' })).catch((x) => x);
    expect(e).toBeInstanceOf(ColdstartError);
    expect(e.code).toBe('ENV');
    expect(e.exitCode).toBe(3);
    expect(e.message).toBe("prefetch --hold: holding 1.00 MiB would leave 512 MiB of memory available (this process's cgroup limit: 513 MiB available of 4.00 GiB; at least 512 MiB stays free): nothing was held");
    expect(locked).toBe(0);
    const ok = await holdFiles(addon, [f], () => ({ availableBytes: 512 * 2 ** 20 + (1 << 20), totalBytes: 4 * GiB, by: 'host' }));
    expect(ok.now).toEqual({ files: 1, bytes: 1 << 20, seconds: 0 });
    expect(locked).toBe(1);
  });
});
