import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runPhase, PhaseHandle, publicPhase, skippedPhase } from '../../src/core/phases.js';
import { newReport, runTotal, summarizeRuns } from '../../src/core/report.js';
import { emitReport } from '../../src/core/emit.js';
import { Output, type ProcessLike } from '../../src/core/output.js';
import { renderHuman } from '../../src/core/reporters/human.js';
import { renderMarkdown } from '../../src/core/reporters/markdown.js';
import { renderJUnit } from '../../src/core/reporters/junit.js';
import { githubAnnotations } from '../../src/core/reporters/github.js';
import { ColdstartError } from '../../src/core/errors.js';
import type { PhaseResult } from '../../src/core/phases.js';

function fakeProc(env: Record<string, string> = {}): ProcessLike & { out: () => string; err: () => string } {
  let o = '';
  let e = '';
  return {
    argv: [],
    env,
    cwd: () => process.cwd(),
    stdout: { write: (s: string) => ((o += s), true), isTTY: false },
    stderr: { write: (s: string) => ((e += s), true), isTTY: false },
    out: () => o,
    err: () => e,
  };
}

const plain = new Output(fakeProc(), { json: false, quiet: false, color: false, debug: false }).style;

function phase(name: string, seconds: number | null, extra: Partial<PhaseResult> = {}): PhaseResult {
  return { name, status: seconds === null ? 'skipped' : 'ok', seconds, steps: [], metrics: {}, ...extra };
}

describe('runPhase', () => {
  it('measures a phase with the monotonic clock and records steps and metrics', async () => {
    const p = await runPhase('download', async (h) => {
      await h.step('file-a', () => new Promise((r) => setTimeout(r, 20)));
      h.metric('bytes', 42);
    });
    expect(p.status).toBe('ok');
    expect(p.seconds!).toBeGreaterThanOrEqual(0.015);
    expect(p.steps).toHaveLength(1);
    expect(p.steps[0]!.name).toBe('file-a');
    expect(p.metrics.bytes).toBe(42);
  });
  it('is skipped with a reason, never a silent zero', async () => {
    const p = await runPhase('cuda-init', (h) => h.skip('no CUDA driver'));
    expect(p).toMatchObject({ status: 'skipped', seconds: null, reason: 'no CUDA driver' });
  });
  it('is failed with the error code, without throwing', async () => {
    const p = await runPhase('gpu-load', () => {
      throw new ColdstartError('CORRUPT_FILE', 'x.safetensors: truncated');
    });
    expect(p).toMatchObject({ status: 'failed', seconds: null, error: { code: 'CORRUPT_FILE', message: 'x.safetensors: truncated' } });
    expect(publicPhase(p)).not.toHaveProperty('cause');
  });
  it('takes an externally measured time when given', async () => {
    const p = await runPhase('cuda-init', (h: PhaseHandle) => {
      h.addStep('cuInit', 0.2);
      h.addStep('context', 0.3);
      h.setSeconds(0.5);
    });
    expect(p.seconds).toBe(0.5);
    expect(runTotal([p, phase('x', 1, { status: 'skipped', seconds: null, reason: 'left out', notApplicable: true })])).toBe(0.5);
    expect(runTotal([p, phase('x', null, { reason: 'no driver' })])).toBeNull();
  });
});

