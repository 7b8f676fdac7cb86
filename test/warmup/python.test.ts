import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runWarmup } from '../../src/warmup/warmup.js';
import { peerPython, runPython } from '../helpers/python.js';
import { failureOf, freePort } from '../helpers/fake-servers.js';
import { runCli } from '../helpers/cli.js';

const py = peerPython();
const serverScript = fileURLToPath(new URL('./openai_server.py', import.meta.url));

let tmp: string;
let gpt2: string;
let ts: string;
let pt2: string;
let env: Record<string, string | undefined>;


describe.skipIf(!py)('Python peers: --framework and a real OpenAI-compatible server', () => {
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'coldstart-warmup-py-'));
    gpt2 = join(tmp, 'tiny-gpt2');
    ts = join(tmp, 'mlp.torchscript.pt');
    pt2 = join(tmp, 'mlp.pt2');
    // Real producers: transformers' save_pretrained, torch.jit.trace(...).save, torch.export.save.
    runPython(
      py!,
      `
import sys, torch
from transformers import GPT2Config, GPT2LMHeadModel
torch.manual_seed(0)
cfg = GPT2Config(vocab_size=256, n_positions=128, n_embd=32, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0)
GPT2LMHeadModel(cfg).save_pretrained(sys.argv[1])
mlp = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).eval()
torch.jit.trace(mlp, torch.randn(1, 64)).save(sys.argv[2])
torch.export.save(torch.export.export(mlp, (torch.randn(2, 64),)), sys.argv[3])
`,
      [gpt2, ts, pt2],
    );
    env = { PATH: process.env.PATH, HOME: tmp, COLDSTART_PYTHON: py! };
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('--framework transformers: import, load and first generate timed separately; steady runs', async () => {
    const r = await runWarmup({ model: gpt2, framework: 'transformers', runs: 2, maxTokens: 4, env, timeoutSeconds: 120 });
    expect(r.backend).toBe('framework');
    expect(r.steps.map((s) => s.name)).toEqual(['import', 'load', 'first-forward']);
    for (const s of r.steps) expect(s.seconds).toBeGreaterThan(0);
    expect(r.details).toMatchObject({ class: 'GPT2LMHeadModel', device: 'cpu', step: 'generate 4 tokens', inputShape: [1, 16] });
    expect(r.details.parameters).toBeGreaterThan(10_000);
    expect(r.steady?.n).toBe(2);
    expect(r.details.startupSeconds).toBeCloseTo(r.steps.reduce((a, s) => a + s.seconds, 0), 9);
  });

  it('--framework torch: TorchScript needs --shape; a torch.export program brings its example inputs', async () => {
    const noShape = await failureOf(runWarmup({ model: ts, framework: 'torch', env, timeoutSeconds: 120 }));
    expect(noShape).toMatchObject({ code: 'BAD_FLAG', exit: 2 });
    expect(noShape.message).toContain('--shape');
    const a = await runWarmup({ model: ts, framework: 'torch', runs: 1, shapes: { x: [3, 64] }, env, timeoutSeconds: 120 });
    expect(a.details).toMatchObject({ step: 'forward (TorchScript)', inputShapes: [[3, 64]] });
    const b = await runWarmup({ model: pt2, framework: 'torch', runs: 1, env, timeoutSeconds: 120 });
    expect(b.details).toMatchObject({ step: 'forward (torch.export program)', inputShapes: [[2, 64]] });
  });

  it('clear refusals: no Python, no torch, not a model dir, corrupt weights, timeout', async () => {
    const none = await failureOf(runWarmup({ model: gpt2, framework: 'transformers', env: { ...env, COLDSTART_PYTHON: join(tmp, 'no-such-python') } }));
    expect(none).toMatchObject({ code: 'MISSING_DEPENDENCY', exit: 3 });
    expect(none.message).toContain('no Python interpreter found');

    // The same interpreter without site-packages (-S): torch cannot be imported.
    const bare = join(tmp, 'bare-python');
    writeFileSync(bare, `#!/bin/sh\nexec ${JSON.stringify(py)} -S "$@"\n`);
    chmodSync(bare, 0o755);
    const noTorch = await failureOf(runWarmup({ model: gpt2, framework: 'transformers', env: { ...env, COLDSTART_PYTHON: bare }, timeoutSeconds: 60 }));
    expect(noTorch).toMatchObject({ code: 'MISSING_DEPENDENCY', exit: 3 });
    expect(noTorch.message).toMatch(/cannot import torch/);

    const plain = join(tmp, 'plain-dir');
    mkdirSync(plain);
    expect(await failureOf(runWarmup({ model: plain, framework: 'transformers', env }))).toMatchObject({ code: 'BAD_INPUT', exit: 2 });

    const broken = join(tmp, 'broken');
    mkdirSync(broken);
    copyFileSync(join(gpt2, 'config.json'), join(broken, 'config.json'));
    writeFileSync(join(broken, 'model.safetensors'), Buffer.alloc(64, 0x41));
    const bad = await failureOf(runWarmup({ model: broken, framework: 'transformers', env, timeoutSeconds: 120 }));
    expect(bad).toMatchObject({ code: 'BAD_INPUT', exit: 2 });
    expect(bad.message).toMatch(/transformers could not load or run it: \w+/);

    const slow = await failureOf(runWarmup({ model: gpt2, framework: 'transformers', env, timeoutSeconds: 0.3 }));
    expect(slow).toMatchObject({ code: 'TIMEOUT', exit: 3 });
  });

  describe('a real FastAPI/uvicorn server that loads a tiny transformers model and generates', () => {
    let server: ChildProcess | undefined;
    let url: string;
    let serverLog = '';
    beforeAll(async () => {
      const port = await freePort();
      url = `http://127.0.0.1:${port}`;
      // 1.5 s of simulated download before the real from_pretrained: the gate sees refused → 503 → ready.
      server = spawn(py!, [serverScript, gpt2, String(port), '1.5'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HF_HUB_OFFLINE: '1' } });
      server.stdout!.on('data', (d) => (serverLog += String(d)));
      server.stderr!.on('data', (d) => (serverLog += String(d)));
    });
    afterAll(async () => {
      if (server && server.exitCode === null) {
        const gone = new Promise((r) => server!.once('exit', r));
        server.kill('SIGTERM');
        await gone;
      }
    });

    it('coldstart warmup --url --wait: detects OpenAI API, waits through start-up, first request, TTFT, steady', async () => {
      const r = await runCli(['--json', 'warmup', '--url', url, '--wait', '--timeout', '300s', '--runs', '3', '--max-tokens', '6'], { env });
      expect(r.code, `${r.stderr}\n${serverLog}`).toBe(0);
      const doc = JSON.parse(r.stdout);
      const d = doc.details;
      expect(d.backend).toBe('http');
      expect(d.details).toMatchObject({ api: 'openai', model: 'tiny-gpt2', endpoint: '/v1/completions', streaming: true });
      expect(d.details.statesSeen.some((s: string) => s === 'loading' || s === 'refused')).toBe(true);
      const steps = Object.fromEntries(d.steps.map((s: { name: string; seconds: number }) => [s.name, s.seconds]));
      expect(steps['time-to-ready']).toBeGreaterThanOrEqual(1.4);
      expect(steps.ttft).toBeGreaterThan(0);
      expect(steps.ttft).toBeLessThanOrEqual(steps['first-request']);
      expect(d.steady.n).toBe(3);
      expect(d.details.steadyTtft.n).toBe(3);
      expect(serverLog).toContain('loaded GPT2LMHeadModel');
    }, 420_000);
  });
});
