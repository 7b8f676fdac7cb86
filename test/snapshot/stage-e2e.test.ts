// restore --stage end to end through both native sides, on the stand-in driver's one GPU whose memory another process
// can map (test/fixtures/stub-driver/stub_cuda.c, STUB_CUDA_MEMORY=1): the addon loads the files and keeps them with
// IPC handles (SnapshotNative.stage, gpuLoad keep), stage.ts lists them, and a server's wake-up in another process
// (coldstart_load.load → cs_copy_staged) copies the staged ranges "GPU to GPU" and reads the rest from the files — the
// bytes compared with the files each time; then every way the staged copy cannot be used (a handle whose allocation
// is smaller than the entry says, a holder that has let go, no entry) falls back to the files, said in staged_error.
// The real driver's IPC and copy rates are the device proof's (test/device/snapshot-gpu.sh, HOOK_RESTORES=…-stage).
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stubDriver } from '../helpers/stub-driver.js';
import { peerPython } from '../helpers/python.js';

const { withStubs, dispose } = stubDriver();
const tmp = mkdtempSync(join(tmpdir(), 'cs-stage-e2e-'));
afterAll(() => {
  dispose();
  rmSync(tmp, { recursive: true, force: true });
});

describe('restore --stage through the addon and libcoldstart_load.so (stand-in driver)', () => {
  it('staged ranges are copied from the holder\'s allocations, the rest read from the files, every byte as the files hold it; a lying entry, a released copy or none: read from the files, said why; released: nothing left', () => {
    const w = join(tmp, 'w');
    const shm = join(tmp, 'shm');
    const stage = join(tmp, 'stage');
    mkdirSync(w);
    mkdirSync(shm);
    const a = join(w, 'a.safetensors');
    const b = join(w, 'b.safetensors');
    const c = join(w, 'c.safetensors'); // not staged
    writeFileSync(a, randomBytes(3 * (1 << 20) + 12345));
    writeFileSync(b, randomBytes(1 << 20));
    writeFileSync(c, randomBytes(70000));
    const py = peerPython() ?? 'python3';
    const args = [fileURLToPath(new URL('./stage_wake.py', import.meta.url)), fileURLToPath(new URL('../../src/python', import.meta.url))];
    const body = `
      const { spawnSync } = await import('node:child_process');
      const { readFileSync, writeFileSync, readdirSync } = await import('node:fs');
      const { addonNative } = await import(dist + 'snapshot/native.js');
      const st = await import(dist + 'snapshot/stage.js');
      const files = ${JSON.stringify([a, b])};
      const wake = (...ranges) => {
        const r = spawnSync(${JSON.stringify(py)}, [...${JSON.stringify(args)}, ...ranges], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(r.stderr);
        return JSON.parse(r.stdout);
      };
      const uuids = await addon.cudaDeviceUuids();
      const before = new Map(files.map((f) => [f, st.fileIdentity(f)]));
      const s = await addonNative.stage(files, uuids[0].uuid, new AbortController().signal);
      const shmAfterStage = readdirSync(${JSON.stringify(shm)}).length;
      const listed = st.listStage(${JSON.stringify(stage)}, s, before, uuids[0].uuid, [1]);
      const ranges = ['${a}:0:${3 * (1 << 20) + 12345}', '${b}:100:5000', '${c}:7:69000', '${a}:4096:1'];
      const staged = wake(...ranges);
      // An entry that lies: a's ranges pointed at b's (smaller) allocation.
      const good = readFileSync(listed.entry, 'utf8');
      const doc = JSON.parse(good);
      doc.files[0].handle = doc.files[1].handle;
      writeFileSync(listed.entry, JSON.stringify(doc));
      const lying = wake(ranges[0]);
      writeFileSync(listed.entry, good);
      // The holder let go while its entry is still listed (it unlists first; a crash in between): the handles no longer open.
      addonNative.unstage(s.id);
      const released = wake(ranges[0], ranges[1]);
      const shmAfterRelease = readdirSync(${JSON.stringify(shm)}).length;
      st.unlistStage(listed.entry);
      const none = wake(ranges[1]);
      return { uuids, stagedBytes: s.bytes, files: s.files.map((f) => f.handle.length), shmAfterStage, staged, lying, released, shmAfterRelease, none, left: readdirSync(${JSON.stringify(stage)}) };
    `;
    const o = withStubs(body, { STUB_CUDA_MEMORY: '1', STUB_CUDA_SHM: shm, COLDSTART_STAGE_DIR: stage }) as Record<string, unknown>;
    const sizeA = 3 * (1 << 20) + 12345;
    expect(o.uuids).toEqual([{ ordinal: 0, uuid: '5a'.repeat(16) }]);
    expect(o.stagedBytes).toBe(sizeA + (1 << 20));
    expect(o.files).toEqual([128, 128]);
    expect(o.shmAfterStage).toBe(2); // one allocation per file
    // a whole, b's range and a's one byte from the staged copies; c (not staged) read from its file.
    expect(o.staged).toEqual({ bytes: sizeA + 5000 + 69000 + 1, staged_bytes: sizeA + 5000 + 1, staged_error: null, equal: [true, true, true, true] });
    expect(o.lying).toEqual({ bytes: sizeA, staged_bytes: 0, staged_error: expect.stringMatching(/^CORRUPT_FILE: cs_copy_staged: items\[0\]: offset 0 \+ length 3158073 lies outside the staged allocation \(1048576 bytes\)$/), equal: [true] });
    expect(o.released).toEqual({ bytes: sizeA + 5000, staged_bytes: 0, staged_error: expect.stringMatching(/^ENV: cs_copy_staged: the staged allocation did not open/), equal: [true, true] });
    expect(o.shmAfterRelease).toBe(0); // gpuRelease freed both allocations
    expect(o.none).toEqual({ bytes: 5000, staged_bytes: 0, staged_error: null, equal: [true] });
    expect(o.left).toEqual([]);
    expect(readdirSync(shm)).toEqual([]);
  });
});
