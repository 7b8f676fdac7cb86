import { describe, expect, it } from 'vitest';
import { summarize, outliers, quantile } from '../../src/core/stats.js';

describe('summarize', () => {
  it('computes min, median, mean ± sample σ, max, p90', () => {
    const s = summarize([2, 4, 4, 4, 5, 5, 7, 9]);
    expect(s.n).toBe(8);
    expect(s.min).toBe(2);
    expect(s.max).toBe(9);
    expect(s.mean).toBe(5);
    expect(s.median).toBe(4.5);
    // sample variance: Σ(x−5)² = 32, / 7
    expect(s.stddev).toBeCloseTo(Math.sqrt(32 / 7), 12);
    expect(s.p90).toBeCloseTo(7.6, 12);
  });
  it('has σ = 0 for one sample and does not reorder its input', () => {
    const xs = [3, 1, 2];
    expect(summarize([1.5]).stddev).toBe(0);
    summarize(xs);
    expect(xs).toEqual([3, 1, 2]);
  });
  it('refuses an empty sample', () => {
    expect(() => summarize([])).toThrow(RangeError);
  });
  it('interpolates quantiles linearly', () => {
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantile([1, 2, 3, 4], 0)).toBe(1);
    expect(quantile([1, 2, 3, 4], 1)).toBe(4);
  });
});

describe('outliers', () => {
  it('flags a sample far from the median (modified z-score > 3.5)', () => {
    expect(outliers([1.0, 1.01, 0.99, 1.02, 0.98, 5.0])).toEqual([5]);
  });
  it('flags nothing in a tight or tiny sample', () => {
    expect(outliers([1, 1.01, 0.99, 1.02])).toEqual([]);
    expect(outliers([1, 100])).toEqual([]);
    expect(outliers([2, 2, 2, 2])).toEqual([]);
  });
});
