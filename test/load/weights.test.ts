/**
 * THE weight-file resolver (src/load/weights.ts, names from src/formats/weights.ts): real producers' folders from
 * fixtures/ (safetensors' save_file with a transformers index, transformers' save_pretrained, torch.save shards
 * with pytorch_model.bin.index.json), the same files laid out as huggingface_hub's cache (blobs + relative
 * symlinks + refs/main), the demo alias, and every case it refuses.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveWeights, weightsAt, describeSkipped } from '../../src/load/weights.js';
import { DUPLICATE_WEIGHT_GLOBS, duplicateWeightGlobs, notWeightsReason, selectWeightNames, weightFormatOf, weightGlobs } from '../../src/formats/weights.js';
import type { ColdstartError } from '../../src/core/errors.js';

const fx = (p: string) => fileURLToPath(new URL(`../../fixtures/${p}`, import.meta.url));
const sharded = fx('gpuload/sharded');
const stShards = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'].map((n) => join(sharded, n));
const binSharded = fx('torch/models/tiny-gpt2-sharded');
const binShards = [1, 2, 3].map((i) => join(binSharded, `pytorch_model-0000${i}-of-00003.bin`));
const tinyLlama = fx('cache/tiny-llama');

const tmp = mkdtempSync(join(tmpdir(), 'cs-weights-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A folder under tmp holding copies of fixture files (name → source) and small files (name → text). */
function folder(name: string, files: Record<string, string | { text: string }>): string {
  const d = join(tmp, name);
  mkdirSync(d, { recursive: true });
  for (const [n, src] of Object.entries(files)) {
    if (typeof src === 'string') copyFileSync(src, join(d, n));
    else writeFileSync(join(d, n), src.text);
  }
  return d;
}

function refused(f: () => unknown): { code: string; exit: number; message: string } {
  try {
    f();
  } catch (e) {
    const c = e as ColdstartError;
    return { code: c.code, exit: c.exitCode, message: c.message };
  }
  throw new Error('expected a refusal');
}
async function refusedAsync(p: Promise<unknown>): Promise<{ code: string; exit: number; message: string }> {
  return p.then(
    () => {
      throw new Error('expected a refusal');
    },
    (e: ColdstartError) => ({ code: e.code, exit: e.exitCode, message: e.message }),
  );
}

/** huggingface_hub's cache for one repo: blobs by sha256, snapshots/<commit>/NAME → ../../blobs/<sha> (relative), refs/main. */
function hfCache(root: string, repo: string, srcDir: string, commit = 'c'.repeat(40)): string {
  const storage = join(root, `models--${repo.replace('/', '--')}`);
  const snap = join(storage, 'snapshots', commit);
  mkdirSync(join(storage, 'blobs'), { recursive: true });
  mkdirSync(snap, { recursive: true });
  mkdirSync(join(storage, 'refs'), { recursive: true });
  for (const n of readdirSync(srcDir)) {
    const bytes = readFileSync(join(srcDir, n));
    const sha = createHash('sha256').update(bytes).digest('hex');
    writeFileSync(join(storage, 'blobs', sha), bytes);
    symlinkSync(join('..', '..', 'blobs', sha), join(snap, n));
  }
  writeFileSync(join(storage, 'refs', 'main'), commit);
  return snap;
}

