/**
 * Shape-accurate synthetic checkpoints: every tensor name, shape and dtype of a model's real architecture
 * (src/models/table.ts `tensorsFor`), random bytes, sharded like `save_pretrained` (5 GB shards with an index),
 * in safetensors or the torch zip `.bin` format, plus a transformers config.json. Written streaming (memory
 * bounded by the chunk size, even for 70B shapes) into a temporary directory that is renamed into place only
 * when every shard is complete, so a cache directory never holds a half-written model.
 */
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, statfsSync, writeFileSync, writeSync, fsyncSync } from 'node:fs';
import { randomFill } from 'node:crypto';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ColdstartError, fromSystemError } from '../core/errors.js';
import { formatBytes } from '../core/format.js';
import { makeDirs } from '../core/paths.js';
import { tempPathFor, trackTemp, untrackTemp } from '../core/atomic.js';
import { buildHeader } from '../formats/safetensors.js';
import { writeTorchCheckpoint } from '../formats/torch-writer.js';
import { DTYPE_SIZES, TORCH_DTYPE_NAMES, type Dtype } from '../formats/dtypes.js';
import { selectWeightNames } from '../formats/weights.js';
import { tensorsFor, type ModelSpec, type TensorSpec } from './table.js';
import { Stopwatch } from '../core/clock.js';

const fillRandom = promisify(randomFill) as unknown as (buf: Buffer) => Promise<Buffer>;

export type SyntheticFormat = 'safetensors' | 'bin';
export const SYNTHETIC_FORMATS: readonly SyntheticFormat[] = ['safetensors', 'bin'];

/** `save_pretrained`'s default max_shard_size ("5GB", decimal). */
export const DEFAULT_SHARD_BYTES = 5e9;

export interface ShardPlan {
  file: string;
  tensors: TensorSpec[];
  bytes: number;
}

export interface SyntheticPlan {
  spec: ModelSpec;
  format: SyntheticFormat;
  dtype: Dtype;
  shards: ShardPlan[];
  /** Tensor bytes (the files add small headers on top). */
  bytes: number;
  parameters: number;
}

function tensorBytes(t: TensorSpec): number {
  return t.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZES[t.dtype];
}

/** A transformers-compatible config.json for the architecture (written next to a synthetic checkpoint). */
export function hfConfig(spec: ModelSpec, dtype: Dtype = spec.dtype): Record<string, unknown> {
  const a = spec.architecture;
  const arch = a.family === 'qwen2' ? 'Qwen2ForCausalLM' : a.family === 'mistral' ? 'MistralForCausalLM' : 'LlamaForCausalLM';
  return {
    architectures: [arch],
    model_type: a.family,
    hidden_size: a.hiddenSize,
    intermediate_size: a.intermediateSize,
    num_hidden_layers: a.layers,
    num_attention_heads: a.heads,
    num_key_value_heads: a.kvHeads,
    vocab_size: a.vocabSize,
    max_position_embeddings: 4096,
    rms_norm_eps: 1e-5,
    hidden_act: 'silu',
    tie_word_embeddings: a.tieWordEmbeddings,
    ...(a.family === 'llama' ? { attention_bias: false, rope_theta: 500000.0 } : {}),
    torch_dtype: TORCH_DTYPE_NAMES[dtype],
    _coldstart_synthetic: spec.alias,
  };
}

/** Splits the tensors into shards in order, like transformers' `shard_checkpoint`. */
export function planSynthetic(spec: ModelSpec, format: SyntheticFormat, dtype: Dtype = spec.dtype, shardBytes = DEFAULT_SHARD_BYTES): SyntheticPlan {
  const tensors = tensorsFor(spec, dtype);
  const groups: TensorSpec[][] = [[]];
  let cur = 0;
  for (const t of tensors) {
    const b = tensorBytes(t);
    if (cur > 0 && cur + b > shardBytes) {
      groups.push([]);
      cur = 0;
    }
    groups[groups.length - 1]!.push(t);
    cur += b;
  }
  const n = groups.length;
  const stem = format === 'safetensors' ? 'model' : 'pytorch_model';
  const ext = format === 'safetensors' ? 'safetensors' : 'bin';
  const pad = (i: number) => String(i).padStart(5, '0');
  const shards = groups.map((g, i) => ({
    file: n === 1 ? `${stem}.${ext}` : `${stem}-${pad(i + 1)}-of-${pad(n)}.${ext}`,
    tensors: g,
    bytes: g.reduce((a, t) => a + tensorBytes(t), 0),
  }));
  const bytes = shards.reduce((a, s) => a + s.bytes, 0);
  return { spec, format, dtype, shards, bytes, parameters: tensors.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0) };
}

