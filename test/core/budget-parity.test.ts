/**
 * The budget parity table (issue #23): every command that takes --budget gives the same verdict, in the same words,
 * with the same exit code, for the same state of what it measured — one evaluator (src/core/budgets.ts):
 *
 *   measured             → met (✓, exit 0) or exceeded (✗, exit 1); 0 s is measured (nothing to download);
 *   not measured         → fails closed (✗ "not measured: <why>", exit 1), accepted by --allow-unmeasured (?, exit 0);
 *   left out by choice   → outside the total: a total budget is judged on what ran (exit 0), the phase is listed in
 *                          total.leftOut and never "missing"; a budget on the left-out phase itself fails closed.
 *
 * Each command runs through the CLI, for real, with stand-ins only for what this machine may lack: profile's
 * native CUDA probe (its engines seam), the Hub (a local look-alike), CRIU (test/fixtures-servers/fake-criu.mjs).
 * Every cell is run twice: human output (the verdict line) and --json (the `budgets` array and `exitCode`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { runCli, type CliResult } from '../helpers/cli.js';
import { runProfileWith } from '../profile/helpers.js';
import { startFake, freePort, type FakeServer } from '../helpers/fake-servers.js';
import { servedFile, startHubServer, type HubServer } from '../helpers/hub-server.js';
import { withEngines, type Engines } from '../../src/profile/engines.js';

interface Budget {
  phase: string;
  status: 'ok' | 'exceeded' | 'unmeasured' | 'failed';
  measured: number | null;
  allowed?: boolean;
  message: string;
}
interface Doc {
  exitCode: number;
  budgets: Budget[];
  total?: { seconds: number | null; complete?: boolean; missing?: string[]; leftOut?: string[] };
  details?: { pid?: number; total?: { runs: number; skippedRuns: number } };
}
type Run = (args: string[]) => Promise<CliResult>;

const tmp = mkdtempSync(join(tmpdir(), 'cs-parity-'));
const env = { COLDSTART_CACHE: join(tmp, 'cache'), HF_HUB_OFFLINE: '1', HF_HOME: join(tmp, 'hf') };
let seq = 0;
const fresh = (name: string) => join(tmp, `${name}-${++seq}`);

/** The one wording of a verdict line, by status (the mark, then the evaluator's message). */
function mark(b: Budget): string {
  return b.status === 'ok' ? '✓' : b.status === 'unmeasured' && b.allowed ? '?' : '✗';
}
function wording(b: Budget): RegExp {
  const k = b.phase;
  if (b.status === 'ok') return new RegExp(`^✓ budget met: ${k} took .+, limit .+ \\(.+ to spare\\)$`);
  if (b.status === 'exceeded') return new RegExp(`^✗ budget exceeded: ${k} took .+, limit .+ \\(\\+.+, \\+[\\d.]+%\\)$`);
  if (b.allowed) return new RegExp(`^\\? budget ${k}=.+: not measured: .+ \\(allowed by --allow-unmeasured\\)$`);
  return new RegExp(`^✗ budget ${k}=.+: not measured: .+ \\(fails closed; pass --allow-unmeasured to accept\\)$`);
}

/**
 * Runs one cell twice — human, then --json — and checks what every command must do alike: the JSON document
 * carries `budgets` and an `exitCode` equal to the process's; the human output ends with one verdict line per
 * budget, the same words as the JSON message; the exit code and statuses are the expected ones.
 */
async function cell(run: Run, args: string[], want: { code: number; statuses: Array<Budget['status']> }): Promise<Doc> {
  const human = await run(args);
  const json = await run([...args, '--json']);
  const doc = JSON.parse(json.stdout) as Doc;
  expect({ human: human.code, json: json.code, doc: doc.exitCode }, human.stderr + json.stderr).toEqual({ human: want.code, json: want.code, doc: want.code });
  expect(doc.budgets.map((b) => b.status)).toEqual(want.statuses);
  // The verdict closes the human output: one line per budget, in the JSON's order and the one wording; a verdict
  // without a measured number is word for word the JSON message.
  const lines = human.stdout.trimEnd().split('\n').slice(-doc.budgets.length);
  expect(lines).toEqual(doc.budgets.map((b) => expect.stringMatching(wording(b))));
  doc.budgets.forEach((b, i) => b.measured === null && expect(lines[i]).toBe(`${mark(b)} ${b.message}`));
  // In --json mode the failing verdicts still reach a human, on stderr.
  for (const b of doc.budgets) if (mark(b) === '✗') expect(json.stderr).toContain(b.message);
  for (const b of doc.budgets) {
    if (b.status === 'ok' || b.status === 'exceeded') expect(b.measured).toEqual(expect.any(Number));
    else expect(b.measured).toBeNull();
  }
  return doc;
}

