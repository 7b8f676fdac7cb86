/** snapshot's hint that the weights could stay out of the image (a server's level-2 sleep, docs/snapshot.md). */
import { describe, expect, it } from 'vitest';
import type { ImageKinds } from '../../src/snapshot/manifest.js';
import { weightsHint } from '../../src/snapshot/snapshot.js';

const GB = 1e9;
const kinds = (gpu: number | null, anon: number): ImageKinds => ({ gpuStateBytes: gpu, anonymousBytes: anon, fileMappedBytes: 0.03 * GB, sharedBytes: 0, filesBytes: 0, otherBytes: 0, notes: [] });

describe('weightsHint', () => {
  it('names the hooks and --prefetch when GPU state is most of a large image and no --before-snapshot released any', () => {
    // The H100 compiled 8B image of 2026-12-05: 19.18 GB of GPU state in 20.41 GB.
    const h = weightsHint(kinds(19.18 * GB, 1.2 * GB), 20.41 * GB, null);
    expect(h).toMatch(/^17\.9 GiB of the image is GPU memory/);
    expect(h).toContain('--before-snapshot URL');
    expect(h).toContain('--after-restore URL');
    expect(h).toContain('restore --prefetch WEIGHTS');
  });

  it('says nothing with a --before-snapshot hook, a small or mostly host image, or GPU state not measured', () => {
    expect(weightsHint(kinds(19.18 * GB, 1.2 * GB), 20.41 * GB, { url: 'http://127.0.0.1:1/sleep?level=1', method: 'POST', body: null })).toBeNull();
    expect(weightsHint(kinds(0.84 * GB, 1.09 * GB), 1.98 * GB, null)).toBeNull(); // the level-2 image: host memory most of it
    expect(weightsHint(kinds(0.5 * GB, 0.1 * GB), 0.63 * GB, null)).toBeNull(); // under 1 GiB of GPU state
    expect(weightsHint(kinds(null, 2 * GB), 2 * GB, null)).toBeNull();
    expect(weightsHint(null, 2 * GB, null)).toBeNull();
  });
});
