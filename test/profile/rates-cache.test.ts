/**
 * Rates reused: the rate probes' result is kept per machine, disk and kernel (rates.json in coldstart's cache
 * folder, written atomically) with its date, reused for 7 days and said so ("rates from DATE …; --remeasure to
 * refresh"); --remeasure, a stale entry or another key measure again, and a stale one says how long that took.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { findRates, isFresh, ratesCachePath, ratesKey, saveRates, RATES_MAX_AGE_DAYS, type RatesEntry } from '../../src/profile/rates-cache.js';
import type { Rates } from '../../src/profile/estimate.js';
import { runCli } from '../helpers/cli.js';

const root = mkdtempSync(join(tmpdir(), 'cs-rates-cache-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const rates = { diskReadBytesPerSecond: 1e9, pageCacheBytesPerSecond: 5e9, probeBytes: 1, probeDir: root } as unknown as Rates;
const key = (o: Partial<Parameters<typeof ratesKey>[0]> = {}) => ratesKey({ cuda: null, dir: root, probeBytes: 64 << 20, warmSpanBytes: 64 << 20, sink: 'memory', network: null, ...o });

describe('the rates cache', () => {
  it('keeps an entry under its key, atomically; another key, a stale or a future entry is not reused; a broken file is ignored', () => {
    const dir = join(root, 'unit');
    const path = ratesCachePath(dir);
    const k = key();
    expect(k).toMatchObject({ machine: 'host', probeBytes: 64 << 20 });
    expect(k.disk).toMatch(/ at \//);
    const e: RatesEntry = { key: k, measuredAt: '2026-12-05T10:00:00.000Z', rates, assumptions: ['a'], seconds: 12.5 };
    saveRates(path, e);
    expect(readdirSync(dir)).toEqual(['rates.json']);
    expect(findRates(path, k)).toEqual(e);
    expect(findRates(path, key({ probeBytes: 128 << 20 }))).toBeNull();
    expect(findRates(path, key({ network: 'https://huggingface.co' }))).toBeNull();
    expect(isFresh(e, new Date('2026-12-06T10:00:00Z'))).toBe(true);
    expect(isFresh(e, new Date(Date.parse(e.measuredAt) + RATES_MAX_AGE_DAYS * 86_400_000 + 1))).toBe(false);
    expect(isFresh(e, new Date('2026-12-01T00:00:00Z'))).toBe(false);
    // A second key is kept beside the first; the same key replaces its entry.
    saveRates(path, { ...e, key: key({ probeBytes: 1 << 20 }) });
    saveRates(path, { ...e, seconds: 3 });
    const doc = JSON.parse(readFileSync(path, 'utf8')) as { entries: RatesEntry[] };
    expect(doc.entries.map((x) => x.seconds)).toEqual([3, 12.5]);
    writeFileSync(path, '{ not json');
    expect(findRates(path, k)).toBeNull();
    // A FIFO under its name (no writer ever opens it) is an empty cache, never a wait; the next save replaces it.
    rmSync(path);
    execFileSync('mkfifo', [path]);
    expect(findRates(path, k)).toBeNull();
    saveRates(path, e);
    expect(findRates(path, k)).toEqual(e);
  });
});

describe('profile reuses this machine\'s rates for a week', () => {
  const env = { HOME: root, COLDSTART_CACHE: join(root, 'cache'), COLDSTART_PROBE_BYTES: String(4 << 20), HF_HUB_OFFLINE: '1' };
  const profile = async (...extra: string[]) => {
    const r = await runCli(['--json', 'profile', ...extra], { env });
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as { details: { ratesReusedFrom: string | null; rates: Rates | null } };
  };

  it('measured once, then reused (said, with the date), --remeasure measures again, a stale entry is measured again and says how long that took', async () => {
    const first = await profile();
    expect(first.details.ratesReusedFrom).toBeNull();
    expect(first.details.rates).not.toBeNull();
    const path = ratesCachePath(env.COLDSTART_CACHE);
    const kept = JSON.parse(readFileSync(path, 'utf8')) as { entries: RatesEntry[] };
    expect(kept.entries).toHaveLength(1);

    const again = await profile();
    expect(again.details.ratesReusedFrom).toBe(kept.entries[0]!.measuredAt);
    expect(again.details.rates).toEqual(first.details.rates);
    const human = await runCli(['profile'], { env });
    expect(human.stdout).toMatch(/rates from \d{4}-\d\d-\d\d \(this machine, disk and kernel; reused for 7 days\); --remeasure to refresh/);

    const fresh = await profile('--remeasure');
    expect(fresh.details.ratesReusedFrom).toBeNull();

    // Eight days old: measured again, and the time the probes took last time is said before they start.
    const doc = JSON.parse(readFileSync(path, 'utf8')) as { entries: RatesEntry[] };
    doc.entries[0]!.measuredAt = new Date(Date.now() - 8 * 86_400_000).toISOString();
    writeFileSync(path, JSON.stringify(doc));
    const stale = await runCli(['profile'], { env });
    expect(stale.code).toBe(0);
    expect(stale.stdout).toMatch(/measuring rates again \(about \S+ \S+, as on \d{4}-\d\d-\d\d\)/);
    expect(stale.stdout).not.toMatch(/rates from \d{4}/);
  }, 300_000);
});
