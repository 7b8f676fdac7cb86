import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadNative, requireNative } from '../src/native.js';

const bin = fileURLToPath(new URL('../bin/coldstart.js', import.meta.url));
// (separate from the imports above so that merges with other branches touching them stay clean)
import { closeSync, ftruncateSync, openSync, rmSync as removeTree } from 'node:fs';
import { planChunks } from '../src/engines/gpuload.js';
const hasDriver = (() => {
  try {
    return execFileSync('ldconfig', ['-p'], { encoding: 'utf8' }).includes('libcuda.so.1');
  } catch {
    return false;
  }
})();

describe('native addon', () => {
  it('loads on a machine without CUDA (libcuda is dlopened at run time, never linked)', () => {
    const n = loadNative();
    expect(n.ok).toBe(true);
    if (n.ok) expect(n.addon.abiVersion).toBe(1);
  });

  it('cudaProbe() resolves { available: false, reason } without a driver, never throws', async () => {
    const addon = requireNative('test');
    const r = await addon.cudaProbe();
    expect(typeof r.available).toBe('boolean');
    expect(r.nvml).toBeDefined();
    if (!hasDriver) {
      expect(r.available).toBe(false);
      expect(r.stage).toBe('dlopen');
      expect(r.reason).toMatch(/libcuda\.so\.1 could not be loaded/);
      expect(r.devices).toEqual([]);
      expect(r.nvml.available).toBe(false);
      expect(r.nvml.reason).toMatch(/libnvidia-ml\.so\.1/);
    }
  });

  it('a long native op runs off the main thread: timers keep ticking, and a timer can cancel it', async () => {
    // A 64 GiB sparse file read through the host loader: seconds of work, never finished before we stop it.
    const dir = mkdtempSync(join(tmpdir(), 'cs-native-'));
    try {
      const path = join(dir, 'sparse.bin');
      const size = 64 * 2 ** 30;
      const fd = openSync(path, 'w');
      ftruncateSync(fd, size);
      closeSync(fd);
      const files = [{ path, begin: 0, end: size }];
      const cancel = new Int32Array(new SharedArrayBuffer(4));
      let ticks = 0;
      let settled = false;
      const load = requireNative('test').gpuLoad({ mode: 'host', sink: 'discard', files, plan: planChunks(files, 1 << 20), chunkBytes: 1 << 20, threads: 1, buffers: 2, direct: false, cancel });
      void load.then(
        () => (settled = true),
        () => (settled = true),
      );
      // If the addon blocked the main thread, this timer could only run after the load had finished (resolved), and
      // the cancel it sets would come too late to make the load reject.
      const timer = setInterval(() => {
        if (!settled) ticks++;
        if (ticks === 3) Atomics.store(cancel, 0, 1);
      }, 5);
      try {
        await expect(load).rejects.toMatchObject({ code: 'INTERRUPTED' });
      } finally {
        clearInterval(timer);
      }
      expect(ticks).toBeGreaterThanOrEqual(3);
    } finally {
      removeTree(dir, { recursive: true, force: true });
    }
  });

  it('argument errors read alike', () => {
    const addon = requireNative('test');
    expect(() => addon.cudaProbe('nope' as never)).toThrow('cudaProbe: options expected an object');
    expect(() => addon.cudaProbe({ devices: ['a' as never] })).toThrow('cudaProbe: options.devices[] expected a device index');
  });
});

describe('missing or broken addon', () => {
  it('doctor still works and says why and how to fix it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cs-native-'));
    const bogus = join(dir, 'coldstart.node');
    writeFileSync(bogus, 'not an ELF file');
    const r = spawnSync(process.execPath, [bin, 'doctor', '--json'], { encoding: 'utf8', env: { ...process.env, COLDSTART_NATIVE_PATH: bogus } });
    expect(r.status).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.addon.loaded).toBe(false);
    expect(doc.addon.reason).toContain(`the native addon at ${bogus} failed to load`);
    expect(doc.addon.fixes[0]).toContain('npm rebuild coldstart');
    expect(doc.cuda).toMatchObject({ available: false, skipped: true });
  });
});
