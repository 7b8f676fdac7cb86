/**
 * One load_hf (src/python/common.py) for every command: profile's stack (stack.py) and warmup --framework
 * (framework.py) load the same Hugging Face directory the same way — one dtype rule (torch_dtype="auto"), one
 * rule for which model class (a causal LM generates; anything else runs a forward) — and report what they loaded.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { peerPython, runPython } from '../helpers/python.js';
import { runCli } from '../helpers/cli.js';

const py = peerPython();
const bert = fileURLToPath(new URL('../../fixtures/torch/models/tiny-bert', import.meta.url));
let tmp: string;
let gpt2bf16: string;
let env: Record<string, string | undefined>;

const doc = (r: { code: number; stdout: string; stderr: string }): any => {
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
};

describe.skipIf(!py)('one load_hf: profile --framework transformers and warmup --framework transformers', () => {
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'coldstart-load-hf-'));
    gpt2bf16 = join(tmp, 'tiny-gpt2-bf16');
    // A real producer: transformers' save_pretrained of a bf16 model (config.json names dtype bfloat16).
    runPython(
      py!,
      `
import sys, torch
from transformers import GPT2Config, GPT2LMHeadModel
torch.manual_seed(0)
cfg = GPT2Config(vocab_size=256, n_positions=64, n_embd=32, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0)
GPT2LMHeadModel(cfg).to(torch.bfloat16).save_pretrained(sys.argv[1])
`,
      [gpt2bf16],
    );
    env = { HOME: tmp, COLDSTART_PYTHON: py!, COLDSTART_CACHE: join(tmp, 'cache'), HF_HOME: join(tmp, 'hf'), HF_HUB_OFFLINE: '1', OMP_NUM_THREADS: '2' };
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('a bf16 directory is loaded as bf16 by both, through the same call', async () => {
    const stack = doc(await runCli(['profile', gpt2bf16, '--framework', 'transformers', '--no-floor', '--json'], { env })).details.stack;
    expect(stack).toMatchObject({ framework: 'transformers', device: 'cpu', dtype: 'bfloat16', loadCall: "AutoModelForCausalLM.from_pretrained(dir, torch_dtype='auto')" });
    expect(stack.firstForwardSeconds).toBeGreaterThan(0);

    const warm = doc(await runCli(['warmup', gpt2bf16, '--framework', 'transformers', '--runs', '1', '--max-tokens', '2', '--json'], { env })).details;
    expect(warm.details).toMatchObject({ class: 'GPT2LMHeadModel', dtype: 'bfloat16', device: 'cpu', step: 'generate 2 tokens' });
  });

  it('a model that does not generate (no causal architecture): warmup runs a forward, the stack says why it has none', async () => {
    const warm = doc(await runCli(['warmup', bert, '--framework', 'transformers', '--runs', '1', '--json'], { env })).details;
    expect(warm.details).toMatchObject({ class: 'BertModel', dtype: 'float32', step: 'forward' });

    const d = doc(await runCli(['profile', bert, '--framework', 'transformers', '--no-floor', '--json'], { env }));
    expect(d.details.stack).toMatchObject({ dtype: 'float32', loadCall: "AutoModel.from_pretrained(dir, torch_dtype='auto')" });
    const warmup = d.phases.find((p: { name: string }) => p.name === 'warmup');
    expect(warmup).toMatchObject({ status: 'skipped' });
    expect(warmup.reason).toMatch(/BertModel is not a causal LM/);
  });
});