describe('summarizeRuns', () => {
  it('averages runs, adds statistics and shares, warns about outliers', () => {
    const runs = [1, 1.01, 0.99, 1.02, 0.98, 4].map((g) => [phase('cuda-init', 0.5), phase('gpu-load', g), phase('warmup', null, { reason: 'no model' })]);
    const s = summarizeRuns(runs);
    const gl = s.phases.find((p) => p.name === 'gpu-load')!;
    expect(gl.stats!.n).toBe(6);
    expect(gl.seconds).toBeCloseTo(1.5, 12);
    // warmup was not measured: the total is incomplete, never a number that looks like a whole cold start.
    expect(s.total.seconds).toBeNull();
    expect(s.total).toMatchObject({ complete: false, missing: ['warmup'] });
    expect(s.total.measuredSeconds).toBeCloseTo(2, 12);
    expect(gl.share! + s.phases[0]!.share!).toBeCloseTo(1, 12);
    expect(s.phases[2]!.share).toBeNull();
    expect(s.warnings.some((w) => w.startsWith('gpu-load: 1 statistical outlier'))).toBe(true);
    // One sample per run, each with its own total: null for a run that was not measured whole, never a sum of the rest.
    expect(s.samples).toHaveLength(6);
    expect(s.samples.every((x) => x.total === null)).toBe(true);
    expect(s.samples[5]!.phases).toEqual({ 'cuda-init': 0.5, 'gpu-load': 4, warmup: null });
  });
  it('a phase left out by choice is outside the total, never missing from it', () => {
    const s = summarizeRuns([[phase('read', 1), phase('write', 2), skippedPhase('verify', 'not requested (--verify)', true)]]);
    expect(s.total).toMatchObject({ seconds: 3, complete: true, leftOut: ['verify'] });
    expect(s.total.missing).toBeUndefined();
    expect(s.samples[0]!.total).toBe(3);
  });
  it('the total is complete only when every run is: one incomplete run makes it null, complete runs keep their sample totals', () => {
    const s = summarizeRuns([[phase('gpu-load', 1)], [phase('gpu-load', null, { status: 'failed', error: { code: 'TIMEOUT', message: 'x' } })], [phase('gpu-load', 3)]]);
    expect(s.total).toMatchObject({ seconds: null, complete: false, missing: ['gpu-load'] });
    expect(s.samples.map((x) => x.total)).toEqual([1, null, 3]);
  });
});

function sampleReport() {
  const r = newReport('profile');
  r.target = { name: 'demo' };
  const s = summarizeRuns([[phase('cuda-init', 0.25, { steps: [{ name: 'cuInit', seconds: 0.2 }] }), phase('gpu-load', 9.5, { note: 'a|b' }), phase('warmup', null, { reason: 'no <engine> & "x"' })]]);
  r.phases = s.phases;
  r.total = s.total;
  return r;
}

