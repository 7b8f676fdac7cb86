"""Makes the gpu-load benchmark checkpoint: Llama-3-8B-shaped bf16 weights (embeddings, lm_head and N decoder
layers), random values, as 2 safetensors shards + index (safetensors.torch.save_file) and the same tensors as
2 pytorch_model-*.bin shards (torch.save). Default 16 layers = 9.08 GB (8.46 GiB).
Usage: python3 make_checkpoint.py OUTDIR [LAYERS]"""
import json
import os
import sys
import time

import torch
from safetensors.torch import save_file

out = sys.argv[1]
layers = int(sys.argv[2]) if len(sys.argv) > 2 else 16
os.makedirs(out, exist_ok=True)
H, FF, KV, V = 4096, 14336, 1024, 128256  # hidden, MLP (intermediate), KV heads x head dim, vocab
dev = "cuda" if torch.cuda.is_available() else "cpu"
g = torch.Generator(device=dev).manual_seed(0)


def rnd(*shape):
    return (torch.randn(*shape, generator=g, device=dev) * 0.02).to(torch.bfloat16).cpu()


shards = [{}, {}]
shards[0]["model.embed_tokens.weight"] = rnd(V, H)
for i in range(layers):
    s = shards[0] if i < layers // 2 else shards[1]
    p = f"model.layers.{i}."
    s[p + "self_attn.q_proj.weight"] = rnd(H, H)
    s[p + "self_attn.k_proj.weight"] = rnd(KV, H)
    s[p + "self_attn.v_proj.weight"] = rnd(KV, H)
    s[p + "self_attn.o_proj.weight"] = rnd(H, H)
    s[p + "mlp.gate_proj.weight"] = rnd(FF, H)
    s[p + "mlp.up_proj.weight"] = rnd(FF, H)
    s[p + "mlp.down_proj.weight"] = rnd(H, FF)
    s[p + "input_layernorm.weight"] = rnd(H)
    s[p + "post_attention_layernorm.weight"] = rnd(H)
shards[1]["model.norm.weight"] = rnd(H)
shards[1]["lm_head.weight"] = rnd(V, H)

weight_map, total = {}, 0
t0 = time.time()
for k, s in enumerate(shards):
    name = f"model-{k + 1:05d}-of-00002.safetensors"
    save_file(s, os.path.join(out, name), metadata={"format": "pt"})
    torch.save(s, os.path.join(out, f"pytorch_model-{k + 1:05d}-of-00002.bin"))
    for n, t in s.items():
        weight_map[n] = name
        total += t.numel() * t.element_size()
with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f)
os.sync()
print(json.dumps({"dir": out, "bytes": total, "tensors": len(weight_map), "layers": layers, "writeSeconds": time.time() - t0}))