describe('real producers\' folders', () => {
  it('safetensors shards with a transformers index (save_file + index): the index names the files, sorted', () => {
    const w = weightsAt(sharded);
    expect(w).toMatchObject({ files: stShards, format: 'safetensors', dir: sharded, index: join(sharded, 'model.safetensors.index.json'), source: 'path', skipped: [] });
    expect(w.bytes).toBe(stShards.reduce((a, f) => a + readFileSync(f).length, 0));
    // The index itself, named: the same shards.
    expect(weightsAt(join(sharded, 'model.safetensors.index.json')).files).toEqual(stShards);
    // One shard, named: itself.
    expect(weightsAt(stShards[0]!)).toMatchObject({ files: [stShards[0]], dir: null, index: null });
  });

  it('torch.save shards with pytorch_model.bin.index.json: the index is followed for .bin too', () => {
    expect(weightsAt(binSharded)).toMatchObject({ files: binShards, format: 'bin', index: join(binSharded, 'pytorch_model.bin.index.json') });
    expect(weightsAt(fx('torch/models/tiny-gpt2'))).toMatchObject({ files: [join(fx('torch/models/tiny-gpt2'), 'pytorch_model.bin')], format: 'bin', index: null });
  });

  it("transformers' save_pretrained (one model.safetensors beside config.json and generation_config.json)", () => {
    expect(weightsAt(tinyLlama)).toMatchObject({ files: [join(tinyLlama, 'model.safetensors')], format: 'safetensors', index: null, skipped: [] });
  });

  it("the same files in huggingface_hub's cache layout, by repo id and by alias, at a revision", async () => {
    const hub = join(tmp, 'hub');
    const snap = hfCache(hub, 'org/tiny-llama', tinyLlama);
    const r = await resolveWeights('org/tiny-llama', { env: { HF_HUB_CACHE: hub } });
    expect(r).toMatchObject({ files: [join(snap, 'model.safetensors')], format: 'safetensors', source: 'hf-cache', dir: snap });
    expect(r.bytes).toBe(readFileSync(join(tinyLlama, 'model.safetensors')).length);
    // Sharded .bin through the symlinks: the index's shard names resolve inside the snapshot.
    const snap2 = hfCache(hub, 'org/gpt2-sharded', binSharded);
    expect((await resolveWeights('org/gpt2-sharded', { env: { HF_HUB_CACHE: hub } })).files).toEqual(binShards.map((f) => join(snap2, f.slice(f.lastIndexOf('/') + 1))));
    // An alias resolves to its Hub repo in the cache.
    const snap3 = hfCache(hub, 'TinyLlama/TinyLlama-1.1B-Chat-v1.0', tinyLlama);
    expect((await resolveWeights('tinyllama-1.1b', { env: { HF_HUB_CACHE: hub } })).dir).toBe(snap3);
    // Not cached (or not at that revision): NOT_FOUND naming the way to get it.
    const miss = await refusedAsync(resolveWeights('org/absent', { env: { HF_HUB_CACHE: hub } }));
    expect(miss).toMatchObject({ code: 'NOT_FOUND', exit: 2 });
    expect((await refusedAsync(resolveWeights('org/tiny-llama', { env: { HF_HUB_CACHE: hub }, revision: 'v9' }))).code).toBe('NOT_FOUND');
    expect((await refusedAsync(resolveWeights('not a path or a repo', { env: { HF_HUB_CACHE: hub } }))).code).toBe('NOT_FOUND');
  });
});

