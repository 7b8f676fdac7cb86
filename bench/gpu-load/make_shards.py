"""Writes a Llama-3-8B-shaped bf16 safetensors checkpoint (16.06 GB: embeddings, 32 decoder layers, norm, lm_head)
split into N shards in the order transformers lists the tensors, plus model.safetensors.index.json. The bytes are a
repeated random block (a loader's speed does not depend on the values; --verify compares the GPU with the file).
No torch needed, so it is quick: the time is the disk's.
Usage: python3 make_shards.py OUTDIR SHARDS [LAYERS]   → one JSON line {dir, shards, bytes, seconds}"""

import json
import os
import struct
import sys
import time

out, shards = sys.argv[1], int(sys.argv[2])
layers = int(sys.argv[3]) if len(sys.argv) > 3 else 32
H, FF, KV, V = 4096, 14336, 1024, 128256

tensors = [("model.embed_tokens.weight", [V, H])]
for i in range(layers):
    p = f"model.layers.{i}."
    tensors += [
        (p + "self_attn.q_proj.weight", [H, H]),
        (p + "self_attn.k_proj.weight", [KV, H]),
        (p + "self_attn.v_proj.weight", [KV, H]),
        (p + "self_attn.o_proj.weight", [H, H]),
        (p + "mlp.gate_proj.weight", [FF, H]),
        (p + "mlp.up_proj.weight", [FF, H]),
        (p + "mlp.down_proj.weight", [H, FF]),
        (p + "input_layernorm.weight", [H]),
        (p + "post_attention_layernorm.weight", [H]),
    ]
tensors += [("model.norm.weight", [H]), ("lm_head.weight", [V, H])]


def nbytes(shape):
    n = 2
    for d in shape:
        n *= d
    return n


total = sum(nbytes(s) for _, s in tensors)
# Consecutive tensors, cut when a shard reaches total / shards (the last takes the rest).
groups, cur, size = [], [], 0
for t in tensors:
    cur.append(t)
    size += nbytes(t[1])
    if size >= total / shards and len(groups) < shards - 1:
        groups.append(cur)
        cur, size = [], 0
if cur:
    groups.append(cur)

os.makedirs(out, exist_ok=True)
block = os.urandom(64 << 20)
t0 = time.perf_counter()
weight_map = {}
for gi, g in enumerate(groups):
    name = f"model-{gi + 1:05d}-of-{len(groups):05d}.safetensors"
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for tname, shape in g:
        header[tname] = {"dtype": "BF16", "shape": shape, "data_offsets": [off, off + nbytes(shape)]}
        off += nbytes(shape)
        weight_map[tname] = name
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-(8 + len(hb)) % 8)
    with open(os.path.join(out, name), "wb", buffering=0) as f:
        f.write(struct.pack("<Q", len(hb)) + hb)
        left = off
        while left:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f)
os.sync()
print(json.dumps({"dir": out, "shards": len(groups), "bytes": total, "seconds": time.perf_counter() - t0}), flush=True)
