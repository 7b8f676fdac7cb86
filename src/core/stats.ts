/** Summary statistics over repeated measurements, hyperfine-style. */
export interface Stats {
  n: number;
  min: number;
  max: number;
  mean: number;
  /** Sample standard deviation (n − 1); 0 for a single sample. */
  stddev: number;
  median: number;
  p90: number;
}

export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function summarize(samples: readonly number[]): Stats {
  if (samples.length === 0) throw new RangeError('summarize: no samples');
  const sorted = [...samples].sort((a, b) => a - b);
  const n = sorted.length;
  const mean = sorted.reduce((a, b) => a + b, 0) / n;
  const variance = n > 1 ? sorted.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1) : 0;
  return {
    n,
    min: sorted[0]!,
    max: sorted[n - 1]!,
    mean,
    stddev: Math.sqrt(variance),
    median: quantile(sorted, 0.5),
    p90: quantile(sorted, 0.9),
  };
}

/**
 * Outliers by the modified Z-score (Iglewicz & Hoaglin: |0.6745·(x − median)/MAD| > 3.5), as hyperfine
 * warns about. Returns the indexes of outlying samples; none when MAD is 0 or there are < 3 samples.
 */
export function outliers(samples: readonly number[]): number[] {
  if (samples.length < 3) return [];
  const sorted = [...samples].sort((a, b) => a - b);
  const med = quantile(sorted, 0.5);
  const dev = samples.map((x) => Math.abs(x - med)).sort((a, b) => a - b);
  const mad = quantile(dev, 0.5);
  if (mad === 0) return [];
  const out: number[] = [];
  samples.forEach((x, i) => {
    if (Math.abs((0.6745 * (x - med)) / mad) > 3.5) out.push(i);
  });
  return out;
}