describe('reporters', () => {
  it('human: table with phase, time, share, status, note and indented steps', () => {
    const r = sampleReport();
    const text = renderHuman(r, plain, 120);
    expect(text).toMatch(/cuda-init\s*│\s*250 ms\s*│\s*2.6%\s*│\s*ok/);
    expect(text).toContain('└ cuInit');
    expect(text).toMatch(/warmup\s*│\s*—\s*│\s*│\s*skipped\s*│\s*no <engine>/);
    expect(text).toMatch(/total\s*│\s*incomplete \(≥ 9\.75 s\)\s*│\s*│\s*│\s*not measured: warmup/);
  });

  it('emitReport: budgets, exit 1 on overrun, exports written atomically, GitHub annotations and summary', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cs-emit-'));
    const summary = join(dir, 'summary.md');
    writeFileSync(summary, '');
    const proc = fakeProc({ GITHUB_ACTIONS: 'true', GITHUB_STEP_SUMMARY: summary });
    const out = new Output(proc, { json: false, quiet: false, color: false, debug: false });
    const r = sampleReport();
    const code = await emitReport(out, r, dir, { budgets: { 'gpu-load': 8, total: 20, warmup: 1 }, exportJson: 'r.json', exportMarkdown: 'r.md', junit: 'junit.xml' });
    expect(code).toBe(1);
    expect(proc.out()).toContain('✗ budget exceeded: gpu-load took 9.50 s, limit 8.00 s (+1.50 s, +18.8%)');
    expect(proc.out()).toContain('::error title=coldstart budget gpu-load::budget exceeded: gpu-load took 9.50 s');
    // Fail closed: a budget on a phase (or a total) that was not measured is a failure that says why.
    expect(proc.out()).toContain('✗ budget warmup=1.00 s: not measured: no <engine> & "x" (fails closed; pass --allow-unmeasured to accept)');
    expect(proc.out()).toContain('✗ budget total=20.0 s: not measured: the total is incomplete (missing: warmup)');
    const json = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'));
    expect(json.schema).toBe('coldstart/profile@1');
    expect(json.budgets).toHaveLength(3);
    expect(readFileSync(join(dir, 'r.md'), 'utf8')).toContain('| gpu-load | 9.50 s |');
    expect(readFileSync(summary, 'utf8')).toContain('❌ exceeded by 1.50 s');
    expect(readdirSync(dir).filter((f) => f.includes('.tmp'))).toEqual([]);
  });

  it('emitReport --json: exactly one JSON document on stdout, annotations to stderr', async () => {
    const proc = fakeProc({ GITHUB_ACTIONS: 'true' });
    const out = new Output(proc, { json: true, quiet: false, color: false, debug: false });
    const code = await emitReport(out, sampleReport(), process.cwd(), { budgets: { 'gpu-load': 100 } });
    expect(code).toBe(0);
    const doc = JSON.parse(proc.out());
    expect(doc.schema).toBe('coldstart/profile@1');
    expect(doc.exitCode).toBe(0);
    expect(typeof doc.phases[0].seconds).toBe('number');
    expect(doc.phases[2].seconds).toBeNull();
  });

  it('emitReport: a command with its own human output still prints the verdict, after it, in the same words', async () => {
    const proc = fakeProc();
    const out = new Output(proc, { json: false, quiet: false, color: false, debug: false });
    const code = await emitReport(out, sampleReport(), process.cwd(), { budgets: { 'gpu-load': 100, warmup: 1 }, human: () => 'converted x → y', extraHuman: ['  detail'] });
    expect(code).toBe(1);
    expect(proc.out().split('\n').filter(Boolean)).toEqual([
      'converted x → y',
      '  detail',
      '✓ budget met: gpu-load took 9.50 s, limit 1 min 40 s (1 min 31 s to spare)',
      '✗ budget warmup=1.00 s: not measured: no <engine> & "x" (fails closed; pass --allow-unmeasured to accept)',
    ]);
  });

  it('emitReport: an exit code the run already has (a phase that broke) is the one returned and the one in the document', async () => {
    const proc = fakeProc();
    const out = new Output(proc, { json: true, quiet: false, color: false, debug: false });
    expect(await emitReport(out, sampleReport(), process.cwd(), { budgets: { 'gpu-load': 100 }, exitCode: 3 })).toBe(3);
    expect(JSON.parse(proc.out()).exitCode).toBe(3);
  });

  it('markdown escapes pipes and lists budgets', () => {
    const r = sampleReport();
    r.budgets = [{ phase: 'total', limit: 5, measured: 9.75, status: 'exceeded', over: 4.75, message: 'x' }];
    const md = renderMarkdown(r);
    expect(md).toContain('a\\|b');
    expect(md).toContain('| total | 5.00 s | 9.75 s | ❌ exceeded by 4.75 s |');
  });

  it('junit: one testcase per budgeted phase; failures and skips counted; XML-escaped', () => {
    const r = sampleReport();
    r.budgets = [
      { phase: 'gpu-load', limit: 8, measured: 9.5, status: 'exceeded', over: 1.5, message: 'gpu-load took 9.50 s > 8 s & "more"' },
      { phase: 'total', limit: 20, measured: 9.75, status: 'ok', over: -10.25, message: 'ok' },
      { phase: 'warmup', limit: 1, measured: null, status: 'unmeasured', over: null, message: 'not measured' },
    ];
    const x = renderJUnit(r);
    // An unmeasured budget fails closed (a failure, not a skip) unless --allow-unmeasured accepted it.
    expect(x).toMatch(/<testsuite name="coldstart.profile" tests="3" failures="2" errors="0" skipped="0"/);
    expect((x.match(/<testcase /g) ?? []).length).toBe(3);
    expect(x).toContain('&amp; &quot;more&quot;');
    expect(x).toMatch(/<failure message="not measured"/);
    r.budgets[2] = { ...r.budgets[2]!, allowed: true } as (typeof r.budgets)[number];
    expect(renderJUnit(r)).toMatch(/tests="3" failures="1" errors="0" skipped="1"/);
  });

  it('junit: a real JUnit parser (junit2json) reads it with the same counts and messages', async () => {
    const { parse } = await import('junit2json');
    const r = sampleReport();
    r.budgets = [
      { phase: 'gpu-load', limit: 8, measured: 9.5, status: 'exceeded', over: 1.5, message: 'gpu-load took 9.50 s > 8 s & <more>' },
      { phase: 'total', limit: 20, measured: 9.75, status: 'ok', over: -10.25, message: 'ok' },
    ];
    const j = (await parse(renderJUnit(r))) as { tests: number; failures: number; testsuite: Array<{ testcase: Array<{ name: string; time: number; failure?: Array<{ message: string }> }> }> };
    expect(j).toMatchObject({ tests: 2, failures: 1 });
    const [gl, total] = j.testsuite[0]!.testcase;
    expect(gl!.failure![0]!.message).toBe('gpu-load took 9.50 s > 8 s & <more>');
    expect(gl!.time).toBe(9.5);
    expect(total!.failure).toBeUndefined();
  });

  it('github annotations escape newlines and percent signs', () => {
    const r = sampleReport();
    r.budgets = [{ phase: 'total', limit: 1, measured: 2, status: 'exceeded', over: 1, message: '100%\nover' }];
    expect(githubAnnotations(r.budgets)).toEqual(['::error title=coldstart budget total::100%25%0Aover']);
  });
});

