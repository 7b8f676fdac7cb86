/**
 * `cache ls` counts a file a download skipped on purpose (duplicate weight formats next to safetensors, skipped by
 * default) as skipped, not as "not cached": a default download lists as complete; a file left out by other means
 * (an --include that did not match it) is still "not cached".
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { runCli } from '../helpers/cli.js';
import { servedFile, startHubServer, type HubServer } from '../helpers/hub-server.js';

let hub: HubServer;
const tmp = mkdtempSync(join(tmpdir(), 'coldstart-ls-skipped-'));
const env = (cache: string) => ({ HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: join(tmp, cache), HF_HOME: join(tmp, 'hfhome') });

beforeAll(async () => {
  hub = await startHubServer();
  hub.addRepo('org/dup', [servedFile('config.json', Buffer.from('{}')), servedFile('model.safetensors', randomBytes(4096)), servedFile('pytorch_model.bin', randomBytes(4096)), servedFile('README.md', Buffer.from('# dup\n'))]);
});
afterAll(async () => {
  await hub.stop();
  rmSync(tmp, { recursive: true, force: true });
});

interface Ls {
  repos: Array<{ repo: string; snapshots: Array<{ missing: string[] | null; skipped: string[] }> }>;
}

describe('cache ls: skipped on purpose is not "not cached"', () => {
  it('a default download (the .bin duplicate skipped): complete, 1 skipped', async () => {
    expect((await runCli(['cache', 'org/dup'], { env: env('a') })).code).toBe(0);
    const doc = JSON.parse((await runCli(['--json', 'cache', 'ls'], { env: env('a') })).stdout) as Ls;
    expect(doc.repos[0]!.snapshots[0]).toMatchObject({ missing: [], skipped: ['pytorch_model.bin'] });
    const r = await runCli(['cache', 'ls'], { env: env('a') });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/: complete; 1 skipped \(duplicate weight formats/);
    expect(r.stdout).not.toMatch(/not cached/);
  }, 60_000);

  it('a file an --include left out is still "not cached"', async () => {
    expect((await runCli(['cache', 'org/dup', '--include', '*.safetensors'], { env: env('b') })).code).toBe(0);
    const doc = JSON.parse((await runCli(['--json', 'cache', 'ls'], { env: env('b') })).stdout) as Ls;
    expect(doc.repos[0]!.snapshots[0]!.missing!.sort()).toEqual(['README.md', 'config.json']);
    expect((await runCli(['cache', 'ls'], { env: env('b') })).stdout).toMatch(/2 file\(s\) of the commit not cached; 1 skipped/);
  }, 60_000);
});