describe('one folder, several candidates: which are the weights, and what is skipped and why', () => {
  it('safetensors over .bin over GGUF; trainer state is never weights', () => {
    const d = folder('mixed', {
      'model.safetensors': join(tinyLlama, 'model.safetensors'),
      'pytorch_model.bin': join(fx('torch/models/tiny-gpt2'), 'pytorch_model.bin'),
      'training_args.bin': { text: 'x' },
      'model.gguf': { text: 'x' },
      'config.json': { text: '{}' },
    });
    const w = weightsAt(d);
    expect(w.files).toEqual([join(d, 'model.safetensors')]);
    expect(Object.fromEntries(w.skipped.map((s) => [s.path.slice(d.length + 1), s.reason]))).toEqual({
      'training_args.bin': expect.stringMatching(/trainer state/),
      'pytorch_model.bin': expect.stringMatching(/safetensors weights are here too/),
      'model.gguf': expect.stringMatching(/safetensors weights are here too/),
    });
    expect(describeSkipped(w)).toContain('skipped pytorch_model.bin, model.gguf (safetensors weights are here too');
    // Read as .bin when the caller reads only that: trainer state still left out.
    expect(weightsAt(d, { formats: ['bin'] }).files).toEqual([join(d, 'pytorch_model.bin')]);
  });

  it('an index narrows its format: a file it does not name (consolidated.safetensors) is skipped', () => {
    const d = folder('index-plus', {
      'model.safetensors.index.json': join(sharded, 'model.safetensors.index.json'),
      'model-00001-of-00002.safetensors': stShards[0]!,
      'model-00002-of-00002.safetensors': stShards[1]!,
      'consolidated.safetensors': stShards[0]!,
    });
    const w = weightsAt(d);
    expect(w.files).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'].map((n) => join(d, n)));
    expect(w.skipped).toEqual([{ path: join(d, 'consolidated.safetensors'), reason: 'not named by model.safetensors.index.json' }]);
  });

  it('without an index: transformers-named files (model*) win over others of the format, else every file of it', () => {
    const d = folder('noindex', { 'weights.safetensors': stShards[0]! });
    expect(weightsAt(d).files).toEqual([join(d, 'weights.safetensors')]);
    copyFileSync(stShards[0]!, join(d, 'model.safetensors'));
    expect(weightsAt(d)).toMatchObject({ files: [join(d, 'model.safetensors')], skipped: [{ path: join(d, 'weights.safetensors') }] });
    const g = folder('gguf-only', { 'a.Q4.gguf': { text: 'x' }, 'a.Q8.gguf': { text: 'y' }, 'README.md': { text: '#' } });
    expect(weightsAt(g)).toMatchObject({ format: 'gguf', files: [join(g, 'a.Q4.gguf'), join(g, 'a.Q8.gguf')] });
    const o = folder('onnx-only', { 'model.onnx': { text: 'x' }, 'model.onnx_data': { text: 'y' } });
    expect(weightsAt(o)).toMatchObject({ format: 'onnx', files: [join(o, 'model.onnx'), join(o, 'model.onnx_data')] });
  });

  it("a Hub repo's file list goes through the same rule on names (profile's download) and its globs fetch exactly that format", () => {
    const sel = selectWeightNames(['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin', 'consolidated.safetensors'], ['safetensors', 'bin']);
    expect(sel).toMatchObject({ format: 'safetensors', index: 'model.safetensors.index.json', names: ['consolidated.safetensors', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'] });
    expect(weightGlobs(sel)).toEqual(['*.safetensors', '*.json', 'tokenizer*', '*.model', '*.txt']);
    expect(weightGlobs(selectWeightNames(['pytorch_model.bin', 'config.json']))).toEqual(['*.bin', '*.json', 'tokenizer*', '*.model', '*.txt']);
    expect(weightGlobs(selectWeightNames(['model.pt']))).toEqual(['*.pt', '*.json', 'tokenizer*', '*.model', '*.txt']);
    // The download's default excludes are this module's list (cache/layout re-exports it).
    expect(duplicateWeightGlobs(['model.safetensors', 'pytorch_model.bin'])).toBe(DUPLICATE_WEIGHT_GLOBS);
    expect(weightFormatOf('x/y.onnx.data')).toBe('onnx');
    expect(weightFormatOf('tokenizer.json')).toBeNull();
    for (const n of ['training_args.bin', 'optimizer.pt', 'scheduler.pt', 'rng_state_0.pth', 'scaler.pt']) expect(notWeightsReason(n), n).not.toBeNull();
    for (const n of ['pytorch_model.bin', 'optimizers_are_fun.bin', 'model.safetensors']) expect(notWeightsReason(n), n).toBeNull();
  });
});

describe('refusals (exit 2, never a guess)', () => {
  it('missing paths, empty folders, files that are not weights, formats the caller does not read', () => {
    expect(refused(() => weightsAt(join(tmp, 'nope')))).toMatchObject({ code: 'NOT_FOUND', exit: 2 });
    const empty = folder('empty', { 'README.md': { text: '#' } });
    expect(refused(() => weightsAt(empty))).toMatchObject({ code: 'NOT_FOUND', exit: 2 });
    expect(refused(() => weightsAt(fx('gpuload/make_fixtures.py')))).toMatchObject({ code: 'BAD_INPUT', exit: 2 });
    // The safetensors loader given .bin weights: the format is named, and where they are refused says so.
    expect(refused(() => weightsAt(join(fx('torch/models/tiny-gpt2'), 'pytorch_model.bin'), { formats: ['safetensors'] }))).toMatchObject({ code: 'UNSUPPORTED', exit: 2 });
    expect(refused(() => weightsAt(fx('torch/models/tiny-gpt2'), { formats: ['safetensors'] }))).toMatchObject({ code: 'NOT_FOUND', exit: 2 });
  });

  it('indexes: a shard outside the folder (HOSTILE_FILE), bad JSON or no weight_map (CORRUPT_FILE), a missing shard, two indexes', () => {
    const d = folder('hostile', {});
    writeFileSync(join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: '../../etc/passwd.safetensors' } }));
    expect(refused(() => weightsAt(d))).toMatchObject({ code: 'HOSTILE_FILE', exit: 2 });
    writeFileSync(join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: '/etc/passwd' } }));
    expect(refused(() => weightsAt(d)).code).toBe('HOSTILE_FILE');
    for (const bad of ['{"weight_map": 3}', '{', '{"weight_map": {}}', '{"weight_map": {"a": 7}}']) {
      writeFileSync(join(d, 'model.safetensors.index.json'), bad);
      expect(refused(() => weightsAt(d)), bad).toMatchObject({ code: 'CORRUPT_FILE', exit: 2 });
    }
    writeFileSync(join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 'gone.safetensors' } }));
    expect(refused(() => weightsAt(d))).toMatchObject({ code: 'NOT_FOUND', exit: 2, message: expect.stringContaining('gone.safetensors') });
    const two = folder('two-indexes', { 'a.safetensors.index.json': join(sharded, 'model.safetensors.index.json'), 'b.safetensors.index.json': join(sharded, 'model.safetensors.index.json') });
    expect(refused(() => weightsAt(two))).toMatchObject({ code: 'AMBIGUOUS', exit: 2 });
    // transformers' own name wins over another index.
    copyFileSync(join(sharded, 'model.safetensors.index.json'), join(two, 'model.safetensors.index.json'));
    for (const f of stShards) copyFileSync(f, join(two, f.slice(f.lastIndexOf('/') + 1)));
    expect(weightsAt(two).index).toBe(join(two, 'model.safetensors.index.json'));
  });

  it('a FIFO or device is refused unopened: as a shard an index names, as a folder\'s only weights, as the target', () => {
    const d = folder('fifo', { 'a.safetensors': stShards[0]! });
    execFileSync('mkfifo', [join(d, 'b.safetensors')]);
    writeFileSync(join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 'a.safetensors', b: 'b.safetensors' } }));
    expect(refused(() => weightsAt(d))).toMatchObject({ code: 'BAD_INPUT', message: expect.stringContaining('not a regular file') });
    const only = folder('fifo-only', {});
    execFileSync('mkfifo', [join(only, 'pytorch_model.bin')]);
    expect(refused(() => weightsAt(only))).toMatchObject({ code: 'BAD_INPUT', message: expect.stringContaining('not a regular file') });
    expect(refused(() => weightsAt(join(only, 'pytorch_model.bin')))).toMatchObject({ code: 'BAD_INPUT', exit: 2 });
    expect(refused(() => weightsAt('/dev/null'))).toMatchObject({ code: 'BAD_INPUT', exit: 2 });
    // A folder named like weights is not weights: skipped, said so.
    const dirNamed = folder('dir-named', { 'model.safetensors': stShards[0]! });
    mkdirSync(join(dirNamed, 'extra.safetensors'));
    expect(weightsAt(dirNamed)).toMatchObject({ files: [join(dirNamed, 'model.safetensors')], skipped: [{ path: join(dirNamed, 'extra.safetensors'), reason: 'a folder, not a file' }] });
  });
});

