/**
 * Tensor-parallel sharded loads (issue #29): which slice of each tensor each rank receives, as vLLM shards the
 * common decoder layouts (Llama, Mistral, Qwen2/3, Qwen-MoE, Mixtral, DeepSeek-V2/V3), and the copies that put those
 * slices in place while every byte of the files is read once.
 *
 *   column      split dim 0 (output features): q/k/v, gate/up, MLA's q_b/kv_b, experts' w1/w3 (and their biases)
 *   row         split dim 1 (input features): o_proj, down_proj, experts' w2; a row-parallel bias is replicated
 *   vocab       split dim 0 in vLLM's VocabParallelEmbedding partitions (vocabulary padded to 64): embed, lm_head
 *   replicated  every rank gets all of it: norms, routers, MLA's q_a/kv_a projections, rotary buffers
 * K/V projections with fewer KV heads than ranks are replicated by head (rank r gets head ⌊r·kv/tp⌋), as vLLM does;
 * the KV head count comes from the model's config.json. Fused checkpoints (Phi-3's qkv_proj, gate_up_proj) are cut
 * per part — q, k, v; gate, up — and each rank's parts are packed one after another, as vLLM's
 * QKVParallelLinear and MergedColumnParallelLinear load them. Block-quantised scales (`*.weight_scale_inv`) follow their
 * weight's split. A tensor no rule names, or a split that does not divide, is refused by name (BAD_INPUT, exit 2).
 *
 * Each rank's slices are packed in header order, each on a 256-byte boundary, into one buffer per rank. The copies
 * are per chunk of planChunks' plan: a slice's rows inside one chunk are one strided copy (width, height, pitch: a
 * 2D DMA on a GPU), a row cut by a chunk boundary is two copies. The native engine reads each chunk once and runs
 * its copies to every rank that needs them (`tp` of gpuLoad).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ColdstartError } from '../core/errors.js';
import { readInputText } from '../core/files.js';
import { DTYPE_SIZES } from '../formats/dtypes.js';
import type { SafetensorsHeader, TensorEntry } from '../formats/safetensors.js';

export type ShardKind = 'column' | 'row' | 'vocab' | 'replicated';

/** The config.json fields a split needs (optional: without them, K/V heads must divide by the degree). */
export interface TpModelConfig {
  numKeyValueHeads?: number;
  /** Needed for fused qkv_proj tensors (Phi-3): where q ends and k, v begin. */
  numAttentionHeads?: number;
}

/** Numbers per copy in `TpPlan.ops`: chunk, rank, source (absolute file offset), width, height, source pitch, destination, destination pitch. */
export const TP_OP_STRIDE = 8;
const SLICE_ALIGN = 256;

// Name → kind, first match wins; the module path before these suffixes is free (model.layers.N., language_model., …).
const RULES: Array<[RegExp, ShardKind | 'kv' | 'qkv' | 'gate_up']> = [
  [/(^|\.)qkv_proj\.(weight|bias)$/, 'qkv'],
  [/(^|\.)gate_up_proj\.(weight|bias)$/, 'gate_up'],
  [/(^|\.)(embed_tokens|wte|tok_embeddings)\.weight$/, 'vocab'],
  [/(^|\.)lm_head\.weight$/, 'vocab'],
  [/(^|\.)(k_proj|v_proj)\.(weight|bias|weight_scale_inv)$/, 'kv'],
  [/(^|\.)(q_proj|q_b_proj|kv_b_proj|gate_proj|up_proj|w1|w3)\.(weight|bias|weight_scale_inv)$/, 'column'],
  [/(^|\.)(o_proj|down_proj|w2)\.(weight|weight_scale_inv)$/, 'row'],
  [/(^|\.)(o_proj|down_proj|w2)\.bias$/, 'replicated'],
  [/(^|\.)(q_a_proj|kv_a_proj_with_mqa)\.(weight|bias|weight_scale_inv)$/, 'replicated'],
  [/(^|\.)(mlp\.gate|block_sparse_moe\.gate|shared_expert_gate)\.(weight|bias|e_score_correction_bias)$/, 'replicated'],
  [/(norm|layernorm|ln_\d|ln_f)[^.]*\.(weight|bias)$/, 'replicated'],
  [/(^|\.)(inv_freq|rotary_emb\.[^.]+)$/, 'replicated'],
];

