import { describe, expect, it } from 'vitest';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseBudgetSpec, parseBudgetFlags, evaluateBudgets, budgetsFailed, budgetsFromConfig } from '../../src/core/budgets.js';
import { durationFlag } from '../../src/core/flags.js';
import { formatDuration } from '../../src/core/format.js';
import { measurementOf, skippedPhase, type PhaseResult } from '../../src/core/phases.js';
import { loadConfig, findConfig } from '../../src/core/config.js';
import { ColdstartError } from '../../src/core/errors.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as ColdstartError).code;
  }
  return undefined;
}

const parseDuration = (text: string, where = '--budget') => durationFlag(where, text, { code: 'BAD_BUDGET' });

describe('durationFlag: the one duration parser (budgets and every timeout flag)', () => {
  it.each([
    ['500ms', 0.5],
    ['20s', 20],
    ['1.5m', 90],
    ['2m30s', 150],
    ['1h', 3600],
    [' 8s ', 8],
    ['.5s', 0.5],
  ])('%s → %d s', (text, secs) => expect(parseDuration(text)).toBeCloseTo(secs, 12));
  it.each(['', '20', 's', '20x', '-5s', '0s', '5 s s', '1e3s'])('a budget refuses %j (BAD_BUDGET)', (text) => {
    expect(codeOf(() => parseDuration(text))).toBe('BAD_BUDGET');
  });
  it('names the flag and gives an example in the error', () => {
    try {
      parseDuration('20', '--budget total');
      expect.unreachable();
    } catch (e) {
      expect((e as ColdstartError).message).toBe('--budget total: "20" is not a duration');
      expect((e as ColdstartError).hint).toContain('20s');
      expect((e as ColdstartError).exitCode).toBe(2);
    }
  });
  it('timeouts take a bare number of seconds too, and the same units; zero and junk are BAD_FLAG (exit 2)', () => {
    const timeout = (v: string) => durationFlag('--timeout', v, { bareSeconds: true });
    expect(timeout('30')).toBe(30);
    expect(timeout('0.5')).toBe(0.5);
    expect(timeout('30s')).toBe(30);
    expect(timeout('5m')).toBe(300);
    expect(timeout('700ms')).toBeCloseTo(0.7, 12);
    for (const bad of ['0', '0s', '-1', 'soon', '', '1e3', 'NaN', 'Infinity']) expect(codeOf(() => timeout(bad)), bad).toBe('BAD_FLAG');
  });
});

describe('formatDuration: one format for every duration a human reads', () => {
  it.each([
    [0, '0 s'],
    [0.0005, '500 µs'],
    [0.0025, '2.50 ms'],
    [0.25, '250 ms'],
    [0.9996, '1.00 s'],
    [8, '8.00 s'],
    [59.96, '1 min 0 s'],
    [119.6, '2 min 0 s'],
    [150, '2 min 30 s'],
    [3600, '1 h 0 min'],
    [3599.6, '1 h 0 min'],
    [5400, '1 h 30 min'],
    [-1.5, '-1.50 s'],
  ])('%d s → %s', (s, text) => expect(formatDuration(s)).toBe(text));
  it('a budget of an hour reads as one: total=1h', () => {
    const [r] = evaluateBudgets(parseBudgetFlags(['total=1h']), { total: { state: 'measured', seconds: 1 } });
    expect(r!.message).toBe('budget met: total took 1.00 s, limit 1 h 0 min (59 min 59 s to spare)');
  });
});

describe('parseBudgetSpec', () => {
  it('parses several phases', () => {
    expect(parseBudgetSpec('total=20s,gpu-load=8s, warmup=500ms')).toEqual({ total: 20, 'gpu-load': 8, warmup: 0.5 });
  });
  it('refuses unknown phases, listing the valid keys', () => {
    try {
      parseBudgetSpec('gpuload=8s');
      expect.unreachable();
    } catch (e) {
      expect((e as ColdstartError).code).toBe('BAD_BUDGET');
      expect((e as ColdstartError).message).toContain('unknown phase "gpuload"');
      expect((e as ColdstartError).hint).toContain('gpu-load');
    }
  });
  it.each(['total', '=8s', 'total=', ',,'])('refuses %j', (spec) => expect(codeOf(() => parseBudgetSpec(spec))).toBe('BAD_BUDGET'));
});

describe('budgets from config', () => {
  it('accepts strings with units and numbers of seconds', () => {
    expect(budgetsFromConfig({ total: '20s', 'cuda-init': 2 }, 'x')).toEqual({ total: 20, 'cuda-init': 2 });
  });
  it('refuses bad shapes', () => {
    expect(codeOf(() => budgetsFromConfig([], 'x'))).toBe('BAD_CONFIG');
    expect(codeOf(() => budgetsFromConfig({ total: true }, 'x'))).toBe('BAD_CONFIG');
    expect(codeOf(() => budgetsFromConfig({ nope: '1s' }, 'x'))).toBe('BAD_BUDGET');
  });
  it('is found by walking up from the working directory', () => {
    const root = mkdtempSync(join(tmpdir(), 'cs-cfg-'));
    const deep = join(root, 'a', 'b', 'c');
    mkdirSync(deep, { recursive: true });
    writeFileSync(join(root, 'coldstart.config.json'), JSON.stringify({ budgets: { total: '20s', 'gpu-load': '8s' } }));
    expect(findConfig(deep)).toBe(join(root, 'coldstart.config.json'));
    expect(loadConfig(deep).budgets).toEqual({ total: 20, 'gpu-load': 8 });
  });
  it('reports invalid JSON as BAD_CONFIG naming the file', () => {
    const root = mkdtempSync(join(tmpdir(), 'cs-cfg-'));
    writeFileSync(join(root, 'coldstart.config.json'), '{ budgets: ');
    try {
      loadConfig(root);
      expect.unreachable();
    } catch (e) {
      expect((e as ColdstartError).code).toBe('BAD_CONFIG');
      expect((e as ColdstartError).message).toContain(join(root, 'coldstart.config.json'));
    }
  });
});

