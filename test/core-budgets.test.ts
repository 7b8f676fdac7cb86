import { describe, expect, it } from 'vitest';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDuration, parseBudgetSpec, evaluateBudgets, budgetsFailed, budgetsFromConfig } from '../src/core/budgets.js';
import { loadConfig, findConfig } from '../src/core/config.js';
import { ColdstartError } from '../src/core/errors.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as ColdstartError).code;
  }
  return undefined;
}

describe('parseDuration', () => {
  it.each([
    ['500ms', 0.5],
    ['20s', 20],
    ['1.5m', 90],
    ['2m30s', 150],
    ['1h', 3600],
    [' 8s ', 8],
    ['.5s', 0.5],
  ])('%s → %d s', (text, secs) => expect(parseDuration(text)).toBeCloseTo(secs, 12));
  it.each(['', '20', 's', '20x', '-5s', '0s', '5 s s', '1e3s'])('refuses %j', (text) => {
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

describe('evaluateBudgets', () => {
  it('names phase, limit, measured value and overrun when exceeded', () => {
    const r = evaluateBudgets({ 'gpu-load': 8, total: 20 }, { 'gpu-load': { seconds: 9.5, status: 'ok' }, total: { seconds: 15, status: 'ok' } });
    expect(r.map((x) => [x.phase, x.status])).toEqual([['gpu-load', 'exceeded'], ['total', 'ok']]);
    const over = r.find((x) => x.phase === 'gpu-load')!;
    expect(over.message).toBe('budget exceeded: gpu-load took 9.50 s, limit 8.00 s (+1.50 s, +18.8%)');
    expect(over.over).toBeCloseTo(1.5);
    expect(budgetsFailed(r)).toBe(true);
  });
  it('passes when every budget is met', () => {
    const r = evaluateBudgets({ total: 20 }, { total: { seconds: 19.9, status: 'ok' } });
    expect(budgetsFailed(r)).toBe(false);
    expect(r[0]!.message).toContain('budget met');
  });
  it('fails closed: a budget on a phase that was not measured fails, naming why, unless --allow-unmeasured', () => {
    const m = { 'cuda-init': { seconds: null, status: 'skipped' as const, reason: 'no CUDA driver' }, warmup: { seconds: null, status: 'failed' as const } };
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
    // A budget on a phase this profile does not have at all is unmeasured too.
    expect(budgetsFailed(evaluateBudgets({ compile: 3 }, {}))).toBe(true);
  });
});
