/** `coldstart report merge`: real profile reports (wrap mode against the vLLM-like server) from "several machines". */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { peerPython } from '../helpers/python.js';
import { FAKE_VLLM, freePort, parseJUnit, tempDir, validateWithSchema } from '../profile/helpers.js';
import { quantile } from '../../src/core/stats.js';

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
    expect(bad.stdout).toMatch(/^✗ budget exceeded: warmup took .* \(p90 across the fleet: 3 run\(s\) on 2 machine\(s\)\)/m);
    expect((await parseJUnit(xml)).failures).toBe(1);
  });

  it('merges only measured totals: over incomplete reports a total budget is not measured (exit 1), never a 0 s that passes', async () => {
    // The same report twice as an incomplete run: as this version writes it (samples[].total null) and as earlier
    // versions did (the sum of the measured phases, 0 here, beside total.seconds null).
    const base = JSON.parse(readFileSync(files[1]!, 'utf8'));
    const incomplete = (name: string, sampleTotal: number | null) => {
      const doc = structuredClone(base);
      doc.total = { seconds: null, complete: false, missing: ['gpu-load'], measuredSeconds: 0 };
      doc.runs.samples = doc.runs.samples.map((x: { total: number }) => ({ ...x, total: sampleTotal }));
      const f = join(tmp.dir, name);
      writeFileSync(f, JSON.stringify(doc));
      return f;
    };
    const now = incomplete('incomplete-now.json', null);
    const before = incomplete('incomplete-before.json', 0);
    for (const args of [[now], [before], [now, before]]) {
      const r = await runCli(['report', 'merge', ...args, '--budget', 'total=1ms'], { env });
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stdout).toMatch(/^✗ budget total=1\.00 ms: not measured: no run's total was measured/m);
      expect(r.stdout).not.toMatch(/budget met/);
      const j = JSON.parse((await runCli(['report', 'merge', ...args, '--budget', 'total=1ms', '--json'], { env })).stdout);
      expect(j.total).toMatchObject({ seconds: null, complete: false });
      expect(j.details.total).toMatchObject({ runs: 0, skippedRuns: args.length, p90: null });
      expect(j.budgets[0]).toMatchObject({ phase: 'total', status: 'unmeasured', measured: null });
      expect(j.exitCode).toBe(1);
      expect(validateWithSchema(j)).toEqual([]);
    }
    expect((await runCli(['report', 'merge', now, before, '--budget', 'total=1ms', '--allow-unmeasured'], { env })).code).toBe(0);
    // Measured and incomplete reports together: the fleet's total is the p90 of the measured runs, and says how many were not measured.
    const mixed = JSON.parse((await runCli(['report', 'merge', files[0]!, now, '--budget', 'total=1h', '--json'], { env })).stdout);
    expect(mixed.exitCode).toBe(0);
    expect(mixed.details.total).toMatchObject({ runs: 2, skippedRuns: 1 });
    expect(mixed.budgets[0].message).toMatch(/\(p90 across the fleet: 2 run\(s\) on 1 machine\(s\); 1 run\(s\) not measured\)/);
    expect(mixed.warnings).toContain("total: 1 of 3 run(s) not measured (incomplete reports); the fleet's total is over the 2 measured run(s)");
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
