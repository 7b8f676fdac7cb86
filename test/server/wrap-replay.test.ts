/**
 * The real-log corpus (fixtures/server-logs): every log's split by coldstart's rules, fed at the log's own times,
 * compared per phase with the split that the log's own timestamps give (test/fixtures-servers/log-time.mjs + the
 * .expect anchors — computed without coldstart's rules); and one log per engine replayed behind a loopback server
 * with its own inter-line timing (compressed), read by wrap mode exactly as a live server would be.
 *
 * Allowed error per phase (in the log's seconds): 5 % of the true value, plus two ticks of the log's clock
 * (vLLM and SGLang print whole seconds, so a stage's true length is only known to ±1 s at each end), plus, for a
 * replay, its own timing noise converted back to log seconds: see `allowance` (bench/wrap/table.mjs replays them all).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { readdirSync, existsSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { runWrapped } from '../../src/server/wrap.js';
import { stagesFromLog, phaseSeconds, type LogLine } from '../../src/server/stages.js';
import { isColdstartError } from '../../src/core/errors.js';
// @ts-expect-error plain ESM helper without types
import { expectedSplit, timedLines } from '../fixtures-servers/log-time.mjs';

const ROOT = fileURLToPath(new URL('../../fixtures/server-logs/', import.meta.url));
const REPLAY = fileURLToPath(new URL('../fixtures-servers/replay-server.mjs', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'cs-replay-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

type Expected = { phases: Record<string, number>; unexplained: number; total: number; tick: number; meta: Record<string, string> };
const logs = readdirSync(ROOT).flatMap((e) => readdirSync(join(ROOT, e)).filter((f) => f.endsWith('.log')).map((f) => join(ROOT, e, f)));
const name = (p: string) => p.slice(ROOT.length);

let port = 19300 + (process.pid % 400);
const POLL_MS = 10;

/** Measured seconds per compared phase (groups like compile+warmup summed), in the log's seconds. */
export function measuredPhases(lines: LogLine[], readyAt: number, scale: number): { phases: Record<string, number>; unexplained: number; stages: string[] } {
  const first = lines[0]?.t ?? 0;
  const shifted = lines.map((l) => ({ ...l, t: l.t - first }));
  const { stages } = stagesFromLog(shifted, readyAt - first, [], scale);
  const ps = phaseSeconds(stages);
  const explained = Object.values(ps).reduce((a, b) => a + b, 0);
  const phases = Object.fromEntries(Object.entries(ps).map(([k, v]) => [k, v / scale]));
  return { phases, unexplained: (readyAt - first - explained) / scale, stages: stages.map((s) => s.stage) };
}

export function compare(exp: Expected, got: { phases: Record<string, number>; unexplained: number }, noiseLogSeconds: number) {
  const groups = Object.keys(exp.phases);
  const keys = new Set(['download', 'gpu-load', 'compile', 'warmup']);
  const rows: Array<{ phase: string; truth: number; measured: number; err: number; allowed: number }> = [];
  // A phase has two ends, each of which may be off by one tick of the log's clock and by the replay noise.
  const allowance = (truth: number) => 0.05 * truth + 2 * exp.tick + 2 * noiseLogSeconds;
  for (const g of groups) {
    const parts = g.split('+');
    parts.forEach((p) => keys.delete(p));
    const m = parts.reduce((a, p) => a + (got.phases[p] ?? 0), 0);
    rows.push({ phase: g, truth: exp.phases[g]!, measured: m, err: Math.abs(m - exp.phases[g]!), allowed: allowance(exp.phases[g]!) });
  }
  for (const k of keys) rows.push({ phase: k, truth: 0, measured: got.phases[k] ?? 0, err: Math.abs(got.phases[k] ?? 0), allowed: allowance(0) });
  rows.push({ phase: 'unexplained', truth: exp.unexplained, measured: got.unexplained, err: Math.abs(got.unexplained - exp.unexplained), allowed: allowance(exp.unexplained) });
  return rows;
}

async function replay(log: string, exp: Expected) {
  const wall = Math.min(1, Math.max(0.5, exp.total * 0.01));
  const scale = wall / Math.max(exp.total, 1);
  const p = port++;
  const r = await runWrapped({
    command: [process.execPath, REPLAY, log, String(p), String(scale)],
    readyUrl: `http://127.0.0.1:${p}/health`,
    completionUrl: false,
    readyPollMs: POLL_MS,
    readyTimeoutSeconds: wall + 60,
    stopTimeoutSeconds: 2,
    reportedScale: scale,
    keepLines: true,
    env: process.env,
    cwd: tmp,
  });
  return { r, scale };
}

