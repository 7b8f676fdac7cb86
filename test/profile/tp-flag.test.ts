// profile --tp: a tensor-parallel gpu-load of the built-in demo (host sinks without a GPU), its per-rank numbers in
// the report, and the refusals (a degree the model does not split into, a --devices list of another length) as
// usage errors, exit 2, before anything is written.
import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';

describe('profile --tp', () => {
  it('loads the demo over 2 ranks: each byte read once, per-rank rates, verified; refusals exit 2', async () => {
    const home = mkdtempSync(join(tmpdir(), 'cs-tp-cli-'));
    const env = { COLDSTART_CACHE: join(home, 'cache'), HF_HOME: join(home, 'hf'), HF_HUB_OFFLINE: '1' };
    try {
      const r = await runCli(['profile', '--tp', '2', '--verify', '--json'], { env });
      expect(r.code, r.stderr).toBe(0);
      const g = JSON.parse(r.stdout).phases.find((p: { name: string }) => p.name === 'gpu-load');
      expect(g.metrics).toMatchObject({ tp: 2, verifyMismatches: 0 });
      expect(g.metrics.verifyChecked).toBeGreaterThan(0);
      expect(g.metrics.tpDeliveredBytes).toBeGreaterThanOrEqual(g.metrics.bytes); // norms go to both ranks
      expect(g.metrics.rank0BytesPerSecond).toBeGreaterThan(0);
      expect(g.metrics.rank1BytesPerSecond).toBeGreaterThan(0);
      expect(g.note).toMatch(/tensor-parallel 2: [\d.]+ MiB read once, [\d.]+ MiB delivered to 2 ranks; slowest rank [01] done at/);

      const three = await runCli(['profile', '--tp', '3'], { env });
      expect(three.code).toBe(2);
      expect(three.stderr).toMatch(/model\.safetensors: model\.[a-z_.0-9]+: .*does not split over 3 ranks/);

      const fresh = join(home, 'fresh');
      const mismatch = await runCli(['profile', '--tp', '2', '--devices', '0'], { env: { ...env, COLDSTART_CACHE: fresh } });
      expect(mismatch.code).toBe(2);
      expect(mismatch.stderr).toMatch(/--tp 2 needs 2 GPUs, one per rank; --devices 0 names another number/);
      expect(existsSync(fresh)).toBe(false); // refused before the demo was written
      for (const [args, why] of [
        [['--estimate'], /--estimate moves no weight bytes/],
        [['--framework', 'torch'], /--framework: your stack loads the weights itself/],
        [['--ready-url', 'http://127.0.0.1:9/health', '--', 'true'], /a wrapped server loads its weights itself/],
      ] as const) {
        const x = await runCli(['profile', '--tp', '2', ...args], { env: { ...env, COLDSTART_CACHE: fresh } });
        expect(x.code, x.stderr).toBe(2);
        expect(x.stderr).toMatch(why);
      }
      expect(existsSync(fresh)).toBe(false);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});
