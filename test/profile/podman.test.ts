/**
 * The container phase against real podman on an image imported from a busybox rootfs (no registry):
 * scripts/ci-podman.sh installs podman + runc + busybox-static and imports the image. CI sets
 * COLDSTART_REQUIRE_PODMAN=1 so a missing podman fails here instead of skipping.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { runCli } from '../helpers/cli.js';
import { tempDir } from './helpers.js';

const image = process.env.COLDSTART_PODMAN_IMAGE ?? 'localhost/coldstart-busybox:latest';
const conf = process.env.COLDSTART_PODMAN_CONF ?? '/tmp/coldstart-podman/containers.conf';

function podmanReady(): boolean {
  const ok = spawnSync('podman', ['image', 'exists', image]).status === 0 && existsSync(conf);
  if (!ok && process.env.COLDSTART_REQUIRE_PODMAN === '1') {
    throw new Error(`COLDSTART_REQUIRE_PODMAN=1 but podman or the image ${image} (or ${conf}) is missing: run scripts/ci-podman.sh`);
  }
  return ok;
}

const ready = podmanReady();
const tmp = tempDir('cs-podman-');
afterAll(() => tmp.done());
const env = { COLDSTART_CACHE: tmp.dir, HF_HUB_OFFLINE: '1' };

describe.skipIf(!ready)('container phase with real podman', () => {
  it('times podman run --rm of an imported image, with statistics over runs', async () => {
    const r = await runCli(['profile', '--image', image, '--only', 'container', '--runs', '2', '--json'], { env: { ...env, CONTAINERS_CONF: conf } });
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    const c = doc.phases.find((p: { name: string }) => p.name === 'container');
    expect(c.status).toBe('ok');
    expect(c.metrics).toMatchObject({ runtime: 'podman', image, pulled: false, source: 'image' });
    expect(c.stats.n).toBe(2);
    const run = c.steps.find((s: { name: string }) => s.name.startsWith('run --rm'));
    expect(run.seconds).toBeGreaterThan(0.01);
    expect(c.seconds).toBeCloseTo(doc.runs.samples.reduce((a: number, s: { phases: Record<string, number> }) => a + s.phases.container, 0) / 2, 9);
    expect(doc.total.seconds).toBeCloseTo(c.seconds, 9);
  });

  it('says which setting to change when the runtime fails for host reasons (ulimits above the hard limit)', async () => {
    // Without the containers.conf, podman's default ulimits exceed this VM's hard limits (CI: nofile 20000).
    const r = await runCli(['profile', '--image', image, '--only', 'container'], { env: { ...env, CONTAINERS_CONF: '/dev/null' } });
    if (r.code === 0) {
      // A host whose hard limits allow podman's defaults: the run must then be a measured success.
      expect(r.stdout).toMatch(/container\s+│\s+[\d.]+ m?s/);
      return;
    }
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/failed/);
    expect(r.stderr).toMatch(/--ulimit=nofile=|default_ulimits/);
    // The advice works: passing the ulimits on the command line fixes it.
    const fixed = await runCli(['profile', '--image', image, '--only', 'container', '--container-arg=--ulimit=nofile=1024:1024', '--container-arg=--ulimit=nproc=1024:1024', '--container-arg=--runtime=runc', '--json'], {
      env: { ...env, CONTAINERS_CONF: '/dev/null' },
    });
    expect(fixed.code, fixed.stderr).toBe(0);
    expect(JSON.parse(fixed.stdout).phases[0].status).toBe('ok');
  });

  it('a missing image with no registry is a pull failure (exit 3), not a slow start', async () => {
    const r = await runCli(['profile', '--image', 'localhost/coldstart-no-such-image:1', '--only', 'container', '--json'], { env: { ...env, CONTAINERS_CONF: conf } });
    expect(r.code).toBe(3);
    const doc = JSON.parse(r.stdout);
    const c = doc.phases[0];
    expect(c.status).toBe('failed');
    expect(c.seconds).toBeNull();
    expect(c.error.code).toBe('NETWORK');
    expect(c.error.message).toMatch(/not present locally and the pull failed/);
    expect(doc.warnings.join('\n')).toMatch(/pull failure, not a slow start/);
  });
});