/** coldstart's own cache root: $COLDSTART_CACHE, else $XDG_CACHE_HOME/coldstart, else ~/.cache/coldstart. */
export function coldstartCacheDir(env: Record<string, string | undefined>): string {
  if (env.COLDSTART_CACHE) return env.COLDSTART_CACHE;
  return join(env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache'), 'coldstart');
}

export function syntheticDir(cacheRoot: string, plan: Pick<SyntheticPlan, 'spec' | 'format' | 'dtype'>): string {
  return join(cacheRoot, 'synthetic', `${plan.spec.alias}-${plan.dtype.toLowerCase()}-${plan.format}`);
}

export interface SyntheticModel {
  dir: string;
  files: string[];
  bytes: number;
  parameters: number;
  format: SyntheticFormat;
  dtype: Dtype;
  /** True when this call wrote it; false when it was already in the cache. */
  created: boolean;
  seconds: number;
}

export interface EnsureOptions {
  chunkBytes?: number;
  shardBytes?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

async function writeSafetensorsShard(path: string, shard: ShardPlan, chunkBytes: number, onBytes: (n: number) => void, signal?: AbortSignal): Promise<void> {
  const { bytes: header, dataSize } = buildHeader(shard.tensors, { format: 'pt' });
  const fd = openSync(path, 'wx', 0o644);
  try {
    let pos = 0;
    const put = (b: Buffer) => {
      let o = 0;
      while (o < b.length) o += writeSync(fd, b, o, b.length - o, pos + o);
      pos += b.length;
    };
    put(header);
    const buf = Buffer.allocUnsafe(chunkBytes);
    for (let done = 0; done < dataSize; ) {
      signal?.throwIfAborted();
      const n = Math.min(chunkBytes, dataSize - done);
      const chunk = buf.subarray(0, n);
      await fillRandom(chunk);
      put(chunk);
      done += n;
      onBytes(n);
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

async function writeBinShard(path: string, shard: ShardPlan, chunkBytes: number, onBytes: (n: number) => void, signal?: AbortSignal): Promise<void> {
  const fd = openSync(path, 'wx', 0o644);
  try {
    const archiveName = path.replace(/^.*\//, '').replace(/\.bin$/, '').replace(/[^\w.-]/g, '_');
    await writeTorchCheckpoint(fd, shard.tensors, async (_i, chunk) => void (await fillRandom(chunk)), { chunkBytes, signal, onBytes, archiveName });
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The weight files of a finished synthetic model directory, by the one rule on weight names (formats/weights.ts). */
function weightFiles(dir: string, format: SyntheticFormat): string[] {
  return selectWeightNames(readdirSync(dir), [format]).names.map((n) => join(dir, n));
}

/**
 * Returns the synthetic model for `spec` from the cache, writing it first when absent (atomically: a temp
 * directory renamed into place). Refuses up front when the filesystem lacks the space.
 */
export async function ensureSyntheticModel(spec: ModelSpec, format: SyntheticFormat, cacheRoot: string, dtype: Dtype = spec.dtype, opts: EnsureOptions = {}): Promise<SyntheticModel> {
  const plan = planSynthetic(spec, format, dtype, opts.shardBytes);
  const dir = syntheticDir(cacheRoot, plan);
  const sw = new Stopwatch();
  const seconds = () => sw.elapsed();
  if (existsSync(join(dir, 'config.json'))) {
    return { dir, files: weightFiles(dir, format), bytes: plan.bytes, parameters: plan.parameters, format, dtype, created: false, seconds: seconds() };
  }
  const parent = join(cacheRoot, 'synthetic');
  try {
    makeDirs(parent);
  } catch (e) {
    throw fromSystemError(e, parent, 'create');
  }
  try {
    const fs = statfsSync(parent);
    const free = fs.bavail * fs.bsize;
    if (free < plan.bytes * 1.01 + (64 << 20)) {
      throw new ColdstartError('DISK_FULL', `${parent}: a synthetic ${spec.alias} needs ${formatBytes(plan.bytes)} but only ${formatBytes(free)} is free`, {
        hint: 'Free some space or point COLDSTART_CACHE at a larger volume.',
      });
    }
  } catch (e) {
    if (e instanceof ColdstartError) throw e;
  }
  const tmp = tempPathFor(dir);
  trackTemp(tmp);
  try {
    mkdirSync(tmp);
    const chunk = opts.chunkBytes ?? 16 << 20;
    let done = 0;
    const onBytes = (n: number) => {
      done += n;
      opts.onProgress?.(done, plan.bytes);
    };
    for (const shard of plan.shards) {
      const p = join(tmp, shard.file);
      if (format === 'safetensors') await writeSafetensorsShard(p, shard, chunk, onBytes, opts.signal);
      else await writeBinShard(p, shard, chunk, onBytes, opts.signal);
    }
    if (plan.shards.length > 1) {
      const weightMap: Record<string, string> = {};
      for (const s of plan.shards) for (const t of s.tensors) weightMap[t.name] = s.file;
      const index = format === 'safetensors' ? 'model.safetensors.index.json' : 'pytorch_model.bin.index.json';
      writeFileSync(join(tmp, index), `${JSON.stringify({ metadata: { total_size: plan.bytes }, weight_map: weightMap }, null, 2)}\n`);
    }
    // config.json last: its presence marks a complete model.
    writeFileSync(join(tmp, 'config.json'), `${JSON.stringify(hfConfig(spec, dtype), null, 2)}\n`);
    try {
      renameSync(tmp, dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Another process finished the same model first: keep theirs.
      if ((code === 'ENOTEMPTY' || code === 'EEXIST') && existsSync(join(dir, 'config.json'))) rmSync(tmp, { recursive: true, force: true });
      else throw e;
    }
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e instanceof ColdstartError ? e : e instanceof Error && e.name === 'AbortError' ? e : fromSystemError(e, dir, 'write');
  } finally {
    untrackTemp(tmp);
  }
  return { dir, files: weightFiles(dir, format), bytes: plan.bytes, parameters: plan.parameters, format, dtype, created: true, seconds: seconds() };
}
