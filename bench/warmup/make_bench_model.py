"""A larger transformer for the cached-graph benchmark (not committed: written to the path given).

Same architecture as fixtures/onnx/tiny_transformer.onnx (torch.onnx.export, dynamic batch/sequence), but
12 layers of width 128: more nodes for ORT's graph optimiser, which is what the cache saves.
Usage: python make_bench_model.py OUT.onnx
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures", "onnx"))
import torch  # noqa: E402
from make_onnx import TinyTransformer, export  # noqa: E402

torch.manual_seed(0)
ids = torch.randint(0, 256, (2, 16))
export(
    TinyTransformer(d=128, heads=4, layers=12), (ids, torch.ones_like(ids)), ["input_ids", "attention_mask"], "logits",
    {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}, "logits": {0: "batch", 1: "sequence"}},
    sys.argv[1],
)
