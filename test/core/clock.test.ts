/**
 * The clock lives in one place (src/core/clock.ts): monotonic stamps for durations, the wall clock only to compare with
 * a time from outside the process, the process's own age. Elsewhere in src/ no TypeScript reads a clock directly
 * (the watchdog shim.cjs is a process of its own and keeps its stamps itself).
 */
import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { epochSeconds, monotonicNs, nowSeconds, processSeconds, sleep } from '../../src/core/clock.js';

const SRC = fileURLToPath(new URL('../../src', import.meta.url));

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? tsFiles(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : []));
}

describe('core/clock.ts', () => {
  it('is the only TypeScript in src/ that reads a clock', () => {
    const readers = /\bDate\.now\(\)|\bperformance\.now\(\)|\bprocess\.hrtime\b/;
    const offenders = tsFiles(SRC)
      .filter((f) => relative(SRC, f) !== join('core', 'clock.ts'))
      .flatMap((f) =>
        readFileSync(f, 'utf8')
          .split('\n')
          .map((line, i) => ({ at: `${relative(SRC, f)}:${i + 1}`, line }))
          .filter(({ line }) => readers.test(line) && !/^\s*(\*|\/\/)/.test(line)),
      )
      .map(({ at, line }) => `${at}: ${line.trim()}`);
    expect(offenders).toEqual([]);
  });

  it('monotonic stamps agree with each other and advance with time; the wall clock and the process age are plausible', async () => {
    const ns0 = monotonicNs();
    const s0 = nowSeconds();
    const p0 = processSeconds();
    await sleep(30);
    const ns1 = monotonicNs();
    const s1 = nowSeconds();
    const p1 = processSeconds();
    expect(Number(ns1 - ns0) / 1e9).toBeGreaterThanOrEqual(0.025);
    expect(s1 - s0).toBeGreaterThanOrEqual(0.025);
    expect(Math.abs(Number(ns1 - ns0) / 1e9 - (s1 - s0))).toBeLessThan(0.02);
    expect(p1 - p0).toBeGreaterThanOrEqual(0.025);
    // the process started before this test and after the epoch of its own wall clock reading
    expect(p0).toBeGreaterThan(0);
    expect(p0).toBeLessThan(process.uptime() + 1);
    expect(Math.abs(epochSeconds() - Date.now() / 1000)).toBeLessThan(1);
  });
});
