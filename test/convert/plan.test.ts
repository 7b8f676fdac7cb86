/** planConversion: the pure half of convertCheckpoint (issue #11 "shape"): decided from descriptors, no disk I/O. */
import { describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openTorchCheckpoint } from '../../src/formats/torch.js';
import { planConversion } from '../../src/convert/convert.js';

const FIX = fileURLToPath(new URL('../../fixtures/torch/', import.meta.url));
const views = join(FIX, 'good', 'views.pt');
const base = { input: views, kind: 'file' as const, files: [views], outputIsDirectory: false };

describe('planConversion', () => {
  it('orders tensors, names the output beside the input, and writes nothing', () => {
    const before = readdirSync(join(FIX, 'good')).sort();
    const cp = openTorchCheckpoint(views);
    const plan = planConversion({ ...base, checkpoints: [cp] });
    expect(plan.finalTarget).toBe(join(FIX, 'good', 'views.safetensors'));
    expect(plan.sharded).toBe(false);
    expect(plan.planned.map((p) => p.name).sort()).toEqual(cp.tensors.map((t) => t.name).filter((n) => !(n in plan.dropped)).sort());
    expect(plan.metadata.format).toBe('pt');
    expect(readdirSync(join(FIX, 'good')).sort()).toEqual(before);
  });
  it('shards by size, converts dtypes, and takes an existing output directory from its caller', () => {
    const cp = openTorchCheckpoint(views);
    const plan = planConversion({ ...base, checkpoints: [cp], shardSize: 64, dtype: 'F16', output: '/nonexistent/out', outputIsDirectory: true });
    expect(plan.finalTarget).toBe('/nonexistent/out/views.safetensors');
    expect(plan.shards.length).toBeGreaterThan(1);
    expect(plan.planned.every((p) => p.outDtype === 'F16' || !p.t.dtype.startsWith('F'))).toBe(true);
    expect(plan.convertedDtype).toBeGreaterThan(0);
  });
  it('refuses amplification in the plan, before any output exists', () => {
    const f = join(FIX, 'attacks', '09_stride0_1gib.pt');
    const cp = openTorchCheckpoint(f);
    expect(() => planConversion({ ...base, input: f, files: [f], checkpoints: [cp] })).toThrow(/limit 2×/);
    expect(planConversion({ ...base, input: f, files: [f], checkpoints: [cp], allowAmplification: true }).planned).toHaveLength(1);
  });
});
