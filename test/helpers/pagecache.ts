/**
 * Page-cache helpers for tests that need a cold cache: residency by mincore and eviction (posix_fadvise DONTNEED)
 * through the addon's pageCache, and a scratch folder on a filesystem that honours the eviction.
 */
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireNative } from '../../src/native.js';

/** Fraction of `paths` resident in the page cache, by mincore (the addon's pageCache query). */
export async function resident(paths: string[]): Promise<number> {
  const q = await requireNative('t').pageCache({ paths, action: 'query' });
  return q.reduce((a, e) => a + (e.residentBytes ?? Number.NaN), 0) / q.reduce((a, e) => a + e.bytes, 0);
}

/** Bytes of `path` in the page cache (mincore). */
export async function residentBytes(path: string): Promise<number> {
  return (await requireNative('t').pageCache({ paths: [path], action: 'query' }))[0]!.residentBytes!;
}

/** Drops `paths` from the page cache; the fraction still resident after. */
export async function evict(paths: string[]): Promise<number> {
  const q = await requireNative('t').pageCache({ paths, action: 'evict' });
  return q.reduce((a, e) => a + (e.residentBytes ?? Number.NaN), 0) / q.reduce((a, e) => a + e.bytes, 0);
}

/**
 * A scratch directory whose filesystem honours posix_fadvise(DONTNEED) (the eviction these tests rely on): the
 * system temp dir, else one under the repository (tmpfs /tmp in some CI images keeps every page resident).
 */
export async function evictableDir(): Promise<string> {
  const repo = fileURLToPath(new URL('../..', import.meta.url));
  for (const parent of [tmpdir(), repo]) {
    const d = mkdtempSync(join(parent, parent === repo ? '.cs-prefetch-' : 'cs-prefetch-'));
    const probe = join(d, 'probe');
    writeFileSync(probe, Buffer.alloc(1 << 20, 1));
    if ((await evict([probe])) < 0.05) return d;
    rmSync(d, { recursive: true, force: true });
  }
  throw new Error('no filesystem here honours posix_fadvise(DONTNEED) (tmpfs?): the tests cannot make a cold cache');
}

/** Writes `data` to `path` and syncs it to the disk, as a library is: the kernel pages out clean pages only. */
export function writeOnDisk(path: string, data: Buffer): void {
  writeFileSync(path, data);
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