describe('Output', () => {
  it('--json error: one JSON document on stdout and one line on stderr, no stack', () => {
    const proc = fakeProc();
    const out = new Output(proc, { json: true, quiet: false, color: false, debug: false });
    out.error(new ColdstartError('CORRUPT_FILE', 'a.bin: truncated', { hint: 'Re-download it.' }));
    expect(JSON.parse(proc.out())).toEqual({ schema: 'coldstart/error@1', error: { code: 'CORRUPT_FILE', message: 'a.bin: truncated', hint: 'Re-download it.', exitCode: 2 } });
    expect(proc.err()).toBe('coldstart: error: a.bin: truncated\n  Re-download it.\n');
  });
  it('refuses to write a second JSON document', () => {
    const out = new Output(fakeProc(), { json: true, quiet: false, color: false, debug: false });
    out.writeJson({ a: 1 });
    expect(() => out.writeJson({ b: 2 })).toThrow(/second JSON document/);
  });
  it('honours NO_COLOR, --no-color and non-TTY; --quiet silences info and warnings', () => {
    const tty = { ...fakeProc(), stdout: { write: () => true, isTTY: true } };
    expect(new Output(tty, { json: false, quiet: false, color: true, debug: false }).style.red('x')).toBe('\u001b[31mx\u001b[39m');
    expect(new Output({ ...tty, env: { NO_COLOR: '1' } }, { json: false, quiet: false, color: true, debug: false }).style.red('x')).toBe('x');
    expect(new Output(tty, { json: false, quiet: false, color: false, debug: false }).style.red('x')).toBe('x');
    const p = fakeProc();
    const q = new Output(p, { json: false, quiet: true, color: false, debug: false });
    q.info('hint');
    q.warn('careful');
    q.print('result');
    expect(p.out()).toBe('result\n');
    expect(p.err()).toBe('');
  });
  it('never shows a spinner without a TTY or in CI', async () => {
    const p = fakeProc({ CI: 'true' });
    const s = await new Output({ ...p, stderr: { write: () => true, isTTY: true } }, { json: false, quiet: false, color: false, debug: false }).spinner('x');
    s.update('y');
    s.succeed();
    expect(p.err()).toBe('');
  });
});

describe('errors', () => {
  it('map system errors to exit codes with hints', async () => {
    const { fromSystemError } = await import('../../src/core/errors.js');
    const mk = (code: string) => Object.assign(new Error(code), { code });
    expect(fromSystemError(mk('ENOENT'), '/x').exitCode).toBe(2);
    expect(fromSystemError(mk('EACCES'), '/x').code).toBe('PERMISSION');
    expect(fromSystemError(mk('EACCES'), '/x').exitCode).toBe(3);
    expect(fromSystemError(mk('ENOSPC'), '/x').message).toBe('/x: no space left on device');
    expect(existsSync('/definitely/not/here')).toBe(false);
  });
});
