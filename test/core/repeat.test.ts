import { describe, expect, it } from 'vitest';
import { repeatRuns, parseCount } from '../../src/core/repeat.js';
import { summarizeRuns } from '../../src/core/report.js';

describe('repeatRuns', () => {
  it('runs warmup runs first and keeps only measured runs', async () => {
    const calls: Array<[number, boolean]> = [];
    const runs = await repeatRuns({ runs: 3, warmup: 2 }, async (i, warm) => {
      calls.push([i, warm]);
      return [{ name: 'gpu-load', status: 'ok', seconds: warm ? 100 : i, steps: [], metrics: {} }];
    });
    expect(calls).toEqual([
      [0, true],
      [1, true],
      [2, false],
      [3, false],
      [4, false],
    ]);
    const s = summarizeRuns(runs);
    expect(s.phases[0]!.stats).toMatchObject({ n: 3, min: 2, max: 4, mean: 3 });
  });
  it('stops when aborted', async () => {
    const ac = new AbortController();
    let n = 0;
    await expect(
      repeatRuns({ runs: 5, warmup: 0, signal: ac.signal }, async () => {
        if (++n === 2) ac.abort(new Error('stop'));
        return [];
      }),
    ).rejects.toThrow('stop');
    expect(n).toBe(2);
  });
  it('parses counts with one wording', () => {
    expect(parseCount('--runs', '3', 1)).toBe(3);
    expect(() => parseCount('--runs', '0', 1)).toThrow('--runs: expected a whole number from 1 to 10000, got "0"');
    expect(() => parseCount('--warmup', '1.5', 0)).toThrow('--warmup: expected a whole number');
  });
});