/** The rule for a tensor name, or null when none applies. */
export function shardKind(name: string): ShardKind | 'kv' | 'qkv' | 'gate_up' | null {
  for (const [re, kind] of RULES) if (re.test(name)) return kind;
  return null;
}

/** One rank's part of one tensor: rows [from, to) of dim 0, or columns [from, to) of dim 1, or all of it. */
export interface TensorShard {
  name: string;
  kind: ShardKind;
  dim: 0 | 1 | null;
  from: number;
  to: number;
  /** The slice's shape, and where its bytes start in the rank's buffer. */
  shape: number[];
  offset: number;
  bytes: number;
  /** A fused tensor (qkv_proj, gate_up_proj): the row ranges of its parts, packed in this order. */
  parts?: Array<[number, number]>;
}

export interface TpPlan {
  tp: number;
  /** Per rank: its buffer's size and the shards in it (header order). */
  ranks: Array<{ bytes: number; shards: TensorShard[] }>;
  /** Copies, TP_OP_STRIDE numbers each, grouped by chunk in plan order. */
  ops: Float64Array;
  /** Bytes read from the files (each byte once) and bytes delivered to all ranks together. */
  readBytes: number;
  deliveredBytes: number;
}

const bad = (msg: string, hint: string) => new ColdstartError('BAD_INPUT', msg, { hint });
const KV_HINT = 'Use a tensor-parallel degree that is a multiple of the KV heads, or divides them.';

function prod(xs: readonly number[]): number {
  return xs.reduce((a, b) => a * b, 1);
}

/** Rows [from, to) of dim 0 for rank r, by kind. */
function rowRange(t: TensorEntry, kind: ShardKind | 'kv', tp: number, r: number, cfg: TpModelConfig, file: string): [number, number] {
  const d0 = t.shape[0]!;
  if (kind === 'vocab') {
    // vLLM's VocabParallelEmbedding: the vocabulary padded to a multiple of 64, then split evenly.
    const padded = Math.ceil(d0 / 64) * 64;
    if (padded % tp !== 0) throw bad(`${file}: ${t.name}: a vocabulary of ${d0} (padded to ${padded}) does not split over ${tp} ranks`, 'Use a tensor-parallel degree that divides it.');
    const per = padded / tp;
    return [Math.min(d0, r * per), Math.min(d0, (r + 1) * per)];
  }
  const kv = kind === 'kv' ? cfg.numKeyValueHeads : undefined;
  if (kv && (kv < tp || kv % tp !== 0)) {
    // Fewer KV heads than ranks (replicated by head), or a count that does not split (kvHeadRows refuses it).
    if (kv < tp && d0 % kv !== 0) throw bad(`${file}: ${t.name}: ${kv} KV heads do not replicate evenly over ${tp} ranks`, KV_HINT);
    return kvHeadRows(t, kv, d0 / kv, 0, tp, r, file);
  }
  if (d0 % tp !== 0) throw bad(`${file}: ${t.name}: dim 0 (${d0}) does not split over ${tp} ranks`, 'Use a tensor-parallel degree that divides it.');
  const per = d0 / tp;
  return [r * per, (r + 1) * per];
}

/** A fused tensor's row ranges for rank r (its parts in order), or null when the tensor is not fused. */
function fusedRows(t: TensorEntry, kind: ShardKind | 'kv' | 'qkv' | 'gate_up', tp: number, r: number, cfg: TpModelConfig, file: string): Array<[number, number]> | null {
  const d0 = t.shape[0]!;
  if (kind === 'gate_up') {
    const inter = d0 / 2;
    if (d0 % 2 !== 0 || inter % tp !== 0) throw bad(`${file}: ${t.name}: ${d0} rows do not split into gate and up over ${tp} ranks`, 'Use a tensor-parallel degree that divides the intermediate size.');
    const per = inter / tp;
    return [
      [r * per, (r + 1) * per],
      [inter + r * per, inter + (r + 1) * per],
    ];
  }
  if (kind !== 'qkv') return null;
  const h = cfg.numAttentionHeads;
  const kv = cfg.numKeyValueHeads ?? h;
  if (!h || !kv) throw bad(`${file}: ${t.name}: a fused qkv_proj needs num_attention_heads (and num_key_value_heads) from config.json`, 'Put the model\'s config.json beside its weights.');
  const hd = d0 / (h + 2 * kv);
  if (!Number.isInteger(hd) || h % tp !== 0) throw bad(`${file}: ${t.name}: ${d0} rows are not ${h} query + 2 × ${kv} KV heads that split over ${tp} ranks`, 'Check config.json, or use a degree that divides the heads.');
  const q = (h / tp) * hd;
  return [[r * q, (r + 1) * q], kvHeadRows(t, kv, hd, h * hd, tp, r, file), kvHeadRows(t, kv, hd, (h + kv) * hd, tp, r, file)];
}

