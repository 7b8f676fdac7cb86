/**
 * Floor mode and wrap mode profile the same folder the same way: both take the weights from the one resolver
 * (src/load/weights.ts). Before it, floor mode loaded every *.safetensors (an index's leftovers and
 * consolidated.safetensors included) and counted training_args.bin as weights only in wrap mode.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../helpers/cli.js';
import { FAKE_VLLM, freePort, tempDir } from './helpers.js';

const tmp = tempDir('cs-parity-');
afterAll(() => tmp.done());
const env = { COLDSTART_CACHE: join(tmp.dir, 'cache'), HF_HUB_OFFLINE: '1', COLDSTART_PROBE_BYTES: String(4 << 20), HF_HOME: join(tmp.dir, 'hf') };
const fx = (p: string) => fileURLToPath(new URL(`../../fixtures/${p}`, import.meta.url));

function folder(name: string, files: Record<string, string>): string {
  const d = join(tmp.dir, name);
  mkdirSync(d, { recursive: true });
  for (const [n, src] of Object.entries(files)) copyFileSync(src, join(d, n));
  writeFileSync(join(d, 'training_args.bin'), 'not weights');
  return d;
}

const cases = {
  // A transformers index beside a file it does not name, and .bin duplicates of the safetensors.
  safetensors: folder('st', {
    'model.safetensors.index.json': fx('gpuload/sharded/model.safetensors.index.json'),
    'model-00001-of-00002.safetensors': fx('gpuload/sharded/model-00001-of-00002.safetensors'),
    'model-00002-of-00002.safetensors': fx('gpuload/sharded/model-00002-of-00002.safetensors'),
    'consolidated.safetensors': fx('gpuload/single.safetensors'),
    'pytorch_model.bin': fx('torch/models/tiny-gpt2/pytorch_model.bin'),
  }),
  // torch.save shards with their index (and the Trainer's training_args.bin beside them).
  bin: folder('bin', {
    'pytorch_model.bin.index.json': fx('torch/models/tiny-gpt2-sharded/pytorch_model.bin.index.json'),
    'pytorch_model-00001-of-00003.bin': fx('torch/models/tiny-gpt2-sharded/pytorch_model-00001-of-00003.bin'),
    'pytorch_model-00002-of-00003.bin': fx('torch/models/tiny-gpt2-sharded/pytorch_model-00002-of-00003.bin'),
    'pytorch_model-00003-of-00003.bin': fx('torch/models/tiny-gpt2-sharded/pytorch_model-00003-of-00003.bin'),
    'config.json': fx('torch/models/tiny-gpt2-sharded/config.json'),
  }),
};
const expected = {
  safetensors: ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'],
  bin: ['pytorch_model-00001-of-00003.bin', 'pytorch_model-00002-of-00003.bin', 'pytorch_model-00003-of-00003.bin'],
};

describe('floor mode and wrap mode: the same folder, the same weights', () => {
  for (const [kind, dir] of Object.entries(cases) as Array<[keyof typeof cases, string]>) {
    it(`${kind}: profile DIR, profile DIR -- SERVER and profile -- SERVER DIR read the same files`, async () => {
      const want = expected[kind].map((n) => join(dir, n));
      const floor = await runCli(['profile', dir, '--only', 'gpu-load', '--json'], { env });
      expect(floor.code, floor.stderr).toBe(0);
      const fdoc = JSON.parse(floor.stdout);
      expect(fdoc.target.files).toEqual(want);
      expect(fdoc.target.format).toBe(kind);
      // What was left out is said, not silent.
      expect(fdoc.details.assumptions.join('\n')).toMatch(/weights: skipped .*training_args\.bin/);
      const wrapArgs = ['--ready-log', 'Application startup complete', '--no-completion', '--json'];
      for (const args of [
        ['profile', dir, ...wrapArgs, '--', process.execPath, FAKE_VLLM, String(await freePort())],
        ['profile', ...wrapArgs, '--', process.execPath, FAKE_VLLM, String(await freePort()), dir],
      ]) {
        const wrap = await runCli(args, { env });
        expect(wrap.code, wrap.stderr).toBe(0);
        const wdoc = JSON.parse(wrap.stdout);
        expect(wdoc.details.floor.weights.files, args.join(' ')).toEqual(want);
      }
    }, 120_000);
  }
});