describe('the built-in demo and names that are paths', () => {
  it('`demo` resolves to its synthetic checkpoint (written first when absent, like profile); never written when asked not to', async () => {
    const env = { COLDSTART_CACHE: join(tmp, 'cs-cache') };
    expect(await refusedAsync(resolveWeights('demo', { env, cwd: tmp, writeSynthetic: false }))).toMatchObject({ code: 'NOT_FOUND', exit: 2 });
    const w = await resolveWeights('demo', { env, cwd: tmp });
    expect(w).toMatchObject({ source: 'synthetic', format: 'safetensors', files: [join(env.COLDSTART_CACHE, 'synthetic', 'demo-bf16-safetensors', 'model.safetensors')] });
    expect((await resolveWeights('demo', { env, cwd: tmp, writeSynthetic: false })).files).toEqual(w.files);
  });

  it('anything at the path is the target: a folder named like an alias or a repo id is read as a folder', async () => {
    const d = folder('cwd/demo', { 'model.safetensors': stShards[0]! });
    expect(await resolveWeights('demo', { env: {}, cwd: join(tmp, 'cwd') })).toMatchObject({ source: 'path', files: [join(d, 'model.safetensors')] });
    const o = folder('cwd/org/name', { 'model.safetensors': stShards[1]! });
    expect(await resolveWeights('org/name', { env: {}, cwd: join(tmp, 'cwd') })).toMatchObject({ source: 'path', dir: o });
    // A dangling link at the path is refused naming it, not taken for a repo id.
    symlinkSync(join(tmp, 'nowhere'), join(tmp, 'cwd', 'org', 'dangling'));
    expect((await refusedAsync(resolveWeights('org/dangling', { env: {}, cwd: join(tmp, 'cwd') }))).code).toBe('NOT_FOUND');
  });
});
