import { afterEach, describe, expect, it } from 'vitest';
import { runWarmup } from '../../src/warmup/warmup.js';
import { parseServerUrl } from '../../src/server/http.js';
import { runCli } from '../helpers/cli.js';
import { failureOf, freePort, startBlackHole, startFake, type FakeServer } from '../helpers/fake-servers.js';

const env = { PATH: process.env.PATH };
const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});
async function fake(...a: Parameters<typeof startFake>): Promise<FakeServer> {
  const s = await startFake(...a);
  open.push(s);
  return s;
}

describe('warmup --url: API detection and measurement', () => {
  it('OpenAI-compatible: detects /v1/models, streams /v1/completions, measures TTFT inside the first request', async () => {
    const s = await fake({ api: 'openai', firstTokenMs: 60, tokenMs: 10 });
    const r = await runWarmup({ url: s.url, runs: 3, env, timeoutSeconds: 10 });
    expect(r.backend).toBe('http');
    expect(r.details.api).toBe('openai');
    expect(r.details.model).toBe('tiny');
    expect(r.details.endpoint).toBe('/v1/completions');
    expect(r.details.streaming).toBe(true);
    const names = r.steps.map((st) => st.name);
    expect(names).toEqual(['time-to-ready', 'first-request', 'ttft']);
    const ttft = r.steps.find((st) => st.name === 'ttft')!.seconds;
    expect(ttft).toBeGreaterThanOrEqual(0.05);
    expect(ttft).toBeLessThan(r.firstSeconds); // 3 more tokens at 10 ms follow the first
    expect(r.steady?.n).toBe(3);
    expect((r.details.steadyTtft as { n: number }).n).toBe(3);
    const posts = s.bodies as Array<{ model: string; stream: boolean; max_tokens: number }>;
    expect(posts).toHaveLength(4);
    expect(posts[0]).toMatchObject({ model: 'tiny', stream: true, max_tokens: 8 });
  });

  it('chat-only OpenAI servers (404 on /v1/completions) fall back to /v1/chat/completions and skip the role-only chunk for TTFT', async () => {
    const s = await fake({ api: 'openai-chat', firstTokenMs: 50 });
    const r = await runWarmup({ url: `${s.url}/v1`, runs: 1, env, timeoutSeconds: 10 });
    expect(r.details.endpoint).toBe('/v1/chat/completions');
    expect(r.steps.find((st) => st.name === 'ttft')!.seconds).toBeGreaterThanOrEqual(0.045);
    expect(s.log).toContain('POST /v1/completions');
  });

  it('503 while loading: waits with backoff, reports time-to-ready', async () => {
    const s = await fake({ api: 'openai', loadingMs: 700 });
    const r = await runWarmup({ url: s.url, runs: 1, env, timeoutSeconds: 10 });
    const ready = r.steps[0]!;
    expect(ready.name).toBe('time-to-ready');
    expect(ready.seconds).toBeGreaterThanOrEqual(0.6);
    expect(r.details.statesSeen).toContain('loading');
    expect(s.log.filter((l) => l === 'GET /v1/models').length).toBeGreaterThan(2);
  });

  it('TGI: /info + /health, streams /generate_stream', async () => {
    const s = await fake({ api: 'tgi', firstTokenMs: 30 });
    const r = await runWarmup({ url: s.url, runs: 2, env, timeoutSeconds: 10 });
    expect(r.details.api).toBe('tgi');
    expect(r.details.model).toBe('fake/tiny');
    expect(r.details.endpoint).toBe('/generate_stream');
    expect(typeof r.details.firstTtftSeconds).toBe('number');
    expect(s.bodies[0]).toEqual({ inputs: 'Hello', parameters: { max_new_tokens: 8 } });
  });

  it('Ollama: /api/tags then NDJSON /api/generate; the slow first request (model load) shows as first vs steady', async () => {
    const s = await fake({ api: 'ollama', firstInferMs: 300, models: ['qwen:0.5b'] });
    const r = await runWarmup({ url: s.url, runs: 3, env, timeoutSeconds: 10 });
    expect(r.details.api).toBe('ollama');
    expect(r.details.model).toBe('qwen:0.5b');
    expect(r.firstSeconds).toBeGreaterThanOrEqual(0.29);
    expect(r.steady!.max).toBeLessThan(0.25);
    expect(s.bodies[0]).toMatchObject({ model: 'qwen:0.5b', stream: true, options: { num_predict: 8 } });
  });

  it('Triton (empty 200 on /v2/health/ready): lists the repository, builds inputs from model metadata, --shape sets -1 dims', async () => {
    const s = await fake({ api: 'triton', models: ['resnet'] });
    const r = await runWarmup({ url: s.url, runs: 1, env, timeoutSeconds: 10, shapes: { input_ids: [2, 5] } });
    expect(r.details.api).toBe('kserve');
    expect(r.details.model).toBe('resnet');
    expect(r.details.endpoint).toBe('/v2/models/resnet/infer');
    const body = s.bodies.find((b) => (b as { inputs?: unknown }).inputs) as { inputs: Array<{ name: string; shape: number[]; datatype: string; data: unknown[] }> };
    expect(body.inputs[0]).toMatchObject({ name: 'input_ids', shape: [2, 5], datatype: 'INT64' });
    expect(body.inputs[0]!.data).toHaveLength(10);
    expect(body.inputs[1]).toMatchObject({ name: 'pixel', shape: [1, 3], datatype: 'FP32' });
  });

  it('KServe v2 without a listing needs the model name, and an unknown name is refused (exit 2)', async () => {
    const s = await fake({ api: 'kserve', models: ['m1'] });
    const noName = await failureOf(runWarmup({ url: s.url, env, timeoutSeconds: 5 }));
    expect(noName).toMatchObject({ code: 'USAGE', exit: 2 });
    expect(noName.message).toContain('name the model');
    const bad = await failureOf(runWarmup({ url: s.url, model: 'm2', env, timeoutSeconds: 5 }));
    expect(bad).toMatchObject({ code: 'NOT_FOUND', exit: 2 });
    const ok = await runWarmup({ url: s.url, model: 'm1', runs: 0, env, timeoutSeconds: 5 });
    expect(ok.details.model).toBe('m1');
    expect(ok.steady).toBeUndefined();
  });
});