const MET = { code: 0, statuses: ['ok'] as Budget['status'][] };
const EXCEEDED = { code: 1, statuses: ['exceeded'] as Budget['status'][] };
const UNMEASURED = { code: 1, statuses: ['unmeasured'] as Budget['status'][] };
const ALLOWED = { code: 0, statuses: ['unmeasured'] as Budget['status'][] };
// Longer than anything here, and shorter than anything measured (1 µs).
const HOUR = 'total=1h';
const INSTANT = 'total=0.001ms';

// ---------------------------------------------------------------------------------------------- profile
const probeOk = () => ({
  ok: true as const,
  path: '/fake/coldstart.node',
  addon: {
    abiVersion: 1,
    cudaProbe: async () => ({
      available: true,
      driverVersion: 13000,
      timings: { init: 0.25, enumerate: 0.01, context: 0.12 },
      devices: [{ index: 0, name: 'NVIDIA H100 80GB HBM3', totalMemory: 85e9, pciBusId: '0000:1b:00.0', computeCapability: '9.0', multiprocessors: 132, contextSeconds: 0.12 }],
      nvml: { available: true },
    }),
  },
});
const probeMissing = () => ({ ok: false as const, reason: 'no addon (test)', fixes: ['build it'] });
const profileWith = (native: unknown): Run => {
  const engines = withEngines({ native: native as Engines['native'] });
  return (args) => runProfileWith(engines, args, { env });
};
const measuredProfile = profileWith(probeOk);
const unmeasuredProfile = profileWith(probeMissing);

// ---------------------------------------------------------------------------------------------- the others
const cli: Run = (args) => runCli(args, { env });
const GOOD_PT = resolve(__dirname, '../../fixtures/torch/good/views.pt');
let server: FakeServer;
let hub: HubServer;
const hubEnv = () => ({ HF_ENDPOINT: hub.endpoint, HF_HOME: join(tmp, 'hfhome') });
const cacheRun =
  (cacheDir: string): Run =>
  (args) =>
    runCli(args, { env: { ...hubEnv(), HF_HUB_CACHE: cacheDir } });
const FAKE_CRIU = resolve(__dirname, '../fixtures-servers/fake-criu.mjs');
const COUNTER = resolve(__dirname, '../fixtures-servers/counter.mjs');
const SAME_ANSWER = resolve(__dirname, '../fixtures-servers/openai-ids.mjs');
const criuEnv = { COLDSTART_CRIU: FAKE_CRIU };
const isRoot = process.getuid?.() === 0;
const restoredPids: number[] = [];

async function gone(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  for (let i = 0; i < 400 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 25));
}

/** `coldstart snapshot` of a fresh counter server into a fresh image (each run its own port and image). */
const snapshotRun =
  (warmup: boolean): Run =>
  async (args) => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    return runCli(['snapshot', '-o', fresh('img'), '--ready-url', `${base}/health`, ...(warmup ? ['--warmup', `${base}/count`] : []), ...args, '--', process.execPath, COUNTER, String(port)], { env: criuEnv });
  };
let image = '';
/** `coldstart restore` of the one image; the restored server is stopped after each run (its port and pid free again). */
const restoreRun: Run = async (args) => {
  const docAt = fresh('restore.json');
  const r = await runCli(['restore', image, ...args, '--export-json', docAt], { env: criuEnv });
  if (existsSync(docAt)) await gone((JSON.parse(readFileSync(docAt, 'utf8')) as Doc).details!.pid!);
  return r;
};

let completeReport = '';
let incompleteReport = '';

