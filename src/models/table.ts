/**
 * The shared model table: aliases users type (`coldstart profile llama3-8b`, `coldstart cache llama3-8b`),
 * with the Hub repo id and the architecture dimensions needed to build shape-accurate synthetic checkpoints
 * and estimates. Dimensions are the published config.json values of each repo.
 */
import type { Dtype } from '../formats/dtypes.js';

export interface Architecture {
  family: 'llama' | 'mistral' | 'qwen2';
  hiddenSize: number;
  layers: number;
  heads: number;
  kvHeads: number;
  intermediateSize: number;
  vocabSize: number;
  /** q/k/v projections carry a bias (Qwen2). */
  attentionBias: boolean;
  tieWordEmbeddings: boolean;
}

export interface ModelSpec {
  alias: string;
  repo: string;
  description: string;
  dtype: Dtype;
  architecture: Architecture;
}

const llama3_8b: Architecture = { family: 'llama', hiddenSize: 4096, layers: 32, heads: 32, kvHeads: 8, intermediateSize: 14336, vocabSize: 128256, attentionBias: false, tieWordEmbeddings: false };

export const MODELS: readonly ModelSpec[] = [
  {
    alias: 'demo',
    repo: 'coldstart/demo-llama-tiny',
    description: 'built-in tiny Llama-shaped model (offline, a few MB) so every command has a default',
    dtype: 'BF16',
    architecture: { family: 'llama', hiddenSize: 256, layers: 4, heads: 4, kvHeads: 2, intermediateSize: 688, vocabSize: 4096, attentionBias: false, tieWordEmbeddings: false },
  },
  { alias: 'llama3-8b', repo: 'meta-llama/Meta-Llama-3-8B', description: 'Llama 3 8B', dtype: 'BF16', architecture: llama3_8b },
  {
    alias: 'llama3-70b',
    repo: 'meta-llama/Meta-Llama-3-70B',
    description: 'Llama 3 70B',
    dtype: 'BF16',
    architecture: { family: 'llama', hiddenSize: 8192, layers: 80, heads: 64, kvHeads: 8, intermediateSize: 28672, vocabSize: 128256, attentionBias: false, tieWordEmbeddings: false },
  },
  { alias: 'llama3.1-8b', repo: 'meta-llama/Llama-3.1-8B', description: 'Llama 3.1 8B', dtype: 'BF16', architecture: llama3_8b },
  {
    alias: 'mistral-7b',
    repo: 'mistralai/Mistral-7B-v0.1',
    description: 'Mistral 7B v0.1',
    dtype: 'BF16',
    architecture: { family: 'mistral', hiddenSize: 4096, layers: 32, heads: 32, kvHeads: 8, intermediateSize: 14336, vocabSize: 32000, attentionBias: false, tieWordEmbeddings: false },
  },
  {
    alias: 'qwen2.5-7b',
    repo: 'Qwen/Qwen2.5-7B',
    description: 'Qwen2.5 7B',
    dtype: 'BF16',
    architecture: { family: 'qwen2', hiddenSize: 3584, layers: 28, heads: 28, kvHeads: 4, intermediateSize: 18944, vocabSize: 152064, attentionBias: true, tieWordEmbeddings: false },
  },
  {
    alias: 'qwen2.5-72b',
    repo: 'Qwen/Qwen2.5-72B',
    description: 'Qwen2.5 72B',
    dtype: 'BF16',
    architecture: { family: 'qwen2', hiddenSize: 8192, layers: 80, heads: 64, kvHeads: 8, intermediateSize: 29568, vocabSize: 152064, attentionBias: true, tieWordEmbeddings: false },
  },
  {
    alias: 'tinyllama-1.1b',
    repo: 'TinyLlama/TinyLlama-1.1B-Chat-v1.0',
    description: 'TinyLlama 1.1B chat',
    dtype: 'BF16',
    architecture: { family: 'llama', hiddenSize: 2048, layers: 22, heads: 32, kvHeads: 4, intermediateSize: 5632, vocabSize: 32000, attentionBias: false, tieWordEmbeddings: false },
  },
];

export function findModel(aliasOrRepo: string): ModelSpec | undefined {
  const k = aliasOrRepo.toLowerCase();
  return MODELS.find((m) => m.alias === k || m.repo.toLowerCase() === k);
}

/** A Hub repo id from an alias or an `org/name` id; undefined when it is neither. */
export function resolveRepoId(aliasOrRepo: string): { repo: string; alias?: string } | undefined {
  const m = findModel(aliasOrRepo);
  if (m) return { repo: m.repo, alias: m.alias };
  if (/^[\w.-]+\/[\w.-]+$/.test(aliasOrRepo) && !aliasOrRepo.includes('..')) return { repo: aliasOrRepo };
  return undefined;
}

export interface TensorSpec {
  name: string;
  shape: number[];
  dtype: Dtype;
}

/**
 * Every tensor of the real architecture, in the order `save_pretrained` visits the module tree:
 * embeddings, each decoder layer (attention q/k/v/o with Qwen2's q/k/v biases, the gated MLP, both norms),
 * the final norm and an untied `lm_head`. Shapes are [out, in] as nn.Linear stores them.
 */
export function tensorsFor(spec: ModelSpec, dtype: Dtype = spec.dtype): TensorSpec[] {
  const a = spec.architecture;
  const H = a.hiddenSize;
  const headDim = H / a.heads;
  if (!Number.isInteger(headDim)) throw new RangeError(`${spec.alias}: hidden size ${H} is not divisible by ${a.heads} heads`);
  const kv = a.kvHeads * headDim;
  const out: TensorSpec[] = [{ name: 'model.embed_tokens.weight', shape: [a.vocabSize, H], dtype }];
  for (let i = 0; i < a.layers; i++) {
    const p = `model.layers.${i}`;
    out.push({ name: `${p}.self_attn.q_proj.weight`, shape: [H, H], dtype });
    if (a.attentionBias) out.push({ name: `${p}.self_attn.q_proj.bias`, shape: [H], dtype });
    out.push({ name: `${p}.self_attn.k_proj.weight`, shape: [kv, H], dtype });
    if (a.attentionBias) out.push({ name: `${p}.self_attn.k_proj.bias`, shape: [kv], dtype });
    out.push({ name: `${p}.self_attn.v_proj.weight`, shape: [kv, H], dtype });
    if (a.attentionBias) out.push({ name: `${p}.self_attn.v_proj.bias`, shape: [kv], dtype });
    out.push({ name: `${p}.self_attn.o_proj.weight`, shape: [H, H], dtype });
    out.push({ name: `${p}.mlp.gate_proj.weight`, shape: [a.intermediateSize, H], dtype });
    out.push({ name: `${p}.mlp.up_proj.weight`, shape: [a.intermediateSize, H], dtype });
    out.push({ name: `${p}.mlp.down_proj.weight`, shape: [H, a.intermediateSize], dtype });
    out.push({ name: `${p}.input_layernorm.weight`, shape: [H], dtype });
    out.push({ name: `${p}.post_attention_layernorm.weight`, shape: [H], dtype });
  }
  out.push({ name: 'model.norm.weight', shape: [H], dtype });
  if (!a.tieWordEmbeddings) out.push({ name: 'lm_head.weight', shape: [a.vocabSize, H], dtype });
  return out;
}

/** Number of parameters of the architecture (sum over `tensorsFor`). */
export function parameterCount(spec: ModelSpec): number {
  return tensorsFor(spec).reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
}
