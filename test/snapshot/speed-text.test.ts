/** restore's last line compares the restore with the cold start recorded in the image, whichever way round it came out. */
import { describe, expect, it } from 'vitest';
import { speedText } from '../../src/snapshot/restore.js';

describe('speedText', () => {
  it('says how many times faster a restore was than the cold start (the H200 compiled 8B server of 2026-12-06)', () => {
    expect(speedText(63.9, 1.85)).toBe('34.5× faster than');
  });
  it('says "slower" for a restore that took longer (a trivial server on the dev VM: 136 ms cold, 161 ms restored), never "0.8× faster"', () => {
    expect(speedText(0.136, 0.161)).toBe('1.2× slower than');
  });
  it('says only "compared with" where either side is not a positive time', () => {
    expect(speedText(1, 0)).toBe('compared with');
    expect(speedText(0, 1)).toBe('compared with');
    expect(speedText(Number.NaN, 1)).toBe('compared with');
  });
});