describe('warmup --url: failures are one clear line with the right exit code, never a hang', () => {
  it('nothing listening: exit 3 NETWORK at once without --wait', async () => {
    const port = await freePort();
    const t = Date.now();
    const f = await failureOf(runWarmup({ url: `http://127.0.0.1:${port}`, env, timeoutSeconds: 30 }));
    expect(f).toMatchObject({ code: 'NETWORK', exit: 3 });
    expect(f.message).toContain('connection refused');
    expect(Date.now() - t).toBeLessThan(5000);
  });

  it('--wait: waits through refused connections until the server comes up', async () => {
    const port = await freePort();
    const later = new Promise<FakeServer>((resolve) => setTimeout(() => void fake({ api: 'openai' }, port).then(resolve), 600));
    const r = await runWarmup({ url: `http://127.0.0.1:${port}`, wait: true, runs: 1, env, timeoutSeconds: 15 });
    await later;
    expect(r.steps[0]!.seconds).toBeGreaterThanOrEqual(0.5);
    expect(r.details.statesSeen).toContain('refused');
  });

  it('--wait with a server that never becomes ready: TIMEOUT (exit 3) at the deadline, naming the last state', async () => {
    const s = await fake({ api: 'openai', loadingMs: 60_000 });
    const t = Date.now();
    const f = await failureOf(runWarmup({ url: s.url, wait: true, env, timeoutSeconds: 1.2 }));
    expect(f).toMatchObject({ code: 'TIMEOUT', exit: 3 });
    expect(f.message).toMatch(/not ready after 1\.2 s .*503/);
    expect(Date.now() - t).toBeLessThan(4000);
  });

  it('a server that accepts and never answers: TIMEOUT, not a hang', async () => {
    const s = await startBlackHole();
    open.push(s);
    const t = Date.now();
    const f = await failureOf(runWarmup({ url: s.url, env, timeoutSeconds: 1 }));
    expect(f.code).toBe('TIMEOUT');
    expect(Date.now() - t).toBeLessThan(4000);
  });

  it('an HTML page is not an inference API: BAD_RESPONSE (exit 3) quoting what came back', async () => {
    const s = await fake({ api: 'html' });
    const f = await failureOf(runWarmup({ url: s.url, env, timeoutSeconds: 10 }));
    expect(f).toMatchObject({ code: 'BAD_RESPONSE', exit: 3 });
    expect(f.message).toContain('It works!');
  });

  it('404 everywhere: UNSUPPORTED (exit 2) listing what was tried', async () => {
    const s = await fake({ api: 'nothing' });
    const f = await failureOf(runWarmup({ url: s.url, env, timeoutSeconds: 10 }));
    expect(f).toMatchObject({ code: 'UNSUPPORTED', exit: 2 });
    expect(f.message).toContain('/v1/models answered 404');
    expect(f.message).toContain('/api/tags answered 404');
  });

  it('500 on the model listing: BAD_RESPONSE (exit 3) quoting the server error, not "unsupported"', async () => {
    const s = await fake({ api: 'broken' });
    const f = await failureOf(runWarmup({ url: s.url, env, timeoutSeconds: 10 }));
    expect(f).toMatchObject({ code: 'BAD_RESPONSE', exit: 3 });
    expect(f.message).toContain('GET /v1/models answered 500 "CUDA error: an illegal memory access was encountered"');
  });

  it('500 on inference: BAD_RESPONSE with the server message', async () => {
    const s = await fake({ api: 'openai', inferStatus: 500 });
    const f = await failureOf(runWarmup({ url: s.url, env, timeoutSeconds: 10 }));
    expect(f).toMatchObject({ code: 'BAD_RESPONSE', exit: 3 });
    expect(f.message).toContain('boom 500');
  });

  it('garbage in the stream: BAD_RESPONSE', async () => {
    const s = await fake({ api: 'openai', streamGarbage: ['data: <<<not json>>>', ''] });
    const f = await failureOf(runWarmup({ url: s.url, env, timeoutSeconds: 10 }));
    expect(f.code).toBe('BAD_RESPONSE');
    expect(f.message).toContain('non-JSON event');
  });

  it('non-JSON body from TGI /generate: BAD_RESPONSE', async () => {
    const s = await fake({ api: 'tgi', inferGarbage: 'oops' });
    const f = await failureOf(runWarmup({ url: s.url, api: 'tgi', env, timeoutSeconds: 10 }));
    expect(f.code).toBe('BAD_RESPONSE');
  });

  it('a model the server does not serve: NOT_FOUND (exit 2) listing the served ones', async () => {
    const s = await fake({ api: 'openai', models: ['a', 'b'] });
    const f = await failureOf(runWarmup({ url: s.url, model: 'c', env, timeoutSeconds: 10 }));
    expect(f).toMatchObject({ code: 'NOT_FOUND', exit: 2 });
    expect(f.message).toContain('a, b');
  });

  it('credentials: 401 → PERMISSION with a --header hint; with the header it works', async () => {
    const s = await fake({ api: 'openai', token: 'sekrit' });
    const f = await failureOf(runWarmup({ url: s.url, env, timeoutSeconds: 10 }));
    expect(f.code).toBe('PERMISSION');
    const r = await runWarmup({ url: s.url, runs: 0, env, timeoutSeconds: 10, headers: { Authorization: 'Bearer sekrit' } });
    expect(r.details.api).toBe('openai');
  });

  it('rejects non-http URLs as a usage error', () => {
    // An engine's option (library callers pass `url`); the warmup command checks its --url first (httpUrlFlag).
    for (const bad of ['ftp://x', 'not a url']) expect(() => parseServerUrl(bad)).toThrow(expect.objectContaining({ code: 'BAD_FLAG', details: { option: 'url' } }));
    expect(parseServerUrl('http://h:1/v1/').toString()).toBe('http://h:1/');
  });
});

