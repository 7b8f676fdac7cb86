/**
 * What-if rows scale only the byte-proportional part of gpu-load (the loader's read + copy as the table shows them;
 * for a stack, the floor's load of the same bytes) and keep the rest; every row shares the table's baseline; a
 * finding and its row give the same number; the warm-pool trade-off survives an incomplete total, labelled.
 */
import { describe, expect, it } from 'vitest';
import { computeFindings, loadBasis, whatIfRows, type FindingsInput } from '../../src/profile/findings.js';
import type { PhaseSummary } from '../../src/core/report.js';
import type { Rates } from '../../src/profile/estimate.js';
import { runCli } from '../helpers/cli.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { afterAll } from 'vitest';

const rates: Rates = { diskReadBytesPerSecond: 2e9, diskSource: 'dd', pageCacheBytesPerSecond: 10e9, memcpyBytesPerSecond: 8e9, h2dBytesPerSecond: 25e9, h2dSource: 'loader', networkBytesPerSecond: 500e6, networkLatencySeconds: 0.1, probeBytes: 1, probeDir: '/tmp' };
const phase = (name: string, seconds: number | null, extra: Partial<PhaseSummary> = {}): PhaseSummary => ({ name, status: seconds === null ? 'skipped' : 'ok', seconds, steps: [], metrics: {}, share: null, ...(seconds === null ? { reason: 'x' } : {}), ...extra });
const model = (o: Partial<NonNullable<FindingsInput['model']>> = {}): NonNullable<FindingsInput['model']> => ({ name: 'demo', arg: 'demo', bytes: 10e6, format: 'safetensors', bytesPerParam: 2, dtype: 'BF16', source: 'synthetic', gpu: true, cache: 'cold', ...o });