const phase = (name: string, over: Partial<PhaseResult>): PhaseResult => ({ name, status: 'ok', seconds: 1, steps: [], metrics: {}, ...over });

describe('measurementOf: the three states of a phase', () => {
  it('measured (0 s included), not measured with its reason (failed too), left out', () => {
    expect(measurementOf(phase('download', { seconds: 0 }))).toEqual({ state: 'measured', seconds: 0 });
    expect(measurementOf(phase('gpu-load', { status: 'estimated', seconds: 2 }))).toEqual({ state: 'measured', seconds: 2 });
    expect(measurementOf(skippedPhase('cuda-init', 'no CUDA driver'))).toEqual({ state: 'not-measured', reason: 'no CUDA driver' });
    expect(measurementOf(phase('warmup', { status: 'failed', seconds: null, error: { code: 'TIMEOUT', message: 'slow' } }))).toEqual({ state: 'not-measured', reason: 'the phase failed (TIMEOUT: slow)', failed: true });
    expect(measurementOf(skippedPhase('verify', 'not requested (--verify)', true))).toEqual({ state: 'left-out', reason: 'not requested (--verify)' });
  });
});

describe('evaluateBudgets: the one evaluator', () => {
  it('names phase, limit, measured value and overrun when exceeded', () => {
    const r = evaluateBudgets({ 'gpu-load': 8, total: 20 }, { 'gpu-load': { state: 'measured', seconds: 9.5 }, total: { state: 'measured', seconds: 15 } });
    expect(r.map((x) => [x.phase, x.status])).toEqual([['gpu-load', 'exceeded'], ['total', 'ok']]);
    const over = r.find((x) => x.phase === 'gpu-load')!;
    expect(over.message).toBe('budget exceeded: gpu-load took 9.50 s, limit 8.00 s (+1.50 s, +18.8%)');
    expect(over.over).toBeCloseTo(1.5);
    expect(budgetsFailed(r)).toBe(true);
  });
  it('passes when every budget is met', () => {
    const r = evaluateBudgets({ total: 20 }, { total: { state: 'measured', seconds: 19.9 } });
    expect(budgetsFailed(r)).toBe(false);
    expect(r[0]!.message).toContain('budget met');
  });
  it('a phase measured as 0 s (nothing to download) is measured: its budget is met', () => {
    const r = evaluateBudgets({ download: 1 }, { download: measurementOf(phase('download', { seconds: 0 })) });
    expect(r[0]).toMatchObject({ status: 'ok', measured: 0 });
    expect(budgetsFailed(r)).toBe(false);
  });
  it('says what a number is when it is not one run\'s time (the fleet\'s p90)', () => {
    const [r] = evaluateBudgets({ total: 1 }, { total: { state: 'measured', seconds: 2, basis: 'p90 across the fleet: 3 run(s) on 2 machine(s)' } });
    expect(r!.message).toBe('budget exceeded: total took 2.00 s (p90 across the fleet: 3 run(s) on 2 machine(s)), limit 1.00 s (+1.00 s, +100.0%)');
  });
  it('fails closed: a budget on a phase that was not measured fails, naming why, unless --allow-unmeasured', () => {
    const m = { 'cuda-init': measurementOf(skippedPhase('cuda-init', 'no CUDA driver')), warmup: measurementOf(phase('warmup', { status: 'failed', seconds: null })) };
    const r = evaluateBudgets({ 'cuda-init': 2, warmup: 3 }, m);
    expect(r.find((x) => x.phase === 'cuda-init')!.status).toBe('unmeasured');
    expect(r.find((x) => x.phase === 'cuda-init')!.message).toContain('not measured: no CUDA driver');
    expect(r.find((x) => x.phase === 'warmup')!.status).toBe('failed');
    expect(budgetsFailed(r)).toBe(true);
    expect(budgetsFailed(evaluateBudgets({ 'cuda-init': 2 }, m))).toBe(true);
    const allowed = evaluateBudgets({ 'cuda-init': 2 }, m, { allowUnmeasured: true });
    expect(allowed[0]!.allowed).toBe(true);
    expect(budgetsFailed(allowed)).toBe(false);
    // A phase that failed is never excused by --allow-unmeasured.
    expect(budgetsFailed(evaluateBudgets({ warmup: 3 }, m, { allowUnmeasured: true }))).toBe(true);
    // A budget on a phase this run does not have at all is unmeasured too.
    const none = evaluateBudgets({ compile: 3 }, {});
    expect(none[0]).toMatchObject({ status: 'unmeasured', measured: null });
    expect(none[0]!.message).toContain('not measured: this run has no compile phase');
    expect(budgetsFailed(none)).toBe(true);
  });
  it('a budget on a phase left out by choice is not met by it: it fails closed too, saying it was left out', () => {
    const r = evaluateBudgets({ warmup: 3 }, { warmup: measurementOf(skippedPhase('warmup', 'not selected (--only)', true)) });
    expect(r[0]).toMatchObject({ status: 'unmeasured', measured: null });
    expect(r[0]!.message).toContain('not measured: left out: not selected (--only)');
    expect(budgetsFailed(r)).toBe(true);
    expect(budgetsFailed(evaluateBudgets({ warmup: 3 }, { warmup: { state: 'left-out', reason: 'x' } }, { allowUnmeasured: true }))).toBe(false);
  });
});
