/**
 * The cold path's choice (issue 25): by default a cold file is read with O_DIRECT and the page cache is left as
 * found (mincore before == after), `direct: true` (--direct) the same, `direct: false` (--buffered) leaves the weights
 * resident for the next start. Host mode (no GPU here): the bytes go to host memory or are discarded.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { runGpuLoad } from '../../src/load/gpu-load.js';
import { buildHeader } from '../../src/formats/safetensors.js';
import { requireNative, type NativeAddon } from '../../src/native.js';
import { runCli } from '../helpers/cli.js';

let addon: NativeAddon;
let file: string;
// On the disk (not tmpfs, where O_DIRECT is refused and everything lives in the page cache anyway).
const root = process.env.COLDSTART_DISK_TMP ?? '/var/tmp';

const resident = async (): Promise<number> => {
  const [e] = await addon.pageCache({ paths: [file], action: 'query' });
  return e!.residentBytes! / e!.bytes;
};
const evict = async (): Promise<void> => {
  await addon.pageCache({ paths: [file], action: 'evict' });
};

beforeAll(() => {
  addon = requireNative('tests');
  const dir = mkdtempSync(join(root, 'cs-readmode-'));
  // 48 MiB in 3 tensors: bigger than the readahead around the header, so "cold" is telling.
  const n = 16 << 20;
  const { bytes: header, dataSize } = buildHeader([0, 1, 2].map((i) => ({ name: `w${i}`, dtype: 'U8' as const, shape: [n] })));
  file = join(dir, 'model.safetensors');
  writeFileSync(file, Buffer.concat([header, randomBytes(dataSize)]));
  return () => rmSync(dir, { recursive: true, force: true });
});

describe('gpu-load read mode and the page cache', () => {
  it.each([
    ['default', undefined],
    ['--direct', true],
  ])('%s on a cold file: O_DIRECT, the page cache left as found (mincore before == after)', async (_, direct) => {
    await evict();
    const before = await resident();
    expect(before).toBeLessThan(0.01);
    const r = await runGpuLoad({ files: [file], host: true, hostSink: 'memory', ...(direct === undefined ? {} : { direct }) });
    expect(r.mode).toBe('host');
    expect(r.files[0]!.direct).toBe(true);
    expect(r.bytes).toBe(3 * (16 << 20));
    const after = await resident();
    expect(after).toBeLessThanOrEqual(before + 0.005); // a page or two of slack at most, never the weights
    expect(r.cache.residentFractionAfter).toBeLessThanOrEqual(before + 0.005);
  });

  it('--buffered on a cold file: read through the page cache and left resident for the next start', async () => {
    await evict();
    expect(await resident()).toBeLessThan(0.01);
    const r = await runGpuLoad({ files: [file], host: true, hostSink: 'discard', direct: false });
    expect(r.files[0]!.direct).toBe(false);
    expect(await resident()).toBeGreaterThan(0.9);
    expect(r.cache.residentFractionAfter).toBeGreaterThan(0.9);
  });

  it('a warm file stays warm with the default (read through the page cache, nothing evicted)', async () => {
    await runGpuLoad({ files: [file], host: true, hostSink: 'discard', direct: false });
    const r = await runGpuLoad({ files: [file], host: true, hostSink: 'discard' });
    expect(r.files[0]!.direct).toBe(false);
    expect(await resident()).toBeGreaterThan(0.9);
  });

  it('profile: --direct and --buffered exclude each other (exit 2 before anything runs)', async () => {
    const r = await runCli(['--json', 'profile', file, '--direct', '--buffered']);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout).error.code).toBe('USAGE');
    expect(JSON.parse(r.stdout).error.message).toContain('--direct and --buffered exclude each other');
    // A bad value is named before flags that do not go together (the order warmup keeps too).
    const bad = await runCli(['--json', 'profile', file, '--direct', '--buffered', '--runs', 'x']);
    expect(bad.code).toBe(2);
    expect(JSON.parse(bad.stdout).error.message).toContain('--runs');
  });
});