describe('what-if rows scale only the part that scales with bytes', () => {
  it("a stack's load (3.51 s) with a floor of 11.5 ms: 4-bit moves only the 11.5 ms", () => {
    const phases = [phase('imports', 2), phase('gpu-load', 3.51, { floor: { seconds: 0.0115, source: 'native loader' } })];
    const rows = whatIfRows({ phases, total: 6, rates, model: model() });
    const q4 = rows.find((r) => r.id === 'quant-4bit')!;
    expect(q4).toMatchObject({ fromSeconds: 3.51, byteSeconds: 0.0115 });
    expect(q4.toSeconds).toBeGreaterThan(3.51 - 0.0115);
    expect(q4.toSeconds).toBeLessThan(3.51);
    // The part that does not scale is the same in every byte-scaled row.
    for (const r of rows.filter((x) => x.byteSeconds !== undefined)) expect(r.fromSeconds - r.byteSeconds!).toBeCloseTo(3.51 - 0.0115, 9);
  });

  it('the floor in host mode: the baseline is read + copy − overlap as the table shows them, in every row', () => {
    const steps = [
      { name: 'read', seconds: 0.00887 },
      { name: 'copy', seconds: 0.0401 },
    ];
    const phases = [phase('gpu-load', null, { steps, metrics: { hostReadSeconds: 0.0425, overlapFraction: 0.25 } })];
    const basis = loadBasis(phases)!;
    expect(basis.seconds).toBeCloseTo(0.00887 + 0.0401 - 0.0401 * 0.25, 12);
    expect(basis.basis).toMatch(/^read 8\.87 ms \+ copy 40\.1 ms − 10\.0 ms overlapped = 38\.9 ms/);
    const rows = whatIfRows({ phases, total: null, rates, model: model({ gpu: false }), coldWarmRead: { coldSeconds: 0.0425, warmSeconds: 0.02 } });
    expect(rows.length).toBeGreaterThan(3);
    for (const r of rows.filter((x) => x.phase === 'gpu-load')) expect(r.fromSeconds).toBe(basis.seconds);
  });

  it('a GPU load: the setup outside read ∪ copy is kept; an estimated phase is all bytes', () => {
    const steps = [
      { name: 'read', seconds: 2 },
      { name: 'copy', seconds: 1.5 },
    ];
    const b = loadBasis([phase('gpu-load', 2.5, { steps, metrics: { overlapFraction: 1 } })])!;
    expect(b).toMatchObject({ seconds: 2.5, byteSeconds: 2, measured: 'gpu-load' });
    expect(loadBasis([phase('gpu-load', 4, { status: 'estimated' })])).toMatchObject({ seconds: 4, byteSeconds: 4 });
  });

  it('a finding and its row give the same number (4-bit, prefetch from the cold → warm row)', () => {
    const phases = [phase('gpu-load', 9, { floor: { seconds: 3, source: 'native loader' } }), phase('warmup', 1)];
    const inp: FindingsInput = { phases, total: 10, rates, coldWarmRead: { coldSeconds: 3, warmSeconds: 0.5 }, model: model({ bytes: 16e9, name: 'llama3-8b', arg: '/m' }) };
    const rows = whatIfRows(inp);
    const f = computeFindings(inp, rows);
    const q4 = rows.find((r) => r.id === 'quant-4bit')!;
    expect(f.find((x) => x.id === 'quant-4bit')!.savesSeconds).toBe(q4.fromSeconds - q4.toSeconds);
    const warm = rows.find((r) => r.id === 'page-cache-warm')!;
    // 3 s of the 9 s scale with bytes; the loader measured warm/cold = 1/6: 9 − 3 × 5/6 = 6.5 s.
    expect(warm).toMatchObject({ fromSeconds: 9, byteSeconds: 3 });
    expect(warm.toSeconds).toBeCloseTo(6.5, 9);
    const pf = f.find((x) => x.id === 'prefetch')!;
    expect(pf.savesSeconds).toBe(warm.fromSeconds - warm.toSeconds);
    expect(pf.message).toContain('from 9.00 s to 6.50 s');
  });

  it('--gpu-price with an incomplete total: the warm-pool row stays, from the measured part, labelled', () => {
    const phases = [phase('download', 40, { status: 'estimated' }), phase('gpu-load', 12, { status: 'estimated' }), phase('warmup', null)];
    const f = computeFindings({ phases, total: null, partialTotal: { seconds: 52, missing: ['cuda-init', 'warmup'] }, rates, model: model(), gpuPricePerHour: 4 });
    const pool = f.find((x) => x.id === 'warm-instance')!;
    expect(pool.savesSeconds).toBeNull();
    expect(pool.message).toContain('$2920/month at $4/h');
    expect(pool.message).toContain('at least 52.0 s (the measured and estimated phases; cuda-init, warmup not measured)');
    // No measured part at all: nothing priced.
    expect(computeFindings({ phases, total: null, rates, model: model(), gpuPricePerHour: 4 }).find((x) => x.id === 'warm-instance')).toBeUndefined();
  });
});

describe('profile demo --json: the what-if baseline is the table\'s read + copy', () => {
  const home = mkdtempSync(join(tmpdir(), 'cs-whatif-'));
  afterAll(() => rmSync(home, { recursive: true, force: true }));
  it('every gpu-load row starts from read + copy − overlap of the gpu-load phase in the same run', async () => {
    const r = await runCli(['--json', 'profile'], { env: { HOME: home, COLDSTART_CACHE: join(home, 'cache') } });
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { phases: PhaseSummary[]; details: { whatIf: Array<{ id: string; phase: string; fromSeconds: number; toSeconds: number }> }; findings: Array<{ id: string; savesSeconds: number | null }> };
    const gl = doc.phases.find((p) => p.name === 'gpu-load')!;
    const step = (n: string) => gl.steps.find((s) => s.name === n)?.seconds ?? 0;
    const copy = step('copy');
    const overlap = copy * (typeof gl.metrics.overlapFraction === 'number' ? gl.metrics.overlapFraction : 0);
    const expected = gl.seconds ?? step('read') + copy - overlap;
    const rows = doc.details.whatIf.filter((w) => w.phase === 'gpu-load');
    expect(rows.length).toBeGreaterThan(0);
    for (const w of rows) expect(w.fromSeconds).toBeCloseTo(expected, 12);
    // A finding with a row is that row's saving.
    for (const f of doc.findings) {
      const w = doc.details.whatIf.find((x) => x.id === f.id || (f.id === 'prefetch' && x.id === 'page-cache-warm'));
      if (w && f.savesSeconds !== null) expect(f.savesSeconds).toBeCloseTo(w.fromSeconds - w.toSeconds, 12);
    }
  }, 120_000);
});
