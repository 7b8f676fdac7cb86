/**
 * The device proof's disk probes, run here before device time is spent on them: test/device/disk_ways.py (every way
 * a wake-up could read a cold disk, side by side) on a few small files, evicted from the page cache before each
 * reading; coldstart_load's cold count there is every byte it read.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { peerPython } from '../helpers/python.js';
import { evictableDir } from '../helpers/pagecache.js';

const script = fileURLToPath(new URL('../device/disk_ways.py', import.meta.url));

interface Reading {
  way: string;
  round: number;
  seconds: number;
  bytesPerSecond: number;
  coldBytes?: number | null;
  diskReadersMax?: number;
  directRefused?: number;
}

describe.skipIf(!peerPython())('device proof: disk_ways.py', () => {
  it('reads the files from the disk every way asked, in an order reversed each round, each reading from an evicted page cache; the loader counts every byte cold; a bad way is refused by name', async () => {
    const dir = mkdtempSync(join(await evictableDir(), 'cs-ways-'));
    try {
      const env = { ...process.env };
      delete env.COLDSTART_LOAD_LIBRARY; // this checkout's build
      const py = peerPython()!;
      const out = join(dir, 'ways.json');
      const ways = ['one-stream', 'pread-seq', 'loader-direct-4', 'loader-cached-1'];
      const total = 24 << 20;
      const r = spawnSync(py, [script, join(dir, 'files'), out, '--gib', String(24 / 1024), '--file-mib', '8', '--rounds', '2', '--ways', ways.join(',')], { encoding: 'utf8', env, timeout: 120_000 });
      expect(r.status, r.stderr).toBe(0);
      const o = JSON.parse(readFileSync(out, 'utf8')) as { bytes: number; files: number; notes: string[]; readings: Reading[]; medianBytesPerSecond: Record<string, number> };
      expect(o).toMatchObject({ bytes: total, files: 3, notes: [] });
      const seen = JSON.stringify(o.readings);
      expect(o.readings.map((x) => `${x.round}:${x.way}`), seen).toEqual([...ways.map((w) => `0:${w}`), ...[...ways].reverse().map((w) => `1:${w}`)]);
      for (const x of o.readings) expect(x.bytesPerSecond, seen).toBeGreaterThan(0);
      // Each reading started with at most 1 % of the pages cached (the script refuses more): the loader found the rest
      // cold, whichever way it read them, and went to the disk through its gate.
      for (const x of o.readings.filter((y) => y.way.startsWith('loader-'))) {
        expect(x.coldBytes, seen).toBeGreaterThanOrEqual(0.99 * total);
        expect(x.coldBytes, seen).toBeLessThanOrEqual(total);
        expect(x.directRefused, seen).toBe(0);
        expect(x.diskReadersMax, seen).toBeGreaterThanOrEqual(1);
        expect(x.diskReadersMax, seen).toBeLessThanOrEqual(x.way === 'loader-cached-1' ? 1 : 4);
      }
      expect(Object.keys(o.medianBytesPerSecond).sort()).toEqual([...ways].sort());
      expect(r.stdout).toMatch(/median +loader-direct-4: [\d.]+ GB\/s/);

      const bad = spawnSync(py, [script, join(dir, 'files'), join(dir, 'bad.json'), '--ways', 'one-stream,sideways'], { encoding: 'utf8', env, timeout: 60_000 });
      expect(bad.status).not.toBe(0);
      expect(bad.stderr).toContain("unknown way 'sideways'");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