beforeAll(async () => {
  server = await startFake({ api: 'openai' });
  hub = await startHubServer();
  hub.addRepo('org/parity', [servedFile('config.json', Buffer.from('{"model_type":"llama"}')), servedFile('model.safetensors', randomBytes(200_000))]);
  // The reports report merge folds: one whose total was measured (--only cuda-init, the rest left out), one whose was not.
  completeReport = fresh('complete.json');
  incompleteReport = fresh('incomplete.json');
  expect((await measuredProfile(['--only', 'cuda-init', '--export-json', completeReport])).code).toBe(0);
  expect((await unmeasuredProfile(['--only', 'cuda-init', '--export-json', incompleteReport])).code).toBe(0);
  if (isRoot) {
    // A server whose answer is the same after a restore (the stand-in CRIU starts it anew: a counter's count and pid
    // would differ, and a first answer unlike the snapshot's is a mismatch, exit 1, whatever the budgets say).
    image = fresh('restore-img');
    const port = await freePort();
    const r = await runCli(['snapshot', '-o', image, '--ready-url', `http://127.0.0.1:${port}/health`, '--warmup', `http://127.0.0.1:${port}/v1/completions`, '--', process.execPath, SAME_ANSWER, String(port)], { env: criuEnv });
    expect(r.code, r.stderr).toBe(0);
  }
}, 120_000);