/**
 * Rank r's rows of `kv` KV heads of `hd` rows each, starting at row `base`, as QKVParallelLinear gives them: split
 * evenly when there are at least as many heads as ranks, else the head ⌊r·kv/tp⌋ replicated.
 */
function kvHeadRows(t: TensorEntry, kv: number, hd: number, base: number, tp: number, r: number, file: string): [number, number] {
  if (kv >= tp) {
    if (kv % tp !== 0) throw bad(`${file}: ${t.name}: ${kv} KV heads do not split over ${tp} ranks`, 'Use a tensor-parallel degree that divides the KV heads.');
    const per = (kv / tp) * hd;
    return [base + r * per, base + (r + 1) * per];
  }
  if (tp % kv !== 0) throw bad(`${file}: ${t.name}: ${kv} KV heads do not replicate evenly over ${tp} ranks`, KV_HINT);
  const head = Math.floor((r * kv) / tp);
  return [base + head * hd, base + (head + 1) * hd];
}

/**
 * The shards and copies of a tensor-parallel load of `headers` over `tp` ranks, for the chunk plan of
 * planChunks(files, chunkBytes) (same files, same order; `chunkBytes` the same).
 */
export function planTp(headers: readonly SafetensorsHeader[], paths: readonly string[], tp: number, chunkBytes: number, cfg: TpModelConfig = {}): TpPlan {
  if (!Number.isSafeInteger(tp) || tp < 1 || tp > 1024) throw bad(`--tp ${tp}: a tensor-parallel degree must be a whole number from 1 to 1024`, 'For example --tp 2.');
  const ranks = Array.from({ length: tp }, () => ({ bytes: 0, shards: [] as TensorShard[] }));
  const ops: number[] = [];
  let delivered = 0;
  let readBytes = 0;
  let chunkBase = 0; // index of the file's first chunk in the plan
  headers.forEach((h, fi) => {
    const file = paths[fi]!;
    const begin = h.dataOffset;
    const end = h.dataOffset + h.dataSize;
    const firstChunk = Math.floor(begin / chunkBytes);
    readBytes += h.dataSize;
    // Copies of one file (TP_OP_STRIDE numbers each, the plan's chunk index first), collected per chunk so that the
    // list comes out grouped by chunk.
    const perChunk = new Map<number, number[]>();
    const push = (k: number, op: number[]) => {
      let a = perChunk.get(k);
      if (!a) perChunk.set(k, (a = []));
      a.push(chunkBase + k - firstChunk, ...op);
    };
    const emit = (rank: number, src: number, width: number, height: number, pitch: number, dst: number, dstPitch: number) => {
      // Split the strided region at chunk boundaries: runs of whole rows inside one chunk are one copy; a row that a
      // boundary cuts becomes one copy per piece.
      let r = 0;
      while (r < height) {
        const rowStart = src + r * pitch;
        const k = Math.floor(rowStart / chunkBytes);
        const chunkEnd = (k + 1) * chunkBytes;
        if (rowStart + width <= chunkEnd) {
          const fit = Math.min(height - r, Math.floor((chunkEnd - width - rowStart) / pitch) + 1);
          push(k, [rank, rowStart, width, fit, pitch, dst + r * dstPitch, dstPitch]);
          r += fit;
          continue;
        }
        for (let x = rowStart; x < rowStart + width; ) {
          const kk = Math.floor(x / chunkBytes);
          const y = Math.min(rowStart + width, (kk + 1) * chunkBytes);
          push(kk, [rank, x, y - x, 1, y - x, dst + r * dstPitch + (x - rowStart), y - x]);
          x = y;
        }
        r++;
      }
    };
    for (const t of h.tensors) {
      const kind = shardKind(t.name);
      if (kind === null) {
        throw bad(`${file}: ${t.name}: no tensor-parallel rule for this tensor`, 'coldstart shards Llama, Mistral, Qwen, Mixtral, Phi-3 and DeepSeek layouts as vLLM does; load other models without --tp.');
      }
      const esize = DTYPE_SIZES[t.dtype];
      const srcBase = begin + t.begin;
      for (let r = 0; r < tp; r++) {
        // The regions of the file this rank receives, packed one after another into its buffer.
        const regions: Array<{ src: number; width: number; height: number; pitch: number }> = [];
        let dim: 0 | 1 | null = null;
        let from = 0;
        let to = 0;
        let shape = [...t.shape];
        const split = tp > 1 && t.shape.length > 0 && kind !== 'replicated' ? (kind === 'row' ? (t.shape.length >= 2 ? 1 : null) : 0) : null;
        const parts = split === 0 ? fusedRows(t, kind, tp, r, cfg, file) : null;
        if (split === 0) {
          const rows = parts ?? [rowRange(t, kind as ShardKind | 'kv', tp, r, cfg, file)];
          dim = 0;
          [from, to] = [rows[0]![0], rows[rows.length - 1]![1]];
          const rowBytes = prod(t.shape.slice(1)) * esize;
          shape = [rows.reduce((a, [x, y]) => a + y - x, 0), ...t.shape.slice(1)];
          for (const [x, y] of rows) regions.push({ src: srcBase + x * rowBytes, width: (y - x) * rowBytes, height: 1, pitch: (y - x) * rowBytes });
        } else if (split === 1) {
          const d1 = t.shape[1]!;
          if (d1 % tp !== 0) throw bad(`${file}: ${t.name}: dim 1 (${d1}) does not split over ${tp} ranks`, 'Use a tensor-parallel degree that divides it.');
          const per = d1 / tp;
          [from, to] = [r * per, (r + 1) * per];
          dim = 1;
          const inner = prod(t.shape.slice(2)) * esize;
          shape = [t.shape[0]!, per, ...t.shape.slice(2)];
          regions.push({ src: srcBase + from * inner, width: per * inner, height: t.shape[0]!, pitch: d1 * inner });
        } else {
          regions.push({ src: srcBase, width: t.end - t.begin, height: 1, pitch: t.end - t.begin });
        }
        const bytes = regions.reduce((a, g) => a + g.width * g.height, 0);
        const rk = ranks[r]!;
        const offset = Math.ceil(rk.bytes / SLICE_ALIGN) * SLICE_ALIGN;
        const shownKind: ShardKind = kind === 'kv' || kind === 'qkv' || kind === 'gate_up' ? 'column' : kind;
        rk.shards.push({ name: t.name, kind: shownKind, dim, from, to, shape, offset, bytes, ...(parts ? { parts } : {}) });
        rk.bytes = offset + bytes;
        delivered += bytes;
        let at = offset;
        for (const g of regions) {
          if (g.width * g.height > 0) emit(r, g.src, g.width, g.height, g.pitch, at, g.width);
          at += g.width * g.height;
        }
      }
    }
    if (end <= begin) return;
    const chunksOfFile = Math.ceil(end / chunkBytes) - firstChunk;
    for (let k = firstChunk; k < firstChunk + chunksOfFile; k++) for (const x of perChunk.get(k) ?? []) ops.push(x);
    chunkBase += chunksOfFile;
  });
  return { tp, ranks, ops: Float64Array.from(ops), readBytes, deliveredBytes: delivered };
}

/** The attention and KV head counts from the config.json beside the weights (or its text_config); {} when none. */
export function readTpConfig(firstFile: string): TpModelConfig {
  const path = join(dirname(firstFile), 'config.json');
  if (!existsSync(path)) return {};
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(readInputText(path, 'model config')) as Record<string, unknown>;
  } catch (e) {
    if (e instanceof ColdstartError) throw e;
    throw bad(`${path}: not valid JSON (${(e as Error).message})`, 'Fix or remove the config.json beside the weights.');
  }
  const text = (j.text_config && typeof j.text_config === 'object' ? j.text_config : {}) as Record<string, unknown>;
  const heads = j.num_attention_heads ?? text.num_attention_heads;
  const kv = j.num_key_value_heads ?? text.num_key_value_heads ?? heads;
  const ok = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 0;
  return { ...(ok(kv) ? { numKeyValueHeads: kv } : {}), ...(ok(heads) ? { numAttentionHeads: heads } : {}) };
}
