"""Tensor-parallel slices as vLLM's weight loaders cut them, for test/load/tp.test.ts (the oracle for src/load/tp.ts).

  python tp_oracle.py write DIR     write a small Llama + Qwen3 + DeepSeek-MoE + Phi-3-shaped checkpoint (3
                                    safetensors shards, written by safetensors itself) and config.json into DIR
  python tp_oracle.py slices DIR TP print {rank: {tensor: sha256 of its slice}} as JSON

The cuts follow vLLM (model_executor/layers/linear.py, vocab_parallel_embedding.py): ColumnParallelLinear and
MergedColumn narrow the output dim (0) by tp_rank * shard_size; RowParallelLinear narrows the input dim (1);
QKVParallelLinear's K/V shard is tp_rank // num_kv_head_replicas when there are fewer KV heads than ranks, and a
fused qkv_proj (MergedColumn's gate_up_proj) is split into its parts, each cut, the parts concatenated in order;
VocabParallelEmbedding pads the vocabulary to a multiple of 64 and gives each rank padded / tp rows (the last
ones may get fewer); everything else is replicated. Written from those rules, not from src/load/tp.ts.
"""

import hashlib
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file

HIDDEN, INTER, HEADS, KV, HEAD_DIM, VOCAB, EXPERTS = 64, 128, 8, 2, 8, 1000, 4


def write(folder):
    g = torch.Generator().manual_seed(3)

    def r(*shape, dtype=torch.bfloat16):
        return torch.randn(*shape, generator=g).to(dtype)

    a = {"model.embed_tokens.weight": r(VOCAB, HIDDEN), "model.norm.weight": r(HIDDEN), "lm_head.weight": r(VOCAB, HIDDEN)}
    for i in range(2):
        p = f"model.layers.{i}."
        a.update(
            {
                p + "input_layernorm.weight": r(HIDDEN),
                p + "post_attention_layernorm.weight": r(HIDDEN),
                p + "self_attn.q_proj.weight": r(HEADS * HEAD_DIM, HIDDEN),
                p + "self_attn.q_proj.bias": r(HEADS * HEAD_DIM, dtype=torch.float32),
                p + "self_attn.k_proj.weight": r(KV * HEAD_DIM, HIDDEN),
                p + "self_attn.v_proj.weight": r(KV * HEAD_DIM, HIDDEN),
                p + "self_attn.o_proj.weight": r(HIDDEN, HEADS * HEAD_DIM),
                p + "self_attn.q_norm.weight": r(HEAD_DIM),
                p + "mlp.gate_proj.weight": r(INTER, HIDDEN),
                p + "mlp.up_proj.weight": r(INTER, HIDDEN),
                p + "mlp.down_proj.weight": r(HIDDEN, INTER),
            }
        )
    b = {}
    p = "model.layers.2."
    b.update(
        {
            p + "self_attn.q_a_proj.weight": r(32, HIDDEN),
            p + "self_attn.q_a_layernorm.weight": r(32),
            p + "self_attn.q_b_proj.weight": r(HEADS * 12, 32),
            p + "self_attn.kv_a_proj_with_mqa.weight": r(24, HIDDEN),
            p + "self_attn.kv_a_layernorm.weight": r(16),
            p + "self_attn.kv_b_proj.weight": r(HEADS * 16, 16),
            p + "self_attn.o_proj.weight": r(HIDDEN, HEADS * 8),
            p + "mlp.gate.weight": r(EXPERTS, HIDDEN),
            p + "mlp.gate.e_score_correction_bias": r(EXPERTS, dtype=torch.float32),
            p + "mlp.shared_experts.gate_proj.weight": r(INTER, HIDDEN),
            p + "mlp.shared_experts.up_proj.weight": r(INTER, HIDDEN),
            p + "mlp.shared_experts.down_proj.weight": r(HIDDEN, INTER),
        }
    )
    for e in range(EXPERTS):
        q = f"{p}mlp.experts.{e}."
        b.update({q + "gate_proj.weight": r(INTER, HIDDEN), q + "up_proj.weight": r(INTER, HIDDEN), q + "down_proj.weight": r(HIDDEN, INTER)})
    # Phi-3's fused projections (a layer of its own shape, in a third shard)
    p = "model.layers.3."
    c = {
        p + "self_attn.qkv_proj.weight": r((HEADS + 2 * KV) * HEAD_DIM, HIDDEN),
        p + "self_attn.o_proj.weight": r(HIDDEN, HEADS * HEAD_DIM),
        p + "mlp.gate_up_proj.weight": r(2 * INTER, HIDDEN),
        p + "mlp.down_proj.weight": r(HIDDEN, INTER),
    }
    save_file(a, os.path.join(folder, "model-00001-of-00003.safetensors"))
    save_file(b, os.path.join(folder, "model-00002-of-00003.safetensors"))
    save_file(c, os.path.join(folder, "model-00003-of-00003.safetensors"))
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({"num_attention_heads": HEADS, "num_key_value_heads": KV, "hidden_size": HIDDEN, "vocab_size": VOCAB}, f)


def kv_shard(t, tp, rank):
    if KV < tp:
        replicas = tp // KV
        return t.narrow(0, (rank // replicas) * HEAD_DIM, HEAD_DIM)
    shard = t.shape[0] // tp
    return t.narrow(0, rank * shard, shard)


def cut(name, t, tp, rank):
    leaf = name.rsplit(".", 2)
    mod, kind = leaf[-2], leaf[-1]
    if mod == "qkv_proj":
        # QKVParallelLinear loading a fused checkpoint tensor: split by q/k/v sizes, cut each, in that order.
        q, k, v = t.split([HEADS * HEAD_DIM, KV * HEAD_DIM, KV * HEAD_DIM], 0)
        shard = q.shape[0] // tp
        return torch.cat([q.narrow(0, rank * shard, shard), kv_shard(k, tp, rank), kv_shard(v, tp, rank)])
    if mod == "gate_up_proj":
        # MergedColumnParallelLinear: gate and up halves, each cut.
        gate, up = t.chunk(2, 0)
        shard = gate.shape[0] // tp
        return torch.cat([gate.narrow(0, rank * shard, shard), up.narrow(0, rank * shard, shard)])
    if mod in ("embed_tokens", "lm_head"):
        padded = -(-t.shape[0] // 64) * 64
        per = padded // tp
        start = min(t.shape[0], rank * per)
        return t.narrow(0, start, min(t.shape[0], start + per) - start)
    if mod in ("k_proj", "v_proj"):
        return kv_shard(t, tp, rank)
    if mod in ("q_proj", "q_b_proj", "kv_b_proj", "gate_proj", "up_proj"):
        shard = t.shape[0] // tp
        return t.narrow(0, rank * shard, shard)
    if mod in ("o_proj", "down_proj") and kind == "weight":
        shard = t.shape[1] // tp
        return t.narrow(1, rank * shard, shard)
    return t


def slices(folder, tp):
    out = {}
    for f in sorted(os.listdir(folder)):
        if not f.endswith(".safetensors"):
            continue
        for name, t in load_file(os.path.join(folder, f)).items():
            for rank in range(tp):
                s = cut(name, t, tp, rank).contiguous()
                data = s.view(-1).view(torch.uint8).numpy().tobytes() if s.numel() else b""
                out.setdefault(str(rank), {})[name] = hashlib.sha256(data).hexdigest()
    return out


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2])
    else:
        print(json.dumps(slices(sys.argv[2], int(sys.argv[3]))))