afterAll(async () => {
  for (const p of restoredPids) await gone(p);
  await server?.close();
  await hub?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe('measured: met (exit 0) or exceeded (exit 1), from every command alike', () => {
  it('profile', async () => {
    await cell(measuredProfile, ['--only', 'cuda-init', '--budget', 'cuda-init=1h'], MET);
    await cell(measuredProfile, ['--only', 'cuda-init', '--budget', 'cuda-init=1ms'], EXCEEDED);
  }, 120_000);
  it('convert', async () => {
    await cell((a) => cli(['convert', GOOD_PT, '-o', fresh('x.safetensors'), '--verify', ...a]), ['--budget', HOUR], MET);
    await cell((a) => cli(['convert', GOOD_PT, '-o', fresh('x.safetensors'), '--verify', ...a]), ['--budget', INSTANT], EXCEEDED);
  }, 120_000);
  it('warmup', async () => {
    await cell((a) => cli(['warmup', '--url', server.url, '--runs', '1', ...a]), ['--budget', 'warmup=1h'], MET);
    await cell((a) => cli(['warmup', '--url', server.url, '--runs', '1', ...a]), ['--budget', 'warmup=0.001ms'], EXCEEDED);
  }, 120_000);
  it('cache: a download, and a download measured as 0 (everything cached already) is measured too', async () => {
    const dir = fresh('hub-cache');
    await cell(async (a) => runCli(['cache', 'org/parity', ...a], { env: { ...hubEnv(), HF_HUB_CACHE: fresh('hub-cache') } }), ['--budget', 'download=1h'], MET);
    await cell(async (a) => runCli(['cache', 'org/parity', ...a], { env: { ...hubEnv(), HF_HUB_CACHE: fresh('hub-cache') } }), ['--budget', 'download=0.001ms'], EXCEEDED);
    expect((await cacheRun(dir)(['cache', 'org/parity'])).code).toBe(0);
    const doc = await cell((a) => cacheRun(dir)(['cache', 'org/parity', ...a]), ['--budget', 'download=1s,total=1s'], { code: 0, statuses: ['ok', 'ok'] });
    expect(doc.budgets[0]!.measured).toBeLessThan(1);
  }, 120_000);
  it('snapshot', async () => {
    await cell(snapshotRun(true), ['--budget', HOUR], MET);
    await cell(snapshotRun(true), ['--budget', INSTANT], EXCEEDED);
  }, 120_000);
  it.skipIf(!isRoot)('restore (root: CRIU restores with the original pids)', async () => {
    await cell(restoreRun, ['--budget', HOUR], MET);
    await cell(restoreRun, ['--budget', INSTANT], EXCEEDED);
  }, 120_000);
  it('report merge (the fleet\'s p90 of the measured totals)', async () => {
    const doc = await cell((a) => cli(['report', 'merge', completeReport, ...a]), ['--budget', HOUR], MET);
    expect(doc.budgets[0]!.message).toMatch(/\(p90 across the fleet: 1 run\(s\) on 1 machine\(s\)\)/);
    await cell((a) => cli(['report', 'merge', completeReport, ...a]), ['--budget', INSTANT], EXCEEDED);
  }, 120_000);
});

describe('not measured: fails closed (exit 1) unless --allow-unmeasured (exit 0), from every command alike', () => {
  const both = async (run: Run, budget: string) => {
    const doc = await cell(run, ['--budget', budget], UNMEASURED);
    expect(doc.budgets[0]!.message).toMatch(/: not measured: .+ \(fails closed; pass --allow-unmeasured to accept\)$/);
    const ok = await cell(run, ['--budget', budget, '--allow-unmeasured'], ALLOWED);
    expect(ok.budgets[0]).toMatchObject({ allowed: true });
  };
  it('profile: a phase that could not be measured, and the total it leaves incomplete', async () => {
    await both((a) => unmeasuredProfile(['--only', 'cuda-init', ...a]), 'cuda-init=1h');
    const doc = await cell((a) => unmeasuredProfile(['--only', 'cuda-init', ...a]), ['--budget', HOUR], UNMEASURED);
    expect(doc.total).toMatchObject({ seconds: null, complete: false, missing: ['cuda-init'] });
  }, 120_000);
  it('convert, warmup, cache, snapshot: a phase the command does not measure', async () => {
    await both((a) => cli(['convert', GOOD_PT, '-o', fresh('x.safetensors'), ...a]), 'gpu-load=1h');
    await both((a) => cli(['warmup', '--url', server.url, '--runs', '1', ...a]), 'gpu-load=1h');
    await both((a) => runCli(['cache', 'org/parity', ...a], { env: { ...hubEnv(), HF_HUB_CACHE: fresh('hub-cache') } }), 'gpu-load=1h');
    await both(snapshotRun(true), 'gpu-load=1h');
  }, 180_000);
  it('cache --dry-run: nothing is downloaded, so nothing meets a budget', async () => {
    const doc = await cell((a) => runCli(['cache', 'org/parity', '--dry-run', ...a], { env: { ...hubEnv(), HF_HUB_CACHE: fresh('hub-cache') } }), ['--budget', 'download=1h'], UNMEASURED);
    expect(doc.budgets[0]!.message).toContain('not measured: left out: --dry-run downloads nothing');
  }, 120_000);
  it.skipIf(!isRoot)('restore: a phase it does not measure', async () => {
    await both(restoreRun, 'gpu-load=1h');
  }, 120_000);
  it('report merge: over incomplete reports the total was not measured (never a 0 s that passes)', async () => {
    await both((a) => cli(['report', 'merge', incompleteReport, ...a]), 'total=1ms');
    const doc = await cell((a) => cli(['report', 'merge', incompleteReport, incompleteReport, ...a]), ['--budget', 'total=1ms'], UNMEASURED);
    expect(doc.total).toMatchObject({ seconds: null, complete: false });
    expect(doc.details!.total).toMatchObject({ runs: 0, skippedRuns: 2 });
  }, 120_000);
});

describe('left out by choice: outside the total, never missing; a total budget is judged on what ran (exit 0)', () => {
  it('profile --only: the other phases are left out', async () => {
    const doc = await cell((a) => measuredProfile(['--only', 'cuda-init', ...a]), ['--budget', HOUR], MET);
    expect(doc.total).toMatchObject({ complete: true, leftOut: expect.arrayContaining(['container', 'download', 'gpu-load', 'warmup']) });
    expect(doc.total!.missing).toBeUndefined();
    // A budget on a phase left out is not met by leaving it out: it fails closed, saying so.
    const on = await cell((a) => measuredProfile(['--only', 'cuda-init', ...a]), ['--budget', 'warmup=1h'], UNMEASURED);
    expect(on.budgets[0]!.message).toContain('not measured: left out: not selected (--only)');
  }, 120_000);
  it('convert without --verify (a --budget total could never pass before)', async () => {
    const doc = await cell((a) => cli(['convert', GOOD_PT, '-o', fresh('x.safetensors'), ...a]), ['--budget', HOUR], MET);
    expect(doc.total).toMatchObject({ complete: true, leftOut: ['verify'] });
  }, 120_000);
  it('snapshot without --warmup: the first request is not part of what is timed', async () => {
    await cell(snapshotRun(false), ['--budget', HOUR], MET);
  }, 120_000);
  it.skipIf(!isRoot)('restore --no-first-request', async () => {
    await cell(restoreRun, ['--no-first-request', '--budget', HOUR], MET);
  }, 120_000);
  it('report merge of reports that left phases out: their totals are measured', async () => {
    const doc = await cell((a) => cli(['report', 'merge', completeReport, completeReport, ...a]), ['--budget', HOUR], MET);
    expect(doc.details!.total).toMatchObject({ runs: 2, skippedRuns: 0 });
  }, 120_000);
});
