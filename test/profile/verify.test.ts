import { describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';

describe('profile --verify', () => {
  it('copies a sample of every tensor back and compares it with the file (host mode without a GPU)', async () => {
    const cache = mkdtempSync(join(tmpdir(), 'cs-verify-'));
    const r = await runCli(['profile', '--only', 'gpu-load', '--verify', '--json'], { env: { COLDSTART_CACHE: cache, HF_HUB_OFFLINE: '1' } });
    expect(r.code, r.stderr).toBe(0);
    const gl = JSON.parse(r.stdout).phases.find((p: { name: string }) => p.name === 'gpu-load');
    // Every tensor of the demo model is sampled (first, middle and last ranges).
    expect(gl.metrics.verifyChecked).toBeGreaterThan(0);
    expect(gl.metrics.verifyMismatches).toBe(0);
  });
});