describe('real start-up logs replayed behind a loopback server', () => {
  const ready = logs.filter((l) => existsSync(l.replace(/\.log$/, '.expect')) && !(expectedSplit(l) as Expected).meta.stuck);
  it('the corpus has at least 3 logs per engine, each with its .source', () => {
    for (const e of ['vllm', 'sglang', 'tgi', 'llama.cpp']) expect(logs.filter((l) => name(l).startsWith(`${e}/`)).length).toBeGreaterThanOrEqual(3);
    for (const l of logs) {
      const src = readFileSync(l.replace(/\.log$/, '.source'), 'utf8');
      expect(src).toMatch(/^engine: /m);
      expect(src).toMatch(/^source: /m);
      expect(src).toMatch(/^trimmed: /m);
    }
  });

  // The rules against the log's own clock, line by line at its own times: no wall clock, so the 5 % holds exactly
  // on any machine. (The live replay of every log, its noise measured, is bench/wrap/table.mjs.)
  for (const log of ready) {
    it(`${name(log)}: every phase (unexplained included) within 5 % of the log's own timestamps`, () => {
      const exp = expectedSplit(log) as Expected;
      const lines = (timedLines(readFileSync(log, 'utf8')) as Array<{ line: string; t: number }>).map((l) => ({ t: l.t, stream: 'stderr' as const, text: l.line }));
      const got = measuredPhases(lines, lines.at(-1)!.t, 1);
      const rows = compare(exp, got, 0);
      const bad = rows.filter((x) => x.err > x.allowed);
      expect(bad, `${name(log)}: ${JSON.stringify(rows.map((x) => ({ ...x, truth: +x.truth.toFixed(2), measured: +x.measured.toFixed(2), allowed: +x.allowed.toFixed(2) })))}`).toEqual([]);
      const required = (exp.meta.require ?? '').split(';').map((x) => x.trim()).filter(Boolean);
      for (const st of required) expect(got.stages, `${name(log)}: stage "${st}"`).toContain(st);
    });
  }

  // Live, behind a loopback server, read by wrap mode as a real server would be: one log per engine. What is
  // checked is what wrap mode does (the engine, the stages, ready after the last line, nothing left running);
  // how close its wall-clock split comes is the bench's (bench/wrap/table.mjs, BENCHMARKS.md).
  const onePerEngine = [...new Map(ready.map((l) => [name(l).split('/')[0], l])).values()];
  for (const log of onePerEngine) {
    it(`${name(log)} replayed live: the engine, its stages, ready after the last line, nothing left running`, async () => {
      const exp = expectedSplit(log) as Expected;
      const { r, scale } = await replay(log, exp);
      expect(r.engine).toBe(name(log).split('/')[0]);
      const lastLine = r.lines!.at(-1)!.t;
      expect(r.readySeconds).toBeGreaterThanOrEqual(lastLine);
      const got = measuredPhases(r.lines!, lastLine, scale);
      const required = (exp.meta.require ?? '').split(';').map((x) => x.trim()).filter(Boolean);
      for (const st of required) expect(got.stages, `${name(log)}: stage "${st}"`).toContain(st);
      expect(r.stop.survivors).toEqual([]);
    });
  }

  it('a stuck start (TGI shard never ready) times out with its last lines, and its open stage says what bounded it', async () => {
    const log = logs.find((l) => name(l).startsWith('tgi/0.x-stuck'))!;
    const exp = expectedSplit(log) as Expected;
    expect(exp.meta.stuck).toBeTruthy();
    const p = port++;
    const scale = 0.5 / exp.total;
    // The log plays in 0.5 s; the deadline leaves a loaded 2-core machine time to start the server at all.
    const err = await runWrapped({ command: [process.execPath, REPLAY, log, String(p), String(scale), '--never-ready'], readyUrl: `http://127.0.0.1:${p}/health`, completionUrl: false, readyTimeoutSeconds: 6, stopTimeoutSeconds: 2, env: process.env, cwd: tmp }).catch((e: unknown) => e);
    expect(isColdstartError(err) && err.code).toBe('TIMEOUT');
    expect((err as { hint?: string }).hint).toMatch(/Waiting for shard 0 to be ready/);
    const lines = (timedLines(readFileSync(log, 'utf8')) as Array<{ line: string; t: number }>).map((l) => ({ t: l.t, stream: 'stderr' as const, text: l.line }));
    const { engine, stages } = stagesFromLog(lines, exp.total);
    expect(engine).toBe('tgi');
    expect(stages.map((s) => s.stage)).toContain('shard start (weight loading) (no end line, bounded by ready)');
  });
});
