import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadNative, requireNative } from '../src/native.js';

const bin = fileURLToPath(new URL('../bin/coldstart.js', import.meta.url));
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

  it('cudaProbe runs off the main thread (returns a promise at once)', () => {
    const p = requireNative('test').cudaProbe({ context: false });
    expect(p).toBeInstanceOf(Promise);
    return p;
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
