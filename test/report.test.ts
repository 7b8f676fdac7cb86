/** `coldstart report merge`: real profile reports (wrap mode against the vLLM-like server) from "several machines". */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from './helpers/cli.js';
import { peerPython } from './helpers/python.js';
import { FAKE_VLLM, freePort, parseJUnit, tempDir, validateWithSchema } from './profile/helpers.js';
import { quantile } from '../src/core/stats.js';

const py = peerPython();
const tmp = tempDir('cs-merge-');
const env = { COLDSTART_CACHE: tmp.dir, HF_HUB_OFFLINE: '1' };
const files: string[] = [];
afterAll(() => tmp.done());

beforeAll(async () => {
  // Two real runs; the second report is relabelled as another host (what a fleet of CI runners produces).
  for (const [i, runs] of [
    [0, '2'],
    [1, '1'],
  ] as const) {
    const port = await freePort();
    const f = join(tmp.dir, `m${i}.json`);
    const r = await runCli(['profile', '--ready-url', `http://127.0.0.1:${port}/health`, '--runs', runs, '--export-json', f, '-q', '--', process.execPath, FAKE_VLLM, String(port)], { env });
    expect(r.code, r.stderr).toBe(0);
    if (i === 1) {
      const doc = JSON.parse(readFileSync(f, 'utf8'));
      doc.host.hostname = 'runner-b';
      writeFileSync(f, JSON.stringify(doc));
    }
    files.push(f);
  }
}, 60_000);

describe('coldstart report merge', () => {
  it('gives p50/p90/max per phase over every run on every machine', async () => {
    const r = await runCli(['report', 'merge', ...files, '--json'], { env });
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.schema).toBe('coldstart/report-merge@1');
    expect(doc.details.machines).toBe(2);
    const samples = files.flatMap((f) => JSON.parse(readFileSync(f, 'utf8')).runs.samples as Array<{ phases: Record<string, number | null>; total: number }>);
    expect(samples).toHaveLength(3);
    const gl = doc.phases.find((p: { name: string }) => p.name === 'gpu-load');
    const vals = samples.map((s) => s.phases['gpu-load']!).sort((a, b) => a - b);
    expect(gl.metrics).toMatchObject({ runs: 3, machines: 2, p50: quantile(vals, 0.5), p90: quantile(vals, 0.9), max: vals[2] });
    expect(gl.seconds).toBe(quantile(vals, 0.9));
    const container = doc.phases.find((p: { name: string }) => p.name === 'container');
    expect(container).toMatchObject({ status: 'skipped', reason: 'not measured in any input', seconds: null });
    expect(container.metrics.skippedRuns).toBe(3);
    const totals = samples.map((s) => s.total).sort((a, b) => a - b);
    expect(doc.total.seconds).toBe(quantile(totals, 0.9));
    expect(validateWithSchema(doc)).toEqual([]);
  });

  it('prints the fleet table and gates budgets on p90 (exit 1), with JUnit', async () => {
    const xml = join(tmp.dir, 'merge.xml');
    const ok = await runCli(['report', 'merge', ...files, '--budget', 'total=60s'], { env });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/3 report\(s\)|2 report\(s\) from 2 machine\(s\)/);
    expect(ok.stdout).toMatch(/│ gpu-load\s+│ 3\s+│ 2\s+│/);
    const bad = await runCli(['report', 'merge', ...files, '--budget', 'warmup=1ms', '--junit', xml], { env });
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/budget exceeded: warmup took .* \(p90 across the fleet\)/);
    expect((await parseJUnit(xml)).failures).toBe(1);
  });

  it('refuses files that are not profile reports (exit 2)', async () => {
    const junk = join(tmp.dir, 'junk.json');
    writeFileSync(junk, JSON.stringify({ schema: 'coldstart/doctor@1' }));
    const r = await runCli(['report', 'merge', junk], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('not a coldstart profile report');
    const missing = await runCli(['report', 'merge', join(tmp.dir, 'nope.json')], { env });
    expect(missing.code).toBe(2);
    const notJson = join(tmp.dir, 'x.json');
    writeFileSync(notJson, '{');
    expect((await runCli(['report', 'merge', notJson], { env })).code).toBe(2);
    const est = join(tmp.dir, 'est.json');
    const doc = JSON.parse(readFileSync(files[0]!, 'utf8'));
    doc.details.mode = 'estimate';
    writeFileSync(est, JSON.stringify(doc));
    const e = await runCli(['report', 'merge', files[0]!, est], { env });
    expect(e.code).toBe(2);
    expect(e.stderr).toContain('--estimate report');
  });
});