describe('coldstart warmup --url (CLI)', () => {
  it('--json: one coldstart/warmup@1 document; budgets gate (exit 1 when exceeded)', async () => {
    const s = await fake({ api: 'openai', firstInferMs: 150 });
    const r = await runCli(['--json', 'warmup', '--url', s.url, '--runs', '2', '--budget', 'warmup=50ms']);
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout);
    expect(doc.schema).toBe('coldstart/warmup@1');
    expect(doc.phases[0].name).toBe('warmup');
    expect(doc.phases[0].steps.map((x: { name: string }) => x.name)).toEqual(['time-to-ready', 'first-request', 'ttft']);
    expect(doc.details.backend).toBe('http');
    expect(doc.details.steady.n).toBe(2);
    expect(doc.budgets[0]).toMatchObject({ phase: 'warmup', status: 'exceeded' });
    expect(r.stderr).toContain('budget exceeded: warmup');
  });

  it('--wait as a start-up gate: exit 0 when warm, 3 on timeout', async () => {
    const s = await fake({ api: 'ollama', loadingMs: 400 });
    const ok = await runCli(['warmup', '--url', s.url, '--wait', '--timeout', '10s', '--runs', '1']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('ollama API');
    const port = await freePort();
    const to = await runCli(['warmup', '--url', `http://127.0.0.1:${port}`, '--wait', '--timeout', '700ms']);
    expect(to.code).toBe(3);
    const errLines = to.stderr.split('\n').filter((l) => l.startsWith('coldstart: error:'));
    expect(errLines).toHaveLength(1);
    expect(errLines[0]).toMatch(/not ready after 0\.7 s \(last: .*connection refused/);
  });

  it('usage errors exit 2: --wait without --url, bad --api, bad --timeout', async () => {
    expect((await runCli(['warmup', 'x.onnx', '--wait'])).code).toBe(2);
    expect((await runCli(['warmup', '--url', 'http://127.0.0.1:9', '--api', 'grpc'])).code).toBe(2);
    expect((await runCli(['warmup', '--url', 'http://127.0.0.1:9', '--timeout', 'soon'])).code).toBe(2);
    expect((await runCli(['warmup'])).code).toBe(2);
  });

  it('what to warm up first, then a bad flag value, then flags that do not go together', async () => {
    expect((await runCli(['warmup', '--runs', 'x'])).stderr).toContain('nothing to warm up');
    const bad = await runCli(['warmup', 'x.onnx', '--wait', '--runs', 'x']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.split('\n')[0]).toBe('coldstart: error: --runs: expected a whole number from 0 to 100000, got "x"');
    const mode = await runCli(['warmup', '--url', 'http://127.0.0.1:9', '--mode', 'fastest']);
    expect(mode.code).toBe(2);
    expect(mode.stderr.split('\n')[0]).toMatch(/^coldstart: error: --mode: /);
    // With every value good, the combination is what is wrong.
    const combo = await runCli(['warmup', 'x.onnx', '--wait', '--runs', '3']);
    expect(combo.code).toBe(2);
    expect(combo.stderr).toContain('--wait is for --url');
  });
});
